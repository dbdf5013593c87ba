"""The health of every node below this one, from the reports that travel up with each exchange.

A node is *missing* when nothing it wrote has arrived for ``missing_hours`` (or never has, while
the tree lists it); *stalled* when its report says work has waited for longer than ``STALL_S`` or
its last exchange failed. Each node that goes missing is logged as a warning once, not on every look.
"""

from __future__ import annotations

import logging
import time

import msgspec

from protocol.hlc import wall_seconds
from protocol.session import NodeReport
from sanji.store import Store

log = logging.getLogger("sanji.observe")
STALL_S = 3600.0  # work waiting this long at a node is a problem, whatever its link says


class NodeHealth(msgspec.Struct, frozen=True, kw_only=True):
    node: str
    role: str
    state: str  # ok / stalled / missing / never
    last_report_at: float | None  # unix seconds, by the reporting node's clock
    age_s: float | None
    oldest_unacked_s: float = 0.0
    queue_length: int = 0
    last_error: str = ""
    catalogue_version: int = 0


def judge(report: NodeReport | None, *, now: float, missing_s: float) -> str:
    if report is None:
        return "never"
    if now - wall_seconds(report.at) > missing_s:
        return "missing"
    if report.last_error or report.oldest_unacked_s > STALL_S:
        return "stalled"
    return "ok"


async def fleet_health(store: Store, *, missing_hours: float, now: float | None = None) -> list[NodeHealth]:
    now = time.time() if now is None else now
    reports = {r.node: r for r in await store.reports()}
    below = [n for n in store.directory.subtree(store.node_id) if n != store.node_id]
    out = []
    for node in sorted(set(below) | set(reports)):
        report = reports.get(node)
        at = wall_seconds(report.at) if report else None
        out.append(
            NodeHealth(
                node=node,
                role=store.directory.role(node) if node in store.directory else "",
                state=judge(report, now=now, missing_s=missing_hours * 3600),
                last_report_at=at,
                age_s=round(now - at, 1) if at is not None else None,
                oldest_unacked_s=report.oldest_unacked_s if report else 0.0,
                queue_length=report.queue_length if report else 0,
                last_error=report.last_error if report else "",
                catalogue_version=report.catalogue_version if report else 0,
            )
        )
    return out


class FleetWarnings:
    """Logs a node going missing once, and its return once."""

    def __init__(self) -> None:
        self.missing: set[str] = set()

    def note(self, health: list[NodeHealth], *, missing_hours: float) -> None:
        now_missing = {h.node for h in health if h.state == "missing"}
        for h in health:
            if h.node in now_missing and h.node not in self.missing:
                log.warning(
                    "node %s has not been heard from for %.1f hours (limit %g): check its power and link",
                    h.node,
                    (h.age_s or 0) / 3600,
                    missing_hours,
                )
        for node in self.missing - now_missing:
            log.warning("node %s is reporting again", node)
        self.missing = now_missing
