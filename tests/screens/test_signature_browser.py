"""签名核对 in a real Chromium: the applicant signs the delivery in the signature box with the mouse, and the
printed 送达回证 shows that signature; with no pointer device the agent records, by keyboard alone, that the
paper 送达回证 was signed. Either way the stored delivery carries a signature, and an empty one is refused
on the form. The errand page with the box drawn on, and the printed confirmation, pass axe's WCAG A/AA rules.

The township decides and delivers a walk-in errand itself, so one node serves the whole walk.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_kit import AXE, violations
from test_browser import CHROMIUM_ARGS

from sanji.web.documents import SIGNATURE_PREFIX, signature_path

pytestmark = pytest.mark.processes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def decided(base: str) -> str:
    """A walk-in errand at the township, accepted and approved: its result waits to be delivered."""
    form = {"matter": "MZ-003", "applicant_name": "张秀英", "in_person": True, "actor": "王晓红"}
    form["materials"] = ["申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"]
    errand = str(httpx.post(base + "/api/errands", json=form, timeout=10).json()["errand"])
    for step in ({"kind": "accept"}, {"kind": "decide", "outcome": "approved", "document": "城民救〔2026〕7号"}):
        r = httpx.post(f"{base}/api/errands/{errand}/actions", json={"actor": "王晓红", **step}, timeout=10)
        assert r.status_code == 201, r.text
    return errand


def delivery_of(base: str, errand: str) -> dict[str, Any]:
    history = httpx.get(f"{base}/api/errands/{errand}", timeout=10).json()["history"]
    return next(h for h in history if h["kind"] == "deliver")


def open_deliver(page: Any, base: str, errand: str) -> Any:
    page.goto(f"{base}/errands/{errand}")
    step = page.locator("details.step", has=page.locator("input[name=kind][value=deliver]"))
    if step.get_attribute("open") is None:
        step.locator("summary").click()
    step.locator("input[name=actor]").fill("王晓红")
    return step


def sign(page: Any, canvas: Any) -> None:
    """Two strokes with the mouse, as a villager writes a short name."""
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 200, box
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    for stroke in (
        [(0.15, 0.6), (0.2, 0.3), (0.25, 0.7), (0.3, 0.35), (0.35, 0.65)],
        [(0.5, 0.3), (0.6, 0.5), (0.55, 0.7), (0.7, 0.4), (0.85, 0.55)],
    ):
        page.mouse.move(x + stroke[0][0] * w, y + stroke[0][1] * h)
        page.mouse.down()
        for fx, fy in stroke[1:]:
            page.mouse.move(x + fx * w, y + fy * h, steps=6)
        page.mouse.up()


def test_the_applicant_signs_on_screen_or_on_paper(chromium: str, live_town: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    drawn, paper = decided(live_town), decided(live_town)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(10_000)

            # Nothing signed: the form says what is missing and keeps the box.
            step = open_deliver(page, live_town, drawn)
            canvas = step.locator("canvas")
            expect(canvas).to_be_visible()
            expect(step.locator("[data-status]")).to_have_text(re.compile("尚未签名"))
            step.locator("button[type=submit]").click()
            expect(page.locator(".field-error")).to_have_text(re.compile("^请申请人在签名框内签名"))

            # Signed with the mouse: the hidden field holds the strokes as a path; a mistake is cleared.
            step = open_deliver(page, live_town, drawn)
            canvas = step.locator("canvas")
            sign(page, canvas)
            field = step.locator("input[name=signature]")
            first = field.input_value()
            assert first.startswith(SIGNATURE_PREFIX) and signature_path(first), first
            step.locator("[data-clear]").click()
            assert field.input_value() == ""
            sign(page, canvas)
            expect(step.locator("[data-status]")).to_have_text(re.compile("已签名"))
            assert len(field.input_value()) < 4000
            if AXE.exists():
                assert violations(page) == [], "the errand page with the signature box drawn on"
            page.screenshot(path=str(tmp_path / "deliver-form.png"), full_page=True)
            step.locator("button[type=submit]").click()
            page.wait_for_url(re.compile(rf"/errands/{drawn}\?done=deliver$"))
            expect(page.locator("table.stack")).to_contain_text("已在签名框手写签名")

            stored = str(delivery_of(live_town, drawn)["signature"])
            assert stored.startswith(SIGNATURE_PREFIX) and signature_path(stored).count("M") == 2, stored

            page.goto(f"{live_town}/print/{drawn}/delivery")
            path = page.locator("svg#signature path")
            expect(path).to_have_attribute("d", signature_path(stored))
            assert page.locator("svg#signature").bounding_box()["width"] > 100  # type: ignore[index]
            if AXE.exists():
                assert violations(page) == [], "the printed delivery confirmation"
            shot = page.screenshot(path=str(tmp_path / "delivery.png"), full_page=True)
            assert shot.startswith(PNG_MAGIC)

            # No pointer device: the paper 送达回证 was signed, recorded by keyboard alone.
            step = open_deliver(page, live_town, paper)
            page.focus("#deliver-signature-paper")
            page.keyboard.press("Space")
            expect(page.locator("#deliver-signature-paper")).to_be_checked()
            expect(step.locator("[data-status]")).to_have_text(re.compile("纸质送达回证"))
            page.keyboard.press("Enter")  # submits the form the checkbox is in
            page.wait_for_url(re.compile(rf"/errands/{paper}\?done=deliver$"))
            assert delivery_of(live_town, paper)["signature"] == "纸质送达回证已签字（签收人：张秀英）"
            page.goto(f"{live_town}/print/{paper}/delivery")
            expect(page.locator("#signature")).to_have_text("纸质送达回证已签字（签收人：张秀英）")
            assert page.locator("svg#signature").count() == 0
        finally:
            browser.close()


def test_without_javascript_the_paper_option_is_the_way(chromium: str, live_town: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    errand = decided(live_town)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(java_script_enabled=False, locale="zh-CN").new_page()
            page.set_default_timeout(10_000)
            step = open_deliver(page, live_town, errand)
            expect(step.locator("canvas")).to_be_hidden()  # no box that could not be drawn on
            step.get_by_label(re.compile("申请人已在纸质送达回证上签字")).check()
            step.locator("button[type=submit]").click()
            page.wait_for_url(re.compile(rf"/errands/{errand}\?done=deliver$"))
        finally:
            browser.close()
    assert delivery_of(live_town, errand)["signature"].startswith("纸质送达回证已签字")
