"""Assessment rules down, business reports up, through real node processes (county, township, village).

The county holds the seed rules from its first start; they reach the township and the village in
the exchanges. The county then publishes a new version with the commands an operator types
(``sanji rules show --json``, edit, ``sanji rules publish``); it reaches both levels below, every
node's version comes back up in the node reports, and the township's read-only 考核细则 page shows
the new deduction. Meanwhile each node's duties sign its business reports of the last week, which
go up with the exchange: the county's 业务报表 lists every day of both nodes, with no difference.
The nodes join as deployed ones do (a root of trust, enrollment tokens): the county checks each
report against the key the node's certificate names.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.process_kit import TOWN, VILLAGE, C, ProcessKit, prepared, running

pytestmark = pytest.mark.processes


class Kit(ProcessKit):
    wait_seconds = 60.0
    poll_seconds = 0.3

    async def versions(self) -> dict[str, int]:
        return {n: (await self.get(n, "/api/node"))["rules_version"] for n in (C, TOWN, VILLAGE)}

    async def reported(self) -> dict[str, int]:
        return {r["node"]: r.get("rules_version", 0) for r in await self.get(C, "/api/reports")}


def sanji(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sanji.cli.main", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    cluster = prepared(tmp_path, enroll=True)
    async with running(cluster, Kit(cluster)) as kit:
        yield kit


async def test_rules_travel_down_and_business_reports_travel_up(kit: Kit, tmp_path: Path) -> None:
    async def everyone_holds(version: int) -> bool:
        return set((await kit.versions()).values()) == {version}

    async def county_sees(version: int) -> bool:
        return await kit.reported() == {TOWN: version, VILLAGE: version}

    await kit.until(lambda: everyone_holds(1), "the seed rules held at every level")

    config = str(kit.cluster.nodes[C].config)
    shown = await asyncio.to_thread(sanji, "rules", "show", "--config", config, "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rules = json.loads(shown.stdout)
    for item in rules["items"]:
        if item["code"] == rules["overdue_item"]:
            item["points"] = -4  # the county doubles the deduction per overdue working day
    rules.update(version=2, published_at="2026-12-01")
    path = tmp_path / "rules-v2.json"
    await asyncio.to_thread(path.write_text, json.dumps(rules, ensure_ascii=False), encoding="utf-8")
    done = await asyncio.to_thread(sanji, "rules", "publish", "--config", config, str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    again = await asyncio.to_thread(sanji, "rules", "publish", "--config", config, str(path))
    assert again.returncode == 2 and "not newer" in again.stderr

    await kit.until(lambda: everyone_holds(2), "version 2 held at every level")
    await kit.until(lambda: county_sees(2), "version 2 reported up to the county")
    page = await kit.get(TOWN, "/office/rules/")
    assert "第2版" in page and "受理办件超过承诺时限(每工作日)" in page
    assert 'id="publish-rules"' not in page  # read-only below the county
    row = page[page.index('id="rule-overdue_day"') :]
    assert "扣 4 分" in row[: row.index("</tr>")]
    home = await kit.get(C, "/")
    assert "考核细则" in home and "Rules" in home and "版本不一致" not in home  # the column beside each node

    async def week_reported() -> list[dict[str, Any]] | None:
        lines = (await kit.get(C, "/api/office/business"))["lines"]
        done = {line["node"]: line for line in lines if line["days_reported"] == line["days"] == 7}
        return lines if set(done) == {TOWN, VILLAGE} else None

    lines = await kit.until(week_reported, "a week of business reports of both nodes at the county")
    assert all(line["difference"] == {} for line in lines)
