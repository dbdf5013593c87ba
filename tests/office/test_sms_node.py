"""A township node configured with ``[sms] gateway = "http"``: its notifier sends through a real gateway
on loopback; a refused message shows as a dead letter on the outbox screen and is retried from there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sms_gateway import Gateway, start_gateway

from protocol.catalogue import sign_catalogue
from sanji.catalogue import default_catalogue
from sanji.config import NodeSettings, load_settings
from sanji.context import NodeContext
from sanji.demo.cluster import Cluster
from sanji.keys import read_directory, read_key
from sanji.store import Store, open_database
from sanji.tiers import create_app


async def _seed(settings: NodeSettings, cluster: Cluster) -> None:
    db = await open_database(settings.db_url)
    try:
        directory = read_directory(settings.path(settings.node.directory))
        store = Store(db, node_id="T01", key=read_key(settings.path(settings.node.key_file)), directory=directory)
        await store.start()
        await NodeContext(store, None).offer(sign_catalogue(default_catalogue(), cluster.layout.keys["C"]))
    finally:
        await db.dispose()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[TestClient[Litestar], Gateway]]:
    gateway, server = start_gateway()
    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True)
    config = cluster.nodes["T01"].config
    config.write_text(
        config.read_text(encoding="utf-8").replace("[sync]\n", "[sync]\nduties_interval = 1.0\n")
        + f'\n[sms]\ngateway = "http"\nurl = "{gateway.url}"\naccount = "t01"\nbase_delay = 0.2\nmax_delay = 1.0\n'
        + '\n[sms.templates]\naccepted = "【{sign}】{matter}已受理，回执号{receipt}。"\n',
        encoding="utf-8",
    )
    settings = load_settings(config)
    asyncio.run(_seed(settings, cluster))
    try:
        with TestClient(create_app(settings)) as client:
            yield client, gateway
    finally:
        server.shutdown()
        server.server_close()


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_dead_letter_seen_and_retried_from_the_screen(node: tuple[TestClient[Litestar], Gateway]) -> None:
    client, gateway = node
    gateway.fail_next(1, 400)  # the provider refuses the first message: a permanent failure
    r = client.post(
        "/api/errands",
        json={
            "matter": "MZ-003",
            "applicant_name": "张秀英",
            "applicant_phone": "13907301234",
            "in_person": True,
            "materials": ["申请书", "身份证复印件", "户口簿复印件"],
            "actor": "王芳",
        },
    )
    assert r.status_code == 201, r.text
    errand = r.json()["errand"]
    r = client.post(f"/api/errands/{errand}/actions", json={"kind": "accept", "actor": "王芳", "errand_kind": "承诺件"})
    assert r.status_code in (200, 201), r.text

    dead = wait_for(lambda: client.get("/api/office/sms", params={"status": "dead"}).json()["items"])
    assert dead[0]["event"] == "accepted" and "400" in dead[0]["last_error"] and dead[0]["shown_to"] == "139****1234"
    page = client.get("/office/sms/")
    assert page.status_code == 200 and "发送失败" in page.text and f"/office/sms/{dead[0]['id']}/retry" in page.text
    row = page.text[page.text.index(f'id="sms-{dead[0]["id"]}"') :].split("</tr>")[0]
    assert 'data-label="事件 Event">受理通知 <span lang="en">accepted</span>' in row  # the event said in Chinese
    assert '申请人 <span lang="en" class="alt">applicant</span>' in row and "139****1234" in row
    assert "短信平台" in page.text.split('id="gateway"')[1].split("</h2>")[0]  # the gateway in words, not "http"
    r = client.post(f"/office/sms/{dead[0]['id']}/retry", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("done=retry")
    # the retry is picked up by the next round of the notifier (at most [sync] duties_interval away)
    sent = wait_for(lambda: client.get("/api/office/sms", params={"status": "sent"}).json()["items"])
    assert sent[0]["id"] == dead[0]["id"]
    (delivered,) = gateway.delivered.values()
    assert delivered["text"].startswith("【三级联办】临时救助申请已受理，回执号")
    assert delivered["phone"] == "13907301234" and delivered["account"] == "t01"
    assert client.get("/api/office/sms", params={"status": "nonsense"}).status_code == 400
    assert client.post("/api/office/sms/999/retry").status_code == 404
