"""Business reports (业务报表) go up with the exchange; the county sets them beside its own count.

In one process: C ── T01 ── T01V01, T01V02, each node with its own SQLite store, NodeContext,
ErrandService and a context-aware SyncServer. Errands are registered, submitted and accepted;
every node signs its report of the day from its own store; the exchange carries the reports to
the county, which verifies each against its node's key. One errand registered at T01V02 after
the township built its report shows as a difference for the township (the audit signal). A
report signed by another node's key is refused. Node reports in the old format (no rules version,
no business reports) still decode, and the new ones decode by an old peer's definition.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import select

from protocol.business import BusinessReport, sign_business
from protocol.session import CursorsRequest, NodeReport
from protocol.wire import decode
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.office.business import build_own_reports, business_table
from sanji.service import ErrandService
from sanji.store import schema as t
from sanji.store.business import BusinessBook
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from tests.conftest import CALENDAR

C, TOWN, VILLAGE, SISTER = "C", "T01", "T01V01", "T01V02"
CATALOGUE = default_catalogue()


class Kit:
    def __init__(self, net: Any, contexts: dict[str, NodeContext]) -> None:
        self.net = net
        self.contexts = contexts
        self.servers = {n: SyncServer(s, contexts[n]) for n, s in net.stores.items()}
        self.links = {
            n: LocalTransport(self.servers[p]) for n in net.stores if (p := net.directory.parent(n)) is not None
        }
        self.services = {n: ErrandService(s, contexts[n]) for n, s in net.stores.items()}

    async def sync(self, rounds: int = 1) -> None:
        up = self.net.children_bottom_up()
        for _ in range(rounds):
            for node in [*up, *reversed(up)]:
                await sync_once(self.net.stores[node], self.links[node], context=self.contexts[node])

    async def register(self, node: str) -> str:
        form = RegisterForm(
            matter="MZ-003", applicant_name="张三", materials=["申请书", "身份证复印件", "户口簿复印件"], actor="代办员"
        )
        errand = (await self.services[node].register(form)).errand
        await self.services[node].act(errand, ActionForm(kind="submit", actor="代办员"))
        return errand

    async def act(self, node: str, errand: str, kind: str, **fields: Any) -> None:
        await self.services[node].act(errand, ActionForm(kind=kind, actor=f"{node}-staff", **fields))  # type: ignore[arg-type]


@pytest.fixture
async def kit(network: Any) -> Kit:
    net = await network(1, 2)
    contexts = {n: NodeContext(s, CALENDAR) for n, s in net.stores.items()}
    for ctx in contexts.values():
        await ctx.load()
        ctx.catalogue = CATALOGUE
    return Kit(net, contexts)


async def refused(kit: Kit, node: str) -> list[str]:
    async with kit.net.stores[node].db.reader.connect() as conn:
        rows = await conn.execute(select(t.events.c.peer).where(t.events.c.kind == "business_refused"))
        return list(rows.scalars())


async def test_business_reports_reach_the_county_and_differences_show(kit: Kit) -> None:
    first = await kit.register(VILLAGE)
    await kit.register(VILLAGE)
    await kit.register(SISTER)
    await kit.sync()
    await kit.act(TOWN, first, "receive")
    await kit.act(TOWN, first, "accept", errand_kind="承诺件")
    await kit.sync()
    late = await kit.register(SISTER)  # after the township's report: it has not reached the township yet

    day = kit.contexts[C].today()
    tomorrow = day + timedelta(days=1)
    for node in (TOWN, VILLAGE, SISTER):
        built = await build_own_reports(kit.net.stores[node], kit.contexts[node], today=tomorrow)
        assert day.isoformat() in built, node
        assert await build_own_reports(kit.net.stores[node], kit.contexts[node], today=tomorrow) == []  # once a day
    assert await build_own_reports(kit.net.stores[C], kit.contexts[C], today=tomorrow) == []  # reports to no one
    await kit.sync()
    assert (await kit.net.stores[C].errand(late)) is not None  # the county holds the late errand now

    held = {(r.node, r.day): r for r in await BusinessBook(kit.net.stores[C]).reports(day.isoformat(), day.isoformat())}
    assert set(held) == {(TOWN, day.isoformat()), (VILLAGE, day.isoformat()), (SISTER, day.isoformat())}
    assert (held[VILLAGE, day.isoformat()].received, held[VILLAGE, day.isoformat()].accepted) == (2, 1)
    assert held[SISTER, day.isoformat()].received == 2
    assert (held[TOWN, day.isoformat()].received, held[TOWN, day.isoformat()].accepted) == (3, 1)

    lines = {line.node: line for line in await business_table(kit.net.stores[C], kit.contexts[C], day, day)}
    assert set(lines) == {TOWN, VILLAGE, SISTER}
    assert lines[VILLAGE].difference == {} and lines[VILLAGE].reported == lines[VILLAGE].computed
    assert lines[SISTER].difference == {} and lines[SISTER].reported["received"] == 2
    assert lines[TOWN].computed["received"] == 4 and lines[TOWN].difference == {"received": -1}
    assert all(line.days_reported == line.days == 1 for line in lines.values())
    assert await refused(kit, C) == []

    # The township also keeps its villages' reports (its own office can show them).
    at_town = {r.node for r in await BusinessBook(kit.net.stores[TOWN]).reports(day.isoformat(), day.isoformat())}
    assert at_town == {TOWN, VILLAGE, SISTER}


async def test_a_report_signed_by_another_nodes_key_is_refused(kit: Kit) -> None:
    day = "2026-11-02"
    forged = BusinessReport(node=VILLAGE, day=day, at=1, received=99)
    blob = sign_business(forged, kit.net.stores[TOWN].key)  # the township writing its village's figures
    genuine = sign_business(BusinessReport(node=TOWN, day=day, at=1, received=1), kit.net.stores[TOWN].key)
    altered = genuine.replace(b"received\x01", b"received\x05")
    assert altered != genuine
    request = CursorsRequest(
        sender=TOWN,
        reports=(NodeReport(node=VILLAGE, at=1, business=(blob,)), NodeReport(node=TOWN, at=1, business=(altered,))),
    )
    await kit.net.signed(TOWN).cursors(request)
    assert await BusinessBook(kit.net.stores[C]).reports(day, day) == []
    assert await refused(kit, C) == [TOWN, TOWN]

    await kit.net.signed(TOWN).cursors(
        CursorsRequest(sender=TOWN, reports=(NodeReport(node=TOWN, at=2, business=(genuine,)),))
    )
    assert [r.received for r in await BusinessBook(kit.net.stores[C]).reports(day, day)] == [1]


async def test_a_report_signed_by_its_own_node_that_does_not_fit_is_refused_not_a_failure(kit: Kit) -> None:
    """A township's own key (or a stolen one) signing values no column holds: the exchange still answers,
    the report is refused and logged, and the next good one is kept."""
    key = kit.net.stores[TOWN].key
    misfits = [
        BusinessReport(node=TOWN, day="2026-11-02", at=2**64 - 1),
        BusinessReport(node=TOWN, day="2026-13-45", at=1),
        BusinessReport(node=TOWN, day="2026-11-02" * 4, at=1),
        BusinessReport(node=TOWN, day="2026-11-02", at=1, received=-1),
    ]
    request = CursorsRequest(
        sender=TOWN, reports=(NodeReport(node=TOWN, at=1, business=tuple(sign_business(r, key) for r in misfits)),)
    )
    reply = await kit.net.signed(TOWN).cursors(request)
    assert reply.node == C
    assert await BusinessBook(kit.net.stores[C]).reports("2000-01-01", "2099-12-31") == []
    assert await refused(kit, C) == [TOWN] * len(misfits)


class OldNodeReport(msgspec.Struct, frozen=True, kw_only=True):
    """NodeReport as a peer of the previous release defines it (no rules version, no business reports)."""

    node: str
    at: int
    catalogue_version: int = 0
    queue_length: int = 0
    oldest_unacked_s: float = 0.0
    last_error: str = ""
    bytes_sent_today: int = 0
    clock_offset_ms: int = 0
    open_errands: int = 0
    overdue: int = 0
    quarantined: int = 0
    calendar_version: int = 0


class OldCursorsRequest(msgspec.Struct, frozen=True, kw_only=True):
    sender: str
    catalogue_version: int = 0
    reports: tuple[OldNodeReport, ...] = ()
    calendar_version: int = 0


async def test_old_format_reports_still_decode(kit: Kit) -> None:
    old = OldCursorsRequest(
        sender=TOWN, reports=(OldNodeReport(node=VILLAGE, at=7, open_errands=3, calendar_version=2),)
    )
    new = decode(msgspec.msgpack.encode(old), CursorsRequest, what="cursors request", max_bytes=1 << 20)
    report = new.reports[0]
    assert (report.node, report.open_errands, report.calendar_version) == (VILLAGE, 3, 2)
    assert (report.rules_version, report.business) == (0, ())
    assert new.rules_version == 0

    # A new report reaches an old peer: it reads what it knows and skips the rest.
    blob = sign_business(BusinessReport(node=VILLAGE, day="2026-11-02", at=1), kit.net.stores[VILLAGE].key)
    sent = CursorsRequest(sender=TOWN, reports=(NodeReport(node=VILLAGE, at=8, rules_version=3, business=(blob,)),))
    seen = msgspec.msgpack.decode(msgspec.msgpack.encode(sent), type=OldCursorsRequest)
    assert (seen.reports[0].node, seen.reports[0].at) == (VILLAGE, 8)

    # An old report handed through a township (stored as JSON before the upgrade) still reads back.
    await kit.net.signed(TOWN).cursors(new)
    (kept,) = [r for r in await kit.net.stores[C].reports() if r.node == VILLAGE]
    assert (kept.open_errands, kept.rules_version, kept.business) == (3, 0, ())
    async with kit.net.stores[C].db.reader.connect() as conn:
        body = await conn.scalar(select(t.node_reports.c.body).where(t.node_reports.c.node == VILLAGE))
    assert "business" in str(body)  # stored in the new form
    async with kit.net.stores[C].transaction() as conn:  # as a store written by the old release holds it
        await conn.execute(
            t.node_reports.update()
            .where(t.node_reports.c.node == VILLAGE)
            .values(body=msgspec.json.encode(OldNodeReport(node=VILLAGE, at=7, open_errands=3)).decode())
        )
    (kept,) = [r for r in await kit.net.stores[C].reports() if r.node == VILLAGE]
    assert (kept.open_errands, kept.rules_version, kept.business) == (3, 0, ())
