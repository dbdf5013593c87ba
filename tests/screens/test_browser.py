"""A real headless Chromium drives a real village node over loopback, with JavaScript switched OFF.

The desk screens promise to work as plain HTML forms; this proves it end to end: register an
errand from the catalogue's checklist, land on the printable receipt with its QR code, open the
errand and submit it to the township, and screenshot the result.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from axe_kit import AXE, violations

pytestmark = pytest.mark.processes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _fill_registration(page: Any, base: str) -> None:
    """The register form as an agent fills it for 张秀英: matter chosen, every material ticked, mandate signed."""
    page.goto(base + "/register")
    page.select_option("select#matter", "MZ-003")
    page.get_by_role("button", name="选择 Choose").click()
    page.wait_for_url(re.compile(r"/register\?matter=MZ-003$"))
    page.fill("#applicant_name", "张秀英")
    page.fill("#applicant_phone", "13812345678")
    for material in ("申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"):
        page.get_by_label(material, exact=True).check()
    page.fill("#actor", "李建国")
    page.check('input[name="mandate"]')  # nothing comes ticked: the agent has the villager's signed mandate


def test_register_receipt_and_submit_without_javascript(chromium: str, live_village: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(java_script_enabled=False, locale="zh-CN").new_page()
            page.set_default_timeout(10_000)
            _fill_registration(page, live_village)
            page.get_by_role("button", name="核对登记信息 Review").click()
            # the review: what will be signed, nothing signed yet; back to edit keeps what was typed
            expect(page.locator("#review-applicant")).to_have_text("张秀英")
            expect(page.locator("#review-missing")).to_contain_text("材料齐全")
            page.get_by_role("button", name="返回修改 Back to edit").click()
            expect(page.locator("#applicant_name")).to_have_value("张秀英")
            expect(page.locator("#applicant_phone")).to_have_value("13812345678")
            expect(page.get_by_label("户口簿复印件", exact=True)).to_be_checked()
            expect(page.locator("#mandate")).to_be_checked()
            page.get_by_role("button", name="核对登记信息 Review").click()
            page.get_by_role("button", name="确认登记 Confirm").click()

            page.wait_for_url("**/print/*/receipt")
            expect(page.locator("h1")).to_contain_text("回执")
            expect(page.locator("svg.qr")).to_be_visible()
            expect(page.locator("body")).to_contain_text("代办服务免费")
            expect(page.locator("body")).to_contain_text("张秀英")
            receipt_png = page.screenshot(path=str(tmp_path / "receipt.png"), full_page=True)

            page.get_by_role("link", name="返回办件").click()
            page.wait_for_url("**/errands/*")
            page.locator("summary", has_text="报送乡镇").click()
            page.get_by_role("button", name="报送乡镇 Submit to the township").click()
            page.wait_for_url(re.compile(r"/errands/[^/?]+\?done=submit$"))
            expect(page.locator(".flash")).to_contain_text("已完成：报送乡镇")
            expect(page.locator("table.kv")).to_contain_text("已报送 submitted")
            shot = tmp_path / "errand.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    assert receipt_png.startswith(PNG_MAGIC)


# -- the village desk on a phone ------------------------------------------------------------------

FITS = "document.scrollingElement.scrollWidth <= window.innerWidth"
WIDTH = "[document.scrollingElement.scrollWidth, window.innerWidth]"
# Pages a village agent reaches by following links from the home page; a link that downloads a
# file or leaves the desk (logout is a POST; exports are files) is not a page to lay out, nor the
# header's English switch (it changes the language and comes back: tests/screens/test_language*.py).
SKIP = re.compile(r"/export|\.xlsx|\.csv|/api/|/openapi|/schema|/metrics|/healthz|/readyz|^/lang\?")


def _seed_errand(base: str) -> str:
    """One errand registered and submitted at the village through its JSON API: a receipt, a history."""
    import httpx

    body = {
        "matter": "MZ-003",
        "applicant_name": "张秀英",
        "applicant_id_number": "430621195007307791",
        "applicant_phone": "13812345678",
        "materials": ["申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"],
        "mandate": True,
        "summary": "因病致贫，申请临时救助。" * 20,  # a long line: it must wrap, not widen the page
        "actor": "李建国",
        "role": "代办员",
    }
    with httpx.Client(base_url=base, timeout=30) as client:
        r = client.post("/api/errands", json=body)
        assert r.status_code == 201, r.text
        errand = str(r.json()["errand"])
        r = client.post(f"/api/errands/{errand}/actions", json={"kind": "submit", "actor": "李建国", "role": "代办员"})
        assert r.status_code in (200, 201), r.text
    return errand


def _village_pages(page: Any, base: str, errand: str) -> list[str]:
    """Every desk page of the village: the home page's links, and the links of the pages they lead to."""
    # the public pages are served by the village too (a villager's phone), though no desk page links them
    seen = ["/", "/register", "/register?matter=MZ-003", f"/errands/{errand}", "/public", "/complain"]
    for start in ("/", f"/errands/{errand}"):
        page.goto(base + start)
        hrefs = page.eval_on_selector_all("a[href^='/']", "els => els.map(e => e.getAttribute('href'))")
        for href in hrefs:
            if href not in seen and not SKIP.search(href):
                seen.append(href)
    return seen


