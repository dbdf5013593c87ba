"""With the English switch on, the 督办 urgings' status words lead in English like the rest of the page: the
status light on ``/supervision``, the heading's counts, and the urged desk's alert on the errand page; Chinese
first otherwise, as before. Through the township's real app, over urgings made by the county and carried down by
sync, one of them answered."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sanji.config import load_settings
from sanji.forms import ActionForm
from sanji.tiers import create_app
from tests.web.test_department_clerks import T01, _urged
from tests.web.test_department_inbox import open_county

Client = TestClient[Litestar]


@pytest.fixture
def town(tmp_path: Path) -> Iterator[tuple[Client, str, str]]:
    """T01's app; an errand urged and not answered, and one urged and answered."""

    async def work() -> tuple[Path, str, str]:
        county = await open_county(tmp_path, open_demo=True)
        try:
            (open_one, _), (answered, _) = await _urged(county, ""), await _urged(county, "")
            await county.service(T01).act(answered, ActionForm(kind="answer_urging", actor="窗口", text="已办结"))
            return county.cluster.nodes[T01].config, open_one, answered
        finally:
            await county.close()

    config, open_one, answered = asyncio.run(work())
    with TestClient(create_app(load_settings(config))) as client:
        yield client, open_one, answered


def _status(page: str, errand: str) -> str:
    row = re.search(rf'<tr data-urging="[^"]+" data-status="\w+"><td[^>]*><a href="/errands/{errand}">.*?</tr>', page)
    assert row is not None, errand
    cell = re.search(r'<td data-label="(?:Status 状态|状态 Status)">(.*?)</td>', row.group(0))
    assert cell is not None, row.group(0)
    return cell.group(1)


def _heading(page: str) -> str:
    found = re.search(r'<h2 id="urgings">(.*?)</h2>', page, re.S)
    assert found is not None
    return found.group(1)


def _alert(page: str) -> str:
    return page.split('id="urged"')[1].split("</div></div>")[0]


def test_the_urgings_status_words_lead_in_the_readers_language(town: tuple[Client, str, str]) -> None:
    client, open_one, answered = town
    page = client.get("/supervision").text
    assert _status(page, open_one) == '<span class="light yellow">待答复 <span lang="en">open</span></span>'
    assert _status(page, answered) == '<span class="light green">已答复 <span lang="en">answered</span></span>'
    assert _heading(page).startswith('督办（2 件：待答复 1 · 答复逾期 0 · 已答复 1） <span lang="en" class="alt">')
    alert = _alert(client.get(f"/errands/{open_one}").text)
    assert alert.startswith(' data-status="open"><div lang="zh-CN"><b>督办（') and '<div lang="en" class="en">' in alert

    client.get("/lang", params={"to": "en", "next": "/"})
    page = client.get("/supervision").text
    assert _status(page, open_one) == '<span class="light yellow">open <span lang="zh-CN">待答复</span></span>'
    assert _status(page, answered) == '<span class="light green">answered <span lang="zh-CN">已答复</span></span>'
    heading = _heading(page)
    assert heading.startswith("Urgings with an answer due (2: 1 open · 0 answer overdue · 1 answered) <span"), heading
    assert '<span lang="zh-CN" class="alt">督办（2 件：' in heading
    alert = _alert(client.get(f"/errands/{open_one}").text)
    assert re.match(r' data-status="open"><div lang="en">Urged by .+?: answer by [\d-]+ \(open\);', alert), alert
    assert '<div lang="zh-CN" class="alt"><b>督办（' in alert
