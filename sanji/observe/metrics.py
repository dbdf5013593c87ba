"""Prometheus metrics of one node (``/metrics``): what the sync driver did, and what the store holds now.

Counters live in the process (a restart starts them at zero, as Prometheus expects); gauges are
read from the store at each scrape, so they are never stale. Each node has its own registry:
tests run several nodes in one process, and nothing here may leak between them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from protocol.errors import SanjiError
from protocol.stages import FINISHED
from sanji.backup import listing
from sanji.context import NodeContext
from sanji.observe.fleet import NodeHealth
from sanji.store import Store
from sanji.sync.driver import SessionReport
from sanji.sync.transport import TransportError
from sanji.web.views import deadline_of

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds a parent takes to serve one sync request, from the handler's start to its answer: issue 15's
# idle-exchange target (p99 ≤ 200 ms) sits in the middle of the range.
SERVED_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)


def error_kind(exc: BaseException) -> str:
    """A small fixed set of labels (never the message: label values must not grow without bound)."""
    if isinstance(exc, TransportError):
        return "timeout" if exc.timed_out else "unreachable"
    if isinstance(exc, SanjiError):
        return exc.code if exc.code != "error" else "refused"
    return "crash"


class _Snapshot(Collector):
    """Hands the registry the gauge families read (asynchronously) just before the scrape."""

    def __init__(self) -> None:
        self.families: list[GaugeMetricFamily | InfoMetricFamily] = []

    def collect(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
        yield from self.families


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.sessions = Counter(
            "sanji_sync_sessions", "Sync sessions with the parent", ["outcome"], registry=self.registry
        )
        self.bytes = Counter("sanji_sync_bytes", "Bytes over the parent link", ["direction"], registry=self.registry)
        self.batches = Counter(
            "sanji_sync_batches", "Batches pushed, pulled and refused", ["kind"], registry=self.registry
        )
        self.errors = Counter("sanji_sync_errors", "Failed sessions by kind of error", ["kind"], registry=self.registry)
        self.served = Histogram(
            "sanji_sync_served_seconds",
            "Sync requests this node served to its children, by endpoint",
            ["endpoint"],
            buckets=SERVED_BUCKETS,
            registry=self.registry,
        )
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)

    def observe_session(self, report: SessionReport | None, exc: BaseException | None) -> None:
        """A ``SyncDriver`` observer."""
        if report is None:
            self.sessions.labels("failed").inc()
            self.errors.labels(error_kind(exc) if exc is not None else "unknown").inc()
            return
        self.sessions.labels("ok" if report.peer else "nothing").inc()
        self.bytes.labels("sent").inc(report.bytes_sent)
        self.bytes.labels("received").inc(report.bytes_received)
        self.batches.labels("pushed").inc(report.pushed)
        self.batches.labels("pulled").inc(report.pulled)
        self.batches.labels("refused").inc(report.refused)

    def render(self, families: Iterable[GaugeMetricFamily | InfoMetricFamily]) -> bytes:
        self._snapshot.families = list(families)
        try:
            return generate_latest(self.registry)
        finally:
            self._snapshot.families = []


def _gauge(name: str, doc: str, value: float | None, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    if value is not None:
        family.add_metric(list((labels or {}).values()), value)
    return family


async def read_gauges(
    store: Store,
    context: NodeContext,
    *,
    version: str,
    role: str,
    backup_dir: Path,
    fleet: list[NodeHealth],
    now: float | None = None,
) -> list[GaugeMetricFamily | InfoMetricFamily]:
    now = time.time() if now is None else now
    status = await store.status()
    out: list[GaugeMetricFamily | InfoMetricFamily] = []
    info = InfoMetricFamily("sanji_build", "The release and node this process runs")
    info.add_metric([], {"version": version, "node": store.node_id, "role": role})
    out.append(info)
    out.append(
        _gauge(
            "sanji_queue_batches",
            "Batches and unsealed actions not yet acknowledged by the parent",
            status["queue_length"],
        )
    )
    out.append(
        _gauge(
            "sanji_oldest_unacked_seconds",
            "Age of the oldest work the parent has not acknowledged",
            status["oldest_unacked_s"],
        )
    )
    last_ok = status.get("last_exchange_ok_at")
    out.append(
        _gauge(
            "sanji_parent_lag_seconds",
            "Seconds since the last good exchange with the parent",
            (now - float(last_ok)) if last_ok else None,
        )
    )
    parent = status["parent"]
    failures = status["exchanges"].get(parent, {}).get("failures", 0) if parent else 0
    out.append(_gauge("sanji_parent_failures", "Failed exchanges with the parent in a row", failures))
    out.append(_gauge("sanji_held_batches", "Batches held until their predecessor arrives", status["held_batches"]))
    out.append(_gauge("sanji_quarantined_batches", "Batches refused and kept aside", status["quarantined_batches"]))
    out.append(_gauge("sanji_clock_offset_seconds", "Clock minus the county's", context.clock_offset_ms / 1000))
    out.append(_gauge("sanji_catalogue_version", "Version of the matter catalogue held", context.catalogue_version))
    stages = GaugeMetricFamily("sanji_errands", "Errands held here by stage", labels=["stage"])
    for stage, count in sorted(status["errands_by_stage"].items()):
        stages.add_metric([stage], count)
    out.append(stages)
    lights = {"yellow": 0, "red": 0}
    today = context.today()
    # Only errands with no result yet have a light; a county holds thousands of them, never this many.
    rows, _ = await store.errands(stages_not_in=FINISHED, limit=100_000)
    for row in rows:
        light = deadline_of(row.get("due") or "", row["stage"], bool(row.get("paused")), context, today)
        if light is not None and light.level in lights:
            lights[light.level] += 1
    risk = GaugeMetricFamily(
        "sanji_deadlines_at_risk", "Open errands due in 3 working days or overdue", labels=["light"]
    )
    for level, count in lights.items():
        risk.add_metric([level], count)
    out.append(risk)
    unsent = await store.unsent_notifications()
    sms = GaugeMetricFamily("sanji_sms_outbox", "Applicant SMS not yet handed to the sender", labels=["state"])
    sms.add_metric(["waiting"], sum(1 for n in unsent if not n.get("error")))
    sms.add_metric(["failing"], sum(1 for n in unsent if n.get("error")))
    out.append(sms)
    copies = listing(backup_dir, node=store.node_id)
    newest = max((c.path.stat().st_mtime for c in copies), default=None)
    out.append(_gauge("sanji_last_backup_timestamp_seconds", "Time of the newest backup", newest))
    if fleet:
        states = GaugeMetricFamily("sanji_nodes", "Nodes below this one by health", labels=["state"])
        for state in ("ok", "stalled", "missing", "never"):
            states.add_metric([state], sum(1 for h in fleet if h.state == state))
        out.append(states)
        age = GaugeMetricFamily("sanji_node_report_age_seconds", "Age of each node's last report", labels=["node"])
        waited = GaugeMetricFamily(
            "sanji_node_oldest_unacked_seconds", "Oldest waiting work each lower node reported", labels=["node"]
        )
        for h in fleet:
            if h.age_s is not None:
                age.add_metric([h.node], h.age_s)
                waited.add_metric([h.node], h.oldest_unacked_s)
        out += [age, waited]
    return out
