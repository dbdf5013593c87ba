"""The city's desk: the shared plumbing to read and supervise, nothing to register, publish or answer.

Real apps from the configs ``sanji demo --city`` prepares: the city hub above two counties, and a
county that now has a parent serving its own desk as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from protocol.lookup import lookup_code
from sanji.cli import accounts_cmd
from sanji.config import load_settings
from sanji.context import NodeContext
from sanji.demo.cluster import Cluster
from sanji.forms import ActionForm, RegisterForm
from sanji.regional.desk import DESKS
from sanji.service import ErrandService
from sanji.store import Store, open_database
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from sanji.tiers import create_app, desk
from sanji.web.desk_api import department_of
from tests.auth.auth_kit import PASSWORD, login
from tests.conftest import CALENDAR, CATALOGUE

Client = TestClient[Litestar]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Client]]:
    cluster = Cluster.prepare(
        tmp_path_factory.mktemp("city") / "c", counties=2, towns=1, villages_per_town=1, open_demo=True
    )
    clients = {n: TestClient(create_app(load_settings(cluster.nodes[n].config))) for n in ("S", "C1")}
    for client in clients.values():
        client.__enter__()
    try:
        yield clients
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)


@pytest.mark.parametrize("path", ["/", "/lookup", "/supervision", "/office/ledger", "/api/office/ledger", "/enroll"])
def test_the_city_reads_its_counties(nodes: dict[str, Client], path: str) -> None:
    response = nodes["S"].get(path)
    assert response.status_code == 200, response.text[:500]


@pytest.mark.parametrize("path", ["/register", "/subtasks", "/inbox", "/office/assessment/", "/office/rules/"])
def test_the_city_serves_no_desk_that_writes_or_publishes(nodes: dict[str, Client], path: str) -> None:
    assert nodes["S"].get(path, follow_redirects=False).status_code == 404


def test_the_citys_home_says_it_reads_and_holds_no_catalogue(nodes: dict[str, Client]) -> None:
    """Read as a city supervisor would: no county's missing-catalogue warning, no empty 待办 of a desk that
    never acts, and the counties' versions not marked as differing from a catalogue the city never holds."""
    home = nodes["S"].get("/").text
    assert 'id="reads-only"' in home and "各县发布" in home
    assert "尚未收到县级事项目录" not in home and "Work waiting here" not in home
    assert "版本不一致" not in home and "尚未收到 not received yet" not in home
    public = nodes["S"].get("/public").text
    assert 'id="no-catalogue-here"' in public and "本站尚未收到县级事项目录" not in public
    ledger = nodes["S"].get("/office/ledger").text
    assert 'id="above-counties"' in ledger

    county = nodes["C1"].get("/").text  # a county keeps its own words and its 待办
    assert (
        'id="reads-only"' not in county
        and "Work waiting here" in county
        and 'id="above-counties"' not in (nodes["C1"].get("/office/ledger").text)
    )


