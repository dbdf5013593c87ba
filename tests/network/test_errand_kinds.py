"""Every kind of errand and every way it can go, through ErrandService on an in-process county.

Each node has its own store, its own NodeContext (catalogue + working-day calendar, the
errand service's deadline policy) and a context-aware SyncServer; the county publishes the
shipped illustrative catalogue and it travels down with the exchanges. Between steps the
network syncs (villages and townships push up, then pull down), and at the end every node on
the errand's path holds the same digest and nobody else holds the errand.

The layout is ``county_layout(1, 2)``: C ── T01 ── T01V01, T01V02 (the sister village must never see it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from protocol.binding import HeldMaterials
from protocol.errand import ErrandState
from protocol.errors import ActionRefused
from protocol.menu import allowed_steps
from protocol.receipts import is_valid
from protocol.refusals import bilingual
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.notices import RESULT_BACK, SUPPLEMENT_ASKED
from sanji.service import ErrandService
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from sanji.web.badge import desk_notices
from sanji.web.views import materials_of
from sanji.workcalendar import load_calendar

# 容缺: the secondary materials are promised within the deadline the acceptance counts from today (rules 2).
PROMISED = (date.today() + timedelta(days=2)).isoformat()


Net = Any  # tests/conftest.py Network
NetworkFactory = Callable[..., Awaitable[Net]]

C, TOWN, VILLAGE, SISTER = "C", "T01", "T01V01", "T01V02"
PATH = [C, TOWN, VILLAGE]
MATERIALS = ["申请书", "身份证复印件", "户口簿复印件"]
A_POST = "综合窗口 A岗 王芳"


def brought(matter: str) -> list[str]:
    """What the agent takes in: the usual papers and every main material (主件) the catalogue names, so the
    township may accept (``protocol.binding.acceptance_refusal``)."""
    entry = default_catalogue().get(matter)
    mains = [m.name for m in entry.materials if m.main] if entry is not None else []
    return [*MATERIALS, *(m for m in mains if m not in MATERIALS)]


B_POST = "综合窗口 B岗 刘洋"


@dataclass
class County:
    net: Net
    contexts: dict[str, NodeContext]
    services: dict[str, ErrandService]
    transports: dict[str, LocalTransport]

    async def sync(self, rounds: int = 1, *, everyone: bool = False) -> None:
        """Children push bottom-up, then pull top-down, with their contexts (the catalogue travels too).
        Between steps only the errand's path syncs; ``everyone`` brings the sister village in as well."""
        up = self.net.children_bottom_up() if everyone else [VILLAGE, TOWN]
        for _ in range(rounds):
            for node in [*up, *reversed(up)]:
                await sync_once(self.net.stores[node], self.transports[node], context=self.contexts[node])

    async def register(self, node: str = VILLAGE, matter: str = "MZ-003", **fields: Any) -> tuple[str, str]:
        form = RegisterForm(
            matter=matter,
            applicant_name=fields.pop("applicant_name", "张三"),
            applicant_id_number="110101199003078515",
            materials=fields.pop("materials", None) or brought(matter),
            actor=f"{node}-agent",
            **fields,
        )
        proj = await self.services[node].register(form)
        assert proj.state is not None
        return proj.errand, proj.state.receipt

    async def act(self, node: str, errand: str, kind: str, **fields: Any) -> Any:
        fields.setdefault("actor", f"{node}-staff")
        return await self.services[node].act(errand, ActionForm(kind=kind, **fields))  # type: ignore[arg-type]

    async def refused(self, node: str, errand: str, kind: str, fragment: str, **fields: Any) -> str:
        """The step is refused at the desk, with a reason mentioning ``fragment``; nothing changes."""
        before = await self.net.stores[node].errand(errand)
        with pytest.raises(ActionRefused) as info:
            await self.act(node, errand, kind, **fields)
        assert fragment in info.value.message, info.value.message
        after = await self.net.stores[node].errand(errand)
        assert after is not None and before is not None and after["digest"] == before["digest"]
        return info.value.message

    async def submitted_and_received(self, matter: str = "MZ-003", **fields: Any) -> str:
        """Village registers and submits; the township receives it."""
        errand, _ = await self.register(VILLAGE, matter, **fields)
        await self.act(VILLAGE, errand, "submit")
        await self.sync()
        await self.act(TOWN, errand, "receive")
        return errand

    async def down_and_delivered(self, errand: str, *, from_county: bool = False, close: bool = True) -> None:
        """The result goes down hop by hop and the applicant signs for it at the village."""
        if from_county:
            await self.act(C, errand, "send_result")
            await self.sync()
            await self.act(TOWN, errand, "receive")
        await self.act(TOWN, errand, "send_result")
        await self.sync()
        await self.act(VILLAGE, errand, "receive")
        await self.act(VILLAGE, errand, "deliver", confirmed_by="张三", signature="签名:张三")
        if close:
            await self.act(VILLAGE, errand, "close", archive_no="DA-001")
        await self.sync()

    async def rows(self, errand: str, nodes: list[str] = PATH) -> dict[str, dict[str, Any]]:
        out = {}
        for node in nodes:
            row = await self.net.stores[node].errand(errand)
            assert row is not None, f"{errand} is missing at {node}"
            out[node] = row
        return out

    async def state(self, errand: str, node: str = C) -> dict[str, Any]:
        return (await self.net.stores[node].errand_states([errand]))[errand]

    async def converged(self, errand: str, stage: str, outcome: str = "", nodes: list[str] = PATH) -> dict[str, Any]:
        """Every replica on the path: same digest, the expected stage and outcome, nothing rejected."""
        await self.sync(everyone=True)  # the sister village pulls too: it must get nothing of this errand
        rows = await self.rows(errand, nodes)
        assert len({r["digest"] for r in rows.values()}) == 1, {n: r["digest"] for n, r in rows.items()}
        for node, row in rows.items():
            assert (row["stage"], row["outcome"]) == (stage, outcome), node
            assert {h["status"] for h in row["history"]} == {"applied"}, row["history"]
        assert await self.net.divergence() == []
        for node in self.net.stores:
            if node not in self.net.directory.path(rows[nodes[0]]["scope"]):
                assert await self.net.stores[node].errand(errand) is None, f"{errand} leaked to {node}"
        return rows[nodes[0]]

    def accepted_on(self, row: dict[str, Any]) -> date:
        accept = next(h for h in row["history"] if h["kind"] == "accept")
        return self.contexts[TOWN].date_of(accept["at"])


