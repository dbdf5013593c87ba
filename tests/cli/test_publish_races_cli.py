"""``sanji calendar publish`` and ``sanji rules publish`` run twice at once on one county (two processes).

Both pass the check before signing when they start together; the transaction that keeps the document decides
(``VersionNotNewer``): exactly one prints "published" and exits 0, the other exits 2 with the refusal a
command run afterwards prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from protocol.assessment import default_rules
from sanji.demo.cluster import Cluster
from tests.cli.test_calendar_cli import NOTICE_2027

ROOT = Path(__file__).resolve().parents[2]


def at_once(*commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Start every command before waiting for any; their results in the order given."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "sanji.cli.main", *c],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for c in commands
    ]
    done = []
    for command, process in zip(commands, started, strict=True):
        out, err = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return done


@pytest.fixture
def county(tmp_path: Path) -> str:
    return str(Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True).nodes["C"].config)


@pytest.mark.timeout(240)
def test_two_calendar_publications_at_once(tmp_path: Path, county: str) -> None:
    notice = tmp_path / "calendar.toml"
    notice.write_text(NOTICE_2027.format(version=1), encoding="utf-8")
    command = ["calendar", "publish", "--config", county, str(notice)]
    results = at_once(command, command)
    assert sorted(r.returncode for r in results) == [0, 2], [(r.returncode, r.stdout, r.stderr[-800:]) for r in results]
    lost = next(r for r in results if r.returncode == 2)
    assert lost.stdout.startswith(
        "error: 本中心已持有第1版日历，新发布的版本号须更高 this hub already holds calendar v1"
    ), lost.stdout
    (later,) = at_once(command)
    assert later.returncode == 2 and later.stdout == lost.stdout


@pytest.mark.timeout(240)
def test_two_rules_publications_at_once(tmp_path: Path, county: str) -> None:
    files = []
    for cap in (11, 12):
        rules = msgspec.structs.replace(default_rules("C"), version=2, centre_bonus_cap=cap)
        path = tmp_path / f"rules-{cap}.json"
        path.write_text(json.dumps(msgspec.to_builtins(rules), ensure_ascii=False), encoding="utf-8")
        files.append(path)
    results = at_once(*(["rules", "publish", "--config", county, str(f)] for f in files))
    assert sorted(r.returncode for r in results) == [0, 2], [(r.returncode, r.stdout, r.stderr[-800:]) for r in results]
    lost = next(r for r in results if r.returncode == 2)
    said = "error: 版本号须高于现行版本（现行第2版） assessment rules version 2 is not newer than the version held (2)"
    assert lost.stderr.startswith(said), lost.stderr[-800:]
    (later,) = at_once(["rules", "publish", "--config", county, str(files[0])])
    assert later.returncode == 2 and later.stderr == lost.stderr
    (shown,) = at_once(["rules", "show", "--json", "--config", county])
    held = json.loads(shown.stdout)
    won = next(i for i, r in enumerate(results) if r.returncode == 0)
    assert (held["version"], held["centre_bonus_cap"]) == (2, (11, 12)[won])
