"""The county office's pages and the SMS outbox in a real Chromium, in Chinese and in English.

At a phone's width (390 px), a desk's (1366×768) and 200% zoom (683 CSS px) no office page scrolls
sideways: the ledger, statistics, assessment, business-report, rules and outbox tables turn into
one card per row, each cell led by its column's name, as the village tables do. axe-core's WCAG
A/AA rules pass in both languages; the header's English switch comes back to the page it was on
with ``<html lang="en">``. (The switch and the notice badge at a village desk:
``tests/screens/test_language_browser.py``.)
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from test_ledger_http_cli import county_node  # noqa: F401  (fixture)

from sanji.config import NodeSettings
from sanji.demo.cluster import Cluster, free_port
from sanji.keys import read_directory, read_key
from sanji.notify.outbox import DEAD, SENT, Message, Outbox
from sanji.store import Store, open_database
from sanji.tiers import desk as tier_desk
from sanji.web.app import build_app
from tests.screens.axe_kit import violations

pytestmark = pytest.mark.processes
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PAGES = (
    "/office/ledger?from=2026-11-01&to=2026-11-30",
    "/office/assessment/?quarter=2026Q4",
    "/office/business/?from=2026-11-01&to=2026-11-30",
    "/office/rules/",
    "/office/sms/",
)
WIDTH = "[document.scrollingElement.scrollWidth, window.innerWidth]"


async def _seed_outbox(settings: NodeSettings) -> None:
    """Three messages at the county: one waiting, one sent, one dead letter with a long error."""
    db = await open_database(settings.db_url)
    try:
        directory = read_directory(settings.path(settings.node.directory))
        store = Store(db, node_id="C", key=read_key(settings.path(settings.node.key_file)), directory=directory)
        outbox = Outbox(store, settings.sms)
        text = "【示例县政务服务】您申请的临时救助已受理，回执号T01V01-20261102-0001-7，请留意后续通知。"
        await outbox.enqueue(
            [
                Message(
                    key=f"k{i}",
                    event="accepted",
                    errand="E1",
                    recipient="applicant",
                    contact="",
                    shown_to="138****5678",
                    text=text,
                )
                for i in range(3)
            ]
        )
        ids = sorted(r["id"] for r in await outbox.rows())
        await outbox._update(ids[1], status=SENT, sent_at=time.time(), attempts=1)
        await outbox._update(
            ids[2], status=DEAD, attempts=5, last_error="gateway refused: 40001 invalid-signature " * 3
        )
    finally:
        await db.dispose()


@pytest.fixture
def live_office(county_node: tuple[Cluster, NodeSettings]) -> Iterator[str]:  # noqa: F811
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("SANJI_REQUIRE_BROWSER", "") == "1":
            pytest.fail(f"SANJI_REQUIRE_BROWSER=1 but no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}: the office phone test did NOT run (apt-get install -y chromium)")
    asyncio.run(_seed_outbox(county_node[1]))
    port = free_port()
    app = build_app(county_node[1], desk=tier_desk("county"), title="test")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="office-uvicorn", daemon=True)
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


def _switch(page: Any, to: str) -> None:
    """Follow the header's English / 中文 link; it must come back to the same page."""
    before = page.url
    page.locator("#lang-switch").click()
    page.wait_for_load_state()
    assert page.url == before, (before, page.url)
    assert page.evaluate("document.documentElement.lang") == ("en" if to == "en" else "zh-CN")