@pytest.fixture
async def county(network: NetworkFactory, tmp_path: Path) -> County:
    net = await network(1, 2)
    calendar = load_calendar()  # later years: the provisional statutory calendar (sanji.statutory)
    contexts = {n: NodeContext(s, calendar) for n, s in net.stores.items()}
    for ctx in contexts.values():
        await ctx.load()
    assert await contexts[C].publish(default_catalogue())
    servers = {n: SyncServer(s, contexts[n]) for n, s in net.stores.items()}
    transports = {n: LocalTransport(servers[p]) for n in net.stores if (p := net.directory.parent(n)) is not None}
    services = {n: ErrandService(s, contexts[n]) for n, s in net.stores.items()}
    kit = County(net, contexts, services, transports)
    await kit.sync(everyone=True)
    return kit


# -- the catalogue and deadlines --------------------------------------------------------------------


async def test_the_county_catalogue_reaches_every_node(county: County) -> None:
    version = county.contexts[C].catalogue_version
    assert version >= 1
    assert {n: ctx.catalogue_version for n, ctx in county.contexts.items()} == dict.fromkeys(county.contexts, version)
    for node, ctx in county.contexts.items():
        assert ctx.matter("MZ-001") is not None, node
        held = await county.net.stores[node].document("catalogue")
        assert held is not None and held[0] == version


# -- 即办件, 承诺件 -----------------------------------------------------------------------------


async def test_immediate_errand_is_accepted_and_decided_the_same_day_at_the_township(county: County) -> None:
    errand, receipt = await county.register(VILLAGE, "RS-001")  # 城乡居民养老保险参保登记: immediate
    assert is_valid(receipt)
    await county.act(VILLAGE, errand, "submit")
    await county.sync()
    await county.act(TOWN, errand, "receive")
    accepted = await county.act(TOWN, errand, "accept", errand_kind="即办件", window="综合窗口")
    assert accepted.state.due == county.contexts[TOWN].date_of(accepted.state.updated_at).isoformat()
    await county.act(TOWN, errand, "decide", outcome="approved", document="参保登记回执")
    await county.sync()
    row = await county.converged(errand, "decided", "approved")
    assert row["errand_kind"] == "即办件" and row["holder"] == TOWN and row["responsible"] == TOWN
    assert row["due"] == county.accepted_on(row).isoformat()  # due the day it was accepted
    state = await county.state(errand)
    assert state["steps"] == ["受理", "批准"]
    assert await county.net.stores[SISTER].errand(errand) is None  # the sister village never sees it
    await county.down_and_delivered(errand)
    await county.converged(errand, "closed", "approved")


