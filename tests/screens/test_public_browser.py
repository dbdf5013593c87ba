"""The public pages in a real Chromium, with logins on: a villager's phone looks an errand up and complains.

The node runs as deployed (``[auth] required = true``) on loopback; the errand is registered with an
agent's bearer token. Each public page is checked with axe-core (shipped in the test tree), at a
phone's width (390 px, no sideways scrolling) and with the errors tied to their fields.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import uvicorn
from axe_kit import violations
from screens_kit import make_app, prepared_node

from protocol.lookup import lookup_code
from sanji.config import AuthSection
from sanji.demo.cluster import free_port
from tests.auth.auth_kit import GOOD, add, bearer, token

pytestmark = pytest.mark.processes
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture
def live_node(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A village with logins on, served by uvicorn on a free loopback port; (url, errand id, receipt)."""
    cluster, settings = prepared_node(tmp_path, "T01V01")
    config = cluster.nodes["T01V01"].config
    config.write_text(config.read_text(encoding="utf-8").replace("required = false", "required = true"), "utf-8")
    settings = msgspec.structs.replace(settings, auth=AuthSection(required=True))
    add(config, "李建国", "village_agent")
    agent = token(config, "李建国")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="public-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the node did not start within 30 s")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    try:
        r = httpx.post(url + "/api/errands", json=GOOD, headers=bearer(agent), timeout=30)
        assert r.status_code == 201, r.text
        errand = r.json()["errand"]
        receipt = httpx.get(url + f"/api/errands/{errand}", headers=bearer(agent), timeout=30).json()["receipt"]
        yield url, errand, receipt
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_villager_looks_up_and_complains_on_a_phone(
    chromium: str, live_node: tuple[str, str, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, errand, receipt = live_node
    problems: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
            page = context.new_page()
            page.set_default_timeout(15_000)

            def check(name: str) -> None:
                problems[name] = violations(page)
                wide = page.evaluate("() => document.documentElement.scrollWidth")
                if wide > 390:
                    problems[name].append(f"scrolls sideways at 390 px: {wide} px wide")
                page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)

            page.goto(url + "/public")
            expect(page.locator("h2").first).to_contain_text("办事指南")
            expect(page.get_by_role("link", name=re.compile("投诉与建议"))).to_be_visible()
            check("public")

            page.goto(url + "/lookup")
            page.fill("#receipt", receipt)
            page.fill("#code", "0000")
            page.get_by_role("button", name="查询 Look up").click()
            expect(page.locator("#code-error")).to_contain_text("不符")
            expect(page.locator("#code")).to_have_attribute("aria-invalid", "true")
            expect(page.locator("#code")).to_be_focused()
            expect(page.locator("#receipt")).to_have_value(receipt)  # what was typed stays
            check("lookup_refused")
            page.fill("#code", lookup_code(errand))
            page.get_by_role("button", name="查询 Look up").click()
            expect(page.locator("table.kv")).to_contain_text("已登记")
            expect(page.locator("body")).not_to_contain_text("张秀英")
            # "查询结果 Result" on one line (it was squeezed onto three at a phone's width)
            caption = page.locator("table.kv caption").evaluate(
                "e => [e.getBoundingClientRect().height, parseFloat(getComputedStyle(e).fontSize)]"
            )
            assert caption[0] < 2 * caption[1], caption  # one line of type, not three
            check("lookup_found")

            page.get_by_role("link", name=re.compile("对该办件投诉")).click()
            page.fill("#code", "5678")
            page.get_by_role("button", name="提交 Send").click()
            expect(page.locator("#text-error")).to_be_visible()
            check("complain_refused")
            page.fill("#text", "窗口工作人员推诿，不一次性告知所缺材料")
            page.fill("#name", "王五")
            page.get_by_role("button", name="提交 Send").click()
            expect(page.locator(".flash")).to_contain_text("受理编号")
            check("complain_done")
        finally:
            browser.close()
    bad = {name: found for name, found in problems.items() if found}
    assert not bad, bad
