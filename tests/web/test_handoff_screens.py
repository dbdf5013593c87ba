"""A village agent's 已报送 errand says where the submission is: 待发送 while it waits on the laptop, 已送达乡镇，待接收
once the township holds it and has not signed for it — on the errand page, in 全部办件, on the receipt and in
``GET /api/errands/{id}`` (``handoff``). Real stores, the township's real sync server, the village's real app."""

from __future__ import annotations

import re
from pathlib import Path

from litestar import Litestar
from litestar.testing import TestClient

from sanji.catalogue import default_catalogue
from sanji.config import load_settings
from sanji.context import NodeContext
from sanji.demo.cluster import Cluster
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import Store, open_database
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from sanji.tiers import create_app
from sanji.workcalendar import load_calendar
from tests.materials_kit import mains

C, T01, V = "C", "T01", "T01V01"


def shown(client: TestClient[Litestar], errand: str) -> tuple[str, str, str, str]:
    """The errand page's stage cell, the 全部办件 row's stage cell, the receipt's note and the API's ``handoff``."""
    page = client.get(f"/errands/{errand}").text
    stage = re.search(r"<th>状态 <span[^>]*>Stage</span></th><td>(.*?)</td></tr>", page, re.S)
    home = client.get("/").text
    row = re.search(r'<table class="stack" id="all-errands">.*?data-label="状态 Stage">(.*?)</td>', home, re.S)
    receipt = client.get(f"/print/{errand}/receipt").text
    note = re.search(r'id="handoff"[^>]*>(.*?)</div>', receipt, re.S)
    api = client.get(f"/api/errands/{errand}").json()["handoff"]
    assert stage and row and note, (stage, row, note)
    return stage[1], row[1], note[1], api


async def test_the_agent_sees_whether_the_township_has_her_submission(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    settings = {n: load_settings(cluster.nodes[n].config) for n in (T01, V)}
    calendar = load_calendar()

    async def opened() -> tuple[dict[str, Store], list[object]]:
        stores, dbs = {}, []
        for node in (T01, V):
            db = await open_database(settings[node].db_url)
            dbs.append(db)
            stores[node] = Store(db, node_id=node, key=cluster.layout.keys[node], directory=cluster.layout.directory)
            await stores[node].start()
        return stores, dbs

    stores, dbs = await opened()
    context = NodeContext(stores[V], calendar)
    context.catalogue = default_catalogue()
    service = ErrandService(stores[V], context)
    agent = "代办员 李建国"
    errand = (
        await service.register(
            RegisterForm(matter="MZ-001", applicant_name="张秀英", materials=mains("MZ-001"), actor=agent)
        )
    ).errand
    await service.act(errand, ActionForm(kind="submit", actor=agent))
    for db in dbs:
        await db.dispose()  # type: ignore[attr-defined]

    with TestClient[Litestar](create_app(settings[V])) as village:  # its township is not running: link down
        stage, row, note, api = shown(village, errand)
    assert "已报送 submitted" in stage and "待发送（网络恢复后自动报送）" in stage and 'data-handoff="queued"' in stage
    assert "not sent yet: it goes up by itself when the link is back" in stage
    assert "已送达" not in stage
    assert 'data-handoff="queued"' in row and "待发送" in row
    assert "已报送：待发送（网络恢复后自动报送）" in note
    assert api == "queued"

    stores, dbs = await opened()
    await sync_once(stores[V], LocalTransport(SyncServer(stores[T01])))
    assert (await stores[T01].errand(errand) or {})["stage"] == "submitted"  # the township holds it, unsigned
    for db in dbs:
        await db.dispose()  # type: ignore[attr-defined]

    with TestClient[Litestar](create_app(settings[V])) as village:
        stage, row, note, api = shown(village, errand)
    assert "已送达乡镇，待接收" in stage and "delivered to the township, not received there yet" in stage
    assert "待发送" not in stage and 'data-handoff="delivered"' in stage
    assert 'data-handoff="delivered"' in row and "已送达" in row
    assert "已报送：已送达乡镇，待接收" in note
    assert api == "delivered"


async def test_a_receipt_reprinted_at_the_township_says_no_submission(tmp_path: Path) -> None:
    """The receipt is of the registration: reprinted at the township while the errand is escalated (已上报), its
    banner would read 已报送 of the township's own hand-off to the county; it shows no hand-off banner there, while
    the errand page says where the escalation stands."""
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    settings = {n: load_settings(cluster.nodes[n].config) for n in (T01, V)}
    stores, dbs = {}, []
    for node in (T01, V):
        db = await open_database(settings[node].db_url)
        dbs.append(db)
        stores[node] = Store(db, node_id=node, key=cluster.layout.keys[node], directory=cluster.layout.directory)
        await stores[node].start()
    calendar = load_calendar()
    services = {}
    for node in (T01, V):
        context = NodeContext(stores[node], calendar)
        context.catalogue = default_catalogue()
        services[node] = ErrandService(stores[node], context)
    form = RegisterForm(matter="MZ-001", applicant_name="张秀英", materials=mains("MZ-001"), actor="代办员 李建国")
    errand = (await services[V].register(form)).errand
    await services[V].act(errand, ActionForm(kind="submit", actor="代办员 李建国"))
    await sync_once(stores[V], LocalTransport(SyncServer(stores[T01])))
    steps: list[tuple[str, dict[str, str]]] = [
        ("receive", {}),
        ("accept", {"errand_kind": "上报件"}),
        ("escalate", {"department": "县民政局"}),
    ]
    for kind, fields in steps:
        await services[T01].act(errand, ActionForm(kind=kind, actor="窗口 王晓红", **fields))  # type: ignore[arg-type]
    assert (await stores[T01].errand(errand) or {})["stage"] == "escalated"
    for db in dbs:
        await db.dispose()  # type: ignore[attr-defined]

    with TestClient[Litestar](create_app(settings[T01])) as town:
        receipt = town.get(f"/print/{errand}/receipt")
        page = town.get(f"/errands/{errand}").text
    assert receipt.status_code == 200
    assert 'id="handoff"' not in receipt.text and "已报送：" not in receipt.text
    assert 'data-handoff="queued"' in page  # the escalation is still on the township's side of the link