async def test_committed_errand_gets_a_real_deadline_from_the_catalogue(county: County) -> None:
    errand = await county.submitted_and_received("MZ-003")  # 临时救助: committed 10, township 10 working days
    received = await county.rows(errand, [TOWN])
    assert date.fromisoformat(received[TOWN]["stage_due"]) > date(2000, 1, 1)
    await county.act(TOWN, errand, "accept", errand_kind="承诺件", window="社会救助窗口")
    await county.act(TOWN, errand, "assign", window="社会救助窗口", handler=A_POST)
    await county.act(TOWN, errand, "review", passed=True, text="材料齐全")
    await county.sync()
    row = await county.converged(errand, "accepted")
    matter = county.contexts[TOWN].matter("MZ-003")
    assert matter is not None and matter.committed_limit == 10 and matter.limit_unit == "working"
    calendar = county.contexts[TOWN].provisional_calendar
    assert calendar is not None
    expected = calendar.add_working_days(county.accepted_on(row), matter.committed_limit)
    assert row["due"] == expected.isoformat()
    assert date.fromisoformat(row["due"]) > county.accepted_on(row)
    accept = next(h for h in row["history"] if h["kind"] == "accept")
    assert (accept["limit_days"], accept.get("limit_unit", "working")) == (10, "working")
    assert (row["window"], row["handler"]) == ("社会救助窗口", A_POST)
    await county.act(TOWN, errand, "decide", outcome="approved", document="临时救助审批表")
    await county.down_and_delivered(errand)
    await county.converged(errand, "closed", "approved")
    assert (await county.state(errand, VILLAGE))["steps"] == ["受理", "承办", "审核", "批准", "办结"]


async def test_acceptance_records_the_catalogue_version_its_deadline_came_from(county: County) -> None:
    errand = await county.submitted_and_received("MZ-003")
    await county.act(TOWN, errand, "accept", errand_kind="承诺件")
    row = (await county.rows(errand, [TOWN]))[TOWN]
    accept = next(h for h in row["history"] if h["kind"] == "accept")
    assert row["due"] and accept["limit_days"] == 10
    assert accept.get("catalogue_version", 0) == county.contexts[TOWN].catalogue_version


async def test_extension_moves_the_due_date(county: County) -> None:
    errand = await county.submitted_and_received("MZ-003")
    await county.act(TOWN, errand, "accept", errand_kind="承诺件")
    first = (await county.rows(errand, [TOWN]))[TOWN]["due"]
    assert first
    await county.refused(TOWN, errand, "extend", "extension needs a positive number of days", days=0, reasons="x")
    # An extension is granted by a post above the window (protocol.binding.EXTENSION_GRANTORS).
    await county.act(TOWN, errand, "extend", days=5, reasons="需入户核查", applicant_informed=True, role="中心主任")
    await county.sync()
    row = await county.converged(errand, "accepted")
    calendar = county.contexts[TOWN].provisional_calendar
    assert calendar is not None
    assert row["due"] == calendar.add_working_days(date.fromisoformat(first), 5).isoformat()
    assert (await county.state(errand))["extended_days"] == 5


async def test_a_desk_without_a_calendar_cannot_accept_a_committed_errand(county: County) -> None:
    """The acceptance notice names the deadline (rules 2): a desk that cannot count one does not accept, and the
    errand stays as it was; a 即办件, done the same day, is accepted there."""
    plain = ErrandService(county.net.stores[TOWN])  # no deadline policy: no due date can be counted
    errand = await county.submitted_and_received("MZ-003")
    before = await county.state(errand, TOWN)
    with pytest.raises(ActionRefused) as caught:
        await plain.act(errand, ActionForm(kind="accept", actor="T01-staff", errand_kind="承诺件"))
    assert caught.value.refusal is not None and caught.value.refusal.code == "deadline_uncounted"
    assert await county.state(errand, TOWN) == before
    await plain.act(errand, ActionForm(kind="accept", actor="T01-staff", errand_kind="即办件"))
    assert (await county.rows(errand, [TOWN]))[TOWN]["due"] == ""


