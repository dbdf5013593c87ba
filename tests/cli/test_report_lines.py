"""Every line a command reports leads in Chinese: the real commands against a throwaway node, every line read.

A line that carries English words (not only paths, ids, flags, hashes or numbers) must have Chinese before its
first English word, or be the English line under a Chinese one (``sanji.cli.say.info`` prints the pair on two
lines); the ``error:``, ``hint:`` and ``note:`` tags that scripts look for stay first. JSON output is left as
it is. Every hint the code gives has its Chinese (``sanji.cli.say.hint_pair``), so ``hint:`` lines
never fall back to English alone.
"""

from __future__ import annotations

import ast
import asyncio
import io
import json
import re
import sqlite3
import sys
from pathlib import Path

import msgspec
import pytest

from protocol.assessment import default_rules
from sanji.cli.common import node_store
from sanji.cli.say import hint_pair
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.forms import RegisterForm
from sanji.service import ErrandService
from tests.cli.errand_kit import PASSWORD, sanji

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
TAG = re.compile(r"^\s*(error|hint|note):\s*")
# A word: letters only, two or more (node ids, hashes, paths, flags and field=value carry other characters).
WORD = re.compile(r"(?<![\w./=:@`'-])[A-Za-z][a-z]+(?![\w./=:@`'-])")
ROOT = Path(__file__).resolve().parents[2]


def english_first(line: str) -> bool:
    """Whether ``line`` carries English words and the first of them comes before any Chinese."""
    rest = TAG.sub("", line)
    word = WORD.search(rest)
    if word is None:
        return False
    chinese = CJK.search(rest)
    return chinese is None or chinese.start() > word.start()


def english_led(lines: list[str]) -> list[str]:
    """The lines that lead in English and are not the English half of the Chinese line above them."""
    found, under_chinese = [], False
    for line in lines:
        if english_first(line):
            if not under_chinese:
                found.append(line)
            under_chinese = False
        else:
            under_chinese = bool(CJK.search(line)) and not TAG.match(line)
    return found


def test_the_check_itself() -> None:
    assert english_first("backed up to /tmp/x.db (3 bytes)")
    assert english_first("error: config file missing 节点配置文件有误")
    assert not english_first("已备份到 /tmp/x.db（3 字节） backed up to /tmp/x.db")
    assert not english_first("error: 节点配置文件有误 config file /tmp/n.toml does not exist")
    assert not english_first("/tmp/T01/backups/T01-20261207T124301Z-manual.db\t401408")
    assert not english_first("  2027-01-01 五 休 元旦 New Year's Day")
    assert english_led(["已备份到 /tmp/x.db", "backed up to /tmp/x.db", "0 copies removed"]) == ["0 copies removed"]
    assert english_led(["error: 节点配置文件有误 config", "config file missing"]) == ["config file missing"]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("report_lines")
    nodes = Cluster.prepare(tmp / "county", towns=1, villages_per_town=1).nodes
    return {"town": str(nodes["T01"].config), "village": str(nodes["T01V01"].config), "tmp": str(tmp)}


def _said(*argv: str, stdin: str = "") -> tuple[int, list[str]]:
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code, out, err = sanji(*argv)
    finally:
        sys.stdin = saved
    return code, (out + err).splitlines()


