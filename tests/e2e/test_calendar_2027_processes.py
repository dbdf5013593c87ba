"""The 2027 case through real node processes (county, township, village), dated by the county's clock.

Each node dates business days on its clock corrected by its offset to the county's (NodeContext,
``clock_offset_ms``), and the county passes its own offset down in every exchange. The test sets the
county's offset in its database before starting it, so that every node's business day is
2026-12-21, when the built-in notices end with 2026. A 临时救助 errand (10 working days) accepted that
day is due 2027-01-05 — 元旦 skipped on the provisional statutory calendar, not 2027-01-04 — and every
level shows it 暂定, on the screen, the acceptance notice and the API, with a real light. The county
then publishes its 2027 calendar with ``sanji calendar publish``; it travels down, every node reports
its version to the county, the township (the custodian) corrects the deadline by a signed action,
and every level shows the corrected date with the provisional one kept in the history. With the
county's clock moved to 2027-01-07, every level shows the errand red, one working day over, in its
overdue list.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sanji.cli.common import node_store
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.workcalendar import library_data
from tests.e2e import process_kit
from tests.e2e.process_kit import PATH, TOWN, VILLAGE, C, ProcessKit, running, start

pytestmark = pytest.mark.processes

# A made-up 2027 arrangement for the test (the real notice is the county's to copy): 元旦 bridged to
# Monday 4 January, made up on Saturday 9 January.
NOTICE = """
county = "示范县"
version = 1
published_at = "2026-12-22"

[year.2027]
source = "测试用：虚构的2027年安排"
holidays = [2027-01-01, 2027-01-02, 2027-01-03, 2027-01-04,
            2027-02-05, 2027-02-06, 2027-02-07, 2027-02-08, 2027-02-09, 2027-02-10, 2027-02-11,
            2027-04-05, 2027-05-01, 2027-05-02, 2027-05-03, 2027-05-04, 2027-05-05,
            2027-06-09, 2027-09-15, 2027-10-01, 2027-10-02, 2027-10-03, 2027-10-04, 2027-10-05, 2027-10-06, 2027-10-07]
workdays = [2027-01-09, 2027-02-20, 2027-10-09]
"""


async def set_county_clock(cluster: Cluster, utc: datetime) -> int:
    """Store the county's clock offset so that its business day (and, by the exchanges, everyone's) is ``utc``."""
    offset_ms = int((utc - datetime.now(UTC)).total_seconds() * 1000)
    async with node_store(load_settings(cluster.nodes[C].config)) as (store, _):
        await store.set_meta("clock_offset_ms", str(offset_ms))
    return offset_ms


class Kit(ProcessKit):
    wait_seconds = 40.0
    poll_seconds = 0.2

    async def offsets(self, offset_ms: int) -> None:
        """Wait until every node dates business days on the county's clock (it learns it in an exchange)."""
        seen: dict[str, int] = {}

        async def learnt() -> bool:
            seen.update({n: (await self.get(n, "/api/node"))["clock_offset_ms"] for n in PATH})
            return all(abs(v - offset_ms) < 120_000 for v in seen.values())

        try:
            await self.until(learnt, f"offsets at {offset_ms}")
        except AssertionError:
            raise AssertionError(f"offsets never reached {offset_ms}: {seen}") from None


def prepared(tmp_path: Path) -> Cluster:
    assert 2027 not in library_data().years, "the calendar library knows 2027 now: move this test to a year it does not"
    cluster = process_kit.prepared(tmp_path)
    for node in cluster.nodes.values():  # duties (the correction among them) every second, not every 30 s
        text = node.config.read_text(encoding="utf-8")
        node.config.write_text(text.replace("[sync]\n", "[sync]\nduties_interval = 1.0\n"), encoding="utf-8")
    return cluster


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    cluster = prepared(tmp_path)
    offset = await set_county_clock(cluster, datetime(2026, 12, 21, 2, 0, tzinfo=UTC))  # Monday, 10:00 in China
    async with running(cluster, Kit(cluster), before=lambda kit: kit.offsets(offset)) as kit:
        yield kit


