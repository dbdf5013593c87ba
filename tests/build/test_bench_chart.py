"""Every benchmark result gets a PNG beside its JSON (issue 15): value against the same run's baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from bench.chart import DPI, MISSED, grid, main, panels, size_inches
from bench.output import publish

ROOT = Path(__file__).resolve().parents[2]

FIGURES: dict[str, Any] = {
    "benchmark": "links",
    "at": "2026-12-05T16:00:00+00:00",
    "machine": {"git_commit": "abc1234", "load_average_1m": {"before": 3.5, "after": 4.25}},
    "figures": [
        {"figure": "reconnect_p95_resume", "value": 0.44, "unit": "s", "target": 10, "pass": True, "baseline": 1.87},
        {"figure": "reconnect_p95_lost", "value": None, "unit": "s", "target": 10, "pass": False, "baseline": 1.87},
        {"figure": "idle_exchange_bytes_up", "value": 1316, "unit": "bytes", "target": 600, "pass": False,
         "baseline": 150},
        {"figure": "village_idle_cpu_fraction", "value": 0.07, "unit": "of one core", "baseline": 0},
        {"figure": "backlog_drops_lost_or_doubled", "value": 0, "unit": "errands", "target": 0, "pass": True,
         "baseline": 0},
    ],
}  # fmt: skip

MEASUREMENTS: dict[str, Any] = {
    "benchmark": "audit_verify",
    "machine": {"git_commit": "abc1234", "load_average_1m": {"before": 1.0, "after": None}},
    "measurements": {
        "verify_seconds": {"value": 20.3, "unit": "s", "baseline": 41.9, "baseline_unit": "s, in one process"},
        "verify_rate": {"value": 49261, "unit": "actions/s", "baseline": 23866, "baseline_unit": "actions/s"},
        "push_latency": {"p50": {"value": 12.0, "unit": "ms"}},  # no baseline, no target: a detail, not drawn
        "target": {"seconds": 30, "met": True},
    },
}


def published(result: dict[str, Any], out: Path) -> np.ndarray[Any, Any]:
    publish(result, out)
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image: np.ndarray[Any, Any] = imread(png)
    return image


def test_figures_get_a_png_beside_the_unchanged_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results" / "links.json"
    image = published(FIGURES, out)
    written = out.read_text(encoding="utf-8")
    assert json.loads(written) == FIGURES
    assert written == json.dumps(FIGURES, ensure_ascii=False, indent=2) + "\n"
    assert json.loads(capsys.readouterr().out) == FIGURES  # stdout is still the one JSON object
    rows, columns = grid(5)
    assert (rows, columns) == (2, 4)
    width, height = size_inches(FIGURES, out)
    assert image.shape[:2] == (round(height * DPI), round(width * DPI))
    assert image.shape[2] in (3, 4)


def test_a_missed_target_is_drawn_in_the_missed_colour(tmp_path: Path) -> None:
    missed = np.array([int(MISSED[i : i + 2], 16) / 255 for i in (1, 3, 5)])

    def has_missed_colour(image: np.ndarray[Any, Any]) -> bool:
        return bool(np.any(np.all(np.abs(image[..., :3] - missed) < 2 / 255, axis=-1)))

    assert has_missed_colour(published(FIGURES, tmp_path / "some_missed.json"))
    all_met = {**FIGURES, "figures": [f for f in FIGURES["figures"] if f.get("pass") is not False]}
    assert not has_missed_colour(published(all_met, tmp_path / "all_met.json"))


def test_a_figure_not_finished_is_drawn_without_a_value() -> None:
    drawn = {p.name: p for p in panels(FIGURES)}
    assert list(drawn) == [f["figure"] for f in FIGURES["figures"]]
    lost = drawn["reconnect_p95_lost"]
    assert (lost.value, lost.baseline, lost.target, lost.passed) == (None, 1.87, 10, False)
    assert drawn["village_idle_cpu_fraction"].target is None
    assert drawn["village_idle_cpu_fraction"].passed is None


def test_measurements_are_found_by_path_and_drawn(tmp_path: Path) -> None:
    drawn = panels(MEASUREMENTS)
    assert [(p.name, p.value, p.baseline, p.unit) for p in drawn] == [
        ("verify_seconds", 20.3, 41.9, "s"),
        ("verify_rate", 49261, 23866, "actions/s"),
    ]
    out = tmp_path / "audit_verify.json"
    image = published(MEASUREMENTS, out)
    assert json.loads(out.read_text(encoding="utf-8")) == MEASUREMENTS
    width, height = size_inches(MEASUREMENTS, out)
    assert image.shape[:2] == (round(height * DPI), round(width * DPI))
    assert height < size_inches(FIGURES, out)[1]  # one row of panels, not two


def test_a_result_with_nothing_to_compare_gets_no_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bare.json"
    publish({"benchmark": "bare", "seconds": 1.5}, out)
    assert out.exists()
    assert not out.with_suffix(".png").exists()
    assert "no chart" in capsys.readouterr().err


def test_a_kept_result_is_drawn_again_from_its_json(tmp_path: Path) -> None:
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(MEASUREMENTS), encoding="utf-8")
    assert main([str(kept)]) == 0
    width, height = size_inches(MEASUREMENTS, kept)
    assert imread(tmp_path / "kept.png").shape[:2] == (round(height * DPI), round(width * DPI))


def test_without_matplotlib_the_json_is_still_written(tmp_path: Path) -> None:
    out = tmp_path / "links.json"
    # A fresh interpreter where importing matplotlib fails, as on a machine without the dev extra.
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "sys.modules['matplotlib'] = None\n"
        "from bench.output import publish\n"
        f"publish(json.loads(sys.argv[1]), Path({str(out)!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(FIGURES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text(encoding="utf-8")) == FIGURES
    assert not out.with_suffix(".png").exists()
    assert "matplotlib is not installed" in done.stderr
