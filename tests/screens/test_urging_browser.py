"""督办 in a real Chromium, from the county's screen to the window's answer and back.

Real node processes (county, township, village). The county's supervisor urges the township on the
errand's page (督办, an answer within three working days); the urging arrives by the nodes' own sync,
and the window's home page shows it as a notice and on the worklist ("督办 待答复" with the answer
date) beside the new-work notice, passes axe's WCAG A/AA rules, and marks everything read with one
button. The window answers on the errand's page; the county's supervision page then shows the
urging answered, with the answer's text, and passes axe too. Desks are driven with JavaScript off;
axe runs in a second page with it on.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_kit import violations
from test_browser import CHROMIUM_ARGS

from sanji.demo.cluster import Cluster
from tests.e2e.process_kit import prepared, start
from tests.e2e.urging_kit import STAFF, TOWN, C, Urged

pytestmark = pytest.mark.processes

URGING_TEXT = "请于三个工作日内答复办理进度"
ANSWER_TEXT = "材料已齐，已报县民政局审批，预计下周办结"
WAIT_S = 90  # the urging and its answer travel by the nodes' own sync


def take(page: Any, base: str, errand: str, kind: str, **fields: str) -> None:
    """Open the errand's page at ``base``, fill the step's form (by field name) and submit it."""
    from playwright.sync_api import expect

    page.goto(f"{base}/errands/{errand}")
    step = page.locator(f"details.step:has(input[name=kind][value={kind}])")
    if step.get_attribute("open") is None:
        step.locator("summary").click()
    for name, value in fields.items():
        control = step.locator(f"[name={name}]")
        if control.evaluate("e => e.tagName") == "SELECT":
            control.select_option(value)
        else:
            control.fill(value)
    step.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/errands/{errand}\?done={kind}$"))
    expect(page.locator(".flash")).to_contain_text("已完成")


def reload_until(page: Any, url: str, text: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        page.goto(url)
        if text in page.locator("body").inner_text():
            return
        assert time.monotonic() < deadline, f"{url} never showed {text!r}"
        page.wait_for_timeout(500)


@pytest.fixture
def urged(tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    cluster = prepared(tmp_path)

    async def drive() -> str:
        kit = Urged(cluster)
        try:
            return await kit.accepted_errand()
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
            office = browser.new_context(java_script_enabled=False, locale="zh-CN").new_page()
            office.set_default_timeout(10_000)
            take(office, county, errand, "supervise", actor=STAFF[C], role="督查员", text=URGING_TEXT, answer_days="3")

            page = browser.new_context(java_script_enabled=False, locale="zh-CN").new_page()
            page.set_default_timeout(10_000)
            reload_until(page, town + "/", "督办 待答复")
            notices = page.locator("#notices")
            expect(notices.locator("h2")).to_contain_text("2 条未读")
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
            expect(notices.locator("h2")).to_contain_text("0 条未读")
            expect(notices.locator("li.unread")).to_have_count(0)
            expect(urging).to_contain_text(URGING_TEXT)  # read, still listed until answered
            expect(page.get_by_role("button", name="全部标为已读 Mark all read")).to_have_count(0)

            office.goto(county + "/supervision")
            expect(office.locator("#urgings")).to_contain_text("待答复 1")

            page.goto(f"{town}/errands/{errand}")  # the errand's own page says it first, with its date
            banner = page.locator("#urged")
            expect(banner).to_contain_text(URGING_TEXT)
            expect(banner).to_contain_text("前答复")
            audit.goto(f"{town}/errands/{errand}")
            assert violations(audit) == []

            take(page, town, errand, "answer_urging", actor=STAFF[TOWN], role="A岗", text=ANSWER_TEXT)
            expect(page.locator("#urged")).to_have_count(0)  # answered: no longer urged
            reload_until(office, county + "/supervision", "已答复 1")
            answered = office.locator("tr[data-urging][data-status=answered]")
            expect(answered).to_contain_text(URGING_TEXT)
            expect(answered).to_contain_text(ANSWER_TEXT)
            audit.goto(county + "/supervision")
            assert violations(audit) == []
        finally:
            browser.close()
