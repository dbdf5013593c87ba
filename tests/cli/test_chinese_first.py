"""What the commands tell a county's or township's operator leads in Chinese, the English after it.

``sanji catalogue check`` and ``sanji calendar check`` word each problem with the table the county's upload
screens use (``sanji.problem_words``): the place and kind in Chinese, the checker's English line under it. A
refusal is ``error: <中文> <English>`` and its hint ``hint: <中文> <English>``. Real files, the real command.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sanji.catalogue import default_catalogue_path
from sanji.demo.cluster import Cluster
from tests.cli.errand_kit import sanji

CHINESE = re.compile(r"[\u4e00-\u9fff]")
CATALOGUE = default_catalogue_path().read_text(encoding="utf-8")
CALENDAR = """
county = "示范县"
version = 1
published_at = "2026-11-20"

[year.2027]
holidays = [2027-10-08]
workdays = [2027-10-08]
"""


def chinese_first(line: str, tag: str) -> None:
    """``tag`` (``error:``, ``hint:``), then Chinese before any English word."""
    assert line.startswith(tag), line
    rest = line[len(tag) :].strip()
    assert CHINESE.match(rest), line


def problem_lines(out: str) -> list[tuple[str, str]]:
    """Each listed problem as (its Chinese line, the English line under it)."""
    lines = out.splitlines()
    return [
        (lines[i].strip(), lines[i + 1].strip())
        for i in range(len(lines) - 1)
        if lines[i].startswith("  ") and not lines[i].startswith("    ") and lines[i + 1].startswith("    ")
    ]


def test_catalogue_check_lists_each_problem_chinese_first(tmp_path: Path) -> None:
    bad = CATALOGUE.replace("committed_limit = 5", 'committed_limit = "五"', 1)
    bad = bad.replace("accept_levels = [", 'accept_levels = ["moon", ', 1)
    path = tmp_path / "bad.toml"
    path.write_text(bad, encoding="utf-8")
    code, out, _ = sanji("catalogue", "check", str(path))
    assert code == 2, out
    first, *_, last = out.splitlines()
    chinese_first(first, "error:")
    assert first.index("目录文件有 2 处问题") < first.index("2 problem(s)"), first
    chinese_first(last, "hint:")
    assert "publish it again" in last
    listed = problem_lines(out)
    assert len(listed) == 2, out
    assert all(CHINESE.match(zh) and not CHINESE.match(en) for zh, en in listed), listed
    said = dict(listed)
    assert any("“承诺时限”栏：应为整数" in zh and "is not a whole number" in said[zh] for zh in said), listed
    assert any("“受理层级”栏：层级填写有误" in zh and "unknown level 'moon'" in said[zh] for zh in said), listed


def test_catalogue_check_of_a_good_file_and_of_no_file(tmp_path: Path) -> None:
    code, out, _ = sanji("catalogue", "check", str(default_catalogue_path()))
    zh, en = out.splitlines()
    assert code == 0 and zh.endswith("没有发现问题") and en.endswith("no problems"), out
    code, out, _ = sanji("catalogue", "check", str(tmp_path / "missing.toml"))
    assert code == 2
    chinese_first(out.splitlines()[0], "error:")
    assert "目录文件无法读取" in out and "cannot read" in out


def test_calendar_check_lists_each_problem_chinese_first(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text(CALENDAR, encoding="utf-8")
    code, out, _ = sanji("calendar", "check", str(path))
    assert code == 2, out
    first, *_, last = out.splitlines()
    chinese_first(first, "error:")
    assert "日历文件有" in first and "problem(s)" in first
    chinese_first(last, "hint:")
    said = dict(problem_lines(out))
    assert said["2027年：同一天既列为放假又列为上班"].endswith("is both a holiday and a working day"), said
    assert any(zh == "2027年的放假日：是法定节假日，必须列出" for zh in said), said
    path.write_text("county = \n", encoding="utf-8")
    code, out, _ = sanji("calendar", "check", str(path))
    first, last = out.splitlines()
    chinese_first(first, "error:")
    assert first.index("日历文件不是有效的 TOML 文件") < first.index("not valid TOML"), first
    chinese_first(last, "hint:")
    assert "deploy/calendar.example.toml." in last


def test_a_bad_argument_is_refused_chinese_first() -> None:
    code, out, _ = sanji("calendar", "due", "--from", "2026-13-01", "--working-days", "3")
    assert code == 2
    chinese_first(out.strip(), "error:")
    assert "is not a YYYY-MM-DD date" in out


@pytest.mark.parametrize(
    "command",
    [
        ("accounts", "list"),
        ("backup",),
        ("rules", "show"),
        ("calendar", "publish", "calendar.toml"),
        ("verify", "store"),
        ("import", "transfer.sjx"),
        ("keys", "rotate"),
        ("assess", "--quarter", "2026Q4"),
        ("enroll", "join", "--token", "SJE1-X"),
        ("errand", "list"),
        ("county", "serve"),
    ],
)
def test_a_config_that_is_not_there_is_said_chinese_first(tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = str(tmp_path / "missing.toml")
    code, out, err = sanji(*command, "--config", missing)
    assert code == 2, (out, err)
    (said,) = [line for line in (out + err).splitlines() if line.startswith("error:")]
    chinese_first(said, "error:")
    assert said.index("节点配置文件有误") < said.index(f"config file {missing} does not exist"), said


def test_an_import_of_no_file_says_so_chinese_first(tmp_path: Path) -> None:
    config = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=0).nodes["T01"].config
    code, out, _ = sanji("import", "--config", str(config), str(tmp_path / "none.sjx"))
    first, last = out.splitlines()
    assert code == 2
    chinese_first(first, "error:")
    assert "传输文件不存在：" in first and first.endswith("none.sjx does not exist"), first
    hint = (
        "hint: 请给出 `sanji export` 写出的 .sjx 文件的路径 Give the path of the .sjx file written by `sanji export`."
    )
    assert last == hint, last


def test_an_out_path_that_is_a_folder_is_refused_chinese_first_leaving_no_half_file(tmp_path: Path) -> None:
    """``--out`` naming a folder (the stick's, not a file on it): each writing command refuses, exit 2, Chinese
    first, no traceback, and no ``.tmp`` / ``.part`` file (a ledger or evidence holds personal data) stays."""
    nodes = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=0).nodes
    folder = tmp_path / "usb"
    folder.mkdir()
    # catalogue export and verify export write through the same sanji.cli.common.write_out
    commands = {
        "catalogue sign": ("catalogue", "sign", "--key", str(nodes["C"].config.parent / "node.key"),
                           "--out", str(folder), str(default_catalogue_path())),
        "ledger export": ("ledger", "export", "--config", str(nodes["T01"].config), "--from", "2026-10-01",
                          "--to", "2026-12-31", "--format", "csv", "--out", str(folder)),
    }  # fmt: skip
    for name, argv in commands.items():
        code, out, err = sanji(*argv)
        assert code == 2, (name, out, err)
        assert "Traceback" not in out + err, name
        (said,) = [line for line in (out + err).splitlines() if line.startswith("error:")]
        chinese_first(said, "error:")
        assert sorted(p.name for p in tmp_path.glob("*") if p.is_file()) == [], name