async def test_2027_deadline_provisional_then_corrected_then_overdue_at_every_level(kit: Kit, tmp_path: Path) -> None:
    registered = await kit.clients[VILLAGE].register(
        matter="MZ-003",
        applicant_name="王秀英",
        materials=["申请书", "身份证复印件", "户口簿复印件"],
        actor="代办员 李建国",
        role="代办员",
    )
    errand = registered["errand"]
    await kit.act(VILLAGE, errand, "submit")
    await kit.wait(TOWN, errand, lambda e: e["pending_to"] == TOWN, "handed to the township")
    await kit.act(TOWN, errand, "receive")
    await kit.act(TOWN, errand, "accept", errand_kind="承诺件")

    # 2026-12-21: provisional everywhere, 元旦 skipped, a real light.
    for node in PATH:
        e = await kit.wait(node, errand, lambda e: bool(e["deadline"]), "accepted")
        deadline = e["deadline"]
        assert deadline["due"] == "2027-01-05", (node, deadline)  # not 2027-01-04: 元旦 is no working day
        assert deadline["provisional"] is True and deadline["level"] == "normal" and deadline["days_left"] == 10
        assert e["stage_deadline"]["provisional"] is True
        accept = next(h for h in e["history"] if h["kind"] == "accept")
        assert (
            accept["due"] == "2027-01-05"
            and accept["due_provisional"] is True
            and accept.get("calendar_version", 0) == 0
        )
    screen = await kit.get(VILLAGE, f"/errands/{errand}")
    assert "2027-01-05（暂定 provisional）" in screen and "日历未覆盖" not in screen
    notice = await kit.get(TOWN, f"/print/{errand}/acceptance")
    assert "2027年1月5日" in notice or "2027-01-05" in notice
    assert "（暂定）" in notice and "县级工作日历公布该年度安排后将核定" in notice
    node = await kit.get(C, "/api/node")
    assert node["calendar_version"] == 0 and 2027 in node["provisional_years"]

    # The county publishes 2027 with the command an operator types.
    calendar = tmp_path / "calendar-2027.toml"
    await asyncio.to_thread(calendar.write_text, NOTICE, encoding="utf-8")
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "sanji.cli.main",
            "calendar",
            "publish",
            "--config",
            str(kit.cluster.nodes[C].config),
            str(calendar),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    for node in PATH:
        e = await kit.wait(
            node,
            errand,
            lambda e: e["deadline"]["due"] == "2027-01-06" and not e["deadline"]["provisional"],
            "corrected",
        )
        kinds = [h["kind"] for h in e["history"]]
        assert kinds.count("deadline_corrected") == 1 and kinds.count("accept") == 1
        corrected = next(h for h in e["history"] if h["kind"] == "deadline_corrected")
        assert (corrected["previous_due"], corrected["due"], corrected["node"]) == ("2027-01-05", "2027-01-06", TOWN)
        assert corrected["calendar_version"] == 1 and corrected["status"] == "applied"
    digests = {n: (await kit.clients[n].errand(errand))["digest"] for n in PATH}
    assert len(set(digests.values())) == 1, digests
    screen = await kit.get(VILLAGE, f"/errands/{errand}")
    assert "期限核定" in screen and "2027-01-05（暂定）→ 2027-01-06" in screen

    async def versions() -> dict[str, int] | None:  # every node's calendar version, visible at the county
        reports = {r["node"]: r["calendar_version"] for r in await kit.get(C, "/api/reports")}
        return reports if reports == {TOWN: 1, VILLAGE: 1} else None

    await kit.until(versions, "the calendar version of every node reported at the county")
    home = await kit.get(C, "/")
    assert "第1版 v1" in home

    # 2027-01-07: the day after the corrected due date, red and overdue at every level.
    await asyncio.to_thread(kit.cluster.stop)
    offset = await set_county_clock(kit.cluster, datetime(2027, 1, 7, 2, 0, tzinfo=UTC))
    await asyncio.to_thread(start, kit.cluster)
    await kit.offsets(offset)
    for node in PATH:
        e = await kit.clients[node].errand(errand)
        assert e["deadline"] == {**e["deadline"], "level": "red", "days_over": 1, "provisional": False}, node
        supervision = await kit.get(node, "/api/supervision")
        assert [x["id"] for x in supervision["overdue"]] == [errand], node
        assert supervision["by_level"].get("unknown", 0) == 0
