"""Accounts carry their place: a county department's clerk answers for that department, a window's staff for
that window's urgings (``sanji.auth.roles.place_refusal``), at the county's and a township's real app.

Real stores, real sync over the in-process transport: T01 leads a 联办件 (ZR-001: 县农业农村局 and 县住建局
answer at the county) and escalates a 低保 (MZ-001) to 县民政局; the county urges the township's window. With
logins on, each clerk acts with a bearer token through ``POST /api/errands/{id}/actions`` and sees the errand
page: another department's sub-task or errand, or an urging naming another window, is a 403 with
``error_code``, ``message_zh`` and nothing written; its own works; an account with neither acts for the
whole node as before. The errand page offers only what the account may take, and the 部门收件箱 opens on
the clerk's own department.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sanji.auth import events as ev
from sanji.auth import roles
from sanji.catalogue import default_catalogue
from sanji.cli import accounts_cmd, errand_cmd
from sanji.forms import ActionForm, RegisterForm
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from sanji.tiers import create_app
from tests.auth.auth_kit import PASSWORD, bearer, events, token
from tests.web.test_department_inbox import MINZHENG, RENSHE, County, open_county

C, T01 = "C", "T01"
NONGYE, ZHUJIAN = "县农业农村局", "县住建局"
JIUZHU, ZONGHE = "社会救助窗口", "综合窗口"
Client = TestClient[Litestar]


async def _joint(county: County) -> str:
    """ZR-001 accepted at T01 as a 联办件; the county holds the two departments' open sub-tasks."""
    window = county.service(T01)
    entry = default_catalogue().get("ZR-001")
    assert entry is not None and entry.joint_answers_at_departments
    materials = [m.name for m in entry.materials if not m.optional]
    form = RegisterForm(matter="ZR-001", applicant_name="刘建房", materials=materials, actor="窗口 王芳")
    errand = (await window.register(form)).errand
    accept = ActionForm(kind="accept", actor="窗口 王芳", errand_kind="联办件", co_departments=[NONGYE, ZHUJIAN])
    await window.act(errand, accept)
    await sync_once(county.stores[T01], LocalTransport(SyncServer(county.stores[C])))
    return errand


async def _urged(county: County, window: str) -> tuple[str, str]:
    """MZ-001 accepted at T01 for ``window``; the county urges T01 (the urging names that window)."""
    service = county.service(T01)
    entry = default_catalogue().get("MZ-001")
    assert entry is not None
    materials = [m.name for m in entry.materials if not m.optional]
    form = RegisterForm(matter="MZ-001", applicant_name="周大娘", materials=materials, actor="窗口")
    errand = (await service.register(form)).errand
    await service.act(errand, ActionForm(kind="accept", actor="窗口", errand_kind="承诺件", window=window))
    await sync_once(county.stores[T01], LocalTransport(SyncServer(county.stores[C])))
    answer_by = (county.contexts[C].today() + timedelta(days=5)).isoformat()
    urge = ActionForm(kind="supervise", actor="督查 周明", supervision="督办", text="请加快办理", answer_by=answer_by)
    urged = await county.service(C).act(errand, urge)
    assert urged.state is not None
    urging = urged.state.urgings[-1]
    assert (urging.to, urging.window) == (T01, window)
    await sync_once(county.stores[T01], LocalTransport(SyncServer(county.stores[C])))
    return errand, urging.id


@dataclass
class Desk:
    config: Path
    client: Client
    tokens: dict[str, str]

    def act(self, who: str, errand: str, **body: Any) -> Any:
        return self.client.post(
            f"/api/errands/{errand}/actions", json={"actor": "typed", **body}, headers=bearer(self.tokens[who])
        )

    def get(self, who: str, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=bearer(self.tokens[who]), **kwargs)

    def state(self, errand: str) -> dict[str, Any]:
        """The errand as the API shows it (stage, subtasks, history)."""
        body: dict[str, Any] = self.get(next(iter(self.tokens)), f"/api/errands/{errand}").json()
        return body

    def applied(self, errand: str, kind: str = "") -> list[str]:
        history = self.state(errand)["history"]
        return [h["id"] for h in history if h["status"] == "applied" and (not kind or h["kind"] == kind)]


