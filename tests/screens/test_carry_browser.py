"""The sync panel in a real Chromium: a village agent writes a file for the township, the township imports it.

Both nodes served on loopback (their parents are not running: the link is down). The desks are
driven with JavaScript off, on a phone's width; axe runs on the same screens in a second page with
JavaScript on, in Chinese.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import httpx
import pytest
from axe_kit import violations
from screens_kit import _seed_catalogue, make_app, register, served
from test_browser import CHROMIUM_ARGS

from sanji.config import load_settings
from sanji.demo.cluster import Cluster

pytestmark = pytest.mark.processes
PHONE = {"width": 390, "height": 844}


def test_a_village_agent_carries_a_file_to_the_township(chromium: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True)
    village_settings = load_settings(cluster.nodes["T01V01"].config)
    asyncio.run(_seed_catalogue(village_settings, cluster.layout.keys["C"]))
    town_settings = load_settings(cluster.nodes["T01"].config)
    with (
        served(make_app(village_settings), name="village") as village,
        served(make_app(town_settings), name="town") as town,
    ):
        with httpx.Client(base_url=village) as client:
            errands = [register(client, name=n) for n in ("张秀英", "李桂兰")]  # type: ignore[arg-type]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                desk = browser.new_context(
                    java_script_enabled=False, locale="zh-CN", viewport=PHONE, accept_downloads=True
                )
                page = desk.new_page()
                page.set_default_timeout(10_000)
                page.goto(village + "/")
                expect(page.locator("a#carry-link")).to_have_attribute("href", "/carry")
                page.goto(village + "/carry")
                page.select_option("#carry-recipient", "T01")
                page.get_by_role("button", name="准备文件").click()
                ready = page.locator("#carry-exported")
                expect(ready).to_contain_text("带给 T01 的文件已准备好")
                expect(ready.locator("#exported-count")).to_contain_text(f"涉及 {len(errands)} 件办件")
                expect(ready.locator("#exported-safe")).to_contain_text("可以放心带送")
                assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
                page.screenshot(path=str(tmp_path / "village-carry.png"), full_page=True)
                if os.environ.get("SANJI_SCREENSHOTS"):
                    page.screenshot(path=os.environ["SANJI_SCREENSHOTS"] + "/village-carry.png", full_page=True)
                with page.expect_download() as got:
                    page.locator("#carry-download").click()
                download = got.value
                assert re.fullmatch(r"T01V01-to-T01-\d{8}\.sjx", download.suggested_filename)
                usb = tmp_path / "usb" / download.suggested_filename
                download.save_as(str(usb))
                assert usb.read_bytes().startswith(b"SJX")

                page.goto(town + "/carry")
                page.set_input_files("#carry-file", str(usb))
                page.locator("#carry-import button").click()
                done = page.locator("#carry-imported")
                expect(done).to_contain_text("已导入来自 T01V01 的文件")
                expect(done.locator("#imported-refused")).to_contain_text("拒收：0")
                expect(page.locator("#carry-history")).to_contain_text("来自 T01V01")
                if os.environ.get("SANJI_SCREENSHOTS"):
                    page.screenshot(path=os.environ["SANJI_SCREENSHOTS"] + "/town-carry.png", full_page=True)

                audit = browser.new_context(locale="zh-CN", viewport=PHONE).new_page()  # axe needs JavaScript
                audit.goto(village + "/carry")
                audit.select_option("#carry-recipient", "T01")
                audit.get_by_role("button", name="准备文件").click()
                audit.wait_for_selector("#carry-exported")
                assert violations(audit) == []
                audit.goto(town + "/carry")
                audit.set_input_files("#carry-file", str(usb))
                audit.locator("#carry-import button").click()
                audit.wait_for_selector("#carry-imported")
                expect(audit.locator("#imported-duplicate")).to_contain_text("未重复记录")
                assert violations(audit) == []
            finally:
                browser.close()
        town_digests = httpx.get(town + "/api/digests").json()
        assert town_digests == {e: httpx.get(village + "/api/digests").json()[e] for e in errands}