# -- 上报件 ------------------------------------------------------------------------------------


async def test_reported_errand_is_approved_by_the_county_department_the_township_stays_responsible(
    county: County,
) -> None:
    errand = await county.submitted_and_received("MZ-001")  # 低保: 县民政局 approves
    await county.act(TOWN, errand, "accept", errand_kind="上报件", window="社会救助窗口")
    await county.act(TOWN, errand, "escalate", department="县民政局")
    await county.sync()
    rows = await county.rows(errand)
    assert {(r["stage"], r["pending_to"]) for r in rows.values()} == {("escalated", C)}
    await county.act(C, errand, "receive")
    await county.sync()
    row = await county.converged(errand, "at_department")
    assert (row["holder"], row["department"], row["responsible"]) == (C, "县民政局", TOWN)
    assert row["stage_due"]  # the county's own per-stage clock from its limit in the catalogue
    await county.refused(TOWN, errand, "decide", "not the custodian", outcome="approved")
    await county.act(C, errand, "decide", outcome="approved", department="县民政局", document="民低〔2026〕1号")
    await county.down_and_delivered(errand, from_county=True)
    row = await county.converged(errand, "closed", "approved")
    assert row["responsible"] == TOWN and row["errand_kind"] == "上报件"


async def test_county_asks_for_more_materials_after_escalation(county: County) -> None:
    errand = await county.submitted_and_received("MZ-001")
    await county.act(TOWN, errand, "accept", errand_kind="上报件")
    await county.act(TOWN, errand, "escalate", department="县民政局")
    await county.sync()
    await county.act(C, errand, "receive")
    await county.act(C, errand, "request_supplement", items=["家庭收入及财产状况声明", "患病或残疾证明"])
    await county.sync()
    row = await county.converged(errand, "supplement")
    assert row["paused"] and row["holder"] == C
    await county.refused(C, errand, "request_supplement", "stage is supplement", items=["村委会证明"])
    await county.refused(C, errand, "materials_received", "患病或残疾证明", items=["家庭收入及财产状况声明"])
    due_before = row["due"]
    await county.act(C, errand, "materials_received", items=["家庭收入及财产状况声明", "患病或残疾证明"])
    await county.sync()
    row = await county.converged(errand, "at_department")
    assert not row["paused"] and row["due"] >= due_before
    state = await county.state(errand, VILLAGE)
    assert state["notices_by"] == [C] and len(state["pauses"]) == 1 and state["resume_stage"] == ""
    await county.refused(C, errand, "request_supplement", "一次性告知", items=["村委会证明"])
    await county.act(C, errand, "decide", outcome="approved", department="县民政局")
    await county.down_and_delivered(errand, from_county=True)
    await county.converged(errand, "closed", "approved")


# -- 联办件 ------------------------------------------------------------------------------------


async def test_joint_errand_waits_for_every_sub_task(county: County) -> None:
    errand = await county.submitted_and_received("ZR-001")  # 农村村民建房审批: 县农业农村局, 县住建局 join
    await county.refused(TOWN, errand, "accept", "co-handling departments", errand_kind="联办件")
    # every co-department the catalogue names joins (rules 2): one of the two is not enough
    await county.refused(
        TOWN, errand, "accept", "missing: 县住建局", errand_kind="联办件", co_departments=["县农业农村局"]
    )
    await county.act(TOWN, errand, "accept", errand_kind="联办件", co_departments=["县农业农村局", "县住建局"])
    await county.act(TOWN, errand, "escalate", department="县自然资源局")
    await county.sync()
    await county.act(C, errand, "receive")
    await county.refused(C, errand, "decide", "sub-tasks still open", outcome="approved")
    await county.act(C, errand, "subtask_done", department="县农业农村局", outcome="agreed")
    await county.sync()
    assert (await county.state(errand, VILLAGE))["subtasks"] == {"县农业农村局": "agreed", "县住建局": "pending"}
    await county.refused(C, errand, "decide", "县住建局", outcome="approved")
    await county.refused(C, errand, "subtask_done", "no open sub-task", department="县农业农村局")
    await county.act(C, errand, "subtask_done", department="县住建局", outcome="agreed", text="符合规划")
    await county.act(C, errand, "decide", outcome="approved", department="县自然资源局", document="建房批准书")
    await county.down_and_delivered(errand, from_county=True)
    await county.converged(errand, "closed", "approved")