@dataclass
class Setup:
    county: County
    joint: str
    escalated: str
    urged: str
    urging: str
    urged_whole: str  # an urging naming no window: the whole centre's


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    async def made() -> Setup:
        county = await open_county(tmp_path, open_demo=False)
        try:
            joint = await _joint(county)
            escalated = await county.escalate(T01, "MZ-001", MINZHENG, "张秀英")
            urged, urging = await _urged(county, JIUZHU)
            urged_whole, _ = await _urged(county, "")
            return Setup(county, joint, escalated, urged, urging, urged_whole)
        finally:
            await county.close()

    return asyncio.run(made())


def desk(setup: Setup, node: str, staff: dict[str, tuple[str, str, str]]) -> Iterator[Desk]:
    config = setup.county.cluster.nodes[node].config
    for name, (role, department, window) in staff.items():
        assert accounts_cmd.run_add(str(config), name, role, PASSWORD, department=department, window=window) == 0
    tokens = {name: token(config, name) for name in staff}
    with TestClient[Litestar](create_app(setup.county.settings[node])) as client:
        yield Desk(config, client, tokens)


COUNTY_STAFF = {
    "赵农": ("approver", NONGYE, ""),
    "钱住": ("approver", ZHUJIAN, ""),
    "赵敏": ("approver", MINZHENG, ""),
    "钱人": ("approver", RENSHE, ""),
    "孙审": ("approver", "", ""),  # no department: the whole hub, as before
}
TOWN_STAFF = {
    "王芳": ("window_a", "", ZONGHE),
    "李红": ("window_a", "", JIUZHU),
    "陈主任": ("director", "", ""),  # no window: the whole centre, as before
}


@pytest.fixture
def county_desk(setup: Setup) -> Iterator[Desk]:
    yield from desk(setup, C, COUNTY_STAFF)


@pytest.fixture
def town_desk(setup: Setup) -> Iterator[Desk]:
    yield from desk(setup, T01, TOWN_STAFF)


def refused_as(r: Any, code: str, kind: str, errand: str) -> dict[str, Any]:
    assert r.status_code == 403, r.text
    body: dict[str, Any] = r.json()
    assert body["error"] == "forbidden" and body["error_code"] == code, body
    assert body["message"] and body["message_zh"] and body["message_zh"] != body["message"]
    assert (body["kind"], body["errand"]) == (kind, errand), body  # the step refused, and on which errand
    assert isinstance(body["hint"], str) and body["retryable"] is False  # the guard's fields are all kept
    return body


def offered(page: str, kind: str) -> bool:
    return f'name="kind" value="{kind}"' in page


# -- 联办 sub-tasks ------------------------------------------------------------------------------------


