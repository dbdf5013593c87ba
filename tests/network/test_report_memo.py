"""An idle exchange carries a node report only when it says something new, or as a heartbeat."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import event

from protocol.hlc import pack
from protocol.session import NodeReport
from sanji.context import NodeContext
from sanji.store import Store
from sanji.sync.driver import SessionReport, sync_once
from sanji.sync.report_memo import HEARTBEAT_S, ReportMemo, memo_for
from tests.conftest import NetworkFactory
from tests.network.test_inprocess_sync import register


def report(node: str = "T01V01", at: int = 1, **kw: object) -> NodeReport:
    return NodeReport(node=node, at=pack(at * 1000, 0), **kw)  # type: ignore[arg-type]


def test_a_report_goes_again_only_with_news_or_as_a_heartbeat() -> None:
    memo = ReportMemo()
    first = report(queue_length=2, bytes_sent_today=100, oldest_unacked_s=5.0)
    assert memo.news("T01", [first], now=0.0) == (first,)
    memo.carried("T01", [first], now=0.0)
    # Only the time, the day's byte counter and the waiting age within the same minute moved: no news.
    later = report(at=60, queue_length=2, bytes_sent_today=900, oldest_unacked_s=50.0)
    assert memo.news("T01", [later], now=10.0) == ()
    # Anything else is news; so is a report the link has not carried for a heartbeat.
    changed = report(at=61, queue_length=3)
    assert memo.news("T01", [later, changed], now=10.0) == (changed,)
    assert memo.news("T01", [later], now=HEARTBEAT_S) == (later,)
    # Another link (a fallback ancestor) has had nothing yet.
    assert memo.news("C", [later], now=10.0) == (later,)


async def test_an_idle_exchange_sends_fewer_bytes_once_the_reports_went_up(network: NetworkFactory) -> None:
    net = await network()
    village = "T01V01"
    store = net.stores[village]
    context = NodeContext(store, None)  # a node's driver passes its context: reports go with it

    async def exchange() -> SessionReport:
        return await sync_once(store, net.transports[village], context=context)

    await net.sync_all(rounds=2)
    first = await exchange()
    quiet = await exchange()
    memo_for(store)._carried.clear()  # as after a restart: everything is sent once more
    full = await exchange()
    assert quiet.bytes_sent < full.bytes_sent and quiet.bytes_sent < first.bytes_sent
    # The township has the village's report: it went up with the first exchange.
    assert village in {r.node for r in await net.stores["T01"].reports()}


def test_the_memo_is_asked_before_anything_is_built() -> None:
    memo = ReportMemo()
    inputs = (1, 0)
    assert memo.due("T01", inputs, now=0.0)  # nothing carried yet
    own = report(oldest_unacked_s=30.0)
    memo.carried("T01", [own], now=0.0, inputs=inputs, built=[own])
    assert not memo.due("T01", inputs, now=10.0)
    assert memo.due("T01", (2, 0), now=10.0)  # something a report reads was written
    assert memo.due("C", inputs, now=10.0)  # another link has had nothing
    assert memo.due("T01", inputs, now=30.0)  # the waiting age reaches its next minute
    idle = report()
    memo.carried("T01", [idle], now=0.0, inputs=inputs, built=[idle])
    assert not memo.due("T01", inputs, now=HEARTBEAT_S - 1)
    assert memo.due("T01", inputs, now=HEARTBEAT_S)  # the heartbeat


class CountingStore(Store):
    """A real store that counts the reads a node report is built from."""

    reads: Counter[str]

    def count(self, name: str) -> None:
        self.reads[name] += 1

    async def own_report(self, *, catalogue_version: int, clock_offset_ms: int, day: str) -> NodeReport:
        self.count("own_report")
        return await super().own_report(catalogue_version=catalogue_version, clock_offset_ms=clock_offset_ms, day=day)

    async def reports(self) -> list[NodeReport]:
        self.count("reports")
        return await super().reports()

    async def status(self) -> dict[str, Any]:
        self.count("status")
        return await super().status()


async def test_an_idle_exchange_reads_nothing_a_report_is_built_from(network: NetworkFactory) -> None:
    net = await network()
    village = "T01V01"
    first = net.stores[village]
    store = CountingStore(first.db, node_id=village, key=first.key, directory=first.directory)
    store.reads = Counter()
    await store.start()
    net.stores[village] = store
    context = NodeContext(store, None)
    await net.sync_all(rounds=2)

    # Every statement the village's database runs that reads a report's own tables (business reports
    # are read by BusinessBook straight from the database, not through a Store method).
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT") and ("business_reports" in sql or "node_reports" in sql):
            statements.append(sql)

    event.listen(store.db.reader.sync_engine, "before_cursor_execute", seen)

    async def exchange() -> SessionReport:
        return await sync_once(store, net.transports[village], context=context)

    await exchange()
    assert store.reads["own_report"] == 1 and store.reads["reports"] and statements  # (status reads reports too)
    store.reads.clear()
    statements.clear()
    for _ in range(3):
        await exchange()
    assert store.reads == Counter() and statements == []  # idle: no report built, nothing read for one

    # News: an errand registered here changes the report, which is built and goes up.
    await register(net, village, 1, submit=False)
    await exchange()
    assert store.reads["own_report"] == 1 and statements
    held = {r.node: r for r in await net.stores["T01"].reports()}
    assert held[village].open_errands == 1
    store.reads.clear()
    statements.clear()
    await exchange()  # what the last exchange itself wrote (sealed, pushed) is news once more
    store.reads.clear()
    statements.clear()
    await exchange()
    assert store.reads == Counter() and statements == []

    # The heartbeat: a report the link carried five minutes ago is built and sent again.
    memo = memo_for(store)
    memo._carried = {k: (fp, at - HEARTBEAT_S) for k, (fp, at) in memo._carried.items()}
    sent = await exchange()
    assert store.reads["own_report"] == 1 and sent.bytes_sent > 0