async def test_joint_errand_cannot_be_approved_after_an_objection(county: County) -> None:
    errand = await county.submitted_and_received("MZ-007")  # 医疗救助: 县医保局 joins
    await county.act(TOWN, errand, "accept", errand_kind="联办件", co_departments=["县医保局"])
    await county.refused(TOWN, errand, "decide", "sub-tasks still open", outcome="approved")
    await county.sync()
    # The co-department answers at its own desk at the county while the township holds the errand;
    # the lead window cannot answer for it.
    await county.refused(TOWN, errand, "subtask_done", "the lead window cannot close it", department="县医保局")
    await county.act(C, errand, "subtask_done", department="县医保局", outcome="objected", text="已享受医保报销")
    await county.sync()
    await county.refused(TOWN, errand, "decide", "objected", outcome="approved")
    # Only the level that may grant refuses (rules 2): the township reports it up, the county department refuses.
    await county.refused(TOWN, errand, "decide", "done at county", outcome="refused", reasons="已享受医保报销")
    await county.act(TOWN, errand, "escalate", department="县民政局")
    await county.sync()
    await county.act(C, errand, "receive")
    await county.refused(C, errand, "decide", "must state its reasons", outcome="refused", department="县民政局")
    await county.act(
        C, errand, "decide", outcome="refused", department="县民政局", reasons="已享受医保报销，不重复救助"
    )
    await county.sync()
    await county.converged(errand, "decided", "refused")
    assert (await county.state(errand, C))["subtasks"] == {"县医保局": "objected"}


# -- 补正: the one-time notice ----------------------------------------------------------------------


async def test_one_time_notice_lists_everything_and_the_clock_stops_until_it_all_arrives(county: County) -> None:
    errand = await county.submitted_and_received("MZ-003")
    await county.act(TOWN, errand, "accept", errand_kind="承诺件")
    missing = ["困难情况证明材料", "银行账户复印件", "近期免冠照片"]
    await county.refused(TOWN, errand, "request_supplement", "list the missing materials", items=[])
    await county.act(TOWN, errand, "request_supplement", items=missing, text="一次性告知单")
    await county.sync()
    row = await county.converged(errand, "supplement")
    assert row["paused"]
    state = await county.state(errand, VILLAGE)
    assert state["supplement_items"] == missing and state["notices_by"] == [TOWN]
    # no second notice while the first is open: everything had to be on it
    await county.refused(TOWN, errand, "request_supplement", "stage is supplement", items=["村委会证明"])
    # the agent carries materials up; the window cannot resume while any item is missing
    await county.act(VILLAGE, errand, "supply", items=missing[:2], text="先带来两份")
    await county.sync()
    await county.refused(TOWN, errand, "materials_received", "近期免冠照片", items=missing[:2])
    await county.refused(TOWN, errand, "decide", "cannot be decided here", outcome="approved")
    due_before = row["due"]
    await county.act(TOWN, errand, "materials_received", items=missing)
    await county.sync()
    row = await county.converged(errand, "accepted")
    assert not row["paused"]
    calendar = county.contexts[TOWN].provisional_calendar
    assert calendar is not None
    state = await county.state(errand, C)
    assert state["supplement_items"] == [] and len(state["pauses"]) == 1
    (stopped, resumed) = state["pauses"][0]
    paused = calendar.working_days_between(
        county.contexts[TOWN].date_of(stopped), county.contexts[TOWN].date_of(resumed)
    )
    assert row["due"] == calendar.add_working_days(date.fromisoformat(due_before), paused).isoformat()
    # still only one notice per desk, even after the materials arrived
    await county.refused(TOWN, errand, "request_supplement", "一次性告知", items=["村委会证明"])
    await county.act(TOWN, errand, "decide", outcome="approved")
    await county.down_and_delivered(errand)
    await county.converged(errand, "closed", "approved")


# -- 容缺受理 ------------------------------------------------------------------------------------


