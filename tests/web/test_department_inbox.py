"""部门收件箱 at the county: the 上报件 escalated to each department, on real stores and the county's real app.

Two townships accept an errand each and escalate it by their own sync (``sync_once`` over the in-process
transport): 低保 (MZ-001) to 县民政局 from T01, 养老保险补缴 (RS-002) to 县人社局 from T02. Each shows in
its own department's inbox and not in the other's, first as "to sign for", then received; a decided errand
leaves it; a deadline passed shows red. With logins on, a post without the errands capability is refused
(the forbidden page on the screen, JSON on the API) and a visitor is sent to log in.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sanji.catalogue import default_catalogue
from sanji.cli import accounts_cmd
from sanji.config import NodeSettings, load_settings
from sanji.context import NodeContext
from sanji.demo.cluster import Cluster
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import Store, open_database
from sanji.store.engine import Database
from sanji.store.inbox import department_inbox, inbox_departments
from sanji.store.subtasks import open_subtasks
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from sanji.tiers import create_app
from sanji.workcalendar import load_calendar
from tests.auth.auth_kit import PASSWORD, login

C, T01, T02 = "C", "T01", "T02"
MINZHENG, RENSHE = "县民政局", "县人社局"
DAY_MS = 86_400_000


@dataclass
class County:
    cluster: Cluster
    settings: dict[str, NodeSettings]
    stores: dict[str, Store]
    contexts: dict[str, NodeContext]
    dbs: list[Database]

    def service(self, node: str) -> ErrandService:
        return ErrandService(self.stores[node], self.contexts[node])

    async def escalate(self, town: str, matter: str, department: str, applicant: str) -> str:
        """Registered in person at ``town``'s window, accepted as 上报件 and escalated to ``department``."""
        window = self.service(town)
        entry = default_catalogue().get(matter)
        assert entry is not None
        materials = [m.name for m in entry.materials if not m.optional]
        errand = (
            await window.register(
                RegisterForm(matter=matter, applicant_name=applicant, materials=materials, actor="窗口 王芳")
            )
        ).errand
        await window.act(errand, ActionForm(kind="accept", actor="窗口 王芳", errand_kind="上报件"))
        await window.act(errand, ActionForm(kind="escalate", actor="窗口 王芳", department=department))
        await sync_once(self.stores[town], LocalTransport(SyncServer(self.stores[C])))
        return errand

    async def close(self) -> None:
        for db in self.dbs:
            await db.dispose()


async def open_county(tmp_path: Path, *, open_demo: bool = True) -> County:
    cluster = Cluster.prepare(tmp_path / "c", towns=2, villages_per_town=1, open_demo=open_demo)
    nodes = (C, T01, T02)
    settings = {n: load_settings(cluster.nodes[n].config) for n in nodes}
    dbs, stores, contexts = [], {}, {}
    calendar = load_calendar()
    for node in nodes:
        db = await open_database(settings[node].db_url)
        dbs.append(db)
        stores[node] = Store(db, node_id=node, key=cluster.layout.keys[node], directory=cluster.layout.directory)
        await stores[node].start()
        contexts[node] = NodeContext(stores[node], calendar)
    await contexts[C].publish(default_catalogue())
    blob = await contexts[C].catalogue_blob()
    assert blob is not None
    for town in (T01, T02):
        assert await contexts[town].offer(blob)
    return County(cluster, settings, stores, contexts, dbs)


@pytest.fixture
async def county(tmp_path: Path) -> AsyncIterator[County]:
    made = await open_county(tmp_path)
    try:
        yield made
    finally:
        await made.close()


def receipts(items: list[dict[str, object]]) -> set[object]:
    return {item["errand"] for item in items}