def test_the_citys_administrator_is_told_it_holds_no_catalogue_or_calendar(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", counties=2, towns=1, villages_per_town=1, open_demo=True)
    assert accounts_cmd.run_add(str(cluster.nodes["S"].config), "市管理员", "admin", PASSWORD) == 0
    with TestClient(create_app(load_settings(cluster.nodes["S"].config))) as city:
        login(city, "市管理员")
        catalogue = city.get("/admin/catalogue")
        assert catalogue.status_code == 200 and "不持有事项目录" in catalogue.text
        assert 'action="/admin/catalogue' not in catalogue.text  # nothing to upload or publish here
        calendar = city.get("/admin/calendar?year=2026")
        assert 'id="above-counties"' in calendar.text and 'action="/admin/calendar/' not in calendar.text


def test_a_county_below_the_city_keeps_its_desk(nodes: dict[str, Client]) -> None:
    assert nodes["C1"].get("/").status_code == 200
    assert nodes["C1"].get("/subtasks").status_code == 200
    assert nodes["S"].get("/api/node").json()["role"] == "city"


def test_one_desk_serves_every_level_above_the_county() -> None:
    assert desk("city") is DESKS["city"] and desk("province") is DESKS["province"]
    assert DESKS["city"].handlers == DESKS["province"].handlers


async def test_the_citys_errand_page_shows_a_countys_errand_and_offers_no_step(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", counties=2, towns=1, villages_per_town=1, open_demo=True)
    path = ("S", "C1", "C1T01", "C1T01V01")
    settings = {n: load_settings(cluster.nodes[n].config) for n in path}
    dbs = [await open_database(settings[n].db_url) for n in path]
    try:
        stores = {}
        for node, db in zip(path, dbs, strict=True):
            stores[node] = Store(db, node_id=node, key=cluster.layout.keys[node], directory=cluster.layout.directory)
            await stores[node].start()
        context = NodeContext(stores["C1T01V01"], CALENDAR)
        context.catalogue = CATALOGUE
        service = ErrandService(stores["C1T01V01"], context)
        errand = (await service.register(RegisterForm(matter="MZ-001", applicant_name="村民", actor="李代办"))).errand
        await service.act(errand, ActionForm(kind="submit", actor="李代办"))
        for child in ("C1T01V01", "C1T01", "C1"):  # the same driver a township uses, one level up at the end
            parent = cluster.layout.directory.parent(child)
            assert parent is not None
            await sync_once(stores[child], LocalTransport(SyncServer(stores[parent])))
        assert await stores["S"].errand(errand) is not None
    finally:
        for db in dbs:
            await db.dispose()
    with TestClient(create_app(settings["S"])) as city:
        page = city.get(f"/errands/{errand}")
        assert page.status_code == 200 and "村民" in page.text
        # Named by the entry it was registered under (the city holds no catalogue), with no guide link that would 404.
        name = CATALOGUE.get("MZ-001")
        assert name is not None and name.name in page.text and "/print/guide/" not in page.text
        assert all(row["matter_name"] == name.name for row in city.get("/api/office/ledger").json()["items"])
        forms = re.findall(r'<form[^>]*action="([^"]*)"', page.text)
        assert all(action.endswith("/reveal") for action in forms), forms  # no step: only 查看完整号码
        # A complaint at the city could never be filed (it writes nothing): the page says where to complain,
        # and a posted form is refused with that message, not a server error; no link leads there.
        form = city.get("/complain")
        assert 'id="above-counties"' in form.text and 'action="/complain"' not in form.text
        receipt = city.get(f"/api/errands/{errand}").json()["receipt"]
        body = {"receipt": receipt, "code": lookup_code(errand), "text": "窗口态度差", "kind": "投诉"}
        sent = city.post("/complain", data=body)
        assert sent.status_code == 409 and "不受理投诉建议" in sent.text, sent.text[:300]
        assert not [h for h in city.get(f"/api/errands/{errand}").json()["history"] if h["kind"] == "complain"]
        assert 'href="/complain' not in city.get(f"/lookup?receipt={receipt}&code={lookup_code(errand)}").text
        refused = city.post(f"/api/errands/{errand}/actions", json={"kind": "note", "actor": "市督查", "text": "x"})
        assert refused.status_code == 409 and refused.json()["error_code"] == "regional_reads_only", refused.text
    # 电子监察 keeps each county's 县民政局 apart: the city names the county first, a county does not.
    tree = cluster.layout.directory
    assert department_of(tree, "S", "C2T01V01", "县民政局") == "C2 县民政局"
    assert department_of(tree, "C2", "C2T01V01", "县民政局") == "县民政局"
    assert department_of(tree, "S", "C2T01V01", "") == ""


async def test_a_node_id_used_twice_is_said_at_the_top_of_the_city_and_county_desks(tmp_path: Path) -> None:
    """``tests/trust/test_tree_ids.py`` makes the conflict with real certificates; here the desks show it."""
    cluster = Cluster.prepare(tmp_path / "c", counties=2, towns=1, villages_per_town=1, open_demo=True)
    settings = {n: load_settings(cluster.nodes[n].config) for n in ("S", "C2")}
    # What TrustBook logs when it refuses a certificate placing an id it holds elsewhere.
    conflicts = {
        "S": {"issuer": "C2", "parent": "C2", "held_parent": "C1", "from": "C2"},
        "C2": {"issuer": "C1", "parent": "C1", "held_parent": "C2", "from": "S"},
    }
    for node, detail in conflicts.items():
        db = await open_database(settings[node].db_url)
        try:
            store = Store(db, node_id=node, key=cluster.layout.keys[node], directory=cluster.layout.directory)
            await store.start()
            await store.log_event("place_conflict", "C1T01", {**detail, "message": "..."})
        finally:
            await db.dispose()
    with TestClient(create_app(settings["S"])) as city:
        page = city.get("/").text
        warning = page[page.index('id="id-conflicts"') :][:2000]
        assert warning.index("节点编号冲突") < warning.index("Node id used twice")  # Chinese first
        assert "C2 所在的县为它另起编号" in warning and "should give it a new id" in warning
    with TestClient(create_app(settings["C2"])) as county:
        page = county.get("/").text
        warning = page[page.index('id="id-conflicts"') :][:2000]
        assert "本辖区这个 C1T01 的办件不会上报" in warning and "will not reach it" in warning


async def test_the_citys_statistics_are_by_county_unless_asked_otherwise(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", counties=2, towns=1, villages_per_town=1, open_demo=True)
    tree = cluster.layout.directory
    nodes = ("S", "C1", "C1T01", "C1T01V01", "C2", "C2T01", "C2T01V01")
    settings = {n: load_settings(cluster.nodes[n].config) for n in nodes}
    dbs = [await open_database(settings[n].db_url) for n in nodes]
    try:
        stores = {}
        for node, db in zip(nodes, dbs, strict=True):
            stores[node] = Store(db, node_id=node, key=cluster.layout.keys[node], directory=tree)
            await stores[node].start()
        for village, count in (("C1T01V01", 2), ("C2T01V01", 1)):
            context = NodeContext(stores[village], CALENDAR)
            context.catalogue = CATALOGUE
            service = ErrandService(stores[village], context)
            for _ in range(count):
                form = RegisterForm(matter="MZ-001", applicant_name="村民", actor="李代办")
                errand = (await service.register(form)).errand
                await service.act(errand, ActionForm(kind="submit", actor="李代办"))
            town = tree.parent(village)
            assert town is not None
            for child in (village, town, tree.parent(town)):
                assert child is not None
                parent = tree.parent(child)
                assert parent is not None
                await sync_once(stores[child], LocalTransport(SyncServer(stores[parent])))
    finally:
        for db in dbs:
            await db.dispose()
    with TestClient(create_app(settings["S"])) as city:
        page = city.get("/office/ledger")
        assert page.status_code == 200, page.text[:300]
        assert re.search(r'<option value="county" selected>县 County</option>', page.text)  # Chinese, then English
        stats = page.text[page.text.index('id="stats"') : page.text.index('id="ledger"')]
        # each county by its name, its id beside it
        label = r'<td data-label="[^"]*">'
        group = label + r'[^<]*县[^<]* <span class="muted">(C\d)</span></td>' + label + r"(\d+)</td>"
        volumes = dict(re.findall(group, stats))
        assert volumes == {"C1": "2", "C2": "1"}
        assert "C1T01" not in stats
        by_township = city.get("/office/ledger", params={"by": "township"}).text  # still there when asked
        assert re.search(r'<option value="township" selected>', by_township) and "C2T01" in by_township
        lines = city.get("/api/office/stats", params={"by": "county"}).json()["lines"]
        assert [(ln["key"], ln["volume"]) for ln in lines] == [("C1", 2), ("C2", 1)]
        one = city.get("/api/office/stats", params={"by": "county", "county": "C2"}).json()["lines"]
        assert [(ln["key"], ln["volume"]) for ln in one] == [("C2", 1)]  # one county: by its id
        assert city.get("/api/office/ledger", params={"county": "C1"}).json()["total"] == 2
        assert 'id="county" name="county" value="C2"' in city.get("/office/ledger", params={"county": "C2"}).text
        stats_csv = city.get("/api/office/ledger/export", params={"format": "csv", "what": "stats"}).text
        assert stats_csv.index("按县统计") < stats_csv.index("按乡镇统计")
        # 电子监察 counts the errands not yet answered per county first, then per township.
        report = city.get("/api/supervision").json()
        assert {c: sum(stages.values()) for c, stages in report["by_county"].items()} == {"C1": 2, "C2": 1}
        supervision = city.get("/supervision").text
        assert supervision.index('id="by-county"') < supervision.index('id="by-township"')
        assert supervision.index("在办分布（县）") < supervision.index("by county and stage")
    with TestClient(create_app(settings["C1"])) as county:  # a county's own desk still starts by township
        page = county.get("/office/ledger").text
        assert re.search(r'<option value="township" selected>', page) and '<option value="county"' in page
        assert 'id="by-county"' not in county.get("/supervision").text  # one county: by township, as before
        assert county.get("/api/supervision").json()["by_county"] == {}
        assert 'id="county"' not in page  # a county's own ledger has no county to choose
