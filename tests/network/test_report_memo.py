"""An idle exchange carries a node report only when it says something new, or as a heartbeat."""

from __future__ import annotations

from protocol.hlc import pack
from protocol.session import NodeReport
from sanji.context import NodeContext
from sanji.sync.driver import SessionReport, sync_once
from sanji.sync.report_memo import HEARTBEAT_S, ReportMemo, memo_for
from tests.conftest import NetworkFactory


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