async def test_each_department_sees_what_was_escalated_to_it_until_it_decides(county: County) -> None:
    store, context = county.stores[C], county.contexts[C]
    dibao = await county.escalate(T01, "MZ-001", MINZHENG, "张秀英")
    pension = await county.escalate(T02, "RS-002", RENSHE, "李桂兰")
    today = context.today()

    # On its way: in its department's inbox as "to sign for", not in the other's.
    rows, counts = await department_inbox(store.db, C, today=today, department=MINZHENG)
    assert [r["id"] for r in rows] == [dibao] and counts.total == counts.to_receive == 1
    assert rows[0]["received_at"] == 0
    assert await inbox_departments(store.db, C) == sorted([MINZHENG, RENSHE])
    assert (await department_inbox(store.db, C, today=today))[1].total == 2  # every department's

    for errand in (dibao, pension):
        await county.service(C).act(errand, ActionForm(kind="receive", actor="审批员 赵敏", role="部门审批"))
    rows, counts = await department_inbox(store.db, C, today=today, department=RENSHE)
    assert [r["id"] for r in rows] == [pension] and counts.to_receive == 0 and rows[0]["received_at"] > 0
    assert counts.overdue == 0 and rows[0]["stage_due"], "the department's stage clock starts when it signs"
    due = today.fromisoformat(rows[0]["due"])
    assert (await department_inbox(store.db, C, today=due, department=RENSHE))[1].overdue == 0  # due today
    late = (await department_inbox(store.db, C, today=due + timedelta(days=1), department=RENSHE))[1]
    assert late.overdue == 1 and late.stage_overdue == 1
    assert (await department_inbox(store.db, C, today=today + timedelta(days=120)))[1].overdue == 2

    # Bounded: a page, and the count of the rest.
    page, counts = await department_inbox(store.db, C, today=today, limit=1)
    assert len(page) == 1 and counts.total == 2

    await county.service(C).act(
        dibao,
        ActionForm(kind="decide", actor="审批员 赵敏", role="部门审批", outcome="approved", document="民〔2026〕1号"),
    )
    assert (await department_inbox(store.db, C, today=today, department=MINZHENG))[1].total == 0
    assert [r["id"] for r in (await department_inbox(store.db, C, today=today))[0]] == [pension]
    assert await inbox_departments(store.db, C) == [RENSHE]


async def test_the_inbox_screen_and_its_json_twin(county: County) -> None:
    dibao = await county.escalate(T01, "MZ-001", MINZHENG, "张秀英")
    pension = await county.escalate(T02, "RS-002", RENSHE, "李桂兰")
    await county.service(C).act(dibao, ActionForm(kind="receive", actor="审批员 赵敏", role="部门审批"))
    receipt = {e: (await county.stores[C].errand(e) or {})["receipt"] for e in (dibao, pension)}
    await county.close()

    with TestClient[Litestar](create_app(county.settings[C])) as client:
        home = client.get("/").text
        assert 'href="/inbox"' in home and "部门收件箱" in home

        body = client.get("/api/inbox", params={"department": MINZHENG}).json()
        assert receipts(body["items"]) == {dibao} and body["counts"]["total"] == 1
        item = body["items"][0]
        assert item["applicant_name"] == "张秀英" and item["township"] == T01 and item["department"] == MINZHENG
        assert item["received_at"] > 0 and not item["to_receive"]
        assert item["deadline"]["level"] in ("normal", "yellow") and item["stage_deadline"]["due"]
        assert "applicant_id_number" not in item and "state" not in item  # names only, as every list
        assert set(body["departments"]) >= {MINZHENG, RENSHE}
        other = client.get("/api/inbox", params={"department": RENSHE}).json()
        assert receipts(other["items"]) == {pension} and other["items"][0]["to_receive"]
        assert client.get("/api/inbox", params={"limit": 0}).status_code == 400

        page = client.get("/inbox", params={"department": MINZHENG})
        assert page.status_code == 200
        text = page.text
        assert receipt[dibao] in text and receipt[pension] not in text and "张秀英" in text
        assert text.index("部门收件箱") < text.index("Department inbox")  # Chinese first
        assert 'href="/subtasks?department=' in text and "联办子任务待答复 0 件" in text
        assert "红灯" not in text.split('id="inbox"')[1]
        # 分派承办 at the department names the department, not the township window it came up from
        field = re.search(r'<input[^>]*id="assign-window"[^>]*>', client.get(f"/errands/{dibao}").text)
        assert field is not None and f'value="{MINZHENG}"' in field.group(0), field

        # Months later on the county's clock, both of the department's deadlines have passed.
        client.app.state.runtime.get_context().clock_offset_ms = 120 * DAY_MS
        late = client.get("/inbox", params={"department": MINZHENG}).text
        table = late.split('id="inbox"')[1]
        assert "红灯 超期" in table and "超过办结期限 1 件" in late
        assert client.get("/api/inbox").json()["counts"]["overdue"] == 2

        decided = client.post(
            f"/api/errands/{dibao}/actions",
            json={
                "kind": "decide",
                "actor": "审批员 赵敏",
                "role": "部门审批",
                "outcome": "approved",
                "document": "1号",
            },
        )
        assert decided.status_code in (200, 201), decided.text
        assert client.get("/api/inbox", params={"department": MINZHENG}).json()["items"] == []
        assert receipt[dibao] not in client.get("/inbox").text


