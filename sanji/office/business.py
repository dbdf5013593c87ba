"""Business reports (业务报表): each node's signed day counts going up, and the county's audit table.

A node counts, from the ledger of the errands it holds (``sanji.office.source.ledger``: its
subtree), what happened on each business day (``protocol.business``). The duty
(``build_own_reports``) signs one report per complete day, once; the exchange carries the last
week of them up (``BusinessBook.own_latest``). At the county, ``business_table`` sets the sums a
node reported for a period beside the same counts computed from the errands the county holds for
that node's subtree: the same function over the same errands gives the same figures, so a
difference means errands the county has not received yet, or a node whose store disagrees.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta

import msgspec

from protocol.business import COUNTS, KEEP_DAYS, BusinessReport, sign_business
from protocol.topology import COUNTY
from sanji.context import NodeContext
from sanji.office.ledger import LedgerFilter, LedgerRow
from sanji.office.query import QueryProblem
from sanji.office.source import ledger
from sanji.store import Store
from sanji.store.business import BusinessBook

LOOKBACK_DAYS = 366  # an errand registered this long before a day may still be decided or delivered on it
MAX_PERIOD_DAYS = 366
RATINGS = {"满意": "satisfied", "基本满意": "basically_satisfied", "不满意": "dissatisfied"}
COUNT_LABELS = {
    "received": "收件",
    "accepted": "受理",
    "decided": "办结",
    "delivered": "送达",
    "on_time": "按时办结",
    "late": "超期办结",
    "extensions": "延期",
    "deemed": "超时默许",
    "satisfied": "满意",
    "basically_satisfied": "基本满意",
    "dissatisfied": "不满意",
}


def tally(rows: Iterable[LedgerRow], days: set[str]) -> dict[str, dict[str, int]]:
    """Per business day in ``days``: the counts of ``protocol.business`` from ledger rows.

    Received, accepted, decided and delivered fall on the day of their step; on time, late,
    extensions, deemed approvals and ratings on the day the errand was decided.
    """
    out: dict[str, dict[str, int]] = {d: dict.fromkeys(COUNTS, 0) for d in days}
    for row in rows:
        for name, day in (
            ("received", row.registered_on),
            ("accepted", row.accepted_on),
            ("decided", row.answered_on),
            ("delivered", row.delivered_on),
        ):
            if day in out:
                out[day][name] += 1
        counts = out.get(row.answered_on)
        if counts is None:
            continue
        if row.on_time is True:
            counts["on_time"] += 1
        elif row.on_time is False:
            counts["late"] += 1
        counts["extensions"] += row.extensions
        counts["deemed"] += int(row.deemed)
        if row.rating in RATINGS:
            counts[RATINGS[row.rating]] += 1
    return out


def days_between(date_from: date, date_to: date) -> list[str]:
    return [(date_from + timedelta(days=i)).isoformat() for i in range((date_to - date_from).days + 1)]


async def _rows(store: Store, context: NodeContext, date_from: date, date_to: date, node: str = "") -> list[LedgerRow]:
    flt = LedgerFilter(
        date_from=(date_from - timedelta(days=LOOKBACK_DAYS)).isoformat(), date_to=date_to.isoformat(), node=node
    )
    return await ledger(store, context, flt, as_of=date_to)


async def build_own_reports(store: Store, context: NodeContext, *, today: date | None = None) -> list[str]:
    """Sign this node's report of each of its last complete business days not yet reported; the days built.

    The county reports to no one and builds none. A report states what the node held when it was
    built and is never rebuilt: errands arriving later show as a difference at the county.
    """
    if store.directory.role(store.node_id) == COUNTY or store.directory.parent(store.node_id) is None:
        return []
    today = today or context.today()
    days = [(today - timedelta(days=i)).isoformat() for i in range(KEEP_DAYS, 0, -1)]
    book = BusinessBook(store)
    missing = [d for d in days if d not in await book.days_held(store.node_id, days)]
    if not missing:
        return []
    rows = await _rows(store, context, date.fromisoformat(missing[0]), today - timedelta(days=1))
    counted = tally(rows, set(missing))
    for day in missing:
        report = BusinessReport(node=store.node_id, day=day, at=store.clock.now(), **counted[day])
        await book.keep(report, sign_business(report, store.key))
    return missing


class BusinessLine(msgspec.Struct, kw_only=True):
    """One node's period: what it reported (sums of its day reports), what this node computes, the difference."""

    node: str
    name: str
    role: str
    days: int  # days in the period
    days_reported: int
    reported: dict[str, int]
    computed: dict[str, int]
    difference: dict[str, int]  # reported − computed, only where they differ (on reported days)


async def business_table(store: Store, context: NodeContext, date_from: date, date_to: date) -> list[BusinessLine]:
    """Every node below this one: its reported counts over the period beside this node's own count.

    The comparison is made over the days the node reported: a day it has not reported yet is not a
    difference, it is a missing day (``days_reported`` < ``days``).
    """
    if date_to < date_from:
        raise QueryProblem("the period ends before it starts", zh="截止日期早于起始日期")
    if (date_to - date_from).days >= MAX_PERIOD_DAYS:
        raise QueryProblem(
            f"a period of at most {MAX_PERIOD_DAYS} days", zh=f"业务报表最多查询{MAX_PERIOD_DAYS}天，请缩短时间段"
        )
    days = days_between(date_from, date_to)
    directory = store.directory
    reported: dict[str, dict[str, BusinessReport]] = defaultdict(dict)
    for report in await BusinessBook(store).reports(days[0], days[-1]):
        reported[report.node][report.day] = report
    rows = await _rows(store, context, date_from, date_to)
    out: list[BusinessLine] = []
    for node in sorted(directory.subtree(store.node_id) - {store.node_id}):
        mine = [r for r in rows if directory.is_within(r.scope, node)]
        per_day = tally(mine, set(days))
        held = reported.get(node, {})
        sums = dict.fromkeys(COUNTS, 0)
        computed = dict.fromkeys(COUNTS, 0)
        computed_on_reported = dict.fromkeys(COUNTS, 0)
        for day in days:
            for name in COUNTS:
                computed[name] += per_day[day][name]
                if day in held:
                    sums[name] += getattr(held[day], name)
                    computed_on_reported[name] += per_day[day][name]
        entry = directory.get(node)
        out.append(
            BusinessLine(
                node=node,
                name=entry.name or node,
                role=entry.role,
                days=len(days),
                days_reported=len(held),
                reported=sums,
                computed=computed,
                difference={n: sums[n] - computed_on_reported[n] for n in COUNTS if sums[n] != computed_on_reported[n]},
            )
        )
    return out
