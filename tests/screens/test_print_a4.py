"""A printed document is one A4 sheet, its signatures on it: a village agent prints a receipt for every errand,
and a second sheet (the notes and both signature lines on it) is paper the villager loses. Printed by the real
browser (Chromium's own PDF of the page, with the page's ``@page`` size and margins)."""

from __future__ import annotations

import re

import httpx
import pytest
from screens_kit import MZ003_ALL, PROMISED

pytestmark = pytest.mark.processes

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def pages_of(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf))


def test_the_receipt_and_the_guide_print_on_one_a4_sheet(chromium: str, live_village: str) -> None:
    from playwright.sync_api import sync_playwright

    form = {
        "matter": "MZ-003",
        "applicant_name": "张秀英",
        "applicant_phone": "13812345678",
        "materials": list(MZ003_ALL),
        "summary": "家中老人患病，申请临时救助",
        "actor": "李建国",
    }
    registered = httpx.post(live_village + "/api/errands", json=form, timeout=10)
    assert registered.status_code == 201, registered.text
    errand = registered.json()["errand"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            for path in (f"/print/{errand}/receipt", "/print/guide/MZ-003"):
                page.goto(live_village + path)
                page.emulate_media(media="print")
                pdf = page.pdf(prefer_css_page_size=True, print_background=True)
                assert pages_of(pdf) == 1, f"{path} prints on {pages_of(pdf)} A4 sheets"
        finally:
            browser.close()


def test_the_townships_notices_print_on_one_a4_sheet(chromium: str, live_town: str) -> None:
    from playwright.sync_api import sync_playwright

    def walk_in(*steps: dict[str, object]) -> str:
        form = {"matter": "MZ-003", "applicant_name": "张秀英", "in_person": True, "actor": "王晓红"}
        form["materials"] = ["申请书", "身份证复印件", "户口簿复印件"]
        errand = httpx.post(live_town + "/api/errands", json=form, timeout=10).json()["errand"]
        for step in steps:
            r = httpx.post(f"{live_town}/api/errands/{errand}/actions", json={"actor": "王晓红", **step}, timeout=10)
            assert r.status_code == 201, r.text
        return str(errand)

    provisional = walk_in(
        {
            "kind": "accept",
            "errand_kind": "承诺件",
            "provisional": ["困难情况证明材料"],
            "promise_by": PROMISED.isoformat(),
        },
        {"kind": "request_supplement", "items": ["村委会证明", "医疗费票据", "银行流水"], "text": "原件核对"},
    )
    returned = walk_in({"kind": "accept"}, {"kind": "return", "reasons": "申请书未签名，请签名后重新申请"})
    refused = walk_in({"kind": "not_accept", "reasons": "申请人户籍不在本镇，请到户籍所在地申请"})
    strokes = "".join(f"M{20 + 7 * i} 80l5 -30 5 60 5 -30" for i in range(50))  # a long signature from the pad
    granted = walk_in(
        {"kind": "accept"},
        {"kind": "decide", "outcome": "approved", "document": "城民救〔2026〕12号"},
        {"kind": "deliver", "confirmed_by": "张秀英", "signature": "svg:400x150:" + strokes},
    )
    on_paper = walk_in(  # signed on the paper receipt: blank lines for the pen, the deliverer's seal under them
        {"kind": "accept"},
        {"kind": "decide", "outcome": "approved", "document": "城民救〔2026〕13号"},
        {"kind": "deliver", "confirmed_by": "张秀英", "signature": "纸质送达回证已签字"},
    )
    reasons = "经入户调查，申请人家庭上月人均收入高于本县临时救助标准，且无突发性、紧迫性困难情形。" * 4
    not_granted = walk_in(
        {"kind": "accept"}, {"kind": "decide", "outcome": "refused", "document": "不予办理", "reasons": reasons}
    )
    documents = [
        (provisional, "acceptance"),
        (provisional, "commitment"),
        (provisional, "supplement"),
        (returned, "return"),
        (refused, "non-acceptance"),
        (granted, "decision"),
        (granted, "delivery"),
        (on_paper, "delivery"),
        (not_granted, "decision"),
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            for errand, slug in documents:
                page.goto(f"{live_town}/print/{errand}/{slug}")
                page.emulate_media(media="print")
                pdf = page.pdf(prefer_css_page_size=True, print_background=True)
                assert pages_of(pdf) == 1, f"{slug} prints on {pages_of(pdf)} A4 sheets"
                # The signing blocks stay on the sheet: a <br> in a flex row once put 日期 and the seal beside the
                # line instead of under it, and the deliverer's seal ran past the paper's edge.
                for media in ("print", "screen"):
                    page.emulate_media(media=media)
                    past = page.evaluate(
                        """() => {
                            const sheet = document.querySelector('.sheet').getBoundingClientRect();
                            return [...document.querySelectorAll('.sign, .sign *')]
                                .filter(e => e.getBoundingClientRect().right > sheet.right + 1)
                                .map(e => e.textContent.slice(0, 40));
                        }"""
                    )
                    assert past == [], (slug, media, past)
        finally:
            browser.close()


def test_long_names_wrap_inside_the_sheet(chromium: str, live_village: str) -> None:
    """A material or applicant name of 60 letters without a space ran off the A4 receipt (probe, session 21): only
    the facts table wrapped, and only on a narrow screen. Every line of the receipt stays inside its sheet."""
    from playwright.sync_api import sync_playwright

    long_material = "M" * 60 + "（原件）"
    form = {
        "matter": "MZ-003",
        "applicant_name": "W" * 60,
        "applicant_phone": "13812345678",
        "materials": [*MZ003_ALL, long_material],
        "summary": "S" * 120,
        "actor": "李建国",
    }
    registered = httpx.post(live_village + "/api/errands", json=form, timeout=10)
    assert registered.status_code == 201, registered.text
    errand = registered.json()["errand"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{live_village}/print/{errand}/receipt")
            for media in ("print", "screen"):
                page.emulate_media(media=media)
                past = page.evaluate(
                    """() => {
                        const sheet = document.querySelector('.sheet').getBoundingClientRect();
                        return [...document.querySelectorAll('.sheet li, .sheet td, .sheet p')]
                            .filter(e => e.getBoundingClientRect().right > sheet.right + 1)
                            .map(e => e.textContent.slice(0, 40));
                    }"""
                )
                assert past == [], (media, past)
            page.emulate_media(media="print")
            assert long_material in page.inner_text(".sheet").replace("\n", "")
        finally:
            browser.close()