def test_with_logins_only_posts_that_see_errands_open_the_inbox(tmp_path: Path) -> None:
    async def escalated() -> tuple[County, str]:
        county = await open_county(tmp_path, open_demo=False)
        try:
            return county, await county.escalate(T01, "MZ-001", MINZHENG, "张秀英")
        finally:
            await county.close()

    county, dibao = asyncio.run(escalated())
    config = str(county.cluster.nodes[C].config)
    for name, role in (("赵敏", "approver"), ("周管理", "admin"), ("钱纪检", "inspector")):
        assert accounts_cmd.run_add(config, name, role, PASSWORD) == 0
    with TestClient[Litestar](create_app(county.settings[C])) as client:
        visitor = client.get("/inbox", follow_redirects=False)
        assert visitor.status_code == 303 and visitor.headers["location"].startswith("/login")
        assert client.get("/api/inbox").status_code == 401
        login(client, "周管理")  # the administrator holds no personal data
        refused = client.get("/inbox")
        assert refused.status_code == 403 and "text/html" in refused.headers["content-type"]
        assert "您的岗位无权进行此操作" in refused.text
        assert client.get("/api/inbox").status_code == 403
        client.get("/logout")
        for name in ("赵敏", "钱纪检"):
            client.cookies.clear()
            login(client, name)
            assert dibao in client.get("/inbox").text


async def test_the_subtasks_list_reads_a_bounded_number_of_joint_errands(county: County) -> None:
    """/subtasks reads at most ``READ_AT_MOST`` live 联办件, the oldest first, and says when more were left."""
    window = county.service(T01)
    entry = default_catalogue().get("MZ-007")  # 医疗救助: 县医保局 joins
    assert entry is not None and entry.joint_departments == ("县医保局",)
    materials = [m.name for m in entry.materials if not m.optional]
    errands = []
    for name in ("甲", "乙"):
        form = RegisterForm(matter="MZ-007", applicant_name=f"村民{name}", materials=materials, actor="窗口 王芳")
        errand = (await window.register(form)).errand
        accept = ActionForm(kind="accept", actor="窗口 王芳", errand_kind="联办件", co_departments=["县医保局"])
        await window.act(errand, accept)
        errands.append(errand)
    await sync_once(county.stores[T01], LocalTransport(SyncServer(county.stores[C])))
    first, more = await open_subtasks(county.stores[C].db, read_at_most=1)
    assert [s.errand for s in first] == errands[:1] and more
    both, more = await open_subtasks(county.stores[C].db, read_at_most=2)
    assert [s.errand for s in both] == errands and not more
