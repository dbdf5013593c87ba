"""查看完整号码 and an attachment's bytes follow the account's place, as the desk's steps do.

Real stores, real sync over the in-process transport, real apps with logins on, an account of each post with
a bearer token and a session. T01's 综合窗口 accepts a 户口迁移 (GA-001, ID number and phone given, an ID-card
scan attached) as 上报件 and escalates it to 县公安局; a 低保 (MZ-001) is accepted at T01 naming no window
(its catalogue window is 社会救助窗口) and later assigned (承办) to 综合窗口; a 联办件 (ZR-001) owes 县住建局's
sub-task at the county. An approver of 县民政局, the county's window staff bound to a window (on an escalated
errand, or a township's that never came to the county) and a township clerk of another window are refused
the full numbers and the scan (403, ``message_zh`` and ``message``, an ``AccessDenied`` audit row) and keep
the masked view; the approver of 县公安局, the window that accepted it, the
accounts bound to nothing and the supervisor see them, audited as reads; the inspector sees neither.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sanji.auth import events as ev
from sanji.catalogue import default_catalogue
from sanji.cli import accounts_cmd
from sanji.forms import ActionForm, RegisterForm
from sanji.store import Store
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from sanji.tiers import create_app
from tests.auth.auth_kit import PASSWORD, bearer, csrf_of, events, login, token
from tests.web.test_department_inbox import MINZHENG, County, open_county

C, T01 = "C", "T01"
GONGAN = "县公安局"
NONGYE, ZHUJIAN, ZIRAN = "县农业农村局", "县住建局", "县自然资源局"
ZONGHE, JIUZHU = "综合窗口", "社会救助窗口"
FULL_ID, MASKED_ID = "430621195007307791", "430621********7791"
FULL_PHONE, MASKED_PHONE = "13812345678", "138****5678"
SCAN = b"\xff\xd8\xff\xe0 an ID card, front and back"
Client = TestClient[Litestar]

COUNTY_STAFF = {
    "赵敏": ("approver", MINZHENG, ""),  # another department: refused
    "孙公": ("approver", GONGAN, ""),  # the errand's department
    "孙审": ("approver", "", ""),  # no department: the whole hub, as before
    "钱住": ("approver", ZHUJIAN, ""),  # answers the 联办件's sub-task
    "吴窗": ("window_a", "", ZONGHE),  # the county's window staff: the department handles it here
    "冯窗": ("window_a", "", JIUZHU),  # the county's window of the 低保's catalogue window: T01 handles it
    "郑窗": ("window_b", "", ""),  # the county's window staff bound to nothing: what came to the county's desk
    "周明": ("supervisor", "", ""),
    "钱纪": ("inspector", "", ""),
}
TOWN_STAFF = {
    "王芳": ("window_a", "", ZONGHE),  # accepted the 户口迁移
    "李红": ("window_a", "", JIUZHU),  # another window
    "陈主任": ("director", "", ""),  # no window: the whole centre
    "钱纪": ("inspector", "", ""),
}


async def _register(county: County, matter: str, name: str) -> str:
    entry = default_catalogue().get(matter)
    assert entry is not None
    materials = [m.name for m in entry.materials if not m.optional]
    form = RegisterForm(
        matter=matter,
        applicant_name=name,
        applicant_id_number=FULL_ID,
        applicant_phone=FULL_PHONE,
        materials=materials,
        actor="窗口 王芳",
    )
    return (await county.service(T01).register(form)).errand


@dataclass
class Setup:
    county: County
    moved: str  # GA-001: accepted at T01's 综合窗口, a scan attached, escalated to 县公安局
    dibao: str  # MZ-001: accepted at T01 naming no window; the county urges T01's 综合窗口 on it
    scan: str  # the scan's digest
    joint: str  # ZR-001: a 联办件 owing 县农业农村局's and 县住建局's sub-tasks at the county
    fresh: str  # MZ-001: registered at T01, not accepted yet


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    async def made() -> Setup:
        county = await open_county(tmp_path, open_demo=False)
        try:
            window = county.service(T01)
            moved = await _register(county, "GA-001", "张秀英")
            await window.act(moved, ActionForm(kind="accept", actor="窗口 王芳", errand_kind="上报件", window=ZONGHE))
            scan = ActionForm(kind="attach", actor="窗口 王芳", name="身份证.jpg", mime="image/jpeg")
            await window.attach(moved, scan, SCAN)
            await window.act(moved, ActionForm(kind="escalate", actor="窗口 王芳", department=GONGAN))
            dibao = await _register(county, "MZ-001", "周大娘")
            await window.act(dibao, ActionForm(kind="accept", actor="窗口", errand_kind="承诺件"))
            fresh = await _register(county, "MZ-001", "孙二")
            joint = await _register(county, "ZR-001", "刘建房")
            accept = ActionForm(kind="accept", actor="窗口", errand_kind="联办件", co_departments=[NONGYE, ZHUJIAN])
            await window.act(joint, accept)
            for _ in range(2):
                await sync_once(county.stores[T01], LocalTransport(SyncServer(county.stores[C])))
            return Setup(county, moved, dibao, hashlib.sha256(SCAN).hexdigest(), joint, fresh)
        finally:
            await county.close()

    return asyncio.run(made())


@dataclass
class Desk:
    config: Path
    client: Client
    tokens: dict[str, str]

    def get(self, who: str, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=bearer(self.tokens[who]))

    def reveal(self, who: str, errand: str) -> Any:
        return self.get(who, f"/api/errands/{errand}", reveal="true")


def desk(setup: Setup, node: str, staff: dict[str, tuple[str, str, str]]) -> Iterator[Desk]:
    config = setup.county.cluster.nodes[node].config
    for name, (role, department, window) in staff.items():
        assert accounts_cmd.run_add(str(config), name, role, PASSWORD, department=department, window=window) == 0
    tokens = {name: token(config, name) for name in staff}
    with TestClient[Litestar](create_app(setup.county.settings[node])) as client:
        yield Desk(config, client, tokens)


@pytest.fixture
def county_desk(setup: Setup) -> Iterator[Desk]:
    yield from desk(setup, C, COUNTY_STAFF)


@pytest.fixture
def town_desk(setup: Setup) -> Iterator[Desk]:
    yield from desk(setup, T01, TOWN_STAFF)


def applicant(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    register = next(h for h in r.json()["history"] if h["kind"] == "register")
    found: dict[str, Any] = register["applicant"]
    return found


def shown_in_full(r: Any) -> None:
    assert (applicant(r)["id_number"], applicant(r)["phone"]) == (FULL_ID, FULL_PHONE)


def refused_as(r: Any, code: str, errand: str, mine: str, theirs: str) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"] == "forbidden" and body["error_code"] == code, body
    assert (body["kind"], body["errand"]) == ("reveal", errand)
    assert body["params"] == {"mine": mine, "theirs": theirs}
    assert body["message_zh"] != body["message"]  # in Chinese, and in English
    assert "完整证件号码" in body["message_zh"] and "full ID number" in body["message"]
    assert FULL_ID not in r.text and FULL_PHONE not in r.text


def masked_still(d: Desk, who: str, errand: str) -> None:
    seen = applicant(d.get(who, f"/api/errands/{errand}"))
    assert (seen["id_number"], seen["phone"]) == (MASKED_ID, MASKED_PHONE)


def denied_rows(d: Desk, who: str, errand: str, what: str) -> list[ev.AccessDenied]:
    return [
        e
        for e in events(d.config, event="denied", errand=errand)
        if isinstance(e, ev.AccessDenied) and e.account == who and e.what == what
    ]


def reads(d: Desk, who: str, errand: str, what: str) -> int:
    return sum(
        1
        for e in events(d.config, event="read")
        if isinstance(e, ev.PersonalDataRead) and e.account == who and e.what == what and e.errand == errand
    )


# -- the county -------------------------------------------------------------------------------------------


def test_at_the_county_another_departments_approver_sees_no_full_numbers(setup: Setup, county_desk: Desk) -> None:
    errand = setup.moved
    refused_as(county_desk.reveal("赵敏", errand), "other_department_errand", errand, MINZHENG, GONGAN)
    assert len(denied_rows(county_desk, "赵敏", errand, "reveal")) == 1  # audited, with the reason
    assert "县公安局" in denied_rows(county_desk, "赵敏", errand, "reveal")[0].reason
    assert reads(county_desk, "赵敏", errand, "reveal") == 0
    masked_still(county_desk, "赵敏", errand)
    # The same refusal its steps meet on that errand: one rule.
    step = county_desk.client.post(
        f"/api/errands/{errand}/actions",
        json={"actor": "typed", "kind": "note", "text": "看看"},
        headers=bearer(county_desk.tokens["赵敏"]),
    )
    assert step.status_code == 403 and step.json()["error_code"] == "other_department_errand"

    # The county's window staff bound to a window: escalated here, it is the department's.
    refused_as(county_desk.reveal("吴窗", errand), "other_department_errand", errand, ZONGHE, GONGAN)
    masked_still(county_desk, "吴窗", errand)

    # Those on the path, and those bound to nothing, see it in full (each show audited as a read).
    for who in ("孙公", "孙审", "郑窗", "周明"):
        shown_in_full(county_desk.reveal(who, errand))
        assert reads(county_desk, who, errand, "reveal") == 1, who
    # The inspector: no show at all, audited.
    r = county_desk.reveal("钱纪", errand)
    assert r.status_code == 403 and FULL_ID not in r.text and r.json()["message_zh"].startswith("本岗位不能")
    assert len(denied_rows(county_desk, "钱纪", errand, "reveal")) == 1
    masked_still(county_desk, "钱纪", errand)


def test_the_county_screen_offers_and_refuses_the_show_by_place(setup: Setup, county_desk: Desk) -> None:
    errand, client = setup.moved, county_desk.client
    csrf = login(client, "赵敏")
    page = client.get(f"/errands/{errand}")
    assert page.status_code == 200 and MASKED_ID in page.text and 'id="reveal"' not in page.text
    refused = client.post(f"/errands/{errand}/reveal", data={"_csrf_token": csrf})
    assert refused.status_code == 403 and FULL_ID not in refused.text and MASKED_ID in refused.text
    text = refused.text
    assert "县公安局" in text and text.index("不能查看申请人的完整证件号码") < text.index("may not see the applicant")
    assert len(denied_rows(county_desk, "赵敏", errand, "reveal")) == 1

    client.cookies.clear()
    csrf = login(client, "孙公")
    page = client.get(f"/errands/{errand}")
    assert 'id="reveal"' in page.text
    shown = client.post(f"/errands/{errand}/reveal", data={"_csrf_token": csrf_of(page.text)})
    assert shown.status_code == 200 and FULL_ID in shown.text and FULL_PHONE in shown.text


# -- the township -----------------------------------------------------------------------------------------


def test_at_the_township_a_clerk_of_another_window_sees_no_full_numbers(setup: Setup, town_desk: Desk) -> None:
    moved, dibao = setup.moved, setup.dibao
    # GA-001 was accepted at 综合窗口: 社会救助窗口's clerk is refused, 综合窗口's and the director see it.
    refused_as(town_desk.reveal("李红", moved), "other_window_errand", moved, JIUZHU, ZONGHE)
    assert len(denied_rows(town_desk, "李红", moved, "reveal")) == 1
    masked_still(town_desk, "李红", moved)
    shown_in_full(town_desk.reveal("王芳", moved))  # escalated since: the window that accepted it answers for it
    shown_in_full(town_desk.reveal("陈主任", moved))
    # MZ-001, no window named here: its catalogue window's (社会救助窗口).
    refused_as(town_desk.reveal("王芳", dibao), "other_window_errand", dibao, ZONGHE, JIUZHU)
    shown_in_full(town_desk.reveal("李红", dibao))

    csrf = login(town_desk.client, "李红")
    page = town_desk.client.get(f"/errands/{moved}")
    assert page.status_code == 200 and 'id="reveal"' not in page.text
    assert f"/api/attachments/{setup.scan}" not in page.text and "身份证.jpg" in page.text  # named, not linked
    refused = town_desk.client.post(f"/errands/{moved}/reveal", data={"_csrf_token": csrf})
    assert refused.status_code == 403 and FULL_ID not in refused.text and "综合窗口" in refused.text


# -- attachments: the same right and path -----------------------------------------------------------------


def test_an_attachments_bytes_need_the_right_and_the_path(setup: Setup, town_desk: Desk) -> None:
    moved, url = setup.moved, f"/api/attachments/{setup.scan}"
    r = town_desk.get("钱纪", url)  # the inspector: no reveal right, no scan
    assert r.status_code == 403 and SCAN not in r.content and r.json()["message_zh"].startswith("本岗位")
    denied = [e for e in events(town_desk.config, event="denied") if isinstance(e, ev.AccessDenied)]
    assert [e.what for e in denied if e.account == "钱纪" and "/api/attachments/" in e.what]  # the guard's row
    r = town_desk.get("李红", url)  # another window
    assert r.status_code == 403 and SCAN not in r.content
    assert r.json()["error_code"] == "other_window_errand" and r.json()["message_zh"].startswith("该办件")
    assert len(denied_rows(town_desk, "李红", moved, "attachment")) == 1
    for who in ("王芳", "陈主任"):
        got = town_desk.get(who, url)
        assert got.status_code == 200 and got.content == SCAN, who
    login(town_desk.client, "王芳")
    page = town_desk.client.get(f"/errands/{moved}").text
    assert f'href="{url}"' in page


def test_at_the_county_the_scan_follows_the_department(setup: Setup, county_desk: Desk) -> None:
    url = f"/api/attachments/{setup.scan}"
    held = county_desk.get("孙审", url)
    if held.status_code == 404:
        pytest.skip("the scan's bytes did not travel up in two exchanges")
    assert held.status_code == 200 and held.content == SCAN
    assert county_desk.get("孙公", url).content == SCAN
    for who in ("赵敏", "吴窗", "钱纪"):
        r = county_desk.get(who, url)
        assert r.status_code == 403 and SCAN not in r.content, who
    assert len(denied_rows(county_desk, "赵敏", setup.moved, "attachment")) == 1


def test_a_joint_errands_co_department_sees_it_and_another_does_not(setup: Setup, county_desk: Desk) -> None:
    joint = setup.joint
    shown_in_full(county_desk.reveal("钱住", joint))  # its 联办 sub-task is on the errand
    shown_in_full(county_desk.reveal("孙审", joint))
    # 县民政局 is neither the approving department nor a co-department: the desk's own refusal.
    refused_as(county_desk.reveal("赵敏", joint), "other_department_matter", joint, MINZHENG, ZIRAN)
    masked_still(county_desk, "赵敏", joint)


def test_assigned_to_a_window_the_errand_is_that_windows_too(setup: Setup, town_desk: Desk) -> None:
    dibao = setup.dibao
    refused_as(town_desk.reveal("王芳", dibao), "other_window_errand", dibao, ZONGHE, JIUZHU)
    r = town_desk.client.post(
        f"/api/errands/{dibao}/actions",
        json={"actor": "typed", "kind": "assign", "window": ZONGHE, "handler": "王芳"},
        headers=bearer(town_desk.tokens["陈主任"]),
    )
    assert r.status_code == 201, r.text
    shown_in_full(town_desk.reveal("王芳", dibao))  # 承办 at 综合窗口 here
    # Named a window here now: no longer the catalogue window's by default.
    refused_as(town_desk.reveal("李红", dibao), "other_window_errand", dibao, JIUZHU, ZONGHE)


def test_the_countys_window_sees_no_township_errand_that_never_came_to_it(setup: Setup, county_desk: Desk) -> None:
    dibao = setup.dibao  # held at T01, never escalated: the county holds a copy
    refused_as(county_desk.reveal("冯窗", dibao), "errand_elsewhere", dibao, JIUZHU, T01)
    masked_still(county_desk, "冯窗", dibao)
    # The county's window staff bound to no window: not on the path of an errand that never came to the county
    # either (``roles.reached_desk``); the supervisor is.
    refused_as(county_desk.reveal("郑窗", dibao), "post_elsewhere", dibao, "窗口B岗", T01)
    shown_in_full(county_desk.reveal("周明", dibao))


def test_before_acceptance_any_window_of_the_centre_checks_the_errand_and_takes_it_at_her_own(
    setup: Setup, town_desk: Desk
) -> None:
    """Any window may accept an errand not yet accepted (one window taking every matter is usual), so she must
    see its scans and numbers first; the accept form names her window, so afterwards it stays hers (review)."""
    fresh = setup.fresh
    shown_in_full(town_desk.reveal("王芳", fresh))  # 综合窗口, though MZ-001's catalogue window is 社会救助窗口
    shown_in_full(town_desk.reveal("李红", fresh))
    login(town_desk.client, "王芳")
    page = town_desk.client.get(f"/errands/{fresh}")
    assert page.status_code == 200
    form = page.text[page.text.index('value="accept"') :]
    assert f'name="window" value="{ZONGHE}"' in form[: form.index("</form>")], "the accept form names her window"


def test_a_window_cannot_take_another_windows_errand_to_see_it(setup: Setup, town_desk: Desk) -> None:
    """承办 names a window on the errand's path, so a window's clerk who may not see an errand may not assign it to
    herself (or anyone): the API refuses it (403, audited, nothing written), the page does not offer it, and the
    numbers stay masked. The errand's own window assigns it on, as does the director (bound to no window)."""
    dibao = setup.dibao  # accepted at T01 naming no window: its catalogue window's (社会救助窗口)
    taken = {"actor": "typed", "kind": "assign", "window": ZONGHE, "handler": "王芳"}
    r = town_desk.client.post(f"/api/errands/{dibao}/actions", json=taken, headers=bearer(town_desk.tokens["王芳"]))
    assert r.status_code == 403, r.text
    body = r.json()
    assert (body["error_code"], body["kind"], body["errand"]) == ("other_window_assign", "assign", dibao), body
    assert body["params"] == {"mine": ZONGHE, "theirs": JIUZHU}
    assert "承办" in body["message_zh"] and "assign" in body["message"]
    audited = [e for e in events(town_desk.config, event="action_refused", errand=dibao) if e.account == "王芳"]
    assert [(e.kind, e.actor) for e in audited if isinstance(e, ev.ActionRefused)] == [("assign", "王芳")]
    assert not any(h["kind"] == "assign" for h in town_desk.get("陈主任", f"/api/errands/{dibao}").json()["history"])
    refused_as(town_desk.reveal("王芳", dibao), "other_window_errand", dibao, ZONGHE, JIUZHU)

    login(town_desk.client, "王芳")
    assert 'value="assign"' not in town_desk.client.get(f"/errands/{dibao}").text
    town_desk.client.cookies.clear()
    login(town_desk.client, "李红")
    assert 'value="assign"' in town_desk.client.get(f"/errands/{dibao}").text

    # Its own window hands it on (to 综合窗口 here), and then it is 综合窗口's too.
    handed = {**taken, "handler": "王芳"}
    r = town_desk.client.post(f"/api/errands/{dibao}/actions", json=handed, headers=bearer(town_desk.tokens["李红"]))
    assert r.status_code == 201, r.text
    shown_in_full(town_desk.reveal("王芳", dibao))