def test_the_commands_report_chinese_first(node: dict[str, str]) -> None:
    town, village, tmp = node["town"], node["village"], Path(node["tmp"])
    carried = str(tmp / "T01-to-T01V01.sjx")
    commands: list[tuple[str, ...]] = [
        ("accounts", "create", "--config", town, "--name", "王芳", "--role", "window_a", "--password-stdin"),
        ("accounts", "list", "--config", town),
        ("accounts", "unlock", "--config", town, "--name", "王芳"),
        ("accounts", "disable", "--config", town, "--name", "王芳"),
        ("accounts", "token", "--config", town, "--name", "王芳", "--label", "scanner"),
        ("accounts", "revoke-token", "--config", town, "--id", "1"),
        ("backup", "--config", town),
        ("backup", "--config", town, "--list"),
        ("verify", "store", "--config", town),
        ("audit", "verify", "--config", village),
        ("errand", "list", "--config", town),
        ("archive", "--config", village, "--dry-run"),
        ("trust", "show", "--config", town),
        ("rules", "show", "--config", town),
        ("calendar", "show", "2025"),
        ("calendar", "due", "--from", "2026-12-20", "--working-days", "10"),
        ("keys", "rotate", "--config", village),
        ("keys", "rotate", "--config", village),
        (
            "ledger",
            "export",
            "--config",
            town,
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
            "--out",
            str(tmp / "l.csv"),
            "--format",
            "csv",
        ),
        ("export", "--config", town, "--for", "T01V01", "--out", carried),
        ("import", "--config", village, carried),
        ("restore", "--config", town, "--from", str(tmp / "none.db")),
        ("doctor", "--config", town, "--timeout", "0.3"),
    ]
    said: dict[str, list[str]] = {}
    for argv in commands:
        code, lines = _said(*argv, stdin=f"{PASSWORD}\n{PASSWORD}\n")
        assert lines, argv
        said.setdefault(" ".join(argv[:2]), lines)  # the first run of each
        assert english_led(lines) == [], (argv, code, lines)
    # the commands ran as meant: the report lines above are what each says when it works
    assert said["backup --config"][0].startswith("已备份到 ")
    assert said["verify store"][0].startswith("T01 核验：未发现问题")
    assert said["import --config"][-1].startswith("0 batches: ")
    assert said["restore --config"][0].startswith("error: "), said["restore --config"]


def test_a_restore_reports_chinese_first(node: dict[str, str]) -> None:
    town = node["town"]
    assert _said("backup", "--config", town)[0] == 0
    code, lines = _said("backup", "--config", town, "--list")
    assert code == 0 and lines
    copy = lines[-1].split("\t")[0]
    code, lines = _said("restore", "--config", town, "--from", copy)
    assert code == 0, lines
    assert lines[0] == f"已从 {copy} 恢复" or lines[0].startswith(f"已从 {copy} 恢复；被替换的数据库保留为 "), lines
    assert lines[1].startswith(f"restored {copy}"), lines
    assert lines[2:] == [
        "请启动节点：副本较旧时它先升级副本，再从上级节点取回副本缺少的内容",
        "start the node: it migrates the copy if it is older, then takes back from its parent what the copy lacks",
    ]
    assert english_led(lines) == [], lines


def _problem_lines(lines: list[str]) -> list[tuple[str, str]]:
    """Each problem a command listed under its headline: (its Chinese line, the English line under it)."""
    listed = [line for line in lines if line.startswith("  ")]
    pairs = list(zip(listed[::2], listed[1::2], strict=True))
    for zh, en in pairs:
        assert CJK.match(zh.strip()), (zh, lines)  # the Chinese line opens in Chinese
        assert en.startswith("    ") and english_first(en), (en, lines)  # the English under it
    return pairs


