"""``sanji doctor``: one line per check, what to fix, and an exit status scripts can use."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sanji.cli.main import main
from sanji.demo.cluster import Cluster
from sanji.store import open_database
from sanji.version import release
from tests.ops.test_backup_restore import _pretend_newer


class _Parent(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        body = json.dumps({"status": "ok", "node": "T01", "version": "0.2.9"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def parent() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Parent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _village(tmp_path: Path, parent_port: int | None) -> Path:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1)
    config = cluster.nodes["T01V01"].config
    if parent_port is not None:
        text = config.read_text(encoding="utf-8")
        before = f"http://127.0.0.1:{cluster.nodes['T01'].port}"
        config.write_text(text.replace(before, f"http://127.0.0.1:{parent_port}"), encoding="utf-8")
    return config


async def _open_and_close(url: str) -> None:
    db = await open_database(url)
    await db.dispose()


def _lines(capsys: pytest.CaptureFixture[str]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for line in capsys.readouterr().out.splitlines():
        finding = json.loads(line)
        out.setdefault(finding["check"], []).append(finding)
    return out


def test_a_fresh_village_is_told_what_to_fix(tmp_path: Path, parent: int, capsys: pytest.CaptureFixture[str]) -> None:
    config = _village(tmp_path, parent)
    asyncio.run(_open_and_close(f"sqlite:///{config.parent / 'node.db'}"))  # a store at the current schema
    status = main(["doctor", "--config", str(config), "--json"])
    found = _lines(capsys)
    assert found["version"][0]["message"].startswith(f"sanji {release()}")
    assert found["keys"][0]["status"] == "ok"
    assert found["store"][0]["status"] == "ok" and "current" in found["store"][0]["message"]
    assert found["parent"][0]["status"] == "ok" and "sanji 0.2.9" in found["parent"][0]["message"]
    assert "/healthz" in _Parent.seen
    assert found["catalogue"][0]["status"] == "warn" and found["catalogue"][0]["fix"]
    assert found["place"][0]["status"] == "warn" and "directory" in found["place"][0]["message"]
    assert all(f["fix"] for fs in found.values() for f in fs if f["status"] != "ok")  # every problem says what to do
    assert status == 1  # warnings, no failures


def test_failures_give_exit_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _village(tmp_path, None)  # the township is not running
    asyncio.run(_pretend_newer(f"sqlite:///{config.parent / 'node.db'}"))
    (config.parent / "node.key").write_bytes(b"not a key")
    status = main(["doctor", "--config", str(config), "--json", "--timeout", "1"])
    found = _lines(capsys)
    assert status == 2
    assert found["keys"][0]["status"] == "FAIL"
    store = found["store"][0]
    assert store["status"] == "FAIL" and "sanji 9.1.0" in store["message"] and release() in store["message"]
    assert found["parent"][0]["status"] == "FAIL" and "does not answer" in found["parent"][0]["message"]


def test_a_broken_config_is_one_line_and_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "node.toml"
    config.write_text("[node]\nid = 'T01'\n", encoding="utf-8")
    assert main(["doctor", "--config", str(config)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("失败 FAIL 配置 config") and "-- 处理 fix: 请改正该文件" in lines[-1], lines[-1]
    assert lines[-1].index("节点配置文件有误") < lines[-1].index("missing required field"), lines[-1]


def test_a_city_install_is_checked_as_the_top_hub(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What `deploy/install.sh city` ends with: the city is the reference clock and holds no county's documents."""
    cluster = Cluster.prepare(tmp_path / "c", counties=1, towns=1, villages_per_town=1)
    config = cluster.nodes["S"].config
    asyncio.run(_open_and_close(f"sqlite:///{config.parent / 'node.db'}"))
    status = main(["doctor", "--config", str(config), "--json"])
    found = _lines(capsys)
    assert found["clock"][0]["status"] == "ok" and "top hub (city)" in found["clock"][0]["message"]
    assert "none is held here" in found["calendar"][0]["message"]
    assert found["catalogue"][0]["status"] == "ok" and "parent" not in found
    assert status == 1  # warnings only (placed by the demo's directory file, no backup yet)
