"""The administrator's three pages in a real Chromium, on a real county node over loopback.

The admin logs in, creates an account and sees its one-time password, opens the catalogue (and a
matter) and the calendar; every page passes axe's WCAG A/AA rules and fits a 390 px phone (the
tables become cards), and the menu links the three pages for the admin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_kit import violations
from screens_kit import make_app, prepared_node, served
from test_browser import CHROMIUM_ARGS, WIDTH

from sanji.cli import accounts_cmd

pytestmark = pytest.mark.processes

ADMIN, PASSWORD = "县管理员", "admin pass 9"
PAGES = (
    "/admin/accounts",
    "/admin/catalogue",
    "/admin/calendar?year=2026",
    "/admin/calendar?year=2028",
    "/account/password",  # every account's own password page
)


# the menu's links laid out on more than one line box (a label split between two lines)
BROKEN_MENU_ITEMS = (
    "() => [...document.querySelectorAll('nav a')].filter(a => a.getClientRects().length > 1).map(a => a.textContent)"
)


@pytest.fixture
def live_county(tmp_path: Path) -> Iterator[str]:
    cluster, settings = prepared_node(tmp_path, "C")
    assert accounts_cmd.run_add(str(cluster.nodes["C"].config), ADMIN, "admin", PASSWORD) == 0
    with served(make_app(settings), name="county") as base:
        yield base


def _log_in(page: Any, base: str) -> None:
    page.goto(base + "/login")
    page.fill("#name", ADMIN)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="登录 Log in").click()
    page.wait_for_url(base + "/admin/accounts/")  # an administrator lands on the accounts page


def test_the_admin_pages_pass_axe_and_fit_a_phone(chromium: str, live_county: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base = live_county
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            desk = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 768}).new_page()
            desk.set_default_timeout(15_000)
            _log_in(desk, base)
            nav = desk.get_by_role("navigation")
            for href in ("/admin/accounts", "/admin/catalogue", "/admin/calendar"):
                expect(nav.locator(f'a[href="{href}"]')).to_have_count(1)
            # the county's long menu wraps between its items, never inside one ("业务报表" / "Reports" apart)
            for width in (1366, 1280, 1180, 1024, 900, 800):
                desk.set_viewport_size({"width": width, "height": 768})
                broken = desk.evaluate(BROKEN_MENU_ITEMS)
                assert broken == [], f"menu items broken across lines at {width} px: {broken}"
            desk.set_viewport_size({"width": 1366, "height": 768})
            desk.goto(base + "/admin/accounts")
            desk.fill("#name", "王芳")
            desk.select_option("#role", "window_a")
            desk.get_by_role("button", name="创建账号 Create account").click()
            expect(desk.locator("#password")).to_be_visible()
            assert violations(desk) == [], "accounts page with a one-time password"
            desk.screenshot(path=str(tmp_path / "admin-accounts.png"), full_page=True)
            for path in PAGES:
                desk.goto(base + path)
                assert violations(desk) == [], path
            desk.goto(base + "/admin/catalogue")
            desk.locator("#matters a").first.click()
            expect(desk.locator("#materials")).to_be_visible()
            assert violations(desk) == [], "a matter's detail"
            desk.goto(base + "/admin/calendar?year=2028")
            expect(desk.locator("#status")).to_contain_text("暂定")

            phone = browser.new_context(
                locale="zh-CN", viewport={"width": 390, "height": 844}, device_scale_factor=2
            ).new_page()
            _log_in(phone, base)
            for path in PAGES:
                phone.goto(base + path)
                scroll, inner = phone.evaluate(WIDTH)
                assert scroll <= inner, f"{path}: {scroll} px wide in a {inner} px phone"
                name = path.strip("/").replace("/", "-").replace("?year=", "-")
                phone.screenshot(path=str(tmp_path / f"{name}-phone.png"), full_page=True)
        finally:
            browser.close()
