"""Matter search in a real Chromium (issue 13): a village agent types initials and the matter list follows.

The village runs as deployed (``[auth] required = true``) on loopback; the agent logs in through the form, on a
phone's width (390 px). Typing ``dbs`` (keyboard only) leaves 最低生活保障(低保)申请 in the list, chosen, and the
count says so; 选择 opens the form for it, whose 换事项 list has the same search. The public guide filters as
a stranger types (the search route is public). axe-core passes on both pages in Chinese and in English.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from axe_kit import phone_problems
from screens_kit import make_app, prepared_node

from sanji.config import AuthSection
from sanji.demo.cluster import free_port
from tests.auth.auth_kit import PASSWORD, add
from tests.enroll_kit import serving

pytestmark = pytest.mark.processes
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture
def live_village(tmp_path: Path) -> Iterator[str]:
    """A village with logins on, served on a free loopback port, holding the county's catalogue."""
    cluster, settings = prepared_node(tmp_path, "T01V01")
    config = cluster.nodes["T01V01"].config
    config.write_text(config.read_text(encoding="utf-8").replace("required = false", "required = true"), "utf-8")
    add(config, "李建国", "village_agent")
    app = make_app(msgspec.structs.replace(settings, auth=AuthSection(required=True)))
    with serving(app, free_port(), name="T01V01") as url:
        yield url


def test_an_agent_types_initials_and_the_matter_list_follows(chromium: str, live_village: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = live_village
    problems: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
            page = context.new_page()
            page.set_default_timeout(15_000)

            def check(name: str) -> None:
                problems[name] = phone_problems(page)

            page.goto(url + "/login?next_url=/register")
            page.fill("#name", "李建国")
            page.fill("#password", PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url(url + "/register")

            visible = page.locator("#matter option:not([hidden])[value]:not([value=''])")
            expect(visible).to_have_count(42)
            page.locator("#q").focus()
            page.keyboard.type("dbs", delay=60)  # keyboard only, as an agent types
            expect(visible).to_have_count(1)
            expect(visible.first).to_have_attribute("value", "MZ-001")
            expect(page.locator("#matter")).to_have_value("MZ-001")
            expect(page.locator("#q-count")).to_contain_text("找到 1 项")
            check("register_zh")
            page.screenshot(path=str(tmp_path / "village-register-search-phone.png"), full_page=True)

            page.keyboard.press("Backspace")  # "db": 低保 and 大病, best first
            expect(visible).to_have_count(2)
            expect(visible.nth(1)).to_have_attribute("value", "YB-003")
            page.keyboard.press("Backspace")
            page.keyboard.press("Backspace")
            expect(visible).to_have_count(42)
            expect(page.locator("#q-count")).to_contain_text("共 42 项")
            page.keyboard.type("hukou", delay=30)
            expect(visible).to_have_count(1)
            page.keyboard.press("Tab")  # to 查找; then the list; then 选择
            page.keyboard.press("Tab")
            expect(page.locator("#matter")).to_be_focused()
            page.keyboard.press("Tab")
            page.keyboard.press("Enter")
            expect(page.locator("form[method=post] #matter")).to_have_value("GA-001")
            page.locator("#q").fill("dbs")  # 换事项 has the same search: the list follows, 户口迁移 stays in it
            expect(page.locator("#matter")).to_have_value("MZ-001")
            expect(visible).to_have_count(2)
            expect(page.locator("#q-count")).to_contain_text("找到 1 项")
            page.get_by_role("button", name="换事项").click()
            expect(page.locator('a[href="/print/guide/MZ-001"]')).to_be_visible()

            context.add_cookies([{"name": "lang", "value": "en", "url": url}])
            page.goto(url + "/register?q=dbs&find=1")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.locator("#q-count")).to_contain_text("1 found")
            check("register_en")

            stranger = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}).new_page()
            page = stranger
            page.goto(url + "/public?levels=all")
            rows = page.locator("tr[data-matter]:not([hidden])")
            expect(rows).to_have_count(42)
            total = httpx.get(url + "/api/catalogue/search", params={"q": "ylbx"}, timeout=30).json()["total"]
            assert 1 < total < 42
            page.locator("#q").fill("ylbx")
            expect(rows).to_have_count(total)  # in their categories, as the guide groups them
            expect(page.locator('tr[data-matter="RS-002"]')).to_be_visible()
            expect(page.locator('tr[data-matter="GA-001"]')).to_be_hidden()
            expect(page.locator("#q-count")).to_contain_text(f"找到 {total} 项")
            check("public_zh")
            page.context.add_cookies([{"name": "lang", "value": "en", "url": url}])
            page.goto(url + "/public?q=hukou")
            check("public_en")
        finally:
            browser.close()
    bad = {name: found for name, found in problems.items() if found}
    assert not bad, bad
