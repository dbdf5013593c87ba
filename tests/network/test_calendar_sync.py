"""The county's working-day calendar travels down the tree; provisional deadlines are corrected by the custodian.

In one process: C ── T01 ── T01V01, T01V02, each node with its own store, NodeContext and a
context-aware SyncServer. The nodes' built-in calendar stops at this year (as the library's did at
2026), so an errand accepted now whose limit reaches into next year gets a 暂定 deadline counted on
the statutory holidays. Then the county publishes next year; it reaches every node (and every node's
version is reported up to the county), the township — the custodian — writes one deadline_corrected
action, and every replica shows the corrected date with the provisional one kept in the history.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

import msgspec
import pytest

from protocol.calendar_doc import CalendarYear, OfficialCalendar
from protocol.deadlines import WorkCalendar, compute_due
from sanji.calendar_duty import correct_provisional_deadlines
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.statutory import statutory_holidays
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from sanji.web.views import summarise
from sanji.workcalendar import library_data

C, TOWN, VILLAGE, SISTER = "C", "T01", "T01V01", "T01V02"
PATH = (C, TOWN, VILLAGE)
MATTER = "MZ-003"


def builtin_until(year: int) -> WorkCalendar:
    """The library's notices up to ``year``; later years are as unknown as 2027 is to chinesecalendar 1.11."""
    data = library_data()
    years = tuple(range(min(data.years), year + 1))
    extra = [y for y in years if y not in data.years]  # a library older than ``year``: statutory days only
    holidays = [d for d in data.holidays if d.year <= year] + [d for y in extra for d in statutory_holidays(y)]
    return WorkCalendar(years=years, holidays=holidays, workdays=[d for d in data.workdays if d.year <= year])


def next_year_notice(year: int, provisional_due: date) -> OfficialCalendar:
    """A made-up notice for ``year``: the provisional days off plus one bridging weekday before the provisional due."""
    days = set(statutory_holidays(year))
    bridge = next(
        date(year, 1, 1) + timedelta(days=i)
        for i in range(1, 20)
        if (date(year, 1, 1) + timedelta(days=i)).weekday() < 5 and date(year, 1, 1) + timedelta(days=i) not in days
    )
    assert bridge < provisional_due
    return OfficialCalendar(
        county="示范县",
        version=1,
        published_at=f"{year - 1}-11-20",
        years=(CalendarYear(year=year, holidays=tuple(sorted(days | {bridge})), source="测试用虚构安排"),),
    )


class Kit:
    def __init__(self, net: Any, contexts: dict[str, NodeContext]) -> None:
        self.net = net
        self.contexts = contexts
        servers = {n: SyncServer(s, contexts[n]) for n, s in net.stores.items()}
        self.links = {n: LocalTransport(servers[p]) for n in net.stores if (p := net.directory.parent(n)) is not None}
        self.services = {n: ErrandService(s, contexts[n]) for n, s in net.stores.items()}

    async def sync(self, rounds: int = 1) -> None:
        up = self.net.children_bottom_up()
        for _ in range(rounds):
            for node in [*up, *reversed(up)]:
                await sync_once(self.net.stores[node], self.links[node], context=self.contexts[node])

    async def act(self, node: str, errand: str, kind: str, **fields: Any) -> Any:
        form = ActionForm(kind=kind, actor=f"{node}-staff", **fields)  # type: ignore[arg-type]
        return await self.services[node].act(errand, form)

    async def views(self, errand: str) -> dict[str, dict[str, Any]]:
        out = {}
        for node in PATH:
            row = await self.net.stores[node].errand(errand)
            assert row is not None
            out[node] = summarise(row, self.contexts[node])
        return out


@pytest.fixture
async def kit(network: Any) -> Kit:
    net = await network(1, 2)
    probe = NodeContext(net.stores[C], WorkCalendar(years=[2000], holidays=[], workdays=[]))
    this_year = probe.today().year
    contexts = {n: NodeContext(s, builtin_until(this_year)) for n, s in net.stores.items()}
    for ctx in contexts.values():
        await ctx.load()
    # A limit that runs from today to mid-January next year, whatever day the test runs.
    bound = contexts[TOWN].bound
    assert bound is not None
    limit = bound.effective.working_days_between(contexts[TOWN].today(), date(this_year + 1, 1, 15))
    catalogue = default_catalogue()
    matters = tuple(
        msgspec.structs.replace(
            m, committed_limit=limit, township_limit=limit, statutory_limit=max(limit, m.statutory_limit)
        )
        if m.code == MATTER
        else m
        for m in catalogue.matters
    )
    assert await contexts[C].publish(msgspec.structs.replace(catalogue, matters=matters, version=catalogue.version + 1))
    k = Kit(net, contexts)
    await k.sync()
    return k


