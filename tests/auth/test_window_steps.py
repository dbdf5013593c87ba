"""At a township centre an errand's handling steps are the window's this centre named for it (一窗受理, AB岗).

Township T01's real app with logins on, an account of each window with a bearer token and a session. A 低保
(MZ-001) is accepted at 综合窗口; another is received and not yet accepted. 社会救助窗口's clerk is refused every
handling step on the first (一次性告知, 审核, a note, 办结 …: 403 naming both windows, in Chinese first, audited,
nothing written), is not offered them on the errand page nor by ``sanji errand show``, and ``sanji errand act``
says ``denied``; 综合窗口's A post, its B post (on her own and acting for the A post: seed 001, "B岗责任人在顶岗期间，
享有A岗责任人的职责权利") and the director (bound to no window) take them. Before any window is named any window
takes the errand in; once the director assigns (分派) it to 社会救助窗口, that window takes its steps too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sanji.auth import events as ev
from sanji.catalogue import default_catalogue
from sanji.cli import errand_cmd
from sanji.forms import ActionForm, RegisterForm
from sanji.store import Store
from tests.auth.auth_kit import bearer, events, login
from tests.web.test_department_clerks import JIUZHU, T01, ZONGHE, Desk, desk
from tests.web.test_department_inbox import County, open_county

STAFF = {
    "王芳": ("window_a", "", ZONGHE),  # accepted the 低保: its window's A post
    "刘岚": ("window_b", "", ZONGHE),  # the same window's B post
    "李红": ("window_a", "", JIUZHU),  # another window
    "赵云": ("window_b", "", JIUZHU),  # another window's B post, also standing in for 综合窗口's A post (一人多岗)
    "陈主任": ("director", "", ""),  # no window: the whole centre
}


@dataclass
class Setup:
    """What ``tests.web.test_department_clerks.desk`` needs of a set-up county, and the errands made."""

    county: County
    accepted: str  # MZ-001 accepted at T01's 综合窗口
    fresh: str  # MZ-001 registered at T01, not accepted: no window named yet


@pytest.fixture
def made(tmp_path: Path) -> Setup:
    async def work() -> Setup:
        county = await open_county(tmp_path, open_demo=False)
        try:
            service = county.service(T01)
            entry = default_catalogue().get("MZ-001")
            assert entry is not None and entry.window == JIUZHU  # so the acceptance's window is what names it
            materials = [m.name for m in entry.materials if not m.optional]
            errands = []
            for name in ("周大娘", "孙二"):
                form = RegisterForm(matter="MZ-001", applicant_name=name, materials=materials, actor="窗口")
                errands.append((await service.register(form)).errand)
            accept = ActionForm(kind="accept", actor="窗口 王芳", errand_kind="承诺件", window=ZONGHE)
            await service.act(errands[0], accept)
            return Setup(county, errands[0], errands[1])
        finally:
            await county.close()

    return asyncio.run(work())


@pytest.fixture
def town(made: Setup) -> Iterator[Desk]:
    yield from desk(made, T01, STAFF)  # type: ignore[arg-type]  # desk reads .county alone


STEPS: list[dict[str, Any]] = [
    {"kind": "note", "text": "已电话联系申请人"},
    {"kind": "review", "text": "材料齐全，同意"},
    {"kind": "request_supplement", "items": ["户口簿"], "text": "请补交户口簿"},
    {"kind": "extend", "days": 3, "reasons": "需入户调查", "applicant_informed": True},
    {"kind": "decide", "outcome": "approved", "text": "符合条件"},
]


def kinds(d: Desk, errand: str) -> list[str]:
    return [h["kind"] for h in d.state(errand)["history"] if h["status"] == "applied"]


def refused_step(r: Any, errand: str, kind: str, mine: str, theirs: str) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert (body["error"], body["error_code"], body["kind"], body["errand"]) == (
        "forbidden",
        "other_window_step",
        kind,
        errand,
    ), body
    assert (body["params"]["mine"], body["params"]["theirs"]) == (mine, theirs)
    zh, en = body["message_zh"], body["message"]
    assert zh.startswith(f"该办件在本中心由{theirs}经办，本账号属于{mine}") and "中心主任分派" in zh, zh
    assert f"handled here at {theirs}" in en and "ask the director" in en, en


def test_another_windows_clerk_is_refused_its_handling_steps(made: Setup, town: Desk) -> None:
    errand = made.accepted
    before = kinds(town, errand)
    for step in STEPS:
        refused_step(town.act("李红", errand, **step), errand, step["kind"], JIUZHU, ZONGHE)
    assert kinds(town, errand) == before  # nothing written
    audited = [e for e in events(town.config, event="action_refused", errand=errand) if e.account == "李红"]
    assert [(e.kind, e.actor) for e in audited if isinstance(e, ev.ActionRefused)] == [
        (step["kind"], "李红") for step in STEPS
    ]
    # A scan goes the same way: the upload is refused, nothing attached.
    r = town.client.post(
        f"/api/errands/{errand}/attachments",
        params={"name": "身份证.jpg", "actor": "typed"},
        content=b"\xff\xd8\xff\xe0 scan",
        headers={**bearer(town.tokens["李红"]), "content-type": "image/jpeg"},
    )
    assert r.status_code == 403 and r.json()["error_code"] == "other_window_step", r.text
    assert "attach" not in kinds(town, errand)
    # The applicant's voice is never the window's to gate: 社会救助窗口 records a complaint on it.
    complaint = {"kind": "complain", "text": "窗口态度不好", "against": "王芳"}
    assert town.act("李红", errand, **complaint).status_code == 201


def test_the_holding_windows_a_and_b_posts_and_the_director_take_them(made: Setup, town: Desk) -> None:
    errand = made.accepted
    r = town.act("刘岚", errand, kind="note", text="A岗请假，B岗顶岗")  # the B post's own step, at her window
    assert r.status_code == 201, r.text
    r = town.act("刘岚", errand, kind="review", text="材料齐全", acting_for="王芳")  # acting for the A post
    assert r.status_code == 201, r.text
    r = town.act("陈主任", errand, kind="request_supplement", items=["户口簿"], text="请补交户口簿")
    assert r.status_code == 201, r.text
    r = town.act("王芳", errand, kind="materials_received", items=["户口簿"])
    assert r.status_code == 201, r.text
    assert kinds(town, errand)[-4:] == ["note", "review", "request_supplement", "materials_received"]


def test_the_errand_page_and_the_command_line_offer_the_other_window_none(
    made: Setup, town: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    errand, client = made.accepted, town.client
    login(client, "李红")
    page = client.get(f"/errands/{errand}").text
    for kind in ("review", "note", "request_supplement", "decide", "extend"):
        assert f'value="{kind}"' not in page, kind
    for who in ("王芳", "陈主任"):
        client.cookies.clear()
        login(client, who)
        page = client.get(f"/errands/{errand}").text
        assert 'value="review"' in page and 'value="note"' in page, who

    config = str(town.config)
    capsys.readouterr()
    assert errand_cmd.run_show(config, errand, account="李红", as_json=True) == 0
    offered = json.loads(capsys.readouterr().out)["steps"]
    assert not {"review", "note", "decide"} & set(offered), offered
    assert errand_cmd.run_show(config, errand, account="王芳", as_json=True) == 0
    assert "review" in json.loads(capsys.readouterr().out)["steps"]
    assert errand_cmd.run_act(config, "李红", errand, "review", ["text=看看"]) == 2
    err = capsys.readouterr().err
    assert "denied: other_window_step" in err and "中心主任分派" in err and ZONGHE in err


def test_before_a_window_is_named_any_window_takes_it_in(made: Setup, town: Desk) -> None:
    fresh = made.fresh
    r = town.act("王芳", fresh, kind="note", text="申请人来电询问")  # received, not accepted: the one window
    assert r.status_code == 201, r.text
    r = town.act("李红", fresh, kind="accept", errand_kind="承诺件", window=JIUZHU)
    assert r.status_code == 201, r.text
    refused_step(town.act("王芳", fresh, kind="note", text="再看看"), fresh, "note", ZONGHE, JIUZHU)


def test_the_director_assigns_it_and_the_assigned_window_takes_its_steps(made: Setup, town: Desk) -> None:
    errand = made.accepted
    refused_step(town.act("李红", errand, kind="review", text="审核"), errand, "review", JIUZHU, ZONGHE)
    r = town.act("陈主任", errand, kind="assign", window=JIUZHU, handler="李红")
    assert r.status_code == 201, r.text
    r = town.act("李红", errand, kind="review", text="审核通过")
    assert r.status_code == 201, r.text
    # The accepting window stays on the errand: it delivers the result and answers for it (首问负责).
    assert town.act("王芳", errand, kind="note", text="已告知申请人").status_code == 201


def test_a_b_post_standing_in_for_another_windows_a_post_acts_at_its_window(made: Setup, town: Desk) -> None:
    """Seed 001: "B岗责任人在顶岗期间，享有A岗责任人的职责权利" — standing in for 综合窗口's A post, 社会救助窗口's B
    post takes 综合窗口's steps; on her own she does not."""
    errand = made.accepted
    refused_step(
        town.act("赵云", errand, kind="note", text="看看"), errand, "note", JIUZHU, ZONGHE
    )  # her own step, her own window
    r = town.act("赵云", errand, kind="review", text="顶岗审核", acting_for="王芳")
    assert r.status_code == 201, r.text
    refused = town.act("赵云", errand, kind="review", text="顶岗审核", acting_for="李红")  # 李红's window: refused
    refused_step(refused, errand, "review", JIUZHU, ZONGHE)


def test_a_history_read_before_another_step_still_judges_the_window_it_names(
    made: Setup, town: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard reads the history before the write. Read one version behind (a step committed between), a read
    naming the clerk's own window still lets her step through (named windows stay named); one naming no window for
    her is not judged by: the desk reloads (changed_meanwhile), instead of a verdict on an older errand."""
    errand, fresh = made.accepted, made.fresh
    read = Store.errand

    async def one_behind(store: Store, errand_id: str, **kw: Any) -> dict[str, Any] | None:
        row = await read(store, errand_id, **kw)
        return None if row is None else {**row, "version": int(row["version"]) - 1}

    monkeypatch.setattr(Store, "errand", one_behind)
    assert town.act("王芳", errand, kind="note", text="已联系").status_code == 201
    r = town.act("李红", fresh, kind="note", text="看看")
    monkeypatch.undo()
    assert r.status_code == 409 and r.json()["error_code"] == "changed_meanwhile", r.text
