"""Opening an archived attachment through the village's own API and page (issue 16): fetched back and served.

The village runs as deployed (its app, its config, its SQLite file); its parent is a small real HTTP server
on loopback that answers ``/sync/v1/blob/get`` with the scan, chunk by chunk, and records what it was asked
(the fetch itself is tested against a real township in ``tests/network/test_fetch_back.py``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from protocol.session import BlobGet, BlobGetReply
from sanji.config import ParentSection, load_settings
from sanji.demo.cluster import Cluster
from tests.auth.auth_kit import add, bearer, prepare, token
from village_agent.app import create_app

SCAN = bytes(range(256)) * 400  # 100 KiB: three chunks
FORM = {"matter": "MZ-001", "applicant_name": "张秀英", "materials": ["身份证复印件"], "actor": "代办员 李建国"}

JPEG = {"content-type": "image/jpeg"}  # an attachment is a photo or a scan (protocol.scans)


class Township(BaseHTTPRequestHandler):
    asked: list[tuple[str, int, str]] = []  # (path, offset, signed by)
    first = threading.Event()  # set by the first request for an attachment

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Township.first.set()
        if self.path != "/sync/v1/blob/get":
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        asked = msgspec.msgpack.decode(body, type=BlobGet)
        Township.asked.append((self.path, asked.offset, self.headers.get("x-sanji-node", "")))
        data = SCAN[asked.offset : asked.offset + asked.max_bytes]
        out = msgspec.msgpack.encode(BlobGetReply(size=len(SCAN), offset=asked.offset, data=data, available=len(SCAN)))
        self.send_response(200)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def township() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Township)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Township.asked = []
    Township.first = threading.Event()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_archived_attachment_opened_from_the_errand_page_comes_back(tmp_path: Path, township: str) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes["T01V01"].config)
    settings = msgspec.structs.replace(settings, parent=ParentSection(url=township))
    with TestClient(create_app(settings)) as village:
        errand_id = village.post("/api/errands", json=FORM).json()["errand"]
        r = village.post(
            f"/api/errands/{errand_id}/attachments",
            params={"name": "户口簿.jpg", "actor": "李"},
            content=SCAN,
            headers=JPEG,
        )
        assert r.status_code == 201, r.text
        digest = next(h for h in village.get(f"/api/errands/{errand_id}").json()["history"] if h["kind"] == "attach")
        digest = digest["blob"]
        with sqlite3.connect(tmp_path / "c" / "T01V01" / "node.db") as con:  # what Archive._archive_one writes
            con.execute("INSERT INTO blob_archive VALUES (?, ?, 'T01', ?)", (digest, len(SCAN), time.time()))
            con.execute("UPDATE blobs SET data = x'', received = 0 WHERE hash = ?", (digest,))
        page = village.get(f"/errands/{errand_id}").text
        assert 'class="archived"' in page and f"/api/attachments/{digest}" in page
        got = village.get(f"/api/attachments/{digest}", headers={"accept": "text/html"})
        assert got.status_code == 200 and got.content == SCAN
        assert [offset for _, offset, _ in Township.asked] == [0, 49152, 98304]  # chunk by chunk, once
        assert {node for *_, node in Township.asked} == {"T01V01"}  # the village's signed requests
        assert village.get("/api/node").json()["attachments"]["archived_here"] == 0
        assert 'class="archived"' not in village.get(f"/errands/{errand_id}").text
        again = village.get(f"/api/attachments/{digest}")  # held here again: served without asking
        assert again.status_code == 200 and again.content == SCAN and len(Township.asked) == 3


def test_a_running_village_restores_on_an_administrators_request(tmp_path: Path, township: str) -> None:
    config = prepare(tmp_path, "T01V01", required=True)
    add(config, "李建国", "village_agent")
    add(config, "王管理", "admin")
    agent, admin = bearer(token(config, "李建国")), bearer(token(config, "王管理"))
    settings = msgspec.structs.replace(load_settings(config), parent=ParentSection(url=township))
    with TestClient(create_app(settings)) as village:
        r = village.post("/api/errands", json={**FORM, "actor": "李建国"}, headers=agent)
        assert r.status_code == 201, r.text
        errand_id = r.json()["errand"]
        r = village.post(
            f"/api/errands/{errand_id}/attachments",
            params={"name": "户口簿.jpg", "actor": "李建国"},
            content=SCAN,
            headers={**agent, **JPEG},
        )
        assert r.status_code == 201, r.text
        history = village.get(f"/api/errands/{errand_id}", headers=agent).json()["history"]
        digest = next(h for h in history if h["kind"] == "attach")["blob"]
        with sqlite3.connect(tmp_path / "county" / "T01V01" / "node.db") as con:
            con.execute("INSERT INTO blob_archive VALUES (?, ?, 'T01', ?)", (digest, len(SCAN), time.time()))
            con.execute("UPDATE blobs SET data = x'', received = 0 WHERE hash = ?", (digest,))

        def restore(body: object, who: dict[str, str] = admin):  # type: ignore[no-untyped-def]
            return village.post("/api/archive/restore", json=body, headers=who)

        assert restore({}, agent).status_code == 403  # the administrator's alone
        for bad in ({"errand": ""}, {"errand": 7}, {"all": True}, {"errands": errand_id}):
            r = restore(bad)
            assert r.status_code == 400 and r.json()["retryable"] is False, (bad, r.text)
        r = restore({"errand": "E-nosuch"})
        assert r.status_code == 404 and "no errand 'E-nosuch' is held at T01V01" in r.json()["message"]
        assert Township.asked == []

        r = restore({"errand": errand_id})
        assert r.status_code == 202, r.text
        assert r.json() == {"queued": [digest], "bytes": len(SCAN), "waiting": 1}
        assert Township.first.wait(30)  # the node asks its parent by itself, in the background
        got = village.get(f"/api/attachments/{digest}", headers=agent)  # joins that fetch, or finds it held
        assert got.status_code == 200 and got.content == SCAN
        assert [offset for _, offset, _ in Township.asked] == [0, 49152, 98304]  # fetched once, chunk by chunk
        assert {node for *_, node in Township.asked} == {"T01V01"}  # with the node's own signer
        assert village.get("/api/node", headers=admin).json()["attachments"]["archived_here"] == 0
        again = restore({})  # every archived attachment: none is left
        assert again.status_code == 202 and again.json() == {"queued": [], "bytes": 0, "waiting": 0}