async def test_provisional_acceptance_blocks_approval_and_escalation_until_the_promised_materials_arrive(
    county: County,
) -> None:
    errand = await county.submitted_and_received("MZ-001")
    owed = ["家庭收入及财产状况声明", "患病或残疾证明"]
    await county.refused(TOWN, errand, "accept", "promised the missing materials by", provisional=owed)
    await county.refused(
        TOWN, errand, "accept", "即办件除外", errand_kind="即办件", provisional=owed, promise_by=PROMISED
    )
    await county.act(TOWN, errand, "accept", errand_kind="上报件", provisional=owed, promise_by=PROMISED)
    await county.sync()
    row = await county.converged(errand, "accepted")
    state = await county.state(errand, VILLAGE)
    assert state["provisional"] == owed and state["promise_by"] == PROMISED
    await county.refused(TOWN, errand, "decide", "容缺", outcome="approved")
    await county.refused(TOWN, errand, "escalate", "容缺", department="县民政局")
    await county.refused(TOWN, errand, "materials_received", "not among the promised", items=["房产证"])
    await county.act(TOWN, errand, "materials_received", items=owed[:1])
    await county.refused(TOWN, errand, "escalate", "容缺", department="县民政局")
    await county.act(TOWN, errand, "materials_received", items=owed[1:])
    await county.refused(TOWN, errand, "materials_received", "no materials are owed", items=owed[1:])
    await county.act(TOWN, errand, "escalate", department="县民政局")
    await county.sync()
    row = await county.converged(errand, "escalated")
    assert (await county.state(errand, C))["provisional"] == []
    await county.act(C, errand, "receive")
    await county.act(C, errand, "decide", outcome="approved", department="县民政局")
    await county.down_and_delivered(errand, from_county=True)
    row = await county.converged(errand, "closed", "approved")
    assert row["errand_kind"] == "上报件"


async def test_provisional_acceptance_terminated_when_the_promise_is_broken(county: County) -> None:
    errand = await county.submitted_and_received("MZ-003")
    await county.act(TOWN, errand, "accept", provisional=["困难情况证明材料"], promise_by="2026-01-05")
    await county.refused(TOWN, errand, "terminate", "needs a reason")
    await county.act(TOWN, errand, "terminate", reasons="容缺材料逾期未补,终止办理")
    await county.down_and_delivered(errand)
    await county.converged(errand, "closed", "terminated")


# -- not accepted, returned, withdrawn ---------------------------------------------------------------


async def test_not_accept_notice_travels_down_and_is_delivered(county: County) -> None:
    errand = await county.submitted_and_received("MZ-003")
    await county.refused(TOWN, errand, "not_accept", "reasons")
    await county.act(TOWN, errand, "not_accept", reasons="申请人户籍不在本乡镇,不属本机关受理范围")
    await county.sync()
    await county.converged(errand, "decided", "not_accepted")
    await county.refused(TOWN, errand, "accept", "only a received errand")
    await county.act(TOWN, errand, "send_result")
    await county.sync()
    row = await county.converged(errand, "result_down", "not_accepted")
    assert row["pending_to"] == VILLAGE
    await county.act(VILLAGE, errand, "receive")
    await county.act(VILLAGE, errand, "deliver", confirmed_by="张三", signature="签名:张三")
    await county.sync()
    await county.converged(errand, "delivered", "not_accepted")


async def test_return_notice_from_the_county_travels_two_hops_down(county: County) -> None:
    errand = await county.submitted_and_received("GA-001")  # 户口迁移: 县公安局
    await county.act(TOWN, errand, "accept", errand_kind="上报件")
    await county.act(TOWN, errand, "escalate", department="县公安局")
    await county.sync()
    await county.act(C, errand, "receive")
    await county.act(C, errand, "return", reasons="迁入地证明与申请不符,退回申请人")
    await county.sync()
    await county.converged(errand, "decided", "returned")
    await county.down_and_delivered(errand, from_county=True, close=False)
    row = await county.converged(errand, "delivered", "returned")
    assert row["holder"] == VILLAGE


async def test_withdrawn_before_submission_and_while_handled(county: County) -> None:
    early, _ = await county.register(VILLAGE, "MZ-003")
    await county.act(VILLAGE, early, "withdraw", reasons="申请人不再申请")
    await county.act(
        VILLAGE, early, "deliver", confirmed_by="张三", signature="签名:张三"
    )  # the materials are handed back
    await county.act(VILLAGE, early, "close")
    await county.sync()
    await county.converged(early, "closed", "withdrawn")

    late = await county.submitted_and_received("MZ-003")
    await county.act(TOWN, late, "accept")
    await county.sync()
    await county.refused(VILLAGE, late, "withdraw", "not the custodian")  # the desk that holds it records it
    await county.act(TOWN, late, "withdraw", reasons="申请人书面撤回")
    await county.refused(TOWN, late, "withdraw", "can no longer be withdrawn")
    await county.down_and_delivered(late)
    await county.converged(late, "closed", "withdrawn")


