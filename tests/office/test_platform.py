"""The provincial exchange: a county's month out as national-table files (a real process), read back
by a collector and checked against the ledger; incremental exports; the HTTP pull; and the national
implementation list in as a catalogue that passes the county's own checks."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
import zipfile
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from office_kit import Story, frames_for
from test_ledger_http_cli import county_node  # noqa: F401  (fixture)

from protocol.catalogue import MAX_MATTERS
from sanji.catalogue import load_catalogue
from sanji.config import NodeSettings
from sanji.demo.cluster import Cluster
from sanji.keys import read_directory, read_key
from sanji.office.platform import TABLES, ImportProblem, derived_status, read_implementation_list
from sanji.store import Store, open_database
from sanji.tiers import create_app

CODES = {
    "MZ-003": {
        "catalog_code": "000000000123",
        "task_code": "11410000000000000X000000000123",
        "task_handle_item": "11410000000000000X00000000012300",
        "task_version": "3",
    }
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sanji.cli.main", *args], capture_output=True, text=True, timeout=120)


async def _receive_late(settings: NodeSettings, cluster: Cluster, story: Story) -> None:
    db = await open_database(settings.db_url)
    try:
        directory = read_directory(settings.path(settings.node.directory))
        store = Store(db, node_id="C", key=read_key(settings.path(settings.node.key_file)), directory=directory)
        await store.start()
        outcome = await store.receive(frames_for([story], cluster.layout.keys, directory), peer="carried")
        assert all(r.status == "stored" for r in outcome.results), outcome.results
    finally:
        await db.dispose()


def read_tables(out: Path) -> dict[str, list[dict[str, Any]]]:
    names = ("accept", "process", "result", "special", "material", "rating")
    return {n: json.loads((out / f"{n}.json").read_text(encoding="utf-8")) for n in names}


def test_a_month_round_trips_through_the_national_tables(
    county_node: tuple[Cluster, NodeSettings],  # noqa: F811
    tmp_path: Path,
) -> None:
    cluster, settings = county_node
    config = str(cluster.nodes["C"].config)
    codes = tmp_path / "codes.json"
    codes.write_text(json.dumps(CODES), encoding="utf-8")
    out = tmp_path / "nov"
    done = cli(
        "platform",
        "export",
        "--config",
        config,
        "--since",
        "2026-11-01",
        "--out",
        str(out),
        "--codes",
        str(codes),
        "--batch",
        "B1",
    )
    assert done.returncode == 0, done.stderr
    tables = read_tables(out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["batch_no"] == "B1" and manifest["counts"]["accept"] == len(tables["accept"])

    accepted = {r["project_no"]: r for r in tables["accept"]}
    assert set(accepted) == {"E1", "E2", "E3", "E5"}  # E4 is not accepted yet; E6 did not change since
    e1 = accepted["E1"]
    assert (e1["catalog_code"], e1["task_code"], e1["task_version"]) == (
        "000000000123",
        CODES["MZ-003"]["task_code"],
        "3",
    )
    assert (e1["promise_date"], e1["project_type"], e1["applyer_name"]) == ("2026-11-09", "2", "张秀英")
    assert e1["accept_date"].startswith("2026-11-02 ") and e1["data_source"] == "001" and e1["batch_no"] == "B1"
    assert accepted["E3"]["task_code"] == "SJ-002"  # no national code known: its own code, verbatim
    assert "applyer_page_code" not in e1  # sealed personal data does not leave

    # a collector's view: status per errand, stages in order with chained times, results, ratings
    assert {p: derived_status(p, tables) for p in accepted} == {
        "E1": "已办结",
        "E2": "已办结",
        "E3": "已办结",
        "E5": "已受理",
    }
    e1_stages = [r for r in tables["process"] if r["project_no"] == "E1"]
    assert [(r["process_name"], r["event_name"]) for r in e1_stages] == [("承办", "1"), ("审核", "1"), ("批准", "1")]
    assert all(a["event_end_time"] == b["event_start_time"] for a, b in pairwise(e1_stages))
    results = {r["project_no"]: r for r in tables["result"]}
    assert {p: (r["result_type"], r["satisfaction"]) for p, r in results.items()} == {
        "E1": ("0", "4"),
        "E2": ("0", "2"),
        "E3": ("0", ""),
    }
    assert results["E1"]["result_date"][:10] <= accepted["E1"]["promise_date"]  # on time, as the ledger says
    specials = sorted((r["project_no"], r["special_type"]) for r in tables["special"])
    assert specials == [("E2", "补正"), ("E3", "延长")]
    e2_pause = next(r for r in tables["special"] if r["project_no"] == "E2")
    assert e2_pause["start_time"].startswith("2026-11-03") and e2_pause["end_time"].startswith("2026-11-05")
    assert any("超时默许" in r["handle_explain"] for r in tables["process"] if r["project_no"] == "E3")
    assert sorted((r["project_no"], r["evaluate_level"], r["evaluate_level_name"]) for r in tables["rating"]) == [
        ("E1", "4", "满意"),
        ("E2", "2", "不满意"),
    ]
    assert len({r["row_id"] for t in tables.values() for r in t}) == sum(len(t) for t in tables.values())

    # the same figures as the ledger for the same errands
    ledger = cli(
        "ledger",
        "export",
        "--config",
        config,
        "--from",
        "2026-11-01",
        "--to",
        "2026-12-31",
        "--format",
        "csv",
        "--out",
        str(tmp_path / "l.csv"),
    )
    assert ledger.returncode == 0, ledger.stderr
    rows = [line.split(",") for line in (tmp_path / "l.csv").read_text(encoding="utf-8-sig").splitlines()]
    header, body = rows[0], rows[1:]
    answered = {r[0] for r in body if r[header.index("已答复")] == "是"}
    assert answered == set(results)

    # incremental: only what changed since; a row from before ``since`` is an update
    later = tmp_path / "late"
    assert cli("platform", "export", "--config", config, "--since", "2026-11-10", "--out", str(later)).returncode == 0
    tables = read_tables(later)
    assert {r["project_no"] for r in tables["accept"]} == {"E2", "E5"}
    ops = {(r["project_no"], t): r["operation"] for t in ("accept", "result") for r in tables[t]}
    assert ops == {("E2", "accept"): "U", ("E5", "accept"): "I", ("E2", "result"): "I"}
    bad = cli("platform", "export", "--config", config, "--since", "last week", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "--since" in bad.stderr
    # since the last run: nothing has changed since the export above began
    again = tmp_path / "again"
    assert cli("platform", "export", "--config", config, "--since", "last", "--out", str(again)).returncode == 0
    assert read_tables(again)["accept"] == [] and json.loads((again / "manifest.json").read_text())["since"] > "2026-12"
    # a village's batch carried in by hand after that export, its actions dated in November: an
    # export by date (November's 10th on) does not see it, the next `since=last` does
    late = Story("E7", "T01V01", "T01").registered("2026-11-12").accepted("2026-11-12", "2026-11-19")
    asyncio.run(_receive_late(settings, cluster, late))
    since_last = ("platform", "export", "--config", config, "--since", "last", "--out")
    assert cli(*since_last, str(tmp_path / "l2")).returncode == 0
    assert [r["project_no"] for r in read_tables(tmp_path / "l2")["accept"]] == ["E7"]
    assert cli(*since_last, str(tmp_path / "l3")).returncode == 0
    assert read_tables(tmp_path / "l3")["accept"] == []  # sent once: the mark moved past its arrival

    with TestClient(create_app(settings)) as client:
        pulled = client.get("/api/office/platform/export", params={"since": "2026-12-01"}).json()
        assert pulled["counts"]["accept"] == 1 and pulled["tables"]["accept"][0]["project_no"] == "E5"
        assert client.get("/api/office/platform/export", params={"since": "soon"}).status_code == 400
        assert client.get("/api/office/platform/export").status_code == 400

        # the office's screen: the same files as one ZIP, and the last run remembered
        screen = client.get("/office/platform/")
        assert screen.status_code == 200 and "上次导出开始于" in screen.text
        # each file of the ZIP said in Chinese, and the note on updates too (not English alone)
        assert '<li data-table="accept"><code>accept.json</code> — 受理信息' in screen.text
        assert "由省平台合并" in screen.text
        got = client.post("/office/platform/export", data={"since": "2026-12-01", "source": "001"})
        assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
        assert 'filename="platform-C-' in got.headers["content-disposition"]
        with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
            assert sorted(archive.namelist()) == sorted([*(f"{n}.json" for n in TABLES), "manifest.json"])
            accept = json.loads(archive.read("accept.json"))
            manifest = json.loads(archive.read("manifest.json"))
        assert [r["project_no"] for r in accept] == ["E5"] and manifest["counts"]["accept"] == 1
        assert 'id="mode-last"' in client.get("/office/platform/").text  # an export has run: "since the last" offered
        again = client.post("/office/platform/export", data={"mode": "last", "since": "2026-11-01"})
        with zipfile.ZipFile(io.BytesIO(again.content)) as archive:
            assert json.loads(archive.read("accept.json")) == []  # nothing changed or arrived since
        refused = client.post("/office/platform/export", data={"since": "someday"}, follow_redirects=False)
        assert refused.status_code == 400 and "location" not in refused.headers  # the screen again, saying why
        said = refused.text.split('id="platform-problem">', 1)[1].split("</p>", 1)[0]
        assert said.startswith("无法导出：起始时间应为日期") and '<span lang="en">cannot export: since must be' in said


NATIONAL_LIST = {
    "tasks": [
        {
            "catalog_code": "000000000123",
            "task_code": "11410000000000000X000000000123",
            "task_handle_item": "11410000000000000X00000000012300",
            "task_name": "临时救助申请",
            "task_type": "05",
            "task_version": "3",
            "dept_name": "县民政局",
            "by_law": "《社会救助暂行办法》第四十七条",
            "anticipate_day": 15,
            "anticipate_type": "1",
            "promise_day": 10,
            "promise_type": "1",
            "project_type": "2",
            "limit_scene_num": 0,
            "town_code": "410000001",
            "village_code": "410000001001",
            "materials": [
                {"material_name": "申请书", "is_need": "1", "material_format": "1"},
                {"material_name": "困难情况证明材料", "is_need": "3", "material_format": "3"},
            ],
            "fees": [],
        },
        {
            "catalog_code": "000000000456",
            "task_code": "11410000000000000X000000000456",
            "task_name": "个体工商户登记",
            "task_type": "01",
            "dept_name": "县市场监管局",
            "anticipate_day": 15,
            "promise_day": 3,
            "promise_type": "1",
            "project_type": "1",
            "limit_scene_num": 1,
            "materials": [{"material_name": "经营者身份证明", "is_need": "1"}],
            "fees": [{"name": "工本费", "standard": "0元"}],
        },
    ]
}


def test_national_implementation_list_becomes_a_checked_catalogue(tmp_path: Path) -> None:
    source = tmp_path / "list.json"
    source.write_text(json.dumps(NATIONAL_LIST, ensure_ascii=False), encoding="utf-8")
    out, codes = tmp_path / "catalogue.json", tmp_path / "codes.json"
    done = cli(
        "platform",
        "import-catalogue",
        str(source),
        "--out",
        str(out),
        "--codes",
        str(codes),
        "--county",
        "C",
        "--version",
        "7",
        "--published-at",
        "2026-12-01",
    )
    assert done.returncode == 0, done.stderr
    catalogue = load_catalogue(out)  # the county's own checks pass
    relief = catalogue.get("11410000000000000X000000000123")
    assert relief is not None and relief.category == "给付" and relief.committed_limit == 10
    assert [(m.name, m.main) for m in relief.materials] == [("申请书", True), ("困难情况证明材料", False)]
    assert relief.accept_levels == ("village", "town") and relief.department == ""
    shop = catalogue.get("11410000000000000X000000000456")
    assert shop is not None and shop.immediate and shop.department == "县市场监管局" and "工本费" in shop.fee
    mapped = json.loads(codes.read_text(encoding="utf-8"))
    assert mapped["11410000000000000X000000000123"]["catalog_code"] == "000000000123"
    source.write_text(json.dumps({"tasks": [{"task_name": "无编码"}]}), encoding="utf-8")
    bad = cli(
        "platform",
        "import-catalogue",
        str(source),
        "--out",
        str(out),
        "--codes",
        str(codes),
        "--county",
        "C",
        "--version",
        "8",
    )
    assert bad.returncode == 2 and "task_code" in bad.stderr


def test_a_bad_implementation_list_is_refused_row_by_row_never_with_a_traceback(tmp_path: Path) -> None:
    """Every fault of a list, each with its row and field, Chinese first; exit 2 and nothing written."""
    out, codes = tmp_path / "catalogue.json", tmp_path / "codes.json"

    def run(content: bytes) -> subprocess.CompletedProcess[str]:
        source = tmp_path / "list.json"
        source.write_bytes(content)
        args = ("--out", str(out), "--codes", str(codes), "--county", "C", "--version", "7")
        return cli("platform", "import-catalogue", str(source), *args)

    row = {"task_code": "T1", "task_name": "n"}
    rows = [
        row | {"anticipate_day": -5},
        row | {"task_code": "T2", "anticipate_day": 10**400},
        row | {"task_code": "T3", "anticipate_day": 1e308},
        row | {"task_code": "T4", "task_name": {"a": 1}},
        row | {"task_code": "T5", "materials": 5},
        row | {"task_code": "T6", "fees": 5},
        row | {"task_code": "T1"},
        row | {"task_code": "T\u0000\u202e8"},
        row | {"task_code": "x" * 100_000},
    ]
    bad = run(json.dumps({"tasks": rows}).encode())
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    said = bad.stderr.splitlines()
    assert said[0].startswith("error: 无法导入事项实施清单") and "9 处问题" in said[0], bad.stderr
    lines, english = said[1::2], said[2::2]  # each problem: its Chinese line, the English under it
    assert [line.split("，")[0].strip() for line in lines] == [f"第 {n} 条" for n in range(1, 10)], bad.stderr
    assert [line.split(",")[0].strip() for line in english] == [f"row {n}" for n in range(1, 10)], bad.stderr
    for n, field in enumerate(
        ["anticipate_day", "anticipate_day", "anticipate_day", "task_name", "materials", "fees", "task_code"], 1
    ):
        assert f"第 {n} 条，字段 {field}" in bad.stderr
    assert "与第 1 条重复" in lines[6] and english[6].strip() == "row 7, task_code: duplicates row 1"
    assert "不可见字符" in lines[7] and "上限 32" in lines[8]
    assert not out.exists() and not codes.exists()
    for content, said in (
        (b'{"tasks":[{"task_code":"T1","task_name":"n","anticipate_day":Infinity}]}', "不是有效的 JSON"),
        (b"[" * 100_000, "嵌套超过"),
        (json.dumps({"tasks": [{"task_code": "T1", "task_name": "低保"}]}, ensure_ascii=False).encode("gbk"), ""),
    ):
        refused = run(content)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        assert (said or "文件不是 UTF-8 编码（可能是 GBK），请另存为 UTF-8") in refused.stderr
    with_bom = run(b"\xef\xbb\xbf" + json.dumps({"tasks": [row]}).encode())
    assert with_bom.returncode == 0, with_bom.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["matters"][0]["code"] == "T1"


def test_a_list_longer_than_a_catalogue_is_refused_before_its_rows_are_read() -> None:
    """A million bare numbers: one problem naming the limit, not a worded problem per row (2 s and 300 MB each
    million, found by review, session 21)."""
    raw = json.dumps({"tasks": [1] * (MAX_MATTERS * 50)}).encode()
    with pytest.raises(ImportProblem) as refused:
        read_implementation_list(raw, county="C", version=1, published_at="2026-12-01")
    assert refused.value.problems == [
        f"清单有 {MAX_MATTERS * 50} 条事项，上限 {MAX_MATTERS} / "
        f"the list has {MAX_MATTERS * 50} tasks; the limit is {MAX_MATTERS}"
    ]


@pytest.mark.parametrize("where", ["directory", "missing_folder"])
def test_an_output_path_that_cannot_be_written_is_refused_without_a_traceback(tmp_path: Path, where: str) -> None:
    """``--out`` naming a folder, or a file in a folder that is not there: exit 2, Chinese first, no traceback, and
    no half-written ``.tmp`` file or codes map left behind."""
    source = tmp_path / "list.json"
    source.write_text(json.dumps(NATIONAL_LIST, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "catalogue"
    if where == "directory":
        out.mkdir()
    else:
        out = tmp_path / "absent" / "catalogue.json"
    codes = tmp_path / "codes.json"
    done = cli(
        "platform", "import-catalogue", str(source), "--out", str(out), "--codes", str(codes), "--county", "C",
        "--version", "7", "--published-at", "2026-12-01",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (said,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert re.match(r"error: [\u4e00-\u9fff]", said), said
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["list.json", *(["catalogue"] if where == "directory" else [])]
    )


def test_the_catalogue_and_its_codes_map_may_not_be_one_file(tmp_path: Path) -> None:
    """``--out`` and ``--codes`` naming one file: the codes map would silently replace the catalogue. Refused, exit
    2, Chinese first, nothing written."""
    source = tmp_path / "list.json"
    source.write_text(json.dumps(NATIONAL_LIST, ensure_ascii=False), encoding="utf-8")
    same = tmp_path / "out.json"
    done = cli(
        "platform", "import-catalogue", str(source), "--out", str(same), "--codes", str(tmp_path / "." / "out.json"),
        "--county", "C", "--version", "7", "--published-at", "2026-12-01",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (said,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert re.match(r"error: [\u4e00-\u9fff]", said) and "--codes" in said, said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.json"]
