"""A whole errand through the desks' screens, in headless Chromium, across three real node processes.

Logins are on, as on a deployed county: every person logs in at their own node and takes each step
through the forms a clerk sees (JavaScript off: the desks are plain HTML). The village holds the
county's catalogue from an earlier exchange; then its link goes down (the township stops) and the
agent registers a 低保 application offline. The link returns and the errand travels up: the township
window receives, accepts and escalates it (the catalogue says only a county department approves
低保); the county department receives and approves it and sends the result down; the township passes
it on; the agent delivers it with the applicant's signature and files it. At the end every node
holds the same errand, and no desk was offered a step the rule does not allow there.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_browser import CHROMIUM_ARGS

from sanji.cli import accounts_cmd
from sanji.demo.cluster import Cluster
from tests.auth.auth_kit import bearer, token

pytestmark = pytest.mark.processes

C, TOWN, VILLAGE = "C", "T01", "T01V01"
PASSWORD = "correct horse 9"
PEOPLE = {  # who works at which desk: (account, role)
    VILLAGE: ("李建国", "village_agent"),
    TOWN: ("王芳", "window_a"),
    C: ("赵敏", "approver"),
}
WAIT_MS = 90_000  # one exchange every 0.3 s; a loaded 2-core machine still needs its time


@pytest.fixture
def county(tmp_path: Path) -> Iterator[Cluster]:
    """A county with logins required, every node running and holding the catalogue."""
    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, interval=0.3, max_backoff=1.0)
    for node, (name, role) in PEOPLE.items():
        assert accounts_cmd.run_add(str(cluster.nodes[node].config), name, role, PASSWORD) == 0
    try:
        cluster.start()
        for node, (name, _) in PEOPLE.items():
            cluster.wait_catalogue(node, WAIT_MS / 1000, headers=bearer(token(cluster.nodes[node].config, name)))
        yield cluster
    finally:
        cluster.stop()


class Desk:
    """One person's browser at one node's desk."""

    def __init__(self, browser: Any, cluster: Cluster, node: str) -> None:
        self.node = node
        self.base = cluster.nodes[node].url
        self.page = browser.new_context(java_script_enabled=False, locale="zh-CN").new_page()
        self.page.set_default_timeout(30_000)

    def login(self) -> None:
        from playwright.sync_api import expect

        name, _ = PEOPLE[self.node]
        self.page.goto(self.base + "/")
        self.page.wait_for_url(re.compile(r"/login"))  # nothing is shown before a login
        self.page.fill("#name", name)
        self.page.fill("#password", PASSWORD)
        self.page.locator("form[action='/login'] button[type=submit]").click()
        self.page.wait_for_url(self.base + "/")
        expect(self.page.locator("body")).to_contain_text(name)

    def open(self, errand: str) -> None:
        self.page.goto(f"{self.base}/errands/{errand}")

    def step(self, kind: str) -> Any:
        return self.page.locator(f"details.step:has(input[name=kind][value={kind}])")

    def offered(self) -> list[str]:
        """The steps this desk's errand page offers and says it can take now."""
        values: list[str] = self.page.eval_on_selector_all(
            "details.step",
            "els => els.filter(e => !e.querySelector('summary .warn'))"
            ".map(e => e.querySelector('input[name=kind]').value)",
        )
        return values

    def wait_for_step(self, errand: str, kind: str) -> None:
        """Reload the errand's page until it offers ``kind`` here (the errand travels by the nodes' sync)."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while True:
            self.open(errand)
            if self.page.url.endswith(f"/errands/{errand}") and kind in self.offered():
                return
            assert time.monotonic() < deadline, f"{errand} at {self.node}: {kind} never offered; url {self.page.url}"
            self.page.wait_for_timeout(500)

    def take(self, errand: str, kind: str, **fields: str) -> None:
        """Open the step's form, fill ``fields`` (by the form's own field names) and submit it."""
        from playwright.sync_api import expect

        self.open(errand)
        step = self.step(kind)
        if step.get_attribute("open") is None:
            step.locator("summary").click()
        for name, value in fields.items():
            control = step.locator(f"[name={name}]")
            if control.evaluate("e => e.tagName") == "SELECT":
                control.select_option(value)
            elif control.get_attribute("type") == "checkbox":
                control.set_checked(value == "1")
            else:
                control.fill(value)
        step.locator("button[type=submit]").click()
        self.page.wait_for_url(re.compile(rf"/errands/{errand}\?done={kind}$"))
        expect(self.page.locator(".flash")).to_contain_text("已完成")


def test_an_errand_through_every_desk_with_logins_on(chromium: str, county: Cluster, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            county.stop(TOWN)  # the village's link is down
            agent = Desk(browser, county, VILLAGE)
            agent.login()

            # Offline at the village: register with the checklist, review, sign; submit (it waits for the link).
            page = agent.page
            page.goto(agent.base + "/register")
            page.select_option("select#matter", "MZ-001")
            page.locator("form:has(select#matter) button[type=submit]").click()
            page.wait_for_url(re.compile(r"/register\?matter=MZ-001$"))
            page.fill("#applicant_name", "张秀英")
            page.fill("#applicant_phone", "13812345678")
            page.fill("#applicant_id_number", "430621195007307791")
            for box in page.locator("input[name=materials]").all():
                box.check()
            page.check("input[name=mandate]")
            page.locator("button[name=step][value=review]").click()
            confirm = page.locator("button[name=step][value=confirm]")
            assert confirm.count() == 1, page.locator("main").inner_text()  # the review, not the form's errors
            confirm.click()
            page.wait_for_url(re.compile(r"/print/[^/]+/receipt$"))
            errand = page.url.split("/print/")[1].split("/")[0]
            agent.take(errand, "submit")
            expect(page.locator("table.kv")).to_contain_text("已报送")

            # The link returns: the errand goes up by itself.
            county.start(TOWN)
            window = Desk(browser, county, TOWN)
            window.login()
            window.wait_for_step(errand, "receive")
            assert "accept" not in window.offered()  # nothing is accepted before the hand-over is signed for
            window.take(errand, "receive")
            window.take(errand, "accept")  # the kind and window come filled in from the catalogue
            # 低保 is decided by the county department only: the township neither approves nor refuses it (rules 2)
            assert "decide" not in window.offered()
            window.take(errand, "escalate")

            department = Desk(browser, county, C)
            department.login()
            department.wait_for_step(errand, "receive")
            department.take(errand, "receive")
            department.take(errand, "decide", outcome="approved", document="示民低〔2026〕1号")
            department.take(errand, "send_result")

            window.wait_for_step(errand, "receive")
            window.take(errand, "receive")
            window.take(errand, "send_result")

            agent.wait_for_step(errand, "receive")
            agent.take(errand, "receive")
            agent.take(errand, "deliver", confirmed_by="张秀英", signature_paper="1")
            agent.take(errand, "close", archive_no="DA-2026-0001")
            expect(agent.page.locator("table.kv")).to_contain_text("已归档")
            agent.page.screenshot(path=str(tmp_path / "closed.png"), full_page=True)
        finally:
            browser.close()

    # Every replica ends with the same closed errand (read with each desk's own token: logins are on).
    tokens = {node: bearer(token(county.nodes[node].config, name)) for node, (name, _) in PEOPLE.items()}
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        seen = {}
        for node, headers in tokens.items():
            reply = httpx.get(f"{county.nodes[node].url}/api/errands/{errand}", headers=headers, timeout=10)
            assert reply.status_code == 200, reply.text
            seen[node] = (reply.json()["stage"], reply.json()["digest"])
        if len(set(seen.values())) == 1 and seen[C][0] == "closed":
            break
        assert time.monotonic() < deadline, f"the replicas never agreed on the closed errand: {seen}"
        time.sleep(0.5)