# -- A/B posts, complaints, closing ------------------------------------------------------------------


async def test_b_post_acting_for_the_absent_a_post_is_recorded(county: County) -> None:
    errand = await county.submitted_and_received("MZ-003")
    await county.act(TOWN, errand, "accept", actor=B_POST, acting_for=A_POST)
    await county.act(TOWN, errand, "decide", outcome="approved", actor=B_POST, acting_for=A_POST)
    await county.sync()
    await county.converged(errand, "decided", "approved")
    for node in PATH:
        assert (await county.state(errand, node))["acted_for"] == [A_POST], node
        history = (await county.net.stores[node].errand(errand))["history"]
        accept = next(h for h in history if h["kind"] == "accept")
        assert (accept["actor"], accept["acting_for"]) == (B_POST, A_POST)


async def test_complaints_are_hidden_from_the_desk_history(county: County) -> None:
    errand = await county.submitted_and_received("MZ-003")
    await county.refused(VILLAGE, errand, "complain", "needs its text", text=" ")
    await county.act(VILLAGE, errand, "complain", actor="张三", role="申请人", text="窗口推诿", against=A_POST)
    await county.act(VILLAGE, errand, "note", text="已转交镇纪委")
    await county.sync()
    await county.converged(errand, "received")
    for node in PATH:
        store = county.net.stores[node]
        shown = [h["kind"] for h in (await store.errand(errand))["history"]]
        assert "complain" not in shown and "note" in shown, node
        full = (await store.errand(errand, include_complaints=True))["history"]
        complaint = next(h for h in full if h["kind"] == "complain")
        assert (complaint["text"], complaint["against"], complaint["status"]) == ("窗口推诿", A_POST, "applied")


async def test_close_only_after_delivery_then_rating_and_call_back(county: County) -> None:
    errand = await county.submitted_and_received("MZ-003")
    await county.act(TOWN, errand, "accept")
    await county.act(TOWN, errand, "decide", outcome="approved")
    await county.refused(TOWN, errand, "close", "only a delivered errand")
    await county.refused(C, errand, "callback", "after the result was delivered", reached=True)
    await county.down_and_delivered(errand, close=False)
    await county.act(VILLAGE, errand, "rate", actor="张三", role="申请人", level="满意")
    await county.refused(TOWN, errand, "close", "not the custodian")
    await county.act(VILLAGE, errand, "close", archive_no="DA-2026-001")
    await county.refused(VILLAGE, errand, "close", "only a delivered errand")
    await county.act(C, errand, "callback", reached=True, level="满意", text="回访满意")
    await county.sync()
    await county.converged(errand, "closed", "approved")
    state = await county.state(errand, TOWN)
    assert state["archive_no"] == "DA-2026-001"


# -- 主件: acceptance waits for the main materials -----------------------------------------------------


async def village_notices(county: County) -> list[Any]:
    """The village desk's notices as its home page and badge list them (``sanji.web.badge.desk_notices``)."""
    context = county.contexts[VILLAGE]
    work, _, notices = await desk_notices(county.net.stores[VILLAGE], context, "", context.today())
    return [(n, [w["id"] for w in work]) for n in notices]


async def held_now(county: County, node: str, errand: str) -> HeldMaterials:
    """What the errand holds, as the errand page and the API read it at ``node`` (``materials_of``)."""
    row = await county.net.stores[node].errand(errand)
    assert row is not None
    return materials_of(row, row["history"], county.contexts[node])


