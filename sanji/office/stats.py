"""Statistics over ledger rows: volume, on-time rate, working days, satisfaction, complaints.

Pure: rows in, figures out. Definitions (the screen and the exports print them too):

* volume 办件量: errands registered in the period;
* answered 办结量: of those, the ones with an outcome (approved, refused, not accepted …);
* on-time rate 按时办结率: answered on time / answered with a deadline;
* average working days 平均办理工作日: acceptance to answer, supplement pauses taken out;
* satisfaction 满意率: (满意 + 基本满意) / ratings — the share not dissatisfied, as the seeds
  report it ("满意率达99%以上", seeds 003 and 004);
* complaints 投诉, deemed approvals 超时默许, extensions 延期, proxied 代办件 (carried by a village agent): counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date
from typing import Literal, get_args

import msgspec

from sanji.office.ledger import LEVEL_LABELS, LedgerRow

Dimension = Literal[
    "matter",
    "kind",
    "level",
    "county",
    "township",
    "node",
    "department",
    "window",
    "handler",
    "month",
    "quarter",
    "week",
]
DIMENSIONS: tuple[str, ...] = get_args(Dimension)
DIMENSION_LABELS = {
    "matter": "事项 Matter",
    "kind": "办件类型 Kind",
    "level": "层级 Level",
    "county": "县 County",
    "township": "乡镇 Township",
    "node": "登记节点 Node",
    "department": "部门 Department",
    "window": "窗口 Window",
    "handler": "经办人 Handler",
    "month": "月份 Month",
    "quarter": "季度 Quarter",
    "week": "周 Week",
}


class StatLine(msgspec.Struct, kw_only=True):
    key: str
    label: str
    volume: int = 0
    answered: int = 0
    on_time: int = 0
    late: int = 0
    on_time_rate: float | None = None
    average_working_days: float | None = None
    ratings: int = 0
    satisfied: int = 0
    satisfaction: float | None = None
    complaints: int = 0
    deemed: int = 0
    extensions: int = 0
    overdue_days: int = 0
    proxied: int = 0  # 代办件


def quarter_of(day: str) -> str:
    d = date.fromisoformat(day)
    return f"{d.year}Q{(d.month - 1) // 3 + 1}"


def week_of(day: str) -> str:
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def key_function(by: str) -> Callable[[LedgerRow], str]:
    if by not in DIMENSIONS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(DIMENSIONS)}")
    if by == "month":
        return lambda r: r.registered_on[:7]
    if by == "quarter":
        return lambda r: quarter_of(r.registered_on)
    if by == "week":
        return lambda r: week_of(r.registered_on)
    if by == "node":
        return lambda r: r.scope
    if by == "county":
        return lambda r: r.county or r.scope  # the city's own errands, if ever: under its own id
    attr = by
    return lambda r: str(getattr(r, attr))


def _label(by: str, key: str, rows: Sequence[LedgerRow]) -> str:
    if by == "matter" and rows:
        return f"{key} {rows[0].matter_name}" if rows[0].matter_name != key else key
    if by == "level":
        return LEVEL_LABELS.get(key, key or "—")
    return key or "—"


def line(key: str, label: str, rows: Sequence[LedgerRow]) -> StatLine:
    out = StatLine(key=key, label=label, volume=len(rows))
    days: list[int] = []
    for r in rows:
        out.answered += r.answered
        if r.on_time is True:
            out.on_time += 1
        elif r.on_time is False:
            out.late += 1
        if r.working_days is not None:
            days.append(r.working_days)
        if r.rating:
            out.ratings += 1
            out.satisfied += r.rating in ("满意", "基本满意")
        out.complaints += r.complaints
        out.deemed += r.deemed
        out.extensions += r.extensions
        out.overdue_days += r.overdue_days
        out.proxied += bool(r.service_kind)
    judged = out.on_time + out.late
    out.on_time_rate = round(out.on_time / judged, 4) if judged else None
    out.average_working_days = round(sum(days) / len(days), 2) if days else None
    out.satisfaction = round(out.satisfied / out.ratings, 4) if out.ratings else None
    return out


def natural_groups(regional: bool) -> tuple[str, ...]:
    """The groupings a desk shows and exports first: by county above the counties (a city's ledger spans
    several), by township at a county and below."""
    return ("county", "township", "matter", "month") if regional else ("township", "matter", "month")


def group(rows: Sequence[LedgerRow], by: str) -> list[StatLine]:
    """One line per value of ``by``, sorted by key; periods in time order."""
    keyf = key_function(by)
    buckets: dict[str, list[LedgerRow]] = defaultdict(list)
    for r in rows:
        buckets[keyf(r)].append(r)
    return [line(k, _label(by, k, buckets[k]), buckets[k]) for k in sorted(buckets)]


def total(rows: Sequence[LedgerRow]) -> StatLine:
    return line("", "合计 Total", rows)


class Series(msgspec.Struct, kw_only=True):
    """Per township (or per county, at a city), per period: what the chart draws."""

    periods: list[str]
    townships: list[str]
    volume: dict[str, list[int]]
    on_time_rate: dict[str, list[float | None]]


def series(rows: Sequence[LedgerRow], period: str = "month", *, by: str = "township") -> Series:
    """``by``: "township" (a county's chart) or "county" (a city's): one line per value, an errand registered
    outside any (at the county itself, or above the counties) under its own node id."""
    keyf = key_function(period)
    linef = key_function(by) if by == "county" else (lambda r: r.township or r.scope)
    periods = sorted({keyf(r) for r in rows})
    townships = sorted({linef(r) for r in rows})
    cells: dict[tuple[str, str], list[LedgerRow]] = defaultdict(list)
    for r in rows:
        cells[(linef(r), keyf(r))].append(r)
    volume: dict[str, list[int]] = {}
    rate: dict[str, list[float | None]] = {}
    for t in townships:
        lines = [line(p, p, cells.get((t, p), [])) for p in periods]
        volume[t] = [ln.volume for ln in lines]
        rate[t] = [ln.on_time_rate for ln in lines]
    return Series(periods=periods, townships=townships, volume=volume, on_time_rate=rate)
