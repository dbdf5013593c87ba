"""联办件 through real node processes on loopback: the co-department answers at its own desk at the county.

The village agent registers 医疗救助 (MZ-007, 县医保局 joins) on the villager's mandate; the township
accepts it as a 联办件. By the nodes' own sync the errand reaches the county, where 县医保局's inbox
(``/api/subtasks`` and the ``/subtasks`` screen) shows the sub-task — and 县民政局's does not. The
lead window is refused when it tries to close the sub-task itself (``subtask_department_only``); the
department agrees with its opinion at the county; the answer comes down, the township sees it closed
on the errand page and goes on: it escalates to the approving department, which decides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sanji.client import NodeApiError
from sanji.demo.cluster import Cluster
from tests.e2e.process_kit import TOWN, VILLAGE, C, ProcessKit, prepared, running

pytestmark = pytest.mark.processes

STAFF = {C: "县医保局 审批员 赵敏", TOWN: "综合窗口 A岗 王芳", VILLAGE: "代办员 李建国"}
CO = "县医保局"


class Nodes(ProcessKit):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, STAFF)

    async def inbox(self, department: str) -> list[dict[str, Any]]:
        body = await self.get(C, "/api/subtasks", department=department)
        assert body["department"] == department
        return body["items"]  # type: ignore[no-any-return]


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    cluster = prepared(tmp_path)
    async with running(cluster, Nodes(cluster)) as kit:
        yield kit


async def test_the_co_department_closes_its_sub_task_at_the_county(nodes: Nodes) -> None:
    registered = await nodes.clients[VILLAGE].register(
        matter="MZ-007",
        applicant_name="周桂英",
        materials=["申请书", "身份证复印件", "住院费用结算单", "诊断证明"],
        actor=STAFF[VILLAGE],
        role="代办员",
    )
    errand = registered["errand"]
    detail = await nodes.clients[VILLAGE].errand(errand)
    assert detail["service_kind"] == "代办件"  # the agent carries it on the villager's mandate
    receipt = detail["receipt"]
    await nodes.act(VILLAGE, errand, "submit")
    await nodes.arrives(TOWN, errand)
    await nodes.act(TOWN, errand, "accept", errand_kind="联办件", co_departments=[CO], window="民政窗口")

    # The accept travels up with the errand: 县医保局's inbox at the county shows the sub-task, and only there.
    items = await nodes.until(lambda: nodes.inbox(CO), f"a sub-task in {CO}'s inbox")
    assert [(i["errand"], i["department"], i["lead"], i["lead_window"]) for i in items] == [
        (errand, CO, TOWN, "民政窗口")
    ]
    assert items[0]["since"] > 0 and items[0]["due"]
    assert await nodes.inbox("县民政局") == []
    page = await nodes.http[C].get("/subtasks", params={"department": CO})
    assert page.status_code == 200 and receipt in page.text and "联办子任务" in page.text
    for bad in ("县医\x07保局", "局" * 65):  # a control character, too long: a clear 400
        answer = await nodes.http[C].get("/api/subtasks", params={"department": bad})
        assert answer.status_code == 400, answer.text

    # The lead window cannot close the department's sub-task; the department can, at the county.
    with pytest.raises(NodeApiError) as info:
        await nodes.act(TOWN, errand, "subtask_done", department=CO, outcome="agreed")
    assert info.value.status == 409 and info.value.body["error_code"] == "subtask_department_only"
    with pytest.raises(NodeApiError) as early:
        await nodes.act(TOWN, errand, "decide", outcome="approved", document="医疗救助审批表")
    assert early.value.status == 409 and early.value.body["error_code"] == "subtasks_open"
    form = {"kind": "subtask_done", "department": CO, "actor": STAFF[TOWN], "role": "窗口工作人员"}
    lead_page = await nodes.http[TOWN].get(f"/errands/{errand}")
    assert 'name="kind" value="subtask_done"' not in lead_page.text  # not offered to the lead window ...
    assert f'data-department="{CO}" data-status="pending"' in lead_page.text  # ... which sees it waiting
    refused = await nodes.http[TOWN].post(f"/errands/{errand}/act", data=form)
    assert refused.status_code == 409 and 'data-refusal="subtask_department_only"' in refused.text
    assert "牵头窗口不能代为办结" in refused.text
    # The county's errand page offers the step (the rule's menu); the department answers there.
    county_page = await nodes.http[C].get(f"/errands/{errand}")
    assert 'name="kind" value="subtask_done"' in county_page.text
    answer = {
        "kind": "subtask_done",
        "department": CO,
        "outcome": "agreed",
        "text": "未享受医保重复报销，同意",
        "actor": STAFF[C],
        "role": "部门审批人员",
    }
    answered = await nodes.http[C].post(f"/errands/{errand}/act", data=answer)
    assert answered.status_code == 303, answered.text
    assert await nodes.inbox(CO) == []

    # The answer comes down: the township sees it on the errand (API and page) and goes on.
    seen = await nodes.wait(TOWN, errand, lambda e: e["subtasks"] == {CO: "agreed"}, "told the sub-task is done")
    assert seen["holder"] == TOWN and seen["stage"] == "accepted"
    page = await nodes.http[TOWN].get(f"/errands/{errand}")
    assert page.status_code == 200
    assert f'data-department="{CO}" data-status="agreed"' in page.text and "未享受医保重复报销" in page.text
    with pytest.raises(NodeApiError) as later:  # approval is the county's (approve_levels), no longer waiting
        await nodes.act(TOWN, errand, "decide", outcome="approved", document="医疗救助审批表")
    assert later.value.body["error_code"] not in ("subtasks_open", "subtask_objected")
    await nodes.act(TOWN, errand, "escalate", department="县民政局")
    await nodes.arrives(C, errand)
    await nodes.act(C, errand, "decide", outcome="approved", department="县民政局", document="医疗救助审批表")
    done = await nodes.wait(TOWN, errand, lambda e: e["outcome"] == "approved", "told of the decision")
    assert done["subtasks"] == {CO: "agreed"}
