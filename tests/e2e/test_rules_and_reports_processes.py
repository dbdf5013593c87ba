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
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sanji.demo.cluster import Cluster

pytestmark = pytest.mark.processes

C, TOWN, VILLAGE = "C", "T01", "T01V01"
WAIT = 60.0


class Kit:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.http = {n: httpx.AsyncClient(base_url=p.url, timeout=10.0) for n, p in cluster.nodes.items()}

    async def close(self) -> None:
        for http in self.http.values():
            await http.aclose()

    async def get(self, node: str, path: str, **params: str) -> Any:
        reply = await self.http[node].get(path, params=params)
        assert reply.status_code == 200, (node, path, reply.text[:300])
        return reply.json() if "json" in reply.headers.get("content-type", "") else reply.text

    async def until(self, probe: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + WAIT
        seen: Any = None
        while time.monotonic() < deadline:
            seen = await probe()
            if seen:
                return seen
            await asyncio.sleep(0.3)
        raise AssertionError(f"never {what}")

    async def versions(self) -> dict[str, int]:
        return {n: (await self.get(n, "/api/node"))["rules_version"] for n in (C, TOWN, VILLAGE)}

    async def reported(self) -> dict[str, int]:
        return {r["node"]: r.get("rules_version", 0) for r in await self.get(C, "/api/reports")}


def sanji(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sanji.cli.main", *args], capture_output=True, text=True, timeout=120, check=False
    )


def start(cluster: Cluster) -> None:
    """Start every node and wait generously: on a loaded machine importing the stack alone takes seconds."""
    cluster.start(wait=False)
    for node in cluster.nodes:
        cluster.wait_ready(node, timeout=180.0)
    cluster.wait_catalogues()  # the township accepts only once the county's catalogue reached it


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    cluster = Cluster.prepare(
        tmp_path / "county", towns=1, villages_per_town=1, interval=0.3, max_backoff=1.0, open_demo=True, enroll=True
    )
    kit = Kit(cluster)
    try:
        await asyncio.to_thread(start, cluster)
        yield kit
    finally:
        await kit.close()
        await asyncio.to_thread(cluster.stop)


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
    assert "扣 -4" in row[: row.index("</tr>")]
    home = await kit.get(C, "/")
    assert "考核细则 Rules" in home and "版本不一致" not in home

    async def week_reported() -> list[dict[str, Any]] | None:
        lines = (await kit.get(C, "/api/office/business"))["lines"]
        done = {line["node"]: line for line in lines if line["days_reported"] == line["days"] == 7}
        return lines if set(done) == {TOWN, VILLAGE} else None

    lines = await kit.until(week_reported, "a week of business reports of both nodes at the county")
    assert all(line["difference"] == {} for line in lines)
