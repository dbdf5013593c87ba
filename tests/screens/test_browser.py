"""A real headless Chromium drives a real village node over loopback, with JavaScript switched OFF.

The desk screens promise to work as plain HTML forms; this proves it end to end: register an
errand from the catalogue's checklist, land on the printable receipt with its QR code, open the
errand and submit it to the township, and screenshot the result.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from screens_kit import make_app, prepared_node

from sanji.demo.cluster import free_port

pytestmark = pytest.mark.processes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
def live_village(tmp_path: Path) -> Iterator[str]:
    """A village node served by uvicorn on a free loopback port, in a background thread."""
    _, settings = prepared_node(tmp_path, "T01V01")
    port = free_port()
    config = uvicorn.Config(make_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="village-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the village node did not start within 15 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_register_receipt_and_submit_without_javascript(chromium: str, live_village: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(java_script_enabled=False, locale="zh-CN").new_page()
            page.set_default_timeout(10_000)
            page.goto(live_village + "/register")
            page.select_option("select#matter", "MZ-003")
            page.get_by_role("button", name="选择 Choose").click()
            page.wait_for_url(re.compile(r"/register\?matter=MZ-003$"))
            page.fill("#applicant_name", "张秀英")
            page.fill("#applicant_phone", "13812345678")
            for material in ("申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"):
                page.get_by_label(material, exact=True).check()
            page.fill("#actor", "李建国")
            page.check('input[name="mandate"]')  # nothing comes ticked: the agent has the villager's signed mandate
            page.get_by_role("button", name="登记并打印回执").click()

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