def _assert_fits(page: Any, where: str) -> None:
    scroll, inner = page.evaluate(WIDTH)
    assert scroll <= inner, f"{where}: the page is {scroll} px wide in a {inner} px window (sideways scrolling)"


def test_village_pages_fit_a_phone_a_desk_and_a_zoomed_screen(chromium: str, live_village: str) -> None:
    from playwright.sync_api import sync_playwright

    errand = _seed_errand(live_village)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            for width, height, scale in ((390, 844, 3), (1366, 768, 1)):
                context = browser.new_context(
                    viewport={"width": width, "height": height}, device_scale_factor=scale, locale="zh-CN"
                )
                page = context.new_page()
                page.set_default_timeout(10_000)
                pages = _village_pages(page, live_village, errand)
                # the crawl found the village's day: the printed receipt, the guide, look-up, supervision
                for expected in ("/print/", "/print/guide/", "/lookup", "/supervision"):
                    assert any(expected in p for p in pages), (expected, pages)
                misfits = []
                for path in pages:
                    response = page.goto(live_village + path)
                    assert response is not None and response.status < 400, (path, response and response.status)
                    scroll, inner = page.evaluate(WIDTH)
                    if scroll > inner:
                        misfits.append(f"{path}: {scroll} px in a {inner} px window")
                assert not misfits, f"sideways scrolling at {width}x{height}: {misfits}"
                for path in ("/", "/supervision", f"/errands/{errand}"):  # the tables that turn into cards
                    page.goto(live_village + path)
                    problems = violations(page) if AXE.exists() else []
                    assert not problems, (path, width, problems)
                # the review page is reached by a post: fill the form and check it
                _fill_registration(page, live_village)
                page.get_by_role("button", name="核对登记信息 Review").click()
                page.wait_for_selector("#review")
                _assert_fits(page, f"review at {width}x{height}")
                problems = violations(page) if AXE.exists() else []
                assert not problems, problems
                # a failed check: each error links to its field, and the focus is on the first one
                page.get_by_role("button", name="返回修改 Back to edit").click()
                page.fill("#applicant_name", "")
                page.fill("#applicant_phone", "138-abc")
                page.get_by_role("button", name="核对登记信息 Review").click()
                page.wait_for_selector("#errors")
                assert page.evaluate("document.activeElement.id") == "applicant_name"
                assert page.get_attribute("#applicant_phone", "aria-describedby") == "err-applicant_phone"
                page.locator("#errors a[href='#applicant_phone']").click()
                assert page.evaluate("document.activeElement.id") == "applicant_phone"
                _assert_fits(page, f"register errors at {width}x{height}")
                problems = violations(page) if AXE.exists() else []
                assert not problems, problems
                context.close()
            # 200% zoom on a 1366x768 screen lays the page out in 683x384 CSS pixels at two device pixels each
            context = browser.new_context(viewport={"width": 683, "height": 384}, device_scale_factor=2, locale="zh-CN")
            page = context.new_page()
            for path in ("/register", "/register?matter=MZ-003"):
                page.goto(live_village + path)
                _assert_fits(page, f"{path} at 200% zoom")
            _fill_registration(page, live_village)
            page.get_by_role("button", name="核对登记信息 Review").click()
            page.wait_for_selector("#review")
            _assert_fits(page, "review at 200% zoom")
            assert page.evaluate("window.innerWidth") == 683
            context.close()
        finally:
            browser.close()


def test_a_long_deadline_light_fits_a_phone_and_leaves_the_columns_room(chromium: str, live_town: str) -> None:
    """The longest light a worklist shows (正常 剩30个工作日（暂定） 30 working days left (provisional), a deadline in a
    year the calendar does not cover yet) once pushed a 390-px phone 24 px sideways and, at 1024 px, squeezed the
    receipt and matter columns into three lines each: it breaks at a space now, never inside a Chinese word."""
    import httpx
    from playwright.sync_api import sync_playwright

    window = {"actor": "王晓红", "role": "窗口A岗"}
    body = {
        "matter": "MZ-001",  # 30 working days: the deadline falls in a year the test calendar holds as provisional
        "applicant_name": "张秀英",
        "materials": ["申请书", "身份证复印件", "户口簿复印件", "家庭收入及财产状况声明", "患病或残疾证明"],
        "in_person": True,
        **window,
    }
    with httpx.Client(base_url=live_town, timeout=30) as client:
        r = client.post("/api/errands", json=body)
        assert r.status_code == 201, r.text
        errand = str(r.json()["errand"])
        r = client.post(f"/api/errands/{errand}/actions", json={"kind": "accept", "errand_kind": "上报件", **window})
        assert r.status_code in (200, 201), r.text
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
            page.goto(live_town + "/")
            light = page.locator("#errands ~ table .light.green").first
            assert "剩" in light.inner_text()
            _assert_fits(page, "the township's home with a long light, on a phone")
            page.set_viewport_size({"width": 1024, "height": 768})
            page.goto(live_town + "/")
            row = page.locator("#errands ~ table tr", has=page.locator(".light.green")).first
            receipt = row.locator("td").first.bounding_box()
            assert receipt is not None and receipt["height"] < 60, receipt  # two lines at most, not three or four
        finally:
            browser.close()