def test_an_assignment_judged_on_a_history_read_before_an_acceptance_is_not_let_through(
    setup: Setup, town_desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard reads the errand's history before the write. Read just before the director's acceptance (naming no
    window: the catalogue's 社会救助窗口 takes it) committed, it still says any window may take the errand; the
    write then finds the errand at a later version and refuses (changed_meanwhile, the desk reloads), instead of
    letting 综合窗口 assign it to herself and open the applicant in full."""
    fresh = setup.fresh
    accept = {"kind": "accept", "actor": "陈主任", "errand_kind": "承诺件"}
    r = town_desk.client.post(f"/api/errands/{fresh}/actions", json=accept, headers=bearer(town_desk.tokens["陈主任"]))
    assert r.status_code == 201, r.text
    refused_as(town_desk.reveal("王芳", fresh), "other_window_errand", fresh, ZONGHE, JIUZHU)

    read = Store.errand

    async def read_before_the_acceptance(store: Store, errand_id: str, **kw: Any) -> dict[str, Any] | None:
        row = await read(store, errand_id, **kw)
        if row is None or errand_id != fresh:
            return row
        before = [h for h in row["history"] if h["kind"] != "accept"]
        return {**row, "history": before, "version": int(row["version"]) - 1}

    monkeypatch.setattr(Store, "errand", read_before_the_acceptance)
    taken = {"actor": "typed", "kind": "assign", "window": ZONGHE, "handler": "王芳"}
    r = town_desk.client.post(f"/api/errands/{fresh}/actions", json=taken, headers=bearer(town_desk.tokens["王芳"]))
    monkeypatch.undo()
    assert r.status_code != 201 and r.json()["error_code"] == "changed_meanwhile", r.text
    assert not any(h["kind"] == "assign" for h in town_desk.get("陈主任", f"/api/errands/{fresh}").json()["history"])
    refused_as(town_desk.reveal("王芳", fresh), "other_window_errand", fresh, ZONGHE, JIUZHU)
