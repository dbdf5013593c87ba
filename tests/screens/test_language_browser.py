"""The English switch and the notice badge at a village desk, in a real Chromium with JavaScript off.

The agent's home page counts its unread notices; the header's badge shows the same number on every
staff page and links to them; after 全部标为已读 it shows 0. The switch goes to English and back,
each time to the same page, with ``<html lang>`` following; axe-core passes in both languages.
"""

from __future__ import annotations

import re

import httpx
import pytest
from axe_kit import violations
from test_browser import CHROMIUM_ARGS

pytestmark = pytest.mark.processes


def _register(base: str) -> None:
    """One errand registered at the village (not yet submitted): new work on the agent's desk."""
    body = {
        "matter": "MZ-003",
        "applicant_name": "张秀英",
        "applicant_id_number": "430621195007307791",
        "applicant_phone": "13812345678",
        "materials": ["申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"],
        "mandate": True,
        "actor": "李建国",
        "role": "代办员",
    }
    r = httpx.post(base + "/api/errands", json=body, timeout=30)
    assert r.status_code == 201, r.text


def test_the_switch_and_the_notice_badge(chromium: str, live_village: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    _register(live_village)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(java_script_enabled=False, locale="zh-CN").new_page()
            page.set_default_timeout(10_000)
            audit = browser.new_context(locale="zh-CN").new_page()  # axe itself needs JavaScript
            page.goto(live_village + "/")
            found = re.search(r"(\d+) 条未读", page.locator("#notices-title").inner_text())
            assert found and found.group(1) == "1", page.locator("#notices-title").inner_text()
            for path in ("/", "/supervision", "/register", "/office/ledger", "/office/sms/"):
                page.goto(live_village + path)
                expect(page.locator("#notice-badge b")).to_have_text("1")
            expect(page.locator("#notice-badge")).to_contain_text("通知")

            page.get_by_role("link", name="English").click()
            page.wait_for_url("**/office/sms/")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.locator("nav a").first).to_have_text("Home 首页")
            expect(page.locator("nav a").first.locator("span")).to_have_attribute("lang", "zh-CN")
            expect(page.locator("#notice-badge")).to_contain_text("Notices")
            for lang in ("zh", "en"):
                audit.context.add_cookies([{"name": "lang", "value": lang, "url": live_village}])
                for path in ("/", "/supervision", "/office/sms/", "/public", "/lookup"):
                    audit.goto(live_village + path)
                    assert audit.evaluate("document.documentElement.lang") == ("en" if lang == "en" else "zh-CN")
                    assert violations(audit) == [], (lang, path)

            page.locator("#notice-badge").click()
            page.wait_for_url("**/#notices")
            page.locator("#notices-read").click()
            page.wait_for_url("**/#notices")
            expect(page.locator("#notice-badge b")).to_have_text("0")
            page.goto(live_village + "/supervision?sample=2")
            expect(page.locator("#notice-badge b")).to_have_text("0")
            page.get_by_role("link", name="中文").click()
            page.wait_for_url("**/supervision?sample=2")
            expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
            page.goto(live_village + "/public")  # a public page: nobody's notices
            expect(page.locator("#notice-badge")).to_have_count(0)
        finally:
            browser.close()
