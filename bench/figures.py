"""How a benchmark writes a measured number into its result: rounded alike, with its unit and what it is
compared with (a baseline from the same run, a target), so every result reads the same and ``bench.chart``
can draw any of them."""

from __future__ import annotations

import math
from typing import Any


def rounded(value: float) -> float:
    """Four significant digits: enough to compare runs, short enough to read."""
    return float(f"{value:.4g}")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: always one of the values measured, never an interpolation between two."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def quantity(
    value: float, unit: str, baseline: float | None = None, baseline_unit: str = "", **extra: Any
) -> dict[str, Any]:
    """A measured quantity beside its baseline (``measurements`` in ``apply_rate`` and ``audit_verify``)."""
    out: dict[str, Any] = {"value": rounded(value), "unit": unit}
    if baseline is not None:
        out["baseline"] = rounded(baseline)
        out["baseline_unit"] = baseline_unit or unit
    out.update(extra)
    return out


def figure(
    value: float | None, unit: str, *, target: float | None, baseline: float | None, lower_is_better: bool = True
) -> dict[str, Any]:
    """One entry of a result's ``figures``: value (None: did not finish), unit, target, pass, baseline (same unit)."""
    out: dict[str, Any] = {"value": None if value is None else rounded(value), "unit": unit}
    if target is not None:
        out["target"] = target
        out["pass"] = value is not None and (value <= target if lower_is_better else value >= target)
    out["baseline"] = None if baseline is None else rounded(baseline)
    return out
