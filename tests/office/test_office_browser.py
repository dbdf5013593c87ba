"""A real headless Chromium (JavaScript off) at a county node served over loopback: the office opens a
ledger for a period, narrows it, downloads it as XLSX, records an assessment entry, files an appeal
and decides it, and runs the provincial platform's export — plain HTML forms end to end."""

from __future__ import annotations

import json
import os
import re
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from openpyxl import load_workbook
from test_ledger_http_cli import county_node  # noqa: F401  (fixture)

from sanji.config import NodeSettings
from sanji.demo.cluster import Cluster, free_port
from sanji.tiers import create_app

pytestmark = pytest.mark.processes
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture
def live_county(county_node: tuple[Cluster, NodeSettings]) -> Iterator[str]:  # noqa: F811
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("SANJI_REQUIRE_BROWSER", "") == "1":
            pytest.fail(f"SANJI_REQUIRE_BROWSER=1 but no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}: the office browser test did NOT run (apt-get install -y chromium)")
    port = free_port()
    app = create_app(county_node[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="county-uvicorn", daemon=True)
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


def test_ledger_and_assessment_in_a_browser(live_county: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = browser.new_context(java_script_enabled=False, locale="zh-CN", accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(10_000)
            page.goto(live_county + "/office/ledger?from=2026-11-01&to=2026-11-30")
            expect(page.locator("figure#chart svg.desk")).to_be_visible()
            expect(page.locator("table#ledger")).to_contain_text("E3")
            page.select_option("#township", "T01")  # chosen from the list, by its name
            page.select_option("#by", "handler")
            page.get_by_role("button", name="查询 Show").click()
            page.wait_for_url(re.compile(r"township=T01"))
            expect(page.locator("table#ledger")).not_to_contain_text("E3")
            expect(page.locator("table#stats")).to_contain_text("王芳")
            expect(page.locator("table#stats")).to_contain_text("50.0%")
            page.screenshot(path=str(tmp_path / "ledger.png"), full_page=True)
            with page.expect_download() as info:
                page.locator("#download-xlsx").click()
            saved = tmp_path / "ledger.xlsx"
            info.value.save_as(saved)
            sheet = load_workbook(saved)["台账"]
            assert sorted(sheet.cell(row=i, column=1).value for i in range(2, sheet.max_row + 1)) == ["E1", "E2"]

            page.goto(live_county + "/office/assessment/?quarter=2026Q4")
            expect(page.locator("#staff-王芳")).to_contain_text("95")
            page.fill("#e-subject", "王芳")
            page.select_option("#e-item", "late")
            page.fill("#e-count", "2")
            page.fill("#e-by", "督查员 赵")
            page.locator("#entry-form button").click()
            expect(page.locator(".flash")).to_contain_text("已登记考核记录")
            expect(page.locator("#staff-王芳")).to_contain_text("91")
            page.fill("#a-subject", "王芳")
            page.fill("#a-reason", "E2 逾期系县局系统停机所致")
            page.fill("#a-by", "王芳")
            page.locator("#appeal-form button").click()
            expect(page.locator("table#appeals")).to_contain_text("待复核")
            form = page.locator("form.decide")
            form.locator("input[name=points]").fill("4")
            form.locator("select[name=part]").select_option("results")
            form.locator("input[name=reason]").fill("停机属实")
            form.locator("input[name=by]").fill("主任")
            # nothing chosen for 成立/不成立: the browser holds the form back (a hurried click upholds nothing)
            assert form.locator("input[name=upheld][value='1']").evaluate("e => e.validity.valueMissing")
            form.get_by_role("button", name="复核 Decide").click()
            expect(page.locator("table#appeals")).to_contain_text("待复核")
            form.locator("input[name=upheld][value='1']").check()
            form.get_by_role("button", name="复核 Decide").click()
            expect(page.locator(".flash")).to_contain_text("申诉已复核")
            expect(page.locator("table#appeals")).to_contain_text("申诉成立")
            expect(page.locator("#staff-王芳")).to_contain_text("95")
            page.screenshot(path=str(tmp_path / "assessment.png"), full_page=True)

            # 省平台交换: the office runs an export for the provincial collector and downloads it
            page.get_by_role("link", name=re.compile("省平台交换")).click()
            expect(page.locator("#last-export")).to_contain_text("尚未导出过")
            page.fill("#since", "2026-11-01")
            with page.expect_download() as info:
                page.get_by_role("button", name=re.compile("导出并下载")).click()
            exported = tmp_path / "platform.zip"
            info.value.save_as(exported)
            with zipfile.ZipFile(exported) as archive:
                manifest = json.loads(archive.read("manifest.json"))
                accepted = {r["project_no"] for r in json.loads(archive.read("accept.json"))}
            assert manifest["counts"]["accept"] == len(accepted) and accepted >= {"E1", "E2"}
            page.reload()
            expect(page.locator("#last-export")).to_contain_text("上次导出开始于")
        finally:
            browser.close()
    assert (tmp_path / "assessment.png").stat().st_size > 5_000