def test_a_department_answers_its_own_sub_task_and_no_other(setup: Setup, county_desk: Desk) -> None:
    errand = setup.joint
    before = county_desk.applied(errand)

    r = county_desk.act("赵农", errand, kind="subtask_done", department=ZHUJIAN)
    body = refused_as(r, "other_department_subtask", "subtask_done", errand)
    assert body["params"] == {"mine": NONGYE, "theirs": ZHUJIAN} and ZHUJIAN in body["message_zh"]
    assert county_desk.state(errand)["subtasks"] == {NONGYE: "pending", ZHUJIAN: "pending"}
    assert county_desk.applied(errand) == before  # nothing written
    # The refusal's audit row names the step and who asked, though no action was built to name them.
    refusals = [e for e in events(county_desk.config, errand=errand, event="action_refused")]
    assert [
        (e.account, e.via, e.actor, e.role, e.kind, e.errand) for e in refusals if isinstance(e, ev.ActionRefused)
    ] == [("赵农", "token", "赵农", roles.label("approver"), "subtask_done", errand)]

    # The page offers each clerk its own department's sub-task, and names no other in the form.
    page = county_desk.get("赵农", f"/errands/{errand}").text
    assert offered(page, "subtask_done")
    form = page.split('value="subtask_done"')[1].split("</form>")[0]
    assert f'<option value="{NONGYE}"' in form and f'<option value="{ZHUJIAN}"' not in form

    # Its own: the department is its own where the form names none.
    r = county_desk.act("赵农", errand, kind="subtask_done", outcome="agreed", text="同意")
    assert r.status_code == 201, r.text
    assert county_desk.state(errand)["subtasks"] == {NONGYE: "agreed", ZHUJIAN: "pending"}
    assert not offered(county_desk.get("赵农", f"/errands/{errand}").text, "subtask_done")
    assert offered(county_desk.get("钱住", f"/errands/{errand}").text, "subtask_done")

    # An approver with no department answers for any department, as every approver did before.
    r = county_desk.act("孙审", errand, kind="subtask_done", department=ZHUJIAN, outcome="agreed")
    assert r.status_code == 201, r.text
    assert county_desk.state(errand)["subtasks"] == {NONGYE: "agreed", ZHUJIAN: "agreed"}


# -- the 上报件 escalated to a department --------------------------------------------------------------


def test_only_the_errands_department_takes_its_steps(setup: Setup, county_desk: Desk) -> None:
    errand = setup.escalated
    before = county_desk.applied(errand)
    refused_as(county_desk.act("钱人", errand, kind="receive"), "other_department_errand", "receive", errand)
    assert county_desk.applied(errand) == before and county_desk.state(errand)["stage"] == "escalated"
    assert not offered(county_desk.get("钱人", f"/errands/{errand}").text, "receive")
    assert offered(county_desk.get("赵敏", f"/errands/{errand}").text, "receive")

    assert county_desk.act("赵敏", errand, kind="receive").status_code == 201
    page = county_desk.get("钱人", f"/errands/{errand}").text
    assert not any(offered(page, k) for k in ("decide", "review", "assign", "note"))
    decision = {"kind": "decide", "outcome": "approved", "document": "民〔2026〕1号"}
    refused_as(county_desk.act("钱人", errand, **decision), "other_department_errand", "decide", errand)
    refused_as(
        county_desk.act("赵敏", errand, **decision, department=RENSHE), "other_department_decision", "decide", errand
    )
    assert county_desk.state(errand)["stage"] == "at_department"

    # The screen's own form answers the same 403, in both languages, with the form kept.
    r = county_desk.client.post(  # a bearer caller posts no CSRF token
        f"/errands/{errand}/act",
        data={"kind": "note", "text": "看看", "actor": "钱人", "role": "部门审批"},
        headers=bearer(county_desk.tokens["钱人"]),
    )
    assert r.status_code == 403 and "不能办理" in r.text and "may not take its steps" in r.text
    assert 'data-refusal="other_department_errand"' in r.text
    hint = r.text.split("<span data-hint>", 1)[1]
    assert hint.startswith("请由该部门或窗口的账号") and hint.index('<span lang="en">Ask an account of that') < 80

    assert county_desk.act("赵敏", errand, **decision).status_code == 201
    assert county_desk.state(errand)["stage"] == "decided"


def test_an_approver_without_a_department_acts_for_the_whole_hub(setup: Setup, county_desk: Desk) -> None:
    errand = setup.escalated
    assert offered(county_desk.get("孙审", f"/errands/{errand}").text, "receive")
    assert county_desk.act("孙审", errand, kind="receive").status_code == 201
    decision = {"kind": "decide", "outcome": "approved", "document": "民〔2026〕2号", "department": MINZHENG}
    assert county_desk.act("孙审", errand, **decision).status_code == 201


