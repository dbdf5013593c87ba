"""An app started and stopped leaves no thread behind: a process that builds many (tests, tools) stays lean."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from litestar.testing import TestClient

from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from village_agent.app import create_app


def _settled_threads(limit: int) -> int:
    # Threads of closed database connections end a moment after close returns.
    deadline = time.monotonic() + 5
    while threading.active_count() > limit and time.monotonic() < deadline:
        time.sleep(0.05)
    return threading.active_count()


def test_starting_and_stopping_apps_leaves_no_thread(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes["T01V01"].config)
    with TestClient(create_app(settings)) as client:  # the first app may set up what every later one shares
        assert client.get("/api/node").status_code == 200
    before = _settled_threads(threading.active_count())
    for _ in range(5):
        with TestClient(create_app(settings)) as client:
            assert client.get("/api/node").status_code == 200
    assert _settled_threads(before) == before, [t.name for t in threading.enumerate()]