async def test_official_calendar_reaches_every_node_and_corrects_the_provisional_deadline(kit: Kit) -> None:
    town = kit.contexts[TOWN]
    year = town.today().year + 1
    form = RegisterForm(
        matter=MATTER, applicant_name="张三", materials=["申请书", "身份证复印件", "户口簿复印件"], actor="代办员"
    )
    errand = (await kit.services[VILLAGE].register(form)).errand
    await kit.act(VILLAGE, errand, "submit")
    await kit.sync()
    await kit.act(TOWN, errand, "receive")
    accepted = (await kit.act(TOWN, errand, "accept", errand_kind="承诺件")).state
    matter = town.matter(MATTER)
    assert matter is not None and town.bound is not None
    provisional_due = compute_due(town.today(), matter.committed_limit, "working", calendar=town.bound.effective)
    assert provisional_due.year == year and date.fromisoformat(accepted.due) == provisional_due
    assert accepted.due_provisional and accepted.stage_due_provisional and accepted.calendar_version == 0
    await kit.sync()

    # 暂定 on every level, and a real light (never "calendar unknown") for the provisional year.
    for node, view in (await kit.views(errand)).items():
        deadline = view["deadline"]
        assert deadline.due == accepted.due and deadline.provisional, node
        assert deadline.level in ("normal", "yellow") and deadline.days_left > 0, (node, deadline)

    notice = next_year_notice(year, provisional_due)
    assert await kit.contexts[C].publish_calendar(notice)
    await kit.sync(rounds=2)
    assert {n: c.calendar_version for n, c in kit.contexts.items()} == {C: 1, TOWN: 1, VILLAGE: 1, SISTER: 1}
    reports = {r.node: r.calendar_version for r in await kit.net.stores[C].reports()}
    assert reports == {TOWN: 1, VILLAGE: 1, SISTER: 1}  # every node's version, visible at the county

    # Only the custodian corrects; the county and the village hold copies and write nothing.
    assert await correct_provisional_deadlines(kit.net.stores[C], kit.contexts[C]) == []
    assert await correct_provisional_deadlines(kit.net.stores[VILLAGE], kit.contexts[VILLAGE]) == []
    assert await correct_provisional_deadlines(kit.net.stores[TOWN], town) == [errand]
    assert await correct_provisional_deadlines(kit.net.stores[TOWN], town) == []  # once
    await kit.sync()

    assert town.bound is not None and not town.bound.is_provisional(date(year, 1, 1))
    expected = compute_due(town.today(), matter.committed_limit, "working", calendar=town.bound.effective)
    assert expected == town.bound.effective.add_working_days(provisional_due, 1)  # the bridging day pushes it
    rows = {n: await kit.net.stores[n].errand(errand) for n in PATH}
    assert len({r["digest"] for r in rows.values() if r}) == 1
    for node, view in (await kit.views(errand)).items():
        assert view["due"] == expected.isoformat() and not view["deadline"].provisional, node
    history = rows[VILLAGE]["history"] if rows[VILLAGE] else []
    accept = next(h for h in history if h["kind"] == "accept")
    corrected = next(h for h in history if h["kind"] == "deadline_corrected")
    assert accept["due"] == provisional_due.isoformat() and accept["due_provisional"]
    assert corrected["previous_due"] == provisional_due.isoformat() and corrected["due"] == expected.isoformat()
    assert corrected["calendar_version"] == 1 and corrected["node"] == TOWN and corrected["status"] == "applied"


async def test_a_sibling_hub_process_takes_up_a_newer_catalogue_and_calendar_once(
    network: Any, caplog: pytest.LogCaptureFixture
) -> None:
    net = await network(1, 1)
    this_year = date.today().year
    hub, sibling = (NodeContext(net.stores[C], builtin_until(this_year)) for _ in range(2))  # one database
    await hub.load()
    await sibling.load()
    catalogue = default_catalogue()
    assert await hub.publish(msgspec.structs.replace(catalogue, version=catalogue.version + 1))
    notice = OfficialCalendar(
        county="示范县",
        version=1,
        published_at=f"{this_year}-11-20",
        years=(
            CalendarYear(
                year=this_year + 1, holidays=tuple(statutory_holidays(this_year + 1)), source="测试用虚构安排"
            ),
        ),
    )
    assert await hub.publish_calendar(notice)
    caplog.clear()
    caplog.set_level(logging.INFO, logger="sanji.context")
    assert await sibling.refresh_catalogue() and not await sibling.refresh_catalogue()
    assert await sibling.refresh_calendar() and not await sibling.refresh_calendar()
    assert (sibling.catalogue_version, sibling.calendar_version) == (catalogue.version + 1, 1)
    assert sibling.bound is not None and not sibling.bound.is_provisional(date(this_year + 1, 1, 1))
    assert [r.getMessage() for r in caplog.records if r.name == "sanji.context"] == [
        f"catalogue version {catalogue.version + 1} of {catalogue.county} now held",
        "working-day calendar version 1 of 示范县 now held",
    ]
