"""The county's catalogue and calendar uploads list their problems Chinese first: each problem's place and kind in
Chinese (``sanji.problem_words``), the checker's English line after it in ``<span lang="en">``, through the
real screen routes on a county with logins required."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_kit import add, app, login, prepare
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from sanji.catalogue import default_catalogue_path
from sanji.problem_words import KINDS, OTHER_ZH, headline_pair, kind_of, problem_pair

Client = TestClient[Litestar]
CATALOGUE = default_catalogue_path().read_text(encoding="utf-8")
CALENDAR = (Path(__file__).resolve().parents[2] / "deploy" / "calendar.example.toml").read_text(encoding="utf-8")
ITEM = re.compile(r"<li>(.*?)</li>", re.S)


@pytest.fixture
def county(tmp_path: Path) -> Iterator[tuple[Client, str]]:
    config = prepare(tmp_path, "C", required=True)
    add(config, "县管理员", "admin")
    with TestClient(app(config)) as client:
        yield client, login(client, "县管理员")


def check(client: Client, csrf: str, what: str, name: str, text: str) -> Response:
    return client.post(f"/admin/{what}/check", data={"_csrf_token": csrf}, files={"file": (name, text.encode())})


def listed(page: str) -> list[tuple[str, str]]:
    """Each listed problem as (the Chinese before the English span, the English inside it)."""
    block = page.split('id="problems"', 1)[1].split("</div>", 1)[0]
    out = []
    for item in ITEM.findall(block):
        zh, _, rest = item.partition('<span lang="en">')
        out.append((html.unescape(zh).strip(), html.unescape(rest.split("</span>", 1)[0])))
    return out


def lead(page: str) -> str:
    return html.unescape(page.split('id="problems"', 1)[1].split("<ul>", 1)[0])


def test_a_bad_catalogue_lists_each_problem_chinese_first(county: tuple[Client, str]) -> None:
    client, csrf = county
    bad = CATALOGUE.replace("version = 1", "version = 2").replace("committed_limit = 5", 'committed_limit = "五"', 1)
    bad = bad.replace("accept_levels = [", 'accept_levels = ["moon", ', 1)
    r = check(client, csrf, "catalogue", "bad.toml", bad)
    assert r.status_code == 400, r.text
    problems = listed(r.text)
    assert problems and all(re.search(r"[\u4e00-\u9fff]", zh) and en for zh, en in problems), problems
    assert all(not zh.startswith(("row", "[[", "catalogue", "sheet")) for zh, _ in problems)  # Chinese leads
    said = dict(problems)
    whole = next(zh for zh, en in problems if "committed_limit" in en and "whole number" in en)
    assert whole.startswith("第") and "“承诺时限”栏：应为整数" in whole, whole
    assert any("“受理层级”栏：层级填写有误" in zh for zh in said), said
    assert "目录文件有" in lead(r.text) and "problem(s)" in lead(r.text)  # the headline too, Chinese first
    assert lead(r.text).index("目录文件有") < lead(r.text).index("problem(s)")


def test_a_catalogue_that_does_not_parse_says_so_chinese_first(county: tuple[Client, str]) -> None:
    client, csrf = county
    r = check(client, csrf, "catalogue", "broken.toml", "county = \n")
    assert r.status_code == 400
    said = lead(r.text)
    assert said.index("目录文件不是有效的 TOML 文件") < said.index("is not valid TOML"), said
    ((zh, en),) = listed(r.text)
    assert zh.startswith("文件格式有误") and "line" in en
    r = check(client, csrf, "catalogue", "catalogue.csv", "code,name\n")
    assert r.status_code == 400 and lead(r.text).index("只接受") < lead(r.text).index("Only")


def test_a_bad_calendar_lists_each_problem_chinese_first(county: tuple[Client, str]) -> None:
    client, csrf = county
    r = check(client, csrf, "calendar", "bad.toml", CALENDAR.replace("2026-10-01, ", "", 1))
    assert r.status_code == 400, r.text
    ((zh, en),) = listed(r.text)
    assert zh == "2026年的放假日：是法定节假日，必须列出" and "2026-10-01" in en and "statutory holiday" in en
    assert lead(r.text).index("日历文件有 1 处问题") < lead(r.text).index("1 problem(s)")
    r = check(client, csrf, "calendar", "broken.toml", "county = \n")
    assert r.status_code == 400 and lead(r.text).index("日历文件不是有效的 TOML 文件") < lead(r.text).index("TOML")


def test_a_calendar_not_newer_than_the_one_held_is_refused_chinese_first(county: tuple[Client, str]) -> None:
    client, csrf = county
    r = check(client, csrf, "calendar", "2026.toml", CALENDAR)
    field = html.unescape(r.text.split('name="calendar" value="', 1)[1].split('">', 1)[0])
    assert client.post("/admin/calendar/publish", data={"_csrf_token": csrf, "calendar": field}).status_code == 200
    r = check(client, csrf, "calendar", "2026.toml", CALENDAR)
    assert r.status_code == 409
    assert lead(r.text).index("本中心已持有第1版日历") < lead(r.text).index("already holds calendar v1")


def test_every_kind_has_chinese_and_an_unknown_one_still_leads_in_chinese() -> None:
    assert all(re.search(r"[\u4e00-\u9fff]", zh) for _, _, zh in KINDS)
    assert kind_of("something no checker says")[1] == OTHER_ZH
    assert kind_of("lists or tables are nested too deeply (a catalogue needs two levels)")[0] == "nested"
    assert problem_pair("row 4 (MZ-009), field fee: something new").zh == "第4行（MZ-009）“收费标准”栏：请核对此项"
    xlsx = "sheet 事项 row 7, field 版本号: unknown field (did you mean version?)"
    assert problem_pair(xlsx).zh == "工作表“事项”第7行“版本号”栏：未知字段"
    assert headline_pair("x.toml: 12 problem(s) in the catalogue", "目录").zh == "目录文件有 12 处问题，请逐条改正"
