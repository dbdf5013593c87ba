"""A real headless Chromium (JavaScript off) at a county node served over loopback: the office reads the
business reports beside its own count (the difference marked), picks another period, reads the rules
and publishes the next version from the form — plain HTML end to end."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from test_business_http import reporting_county  # noqa: F401  (fixture)

from sanji.config import NodeSettings
from sanji.demo.cluster import free_port
from sanji.tiers import create_app

pytestmark = pytest.mark.processes
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture
def live_county(reporting_county: NodeSettings) -> Iterator[str]:  # noqa: F811
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("SANJI_REQUIRE_BROWSER", "") == "1":
            pytest.fail(f"SANJI_REQUIRE_BROWSER=1 but no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}: the business browser test did NOT run (apt-get install -y chromium)")
    port = free_port()
    app = create_app(reporting_county)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="county-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the county node did not start within 15 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_business_reports_and_rules_in_a_browser(live_county: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_context(java_script_enabled=False, locale="zh-CN").new_page()
            page.set_default_timeout(10_000)
            page.goto(live_county + "/office/business/?from=2026-11-02&to=2026-11-13")
            expect(page.locator("h2").first).to_contain_text("业务报表")
            t01 = page.locator("#business-T01")
            expect(t01).to_contain_text("2 / 12")
            expect(t01.locator(".reported-satisfied .warn")).to_contain_text("0 (-1)")
            expect(page.locator("#computed-T01 .computed-satisfied")).to_have_text("1")
            page.screenshot(path=str(tmp_path / "business.png"), full_page=True)
            page.fill("#from", "2026-11-06")
            page.fill("#to", "2026-11-06")
            page.get_by_role("button", name="查看 Show").click()
            page.wait_for_url(re.compile(r"from=2026-11-06"))
            expect(page.locator("#business-T01")).to_contain_text("1 / 1")

            page.goto(live_county + "/office/rules/")
            expect(page.locator("#rule-overdue_day")).to_contain_text("扣 2 分")
            draft = json.loads(page.locator("#rules-text").input_value())
            for item in draft["items"]:
                if item["code"] == "overdue_day":
                    item["points"] = -4
            page.locator("#rules-text").fill(json.dumps(draft, ensure_ascii=False))
            page.get_by_role("button", name="签发并下发 Sign and publish").click()
            expect(page.locator(".flash")).to_contain_text("已发布")
            expect(page.locator("#rule-overdue_day")).to_contain_text("扣 4 分")
            expect(page.locator("h2").first).to_contain_text("第2版")
        finally:
            browser.close()
