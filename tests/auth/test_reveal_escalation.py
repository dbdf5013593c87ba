"""A county department sees an applicant in full only once the errand has reached it, as its steps do.

Real stores, real sync over the in-process transport, the county's real app with logins on. T01 accepts a 低保
(MZ-001, approved by 县民政局) as 上报件 with an ID-card scan attached and holds it; the county holds a copy.
Before T01 escalates it, 县民政局's approver, the county's window and approver accounts bound to no place, and a
county window are refused the full numbers and the scan (403, Chinese first, an ``AccessDenied`` row) and see
no full number on the department's inbox and lists; the supervisor sees it. Once T01 escalates it to 县民政局
(``roles.reached_desk``: handed off to the county), the department's approver sees both. A 联办件 (ZR-001) whose
sub-task a county department answers at its own desk stays off the county windows' path. A village's errand
reaches its township's windows when the agent submits it (the director supervises it before); another
centre and another village never hold it (404).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sanji.auth import events as ev
from sanji.catalogue import default_catalogue
from sanji.cli import accounts_cmd
from sanji.config import load_settings
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import Store, open_database
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from sanji.tiers import create_app
from sanji.workcalendar import load_calendar
from tests.auth.auth_kit import PASSWORD, bearer, csrf_of, events, login, token
from tests.web.test_department_inbox import MINZHENG, County, open_county

C, T01 = "C", "T01"
ZHUJIAN, NONGYE = "县住建局", "县农业农村局"
ZONGHE = "综合窗口"
FULL_ID, MASKED_ID = "430621195007307791", "430621********7791"
FULL_PHONE = "13812345678"
SCAN = b"\xff\xd8\xff\xe0 a dibao applicant's ID card"

STAFF = {
    "赵敏": ("approver", MINZHENG, ""),  # the matter's department: only once escalated to it
    "钱住": ("approver", ZHUJIAN, ""),  # answers the 联办件's sub-task at the county
    "孙审": ("approver", "", ""),  # an approver for the whole hub
    "吴窗": ("window_a", "", ZONGHE),
    "郑窗": ("window_b", "", ""),  # the county's window staff bound to no window
    "周明": ("supervisor", "", ""),
}


@dataclass
class World:
    county: County
    dibao: str  # MZ-001 accepted at T01 as 上报件, a scan attached, held at T01
    joint: str  # ZR-001 accepted at T01 as 联办件, 县农业农村局's and 县住建局's sub-tasks answered at the county
    url: str  # the scan's bytes
    tokens: dict[str, str]


async def _exchange(county: County) -> None:
    for _ in range(3):  # actions, then the scan's bytes, then nothing new
        await sync_once(county.stores[T01], LocalTransport(SyncServer(county.stores[C])))


async def _reopened(county: County, nodes: tuple[str, ...] = (C, T01)) -> None:
    """The stores of ``nodes`` opened again on their databases (the apps have closed theirs)."""
    county.dbs = []
    for node in nodes:
        db = await open_database(county.settings[node].db_url)
        county.dbs.append(db)
        layout = county.cluster.layout
        county.stores[node] = Store(db, node_id=node, key=layout.keys[node], directory=layout.directory)
        await county.stores[node].start()
        county.contexts[node] = NodeContext(county.stores[node], load_calendar())


@pytest.fixture
def world(tmp_path: Path) -> World:
    async def made() -> tuple[County, str, str]:
        county = await open_county(tmp_path, open_demo=False)
        try:
            window = county.service(T01)
            entry = default_catalogue().get("MZ-001")
            assert entry is not None
            form = RegisterForm(
                matter="MZ-001",
                applicant_name="周大娘",
                applicant_id_number=FULL_ID,
                applicant_phone=FULL_PHONE,
                materials=[m.name for m in entry.materials if not m.optional],
                actor="窗口 王芳",
            )
            dibao = (await window.register(form)).errand
            await window.act(dibao, ActionForm(kind="accept", actor="窗口 王芳", errand_kind="上报件"))
            await window.attach(
                dibao, ActionForm(kind="attach", actor="窗口 王芳", name="身份证.jpg", mime="image/jpeg"), SCAN
            )
            joint_entry = default_catalogue().get("ZR-001")
            assert joint_entry is not None and joint_entry.joint_answers_at_departments
            form = RegisterForm(
                matter="ZR-001",
                applicant_name="刘建房",
                applicant_id_number=FULL_ID,
                applicant_phone=FULL_PHONE,
                materials=[m.name for m in joint_entry.materials if not m.optional],
                actor="窗口 王芳",
            )
            joint = (await window.register(form)).errand
            accept = ActionForm(kind="accept", actor="窗口", errand_kind="联办件", co_departments=[NONGYE, ZHUJIAN])
            await window.act(joint, accept)
            await _exchange(county)
        finally:
            await county.close()
        return county, dibao, joint

    county, dibao, joint = asyncio.run(made())
    config = county.cluster.nodes[C].config
    for name, (role, department, place) in STAFF.items():
        assert accounts_cmd.run_add(str(config), name, role, PASSWORD, department=department, window=place) == 0
    url = f"/api/attachments/{hashlib.sha256(SCAN).hexdigest()}"
    return World(county, dibao, joint, url, {name: token(config, name) for name in STAFF})


@dataclass
class Desk:
    world: World
    client: TestClient[Litestar]

    def get(self, who: str, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=bearer(self.world.tokens[who]))

    def reveal(self, who: str, errand: str) -> Any:
        return self.get(who, f"/api/errands/{errand}", reveal="true")

    def denied(self, who: str, errand: str, what: str) -> list[ev.AccessDenied]:
        config = self.world.county.cluster.nodes[C].config
        return [
            e
            for e in events(config, event="denied", errand=errand)
            if isinstance(e, ev.AccessDenied) and e.account == who and e.what == what
        ]


@contextmanager
def county_desk(world: World) -> Iterator[Desk]:
    with TestClient[Litestar](create_app(world.county.settings[C])) as client:
        yield Desk(world, client)


def full(r: Any) -> bool:
    assert r.status_code == 200, r.text
    applicant = next(h for h in r.json()["history"] if h["kind"] == "register")["applicant"]
    return (applicant["id_number"], applicant["phone"]) == (FULL_ID, FULL_PHONE)


def refused(r: Any, code: str, mine: str, theirs: str = T01) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert (body["error"], body["error_code"], body["kind"]) == ("forbidden", code, "reveal"), body
    assert body["params"] == {"mine": mine, "theirs": theirs}
    assert "完整证件号码" in body["message_zh"] and "full ID number" in body["message"]
    assert FULL_ID not in r.text and FULL_PHONE not in r.text and SCAN not in r.content


def test_a_department_sees_a_township_errand_in_full_only_once_escalated_to_it(world: World) -> None:
    dibao, url = world.dibao, world.url
    with county_desk(world) as desk:
        got = desk.get("周明", url)  # the supervisor: the scan is here, and the rules give it to supervision
        assert got.status_code == 200 and got.content == SCAN
        assert full(desk.reveal("周明", dibao))

        # 县民政局 approves 低保, but T01 has not escalated it: the department is not on its path yet.
        refused(desk.reveal("赵敏", dibao), "not_escalated_to_department", MINZHENG)
        assert desk.reveal("赵敏", dibao).json()["message_zh"].startswith("该办件由T01办理，尚未上报县民政局")
        assert len(desk.denied("赵敏", dibao, "reveal")) == 2  # each refusal audited, with the reason
        assert "escalated" in desk.denied("赵敏", dibao, "reveal")[0].reason
        refused(desk.get("赵敏", url), "not_escalated_to_department", MINZHENG)
        assert len(desk.denied("赵敏", dibao, "attachment")) == 1
        # The county's desk posts for the whole node, and a county window: the errand never came to the county.
        refused(desk.reveal("孙审", dibao), "post_elsewhere", "部门审批")
        refused(desk.get("郑窗", url), "post_elsewhere", "窗口B岗")
        refused(desk.reveal("吴窗", dibao), "errand_elsewhere", ZONGHE)

        # Masked everywhere the department looks: the errand page (no show offered, the scan not linked), the
        # inbox and the lists.
        lists = ("/inbox", "/api/inbox", "/subtasks", "/api/errands", "/api/worklist", "/", "/supervision")
        for path in (f"/errands/{dibao}", f"/print/{dibao}/receipt", *lists):
            r = desk.get("赵敏", path)
            assert r.status_code == 200, (path, r.text)
            assert FULL_ID not in r.text and FULL_PHONE not in r.text, path
        page = desk.get("赵敏", f"/errands/{dibao}").text
        assert MASKED_ID in page and 'id="reveal"' not in page and f'href="{url}"' not in page
        csrf = login(desk.client, "赵敏")
        shown = desk.client.post(f"/errands/{dibao}/reveal", data={"_csrf_token": csrf})
        assert shown.status_code == 403 and FULL_ID not in shown.text and MASKED_ID in shown.text
        assert shown.text.index("尚未上报县民政局") < shown.text.index("has not been escalated")

    async def escalate() -> None:
        await _reopened(world.county)
        try:
            form = ActionForm(kind="escalate", actor="窗口 王芳", department=MINZHENG)
            await ErrandService(world.county.stores[T01], world.county.contexts[T01]).act(dibao, form)
            await _exchange(world.county)
        finally:
            await world.county.close()

    asyncio.run(escalate())

    with county_desk(world) as desk:  # escalated to 县民政局, not yet signed for: on its way to the department
        assert full(desk.reveal("赵敏", dibao))
        got = desk.get("赵敏", url)
        assert got.status_code == 200 and got.content == SCAN
        assert full(desk.reveal("孙审", dibao))  # the county's desk now has it
        refused(desk.reveal("吴窗", dibao), "other_department_errand", ZONGHE, MINZHENG)
        login(desk.client, "赵敏")
        page = desk.client.get(f"/errands/{dibao}")
        assert 'id="reveal"' in page.text and f'href="{url}"' in page.text
        shown = desk.client.post(f"/errands/{dibao}/reveal", data={"_csrf_token": csrf_of(page.text)})
        assert shown.status_code == 200 and FULL_ID in shown.text and FULL_PHONE in shown.text
        reads = [
            e
            for e in events(world.county.cluster.nodes[C].config, event="read")
            if isinstance(e, ev.PersonalDataRead) and e.account == "赵敏" and e.errand == dibao
        ]
        assert [e.what for e in reads].count("reveal") == 2  # the API's show and the screen's, each audited


def test_a_sub_task_answered_at_the_county_brings_the_errand_to_no_county_window(world: World) -> None:
    joint = world.joint
    with county_desk(world) as desk:
        answer = desk.client.post(
            f"/api/errands/{joint}/actions",
            json={"actor": "typed", "kind": "subtask_done", "outcome": "agreed", "text": "同意"},
            headers=bearer(world.tokens["钱住"]),
        )
        assert answer.status_code == 201, answer.text
        assert full(desk.reveal("钱住", joint))  # its sub-task, answered at its own desk
        assert full(desk.reveal("孙审", joint))  # an approver for the whole hub answers any department's
        # The department's answer is beside the holder: T01 still holds it, no county window is on its path.
        refused(desk.reveal("吴窗", joint), "errand_elsewhere", ZONGHE)
        refused(desk.reveal("郑窗", joint), "post_elsewhere", "窗口B岗")
        refused(desk.reveal("赵敏", joint), "other_department_matter", MINZHENG, "县自然资源局")


# -- a township's desk and a village's errand, other villages and centres --------------------------------------

V01, T02, T02V01 = "T01V01", "T02", "T02V01"
TOWN_STAFF = {
    "陈窗": ("window_a", "", ""),  # T01's window staff bound to no window
    "王芳": ("window_a", "", ZONGHE),
    "陈主任": ("director", "", ""),
}


def test_a_villages_errand_reaches_the_townships_windows_when_submitted_and_no_other_node(tmp_path: Path) -> None:
    async def registered() -> tuple[County, str]:
        county = await open_county(tmp_path, open_demo=False)
        try:
            blob = await county.contexts[C].catalogue_blob()
            assert blob is not None
            await _open_villages(county, blob)
            entry = default_catalogue().get("MZ-001")
            assert entry is not None
            form = RegisterForm(
                matter="MZ-001",
                applicant_name="周大娘",
                applicant_id_number=FULL_ID,
                applicant_phone=FULL_PHONE,
                materials=[m.name for m in entry.materials if not m.optional],
                actor="代办员 李代办",
            )
            errand = (await county.service(V01).register(form)).errand
            await sync_once(county.stores[V01], LocalTransport(SyncServer(county.stores[T01])))
            return county, errand
        finally:
            await county.close()

    county, errand = asyncio.run(registered())
    staff = {T01: TOWN_STAFF, V01: {"李代办": ("village_agent", "", "")}}
    staff |= {T02: {"王窗": ("window_a", "", "")}, T02V01: {"赵代办": ("village_agent", "", "")}}
    tokens: dict[str, str] = {}
    for node, accounts in staff.items():
        config = county.cluster.nodes[node].config
        for name, (role, department, place) in accounts.items():
            assert accounts_cmd.run_add(str(config), name, role, PASSWORD, department=department, window=place) == 0
            tokens[name] = token(config, name)

    def reveal(node: str, who: str) -> Any:
        with TestClient[Litestar](create_app(county.settings[node])) as client:
            return client.get(f"/api/errands/{errand}", params={"reveal": "true"}, headers=bearer(tokens[who]))

    # Registered at the village, not yet submitted: the township holds a copy, its windows are not on the path.
    assert full(reveal(V01, "李代办"))
    refused(reveal(T01, "陈窗"), "post_elsewhere", "窗口A岗", V01)
    refused(reveal(T01, "王芳"), "errand_elsewhere", ZONGHE, V01)
    assert full(reveal(T01, "陈主任"))  # the centre's director supervises its villages' errands
    # Another centre and another village never hold it: nothing to show.
    assert reveal(T02, "王窗").status_code == 404
    assert reveal(T02V01, "赵代办").status_code == 404

    async def submitted() -> None:
        await _reopened(county, (T01, V01))
        try:
            await county.service(V01).act(errand, ActionForm(kind="submit", actor="代办员 李代办"))
            await sync_once(county.stores[V01], LocalTransport(SyncServer(county.stores[T01])))
        finally:
            await county.close()

    asyncio.run(submitted())
    # Handed to the township: any of its windows may take it, so checks it first; the village agent keeps it
    # (it brings the result back and delivers it).
    assert full(reveal(T01, "陈窗")) and full(reveal(T01, "王芳"))
    assert full(reveal(V01, "李代办"))
    assert reveal(T02V01, "赵代办").status_code == 404


async def _open_villages(county: County, blob: bytes) -> None:
    for village in (V01, T02V01):
        settings = county.settings[village] = load_settings(county.cluster.nodes[village].config)
        db = await open_database(settings.db_url)
        county.dbs.append(db)
        layout = county.cluster.layout
        county.stores[village] = Store(db, node_id=village, key=layout.keys[village], directory=layout.directory)
        await county.stores[village].start()
        county.contexts[village] = NodeContext(county.stores[village], load_calendar())
        assert await county.contexts[village].offer(blob)