def test_office_pages_fit_a_phone_a_desk_and_a_zoomed_screen_in_both_languages(
    live_office: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            for width, height, scale in ((390, 844, 3), (1366, 768, 1), (683, 384, 2)):
                context = browser.new_context(
                    viewport={"width": width, "height": height}, device_scale_factor=scale, locale="zh-CN"
                )
                page = context.new_page()
                page.set_default_timeout(10_000)
                for lang in ("zh", "en"):
                    page.goto(live_office + PAGES[0])
                    if lang == "en":
                        _switch(page, "en")
                    misfits, problems = [], []
                    for path in PAGES:
                        response = page.goto(live_office + path)
                        assert response is not None and response.status == 200, path
                        assert page.evaluate("document.documentElement.lang") == ("en" if lang == "en" else "zh-CN")
                        scroll, inner = page.evaluate(WIDTH)
                        if scroll > inner:
                            misfits.append(f"{path}: {scroll} px in a {inner} px window")
                        if width != 683:
                            problems += [f"{path}: {v}" for v in violations(page)]
                    assert not misfits, f"sideways scrolling at {width}x{height} ({lang}): {misfits}"
                    assert not problems, (width, lang, problems)
                    if width == 390:
                        # the chart scales to its box: both axes and the last bar inside the window, no scrolling
                        page.goto(live_office + "/office/ledger?from=2026-11-01&to=2026-11-30")
                        box = page.locator("figure#chart svg.phone").evaluate(
                            "e => [e.getBoundingClientRect().right, e.parentElement.getBoundingClientRect().right,"
                            " document.documentElement.clientWidth]"
                        )
                        assert box[0] <= box[1] + 0.5 and box[0] <= box[2], box
                        page.goto(live_office + "/office/sms/")
                        page.screenshot(path=str(tmp_path / f"sms-390-{lang}.png"), full_page=True)
                    if lang == "en":
                        _switch(page, "zh")
                context.close()
        finally:
            browser.close()


STAFF = [f"{family}{given}" for family in "王李张刘陈杨" for given in ("芳", "伟", "敏")]  # 18 people, as a county has


def _score_a_county(base: str) -> None:
    """An entry for each of 18 people across both township centres, so the scores table is demo-sized."""
    import httpx

    with httpx.Client(base_url=base, timeout=30) as client:
        for i, name in enumerate(STAFF):
            body = {"quarter": "2026Q4", "target": "staff", "subject": name, "item": "late", "count": 1 + i % 3}
            r = client.post("/api/office/assessment/entries", json={**body, "centre": f"T0{1 + i % 2}", "by": "督查员"})
            assert r.status_code == 201, r.text


# Each text of the chart the window shows, at the size it is drawn in CSS px: its font size times the scale from
# the svg's viewBox to its box on the page.
CHART_TYPE = """() => [...document.querySelectorAll('figure#chart svg')].filter(s => s.checkVisibility())
  .flatMap(s => [...s.querySelectorAll('text')].map(t => [s.getAttribute('class'), t.getAttribute('class') || 'axis',
    t.textContent.trim(), parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a]))"""


def test_the_ledger_charts_type_is_readable_on_a_phone_and_at_a_desk(live_office: str) -> None:
    """The chart was drawn 900 units wide whatever the window: on a 390 px phone its axis labels and legend came out
    4 px high. A phone is shown a narrow drawing whose every label is at least 11 CSS px; a desk the wide one."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            for width, height, drawing in (
                (390, 844, "chart phone"),
                (683, 384, "chart phone"),
                (1366, 768, "chart desk"),
            ):
                context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
                page = context.new_page()
                page.goto(live_office + "/office/ledger?from=2026-11-01&to=2026-11-30")
                texts = page.evaluate(CHART_TYPE)
                assert {t[0] for t in texts} == {drawing}, (width, texts)
                kinds = {t[1] for t in texts}
                assert {"axis", "period", "legend"} <= kinds, (width, kinds)
                axis = [t for t in texts if t[1] == "axis" and t[2] == "0"]  # the volume axis's 0
                assert axis and axis[0][3] >= 11, (width, axis)
                small = [t for t in texts if t[3] < 11]
                assert not small, (width, small)
                context.close()
        finally:
            browser.close()


def test_the_scores_read_as_a_short_list_on_a_phone_and_in_full_at_a_desk(live_office: str, tmp_path: Path) -> None:
    """At 390 px each person is one short card (rank, name, total; the centre under them), the breakdown behind
    the row's own switch; at a desk the table keeps every part's column."""
    from playwright.sync_api import expect, sync_playwright

    _score_a_county(live_office)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN").new_page()
            phone.goto(live_office + "/office/assessment/?quarter=2026Q4")
            rows = phone.locator("#staff-scores tr[id^=staff-]")
            assert rows.count() >= len(STAFF)
            scroll, inner = phone.evaluate(WIDTH)
            assert scroll <= inner, (scroll, inner)
            card = phone.locator("#staff-王伟")
            expect(card.locator("td.total")).to_be_visible()
            expect(card.locator("td.name")).to_be_visible()
            expect(card.locator("td.part").first).to_be_hidden()
            # a card is a few lines, not one per column: the table stays short for the whole county
            heights = rows.evaluate_all("rs => rs.map(r => r.getBoundingClientRect().height)")
            assert max(heights) < 110, heights
            table = phone.locator("#staff-scores").evaluate("t => t.getBoundingClientRect().height")
            assert table < 110 * rows.count(), table
            page_height = phone.evaluate("document.documentElement.scrollHeight")
            phone.screenshot(path=str(tmp_path / "assessment-390.png"), full_page=True)
            assert page_height < 5000, page_height  # 5,634 px as a card a column; the demo county's was about 8,000
            card.locator("details.breakdown summary").click()
            expect(card.locator("td.part").first).to_be_visible()
            expect(card).to_contain_text("出勤值勤")
            expect(phone.locator("#staff-王芳 td.part").first).to_be_hidden()  # the other rows stay closed
            scroll, inner = phone.evaluate(WIDTH)
            assert scroll <= inner, (scroll, inner)

            desk = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN").new_page()
            desk.goto(live_office + "/office/assessment/?quarter=2026Q4")
            expect(desk.locator("#staff-scores th", has_text="出勤值勤")).to_be_visible()
            expect(desk.locator("#staff-王伟 td.part").first).to_be_visible()
            expect(desk.locator("#staff-王伟 td.narrow-only")).to_be_hidden()
            cells = desk.locator("#staff-王伟 td:visible").count()
            assert cells == desk.locator("#staff-scores tr").first.locator("th").count(), cells
        finally:
            browser.close()


# What sticks out past the window's right edge (header, forms, text), other than inside a box that scrolls itself.
STICKING_OUT = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5 && !e.closest('table, figure, .wide'))
  .map(e => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''} ${Math.round(e.getBoundingClientRect().right)} px`
    + ` ${(e.textContent || '').trim().slice(0, 30)}`)"""


def test_the_supervisors_ledger_and_supervision_fit_a_phone(live_office: str) -> None:
    """At 390 px, in both languages, nothing on the ledger or the supervision page (header, filters, lists) runs past
    the window's edge: no sideways scrolling, and nothing cut off at the right either."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            for lang in ("zh", "en"):
                context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
                context.add_cookies([{"name": "lang", "value": lang, "url": live_office}])
                page = context.new_page()
                for path in ("/office/ledger?from=2026-11-01&to=2026-11-30", "/office/ledger", "/supervision"):
                    assert page.goto(live_office + path).status == 200, path  # type: ignore[union-attr]
                    scroll, inner = page.evaluate(WIDTH)
                    assert scroll <= inner, (lang, path, scroll, inner)
                    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), (lang, path)
                    assert not page.evaluate(STICKING_OUT), (lang, path, page.evaluate(STICKING_OUT))
                context.close()
        finally:
            browser.close()
