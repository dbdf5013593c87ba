"""The township's home page in a real Chromium: its notices and the county's urging.

Real node processes (county, township, village); the county urges the township through its API,
the urging arrives by the nodes' own sync, and the window's home page shows it as a notice and on
the worklist ("督办 待答复" with the answer date) beside the new-work notice, passes axe's WCAG A/AA
rules, and marks everything read with one button; the county's supervision page passes axe too.
The desk is driven with JavaScript off; axe runs in a second page with it on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_kit import violations
from test_browser import CHROMIUM_ARGS

from sanji.demo.cluster import Cluster
from tests.e2e.process_kit import prepared, start
from tests.e2e.urging_kit import TOWN, C, Urged

pytestmark = pytest.mark.processes

URGING_TEXT = "请于三个工作日内答复办理进度"


@pytest.fixture
def urged(tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    cluster = prepared(tmp_path)

    async def drive() -> str:
        kit = Urged(cluster)
        try:
            errand = await kit.accepted_errand()
            await kit.act(C, errand, "supervise", text=URGING_TEXT, answer_days=3)
            await kit.page(TOWN, "/", "督办 待答复")
            return errand
        finally:
            await kit.close()

    try:
        start(cluster)
        yield cluster, asyncio.run(drive())
    finally:
        cluster.stop()


def test_the_window_sees_its_notices_and_the_urging_and_marks_them_read(
    chromium: str, urged: tuple[Cluster, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    cluster, errand = urged
    town, county = cluster.nodes[TOWN].url, cluster.nodes[C].url
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(java_script_enabled=False, locale="zh-CN").new_page()
            page.set_default_timeout(10_000)
            page.goto(town + "/")
            notices = page.locator("#notices")
            expect(notices.locator("h2")).to_contain_text("2 未读 unread")
            urging = notices.locator('li[data-kind="urging"]')
            expect(urging).to_contain_text("督办 待答复")
            expect(urging).to_contain_text(URGING_TEXT)
            expect(urging).to_contain_text("未读 new")
            expect(urging.locator("a")).to_have_attribute("href", f"/errands/{errand}")
            expect(notices.locator('li[data-kind="new_work"]')).to_contain_text("新到办件")
            expect(page.locator("span.urging")).to_contain_text("督办 待答复")
            audit = browser.new_context(locale="zh-CN").new_page()  # axe itself needs JavaScript
            audit.goto(town + "/")
            assert violations(audit) == []
            page.screenshot(path=str(tmp_path / "town-home.png"), full_page=True)

            page.get_by_role("button", name="全部标为已读 Mark all read").click()
            page.wait_for_url("**/#notices")
            expect(notices.locator("h2")).to_contain_text("0 未读 unread")
            expect(notices.locator("li.unread")).to_have_count(0)
            expect(urging).to_contain_text(URGING_TEXT)  # read, still listed until answered
            expect(page.get_by_role("button", name="全部标为已读 Mark all read")).to_have_count(0)

            page.goto(county + "/supervision")
            expect(page.locator("#urgings")).to_contain_text("1 待答复 open")
            audit.goto(county + "/supervision")
            assert violations(audit) == []
        finally:
            browser.close()
