"""With the English switch on, the 电子监察 page's section headings and the 超时默许 rule lead in English like the
rest of the page (超期办件, 临期预警, 环节缺失, 投诉); Chinese first otherwise, as before. One template serves the
county, the township and the village station: each is read through its own real app."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sanji.config import load_settings
from sanji.tiers import create_app
from tests.web.test_department_clerks import T01
from tests.web.test_department_inbox import C, open_county

Client = TestClient[Litestar]

# (element, Chinese, English) as an empty node says them
SECTIONS = (
    ('<h2 id="overdue">', "超期办件（0 件）", "Overdue (red) (0)"),
    ('<h2 id="due-soon">', "临期预警（0 件）", "Due soon (yellow) (0)"),
    ('<h2 id="missing-steps">', "环节缺失（0 件）", "Approved errands missing one of the five steps (0)"),
    ('<h2 id="complaints">', "投诉（0 件）", "Complaints (0)"),
    ('<p id="deemed-rule">', "超过法定期限未作决定", "Matters whose catalogue allows it are approved"),
)


@pytest.fixture
def configs(tmp_path: Path) -> dict[str, Path]:
    async def work() -> dict[str, Path]:
        county = await open_county(tmp_path, open_demo=True)
        try:
            return {node: county.cluster.nodes[node].config for node in (C, T01, T01 + "V01")}
        finally:
            await county.close()

    return asyncio.run(work())


def _section(page: str, opening: str) -> str:
    start = page.index(opening) + len(opening)
    return page[start : page.index("</", start)]


@pytest.mark.parametrize("node", [C, T01, T01 + "V01"])
def test_the_supervision_headings_lead_in_the_readers_language(configs: dict[str, Path], node: str) -> None:
    with TestClient(create_app(load_settings(configs[node]))) as client:
        page = client.get("/supervision").text
        for opening, zh, en in SECTIONS:
            assert re.match(rf'{re.escape(zh)}.* <span lang="en" class="alt">{re.escape(en)}', _section(page, opening))

        client.get("/lang", params={"to": "en", "next": "/"})
        page = client.get("/supervision").text
        for opening, zh, en in SECTIONS:
            said = _section(page, opening)
            assert said.startswith(en) and '<span lang="zh-CN" class="alt">' + zh in said, said
            assert not re.search(r"[\u4e00-\u9fff]", said.split("<span", 1)[0]), said  # no Chinese before the pair