def test_problem_lines_lead_in_chinese(tmp_path: Path) -> None:
    """A damaged store row, a bad rules document and a bad row of an implementation list: each problem is said in
    Chinese first (its place and what is wrong), the checker's English under it."""
    nodes = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True).nodes
    village, county = nodes["T01V01"].config, str(nodes["C"].config)

    async def one_errand() -> None:
        async with node_store(load_settings(village)) as (store, _):
            await ErrandService(store).register(RegisterForm(matter="MZ-001", applicant_name="王芳", actor="代办员"))
            await store.seal_outbox(force=True)

    asyncio.run(one_errand())
    db = Path(load_settings(village).db_url.split(":///", 1)[1])
    with sqlite3.connect(db) as con:
        assert con.execute("UPDATE batches SET hash = zeroblob(32) WHERE seq = 1").rowcount == 1
    code, lines = _said("verify", "store", "--config", str(village))
    assert code == 1 and english_led(lines) == [], lines
    assert lines[0].startswith("T01V01 核验：发现 2 处问题"), lines
    found = dict(_problem_lines(lines))
    assert set(found) == {
        "  数据流 T01V01->T01V01，第 1 批：数据包存储的哈希值与其内容不符",
        "  数据流 T01V01->T01V01，第 1 批：数据流的同步进度与所存批次不一致",  # the cursor holds the true hash
    }, lines
    said = found["  数据流 T01V01->T01V01，第 1 批：数据包存储的哈希值与其内容不符"]
    assert said.startswith("    [hash_mismatch] stream T01V01->T01V01, batch 1: the hash stored with batch 1 is "), (
        lines
    )

    rules = msgspec.structs.replace(default_rules("C"), version=2, published_at="明天", centre_bonus_cap=-1.0)
    document = tmp_path / "rules.json"
    document.write_text(json.dumps(msgspec.to_builtins(rules), ensure_ascii=False), encoding="utf-8")
    code, lines = _said("rules", "publish", "--config", county, str(document))
    assert code == 2 and english_led(lines) == [], lines
    assert lines[0].startswith("error: 考核细则有 2 处问题，请逐条改正"), lines
    assert _problem_lines(lines) == [
        ("  加分上限和红旗名额不能为负数", "    caps and the red-flag count are not negative"),
        (
            "  发布日期（published_at）须为形如 2026-10-01 的日期，而不是 '明天'",
            "    published_at must be a day like 2026-10-01, not '明天'",
        ),
    ]

    listing = tmp_path / "list.json"
    listing.write_text(json.dumps({"tasks": [{"task_code": "T1", "task_name": ""}]}), encoding="utf-8")
    out = ("--out", str(tmp_path / "c.json"), "--codes", str(tmp_path / "n.json"), "--county", "C", "--version", "3")
    code, lines = _said("platform", "import-catalogue", str(listing), *out)
    assert code == 2 and english_led(lines) == [], lines
    assert lines[0].startswith("error: 无法导入事项实施清单 "), lines
    assert _problem_lines(lines) == [
        ("  第 1 条，字段 task_name（事项名称）：必填", "    row 1, task_name: task_name is required")
    ]


def test_json_output_is_unchanged(node: dict[str, str]) -> None:
    code, lines = _said("calendar", "due", "--from", "2026-12-20", "--working-days", "10", "--json")
    assert code == 0 and len(lines) == 1
    assert json.loads(lines[0])["due"] == "2027-01-04"


def _hints() -> list[tuple[str, str]]:
    """Every hint the code words as one literal: ``hint="…"`` and ``default_hint = "…"``."""
    found = []
    for package in ("sanji", "protocol", "county_node", "town_node", "village_agent"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                value = None
                if isinstance(n, ast.keyword) and n.arg == "hint":
                    value = n.value
                elif isinstance(n, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "default_hint" for t in n.targets
                ):
                    value = n.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value:
                    found.append((f"{path.relative_to(ROOT)}:{n.lineno}", value.value))
    return found


def test_every_hint_has_its_chinese() -> None:
    hints = _hints()
    assert len(hints) > 50  # the scan found the code's hints
    untold = [(where, text) for where, text in hints if not CJK.match(text) and not hint_pair(text).zh]
    assert untold == [], untold


@pytest.mark.parametrize(
    ("hint", "zh"),
    [
        ("Set SANJI_PW (or give the passphrase another way) and run the command again.", "请设置环境变量 SANJI_PW"),
        ("Open the errand at T01, which holds the attachment.", "请在持有该附件的 T01 打开办件"),
        ("Publish version 3 or higher.", "请以第3版或更高的版本号发布"),
        ("One of: window_a, window_b", "可选：window_a, window_b"),
    ],
)
def test_a_hint_with_a_value_in_it_keeps_the_value(hint: str, zh: str) -> None:
    said = hint_pair(hint)
    assert said.zh.startswith(zh) and said.en == hint