async def test_an_errand_missing_a_main_material_is_accepted_only_once_it_has_arrived(county: County) -> None:
    """DOMAIN.md, "The life of an errand", and seed 001: the agent may register with a main material (主件)
    missing, but the township cannot accept until it arrives; it issues ONE notice of everything missing, the
    registering village is told (需补正材料, in its 待办), the agent brings them (补交, not yet received), and the
    window records them (材料补齐): then, and only then, acceptance goes through."""
    brought = ["申请书", "身份证复印件"]  # 户口簿复印件 (main) and 家庭收入及财产状况声明 (secondary) missing
    errand = await county.submitted_and_received("MZ-001", materials=brought)
    held = await held_now(county, TOWN, errand)
    assert held.held == tuple(brought)
    assert held.missing_main == ("户口簿复印件",) and held.missing_secondary == ("家庭收入及财产状况声明",)

    # Refused at the desk (every surface's door), Chinese first, telling the clerk what to do instead; the
    # menu does not offer it, and offers the one-time notice.
    message = await county.refused(TOWN, errand, "accept", "户口簿复印件", errand_kind="上报件")
    with pytest.raises(ActionRefused) as info:
        await county.act(
            TOWN, errand, "accept", errand_kind="上报件", provisional=["家庭收入及财产状况声明"], promise_by=PROMISED
        )
    assert info.value.refusal.code == "accept_mains_missing"
    assert bilingual(info.value.refusal)[0].startswith("主件不齐，不能受理") and "一次性告知" in message
    state = msgspec.convert(await county.state(errand, TOWN), ErrandState)
    menu = allowed_steps(state, TOWN, county.net.directory, materials=held)
    assert "accept" not in menu and "request_supplement" in menu
    assert "accept" in allowed_steps(state, TOWN, county.net.directory)  # the rule alone cannot tell

    await county.act(TOWN, errand, "request_supplement", items=list(held.missing), text="一次性告知单")
    await county.sync()
    # the registering village is told, and the errand is in its 待办 though the township holds it
    shown = await village_notices(county)
    asked = [n for n, _ in shown if n.kind == SUPPLEMENT_ASKED]
    assert len(asked) == 1 and asked[0].unread and errand in shown[0][1]
    assert asked[0].zh.startswith("需补正材料") and "户口簿复印件" in asked[0].zh and "新到办件" not in asked[0].zh
    assert all(row["id"] != errand for row in await county.net.stores[SISTER].worklist())

    # 补交: the agent carries them up; not received yet, so still missing (and not accepted: the notice is open)
    await county.act(VILLAGE, errand, "supply", items=list(held.missing), text="已补齐")
    await county.sync()
    carried = await held_now(county, TOWN, errand)
    assert carried.missing_main == ("户口簿复印件",) and set(carried.supplied) == set(held.missing)

    # 材料补齐: received; 已收材料 lists them, nothing is missing, and the township accepts
    await county.act(TOWN, errand, "materials_received", items=list(held.missing))
    received = await held_now(county, TOWN, errand)
    assert received.held == (*brought, "户口簿复印件", "家庭收入及财产状况声明")
    assert received.missing == () and received.supplied == ()
    state = msgspec.convert(await county.state(errand, TOWN), ErrandState)
    assert "accept" in allowed_steps(state, TOWN, county.net.directory, materials=received)
    assert "request_supplement" not in allowed_steps(state, TOWN, county.net.directory, materials=received)
    await county.act(TOWN, errand, "accept", errand_kind="上报件")
    await county.sync()
    assert all(row["id"] != errand for row in await county.net.stores[VILLAGE].worklist())  # nothing owed now

    # the result comes back down: the village is told so, in those words
    await county.act(TOWN, errand, "escalate", department="县民政局")
    await county.sync()
    await county.act(C, errand, "receive")
    await county.act(C, errand, "decide", outcome="approved", department="县民政局", document="民低〔2026〕2号")
    await county.act(C, errand, "send_result")
    await county.sync()
    await county.act(TOWN, errand, "receive")
    await county.act(TOWN, errand, "send_result")
    await county.sync()
    back = [n for n, _ in await village_notices(county) if n.kind == RESULT_BACK]
    assert len(back) == 1 and back[0].zh.startswith("结果已返回") and "（待签收）" in back[0].zh
    assert back[0].en.startswith("Result back")


async def test_a_provisional_acceptance_still_needs_every_main_material(county: County) -> None:
    """容缺受理 leaves only secondary materials owed: a main one missing refuses it too, whatever the list says."""
    errand = await county.submitted_and_received("MZ-003", materials=["申请书", "身份证复印件"])
    await county.refused(
        TOWN,
        errand,
        "accept",
        "户口簿复印件",
        errand_kind="承诺件",
        provisional=["困难情况证明材料"],
        promise_by=PROMISED,
    )
    # every main one there: 容缺 for the secondary one goes through
    whole = await county.submitted_and_received("MZ-003", materials=["申请书", "身份证复印件", "户口簿复印件"])
    await county.act(TOWN, whole, "accept", errand_kind="承诺件", provisional=["困难情况证明材料"], promise_by=PROMISED)
