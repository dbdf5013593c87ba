"""Metrics, health, readiness, the link-down warning and the county's view of nodes that fell silent."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient

from protocol.hlc import pack
from protocol.session import NodeReport
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.observe.fleet import FleetWarnings, fleet_health
from sanji.observe.logs import ERRAND, EXCHANGE, JsonFormatter
from sanji.web.link_state import plain_link_error
from tests.conftest import NetworkFactory
from village_agent.app import create_app

FORM = {"matter": "MZ-001", "applicant_name": "张秀英", "actor": "代办员 李建国"}


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(?:\{\})?") + r" (\S+)"
    found = re.search("^" + pattern + "$", text, re.MULTILINE)
    assert found, f"{name}{{{labels}}} not in /metrics"
    return float(found.group(1))


class Kept(logging.Handler):
    """Records of one logger, whatever the app does to the root logger's handlers."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Kept:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        self.logger.removeHandler(self)


def test_a_village_with_a_dark_parent_says_so_truthfully_and_once(tmp_path: Path) -> None:
    # The township is never started: every exchange of the village fails at once (connection refused).
    cluster = Cluster.prepare(
        tmp_path / "c", towns=1, villages_per_town=1, interval=0.05, max_backoff=0.2, open_demo=True
    )
    settings = load_settings(cluster.nodes["T01V01"].config)
    with Kept("sanji.sync") as kept, TestClient(create_app(settings)) as village:
        assert village.get("/healthz").json()["status"] == "ok"
        ready = village.get("/readyz")
        assert ready.status_code == 503 and "catalogue" in ready.json()["problems"][0]
        registered = [village.post("/api/errands", json=FORM) for _ in range(2)]
        assert [r.status_code for r in registered] == [201, 201]
        errand = registered[0].json()["errand"]
        submit = {"kind": "submit", "actor": FORM["actor"]}
        assert village.post(f"/api/errands/{errand}/actions", json=submit).status_code == 201
        driver = village.app.state.runtime.driver
        deadline = time.monotonic() + 30
        while driver.failures < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert driver.failures >= 8
        time.sleep(1.0)
        node = village.get("/api/node").json()
        assert node["queue_length"] >= 2
        assert node["oldest_unacked_s"] >= 1.0  # was 0.0 while nothing could be sealed
        home = village.get("/").text
        parent = re.search(r'id="parent-node">(.*?)</span>：', home)  # the parent by its name, its id small beside
        assert 'id="link-down"' in home and parent is not None and f"连不上上级 {parent[1]}（" in home
        assert "您办的件都已保存在本站" in home and 'href="/carry"' in home  # kept, and where to carry it
        assert 'id="link-state"' in home and "已同步" not in home  # not "synced" in green beside "link down"
        # The errand on its way up says it is kept and goes by itself, lest the agent register it twice.
        page = village.get(f"/errands/{errand}?done=submit").text
        kept_note = re.search(r'id="kept-offline"[^>]*><span lang="zh-CN">(.*?)</span>', page)
        assert kept_note is not None and "已保存在本站" in kept_note[1] and "网络恢复后自动送上去" in kept_note[1]
        assert "用U盘带到城关镇便民服务中心导入" in kept_note[1]  # the township by name, where to carry it
        # The sync panel reads the transport's error for a clerk, the raw text kept small beside it for the operator.
        carry = village.get("/carry").text
        row = re.search(r'<table class="stack" id="exchanges">(.*?)</table>', carry, re.S)
        assert row is not None and "城关镇便民服务中心" in row[1] and "连不上对方：网络不通" in row[1]
        assert "ConnectError" in row[1]  # still there for whoever mends the link
        other = registered[1].json()["errand"]  # registered, not submitted, nothing just done: nothing to say
        assert 'id="kept-offline"' not in village.get(f"/errands/{other}").text
        text = village.get("/metrics").text
        assert metric(text, "sanji_oldest_unacked_seconds") >= 1.0
        assert metric(text, "sanji_queue_batches") >= 2
        assert metric(text, "sanji_sync_errors_total", 'kind="unreachable"') >= 8
        assert metric(text, "sanji_sync_sessions_total", 'outcome="failed"') >= 8
        assert metric(text, "sanji_errands", 'stage="registered"') == 1  # the other was submitted
        assert metric(text, "sanji_parent_failures") >= 8
        assert 'sanji_build_info{node="T01V01"' in text and 'role="village"' in text
        assert metric(text, "sanji_sms_outbox", 'state="waiting"') == 0
    said = [r.getMessage() for r in kept.records if r.levelno == logging.WARNING]
    assert len([m for m in said if "cannot sync with T01" in m]) == 1, said


async def test_the_county_sees_missing_stalled_and_silent_nodes(network: NetworkFactory) -> None:
    net = await network(2, 1)  # C; T01 > T01V01; T02 > T02V01
    county = net.stores["C"]
    now = time.time()

    def report(node: str, age_s: float, **kw: object) -> NodeReport:
        return NodeReport(node=node, at=pack(int((now - age_s) * 1000), 0), **kw)  # type: ignore[arg-type]

    await county.record_reports(
        [
            report("T01", 60),
            report("T01V01", 7 * 3600, queue_length=5, oldest_unacked_s=7 * 3600),
            report("T02", 120, last_error="the request from 'T02V01' is not signed"),
        ],
        via="T01",
    )
    health = {h.node: h for h in await fleet_health(county, missing_hours=6, now=now)}
    assert {n: h.state for n, h in health.items()} == {
        "T01": "ok",
        "T01V01": "missing",
        "T02": "stalled",
        "T02V01": "never",
    }
    assert health["T01V01"].age_s == pytest.approx(7 * 3600, abs=2)
    warnings = FleetWarnings()
    with Kept("sanji.observe") as kept:
        for _ in range(3):
            warnings.note(list(health.values()), missing_hours=6)
    said = [r.getMessage() for r in kept.records if "T01V01" in r.getMessage()]
    assert len(said) == 1 and "7.0 hours" in said[0]


def test_json_log_lines_name_node_errand_and_exchange() -> None:
    formatter = JsonFormatter("T01V01")
    record = logging.LogRecord("sanji.sync", logging.WARNING, __file__, 1, "sync with %s failed", ("T01",), None)
    e, x = ERRAND.set("T01V01-abc"), EXCHANGE.set("0123456789ab")
    try:
        line = formatter.format(record)
    finally:
        ERRAND.reset(e)
        EXCHANGE.reset(x)
    event = json.loads(line)
    assert "\n" not in line
    assert event["node"] == "T01V01" and event["errand"] == "T01V01-abc" and event["exchange"] == "0123456789ab"
    assert event["msg"] == "sync with T01 failed" and event["level"] == "warning"


def test_a_failed_exchange_is_read_plainly_or_left_as_it_is() -> None:
    assert plain_link_error("/sync/v1/cursors: ConnectError: All connection attempts failed") is not None
    slow = plain_link_error("/sync/v1/push: ReadTimeout: timed out")
    assert slow is not None and "没有及时应答" in slow[0]
    assert plain_link_error("the request from 'T02V01' is not signed") is None  # no plain reading: shown raw