def test_the_inbox_opens_on_the_clerks_own_department(setup: Setup, county_desk: Desk) -> None:
    mine = county_desk.get("赵敏", "/api/inbox").json()
    assert mine["department"] == MINZHENG and [i["errand"] for i in mine["items"]] == [setup.escalated]
    other = county_desk.get("钱人", "/api/inbox").json()
    assert other["department"] == RENSHE and other["items"] == []
    everyone = county_desk.get("钱人", "/api/inbox", params={"department": ""}).json()
    assert everyone["department"] == "" and setup.escalated in {i["errand"] for i in everyone["items"]}
    assert county_desk.get("孙审", "/api/inbox").json()["department"] == ""  # no department: every one's
    page = county_desk.get("钱人", "/inbox").text
    assert f'<option value="{RENSHE}" selected' in page
    subtasks = county_desk.get("赵农", "/api/subtasks").json()
    assert subtasks["department"] == NONGYE and {s["department"] for s in subtasks["items"]} == {NONGYE}


# -- 督办 urgings and the window they name -----------------------------------------------------------


def test_a_window_answers_only_the_urgings_naming_it(setup: Setup, town_desk: Desk) -> None:
    errand, urging = setup.urged, setup.urging
    before = town_desk.applied(errand)
    body = refused_as(
        town_desk.act("王芳", errand, kind="answer_urging", text="已办"),
        "no_urging_for_window",
        "answer_urging",
        errand,
    )
    assert body["params"] == {"mine": ZONGHE}
    body = refused_as(
        town_desk.act("王芳", errand, kind="answer_urging", urging=urging, text="已办"),
        "other_window_urging",
        "answer_urging",
        errand,
    )
    assert body["params"] == {"mine": ZONGHE, "theirs": JIUZHU} and JIUZHU in body["message_zh"]
    assert town_desk.applied(errand) == before
    assert not offered(town_desk.get("王芳", f"/errands/{errand}").text, "answer_urging")
    assert offered(town_desk.get("李红", f"/errands/{errand}").text, "answer_urging")

    r = town_desk.act("李红", errand, kind="answer_urging", text="已入户核查，本周办结")
    assert r.status_code == 201, r.text
    assert len(town_desk.applied(errand, "answer_urging")) == 1


def test_an_urging_naming_no_window_is_the_whole_centres(setup: Setup, town_desk: Desk) -> None:
    errand = setup.urged_whole
    refused_as(
        town_desk.act("李红", errand, kind="answer_urging", text="已办"),
        "no_urging_for_window",
        "answer_urging",
        errand,
    )
    assert not offered(town_desk.get("李红", f"/errands/{errand}").text, "answer_urging")
    assert offered(town_desk.get("陈主任", f"/errands/{errand}").text, "answer_urging")
    assert town_desk.act("陈主任", errand, kind="answer_urging", text="中心已督促").status_code == 201
    assert len(town_desk.applied(errand, "answer_urging")) == 1


def test_a_centre_account_without_a_window_answers_any_urging(setup: Setup, town_desk: Desk) -> None:
    r = town_desk.act("陈主任", setup.urged, kind="answer_urging", text="已督促社会救助窗口")
    assert r.status_code == 201, r.text


# -- the command line: the same rule through ``sanji errand --account`` -----------------------------------


def test_the_command_line_desk_answers_as_the_api(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(setup.county.cluster.nodes[C].config)
    for name, (role, department, window) in COUNTY_STAFF.items():
        assert accounts_cmd.run_add(config, name, role, PASSWORD, department=department, window=window) == 0
    errand = setup.escalated
    capsys.readouterr()
    assert errand_cmd.run_show(config, errand, account="钱人", as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == []  # another department's errand: nothing offered
    assert errand_cmd.run_act(config, "钱人", errand, "receive", []) == 2
    err = capsys.readouterr().err
    assert "denied: other_department_errand" in err and "不能办理" in err and RENSHE in err
    assert errand_cmd.run_show(config, errand, account="赵敏", as_json=True) == 0
    assert "receive" in json.loads(capsys.readouterr().out)["steps"]
    assert errand_cmd.run_act(config, "赵敏", errand, "receive", []) == 0
