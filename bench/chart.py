"""A PNG beside every benchmark's JSON: each figure's value against its same-run baseline, and its target.

``chart(result, out)`` draws what ``bench.output.publish`` wrote to ``out`` into ``out`` with ``.png``.
What it draws, one small panel each:

- every entry of ``result["figures"]`` (``{figure, value, unit, target, pass, baseline}``: ``bench.links``,
  ``bench.footprint`` and the others), when the result has that list;
- otherwise every ``{value, unit, baseline[, baseline_unit]}`` anywhere in the result (``bench.apply_rate``'s
  and ``bench.audit_verify``'s ``measurements``), named by its path. Quantities without a baseline or a
  target (latency percentiles, the baseline's own rate) are details, not comparisons, and are left out.

matplotlib is imported inside ``chart`` only: every benchmark imports ``bench.output``, and a result must
still be written where matplotlib is not installed (it is a dev dependency; a node never imports bench).
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PANEL_INCHES = (3.2, 2.9)
TITLE_LINE_INCHES = 0.22
DPI = 100
MAX_COLUMNS = 4

# Colour-blind-safe pairs (Okabe-Ito): met is bluish green, missed vermilion, no target plain blue.
MET = "#009e73"
MISSED = "#d55e00"
NO_TARGET = "#0072b2"
BASELINE = "#999999"
TARGET = "#222222"
NOTE = "#666666"


@dataclass(frozen=True)
class Panel:
    """One figure or measurement as drawn: ``value`` None means the benchmark did not finish it."""

    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_unit: str = ""
    target: float | None = None
    passed: bool | None = None


def _number(x: object) -> float | None:
    # bool is an int to Python, but a `pass` flag or a `met` is never a quantity to draw.
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def _panel(name: str, entry: Mapping[str, Any]) -> Panel:
    passed = entry.get("pass")
    return Panel(
        name=name,
        value=_number(entry.get("value")),
        unit=str(entry.get("unit") or ""),
        baseline=_number(entry.get("baseline")),
        baseline_unit=str(entry.get("baseline_unit") or ""),
        target=_number(entry.get("target")),
        passed=passed if isinstance(passed, bool) else None,
    )


def _quantities(node: object, path: tuple[str, ...]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(node, Mapping):
        if "value" in node and isinstance(node.get("unit"), str) and ("baseline" in node or "target" in node):
            yield ".".join(p for p in path if p != "measurements"), node
            return
        for key, child in node.items():
            yield from _quantities(child, (*path, str(key)))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _quantities(child, (*path, str(i)))


def panels(result: Mapping[str, Any]) -> list[Panel]:
    """What ``chart`` draws, in the order the result lists it."""
    figures = result.get("figures")
    if isinstance(figures, list):
        entries = [f for f in figures if isinstance(f, Mapping)]
        return [_panel(str(f.get("figure") or f"figure {i + 1}"), f) for i, f in enumerate(entries)]
    return [_panel(name, entry) for name, entry in _quantities(result, ())]


def grid(count: int) -> tuple[int, int]:
    """Rows and columns of panels for ``count`` panels."""
    columns = max(1, min(MAX_COLUMNS, count))
    return math.ceil(count / columns), columns


def _shown(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _wrapped(name: str, width: int = 28) -> str:
    # Figure names are snake_case and measurement paths dotted: break after those, never inside a word.
    lines = [""]
    for part in re.findall(r"[^._]+[._]?|[._]", name):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def _title_lines(result: Mapping[str, Any], out: Path, drawn: list[Panel], width_inches: float) -> list[str]:
    name = result.get("benchmark") or result.get("bench") or out.stem
    machine = result.get("machine")
    if not isinstance(machine, Mapping):
        machine = {}
    commit = str(machine.get("git_commit") or "unknown")
    if machine.get("git_tracked_files_modified"):
        commit += " (with uncommitted changes)"
    load = machine.get("load_average_1m")
    if isinstance(load, Mapping):
        shown = [f"{x:g}" if (x := _number(load.get(k))) is not None else "?" for k in ("before", "after")]
        load_text = f"load average {shown[0]} → {shown[1]}"
    else:
        load_text = "load average unknown"
    with_target = [p for p in drawn if p.target is not None]
    met = sum(1 for p in with_target if p.passed)
    unfinished = sum(1 for p in drawn if p.value is None)
    segments = [str(name), f"commit {commit}", load_text]
    if result.get("at"):
        segments.append(str(result["at"]))
    summary = [
        f"{len(drawn)} {'figure' if len(drawn) == 1 else 'figures'} against a baseline from the same run",
        f"{met} of {len(with_target)} targets met" if with_target else "no targets",
    ]
    if unfinished:
        summary.append(f"{unfinished} not finished")
    # One chart may be a single panel wide: wrap at the figure's width (≈ 6 pt a character at 10 pt).
    chars = max(20, int(width_inches * 72 / 6.2))
    lines: list[str] = []
    for parts, sep in ((segments, "   "), (summary, "; ")):
        lines.append(parts[0])
        for part in parts[1:]:
            if len(lines[-1]) + len(sep) + len(part) > chars:
                lines.append(part)
            else:
                lines[-1] += sep + part
    return [piece for line in lines for piece in textwrap.wrap(line, chars)]


def _layout(result: Mapping[str, Any], out: Path, drawn: list[Panel]) -> tuple[list[str], tuple[float, float]]:
    rows, columns = grid(len(drawn))
    width = columns * PANEL_INCHES[0]
    lines = _title_lines(result, out, drawn, width)
    return lines, (width, rows * PANEL_INCHES[1] + TITLE_LINE_INCHES * (len(lines) + 1))


def size_inches(result: Mapping[str, Any], out: Path) -> tuple[float, float]:
    """The chart's width and height: the panels' grid and as many title lines as its width needs."""
    return _layout(result, out, panels(result))[1]


def _draw(ax: Axes, panel: Panel) -> None:
    colour = NO_TARGET if panel.passed is None else (MET if panel.passed else MISSED)
    verdict = "" if panel.target is None else (" — met" if panel.passed else " — missed")
    ax.set_title(_wrapped(panel.name) + verdict, fontsize=9, color=TARGET if panel.target is None else colour)
    labels = ["this run", "baseline"]
    if panel.baseline_unit and panel.baseline_unit != panel.unit:
        # A baseline unit says what the baseline is ("actions/s through open_frame alone"): show it in full.
        labels[1] = "baseline\n" + textwrap.fill(panel.baseline_unit, 24)
    heights = [panel.value, panel.baseline]
    bars = ax.bar([0, 1], [h or 0.0 for h in heights], color=[colour, BASELINE], width=0.6)
    ax.set_xticks([0, 1], labels, fontsize=7)
    ax.set_ylabel(panel.unit or "(no unit)", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    known = [h for h in (*heights, panel.target) if h is not None]
    top, bottom = max([0.0, *known]), min([0.0, *known])
    if top == bottom:
        top = 1.0  # every number is zero: an axis from 0 to 1 still shows the zero bars and target
    # Headroom above the tallest bar for its number and, above that, the target's legend.
    ax.set_ylim(bottom * 1.4, top * 1.4)
    for bar, height in zip(bars, heights, strict=True):
        x = bar.get_x() + bar.get_width() / 2
        if height is not None:
            ax.text(x, height, _shown(height), ha="center", va="bottom", fontsize=8)
        elif bar is bars[0]:
            ax.text(x, top * 0.5, "not finished", ha="center", va="center", fontsize=8, color=MISSED, rotation=90)
        else:
            ax.text(x, top * 0.5, "no baseline", ha="center", va="center", fontsize=8, color=NOTE, rotation=90)
    if panel.target is not None:
        # A legend, not a label on the line: a label there would sit on a bar's number when they are close.
        ax.axhline(panel.target, color=TARGET, linestyle="--", linewidth=1, label=f"target {_shown(panel.target)}")
        ax.legend(loc="upper right", fontsize=7, frameon=False, handlelength=2.5)
    ax.set_xlim(-0.55, 1.55)
    ax.spines[["top", "right"]].set_visible(False)


def png_path(out: Path) -> Path:
    """Where the chart of the result written to ``out`` goes: the same name with ``.png``, never ``out`` itself."""
    return out.with_name(out.name + ".png") if out.suffix == ".png" else out.with_suffix(".png")


def chart(result: Mapping[str, Any], out: Path) -> Path | None:
    """Draw ``result`` to ``out`` with the suffix ``.png``; None when it has nothing with a baseline or target."""
    drawn = panels(result)
    if not drawn:
        return None
    # The object API with the Agg canvas, not pyplot: no global backend or figure registry, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, columns = grid(len(drawn))
    lines, size = _layout(result, out, drawn)
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle("\n".join(lines), fontsize=10)
    axes = figure.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(drawn):
            _draw(ax, drawn[i])
        else:
            ax.set_axis_off()
    png = png_path(out)
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=DPI)
    return png


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.chart RESULT.json ...``: draw results kept from earlier runs again."""
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m bench.chart", description="Draw kept benchmark results again, each as a PNG beside its JSON."
    )
    parser.add_argument("results", type=Path, nargs="+", help="JSON results written by a benchmark")
    args = parser.parse_args(argv)
    for path in args.results:
        png = chart(json.loads(path.read_text(encoding="utf-8")), path)
        print(f"{path}: {png or 'nothing with a baseline or a target to draw'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
