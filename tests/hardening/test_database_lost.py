"""A node whose PostgreSQL connections were dropped (the server restarted) answers 503, never a 500 — retryable
for a read, "look first" for a change that may have committed — and the next request works on a new pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import msgspec
from httpx import Response
from litestar.testing import TestClient

from devtools.throwaway_pg import connect
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from town_node.app import create_app

WALK_IN = {
    "matter": "MZ-001",
    "applicant_name": "张秀英",
    "applicant_id_number": "430621195007307791",
    "materials": ["身份证复印件"],
    "actor": "窗口 王芳",
}


async def _drop_connections(database: str) -> int:
    """End every connection to ``database``, as a server restart does, and wait until they are gone."""
    others = "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
    admin = await connect()
    try:
        dropped = await admin.fetchval(f"SELECT count(pg_terminate_backend(pid)) {others}", database)
        for _ in range(100):  # a terminated backend takes a moment to exit
            if not await admin.fetchval(f"SELECT count(*) {others}", database):
                break
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    return int(dropped or 0)


def _after_a_drop(database: str, send: Callable[[], Response]) -> Response:
    """The first answer that met a dropped connection. The node's own duties share the pool and may meet it
    first (then the pool is new already and the request succeeds): drop again, a few times at most."""
    for _ in range(10):
        assert asyncio.run(_drop_connections(database)) >= 1
        answer = send()
        assert answer.status_code != 500, answer.text
        if answer.status_code == 503:
            return answer
    raise AssertionError("no request met a dropped connection in ten tries")


def test_lost_connections_are_a_503_then_the_pool_is_new(tmp_path: Path, pg_url: str) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes["T01"].config)
    settings = msgspec.structs.replace(
        settings,
        node=msgspec.structs.replace(settings.node, db=pg_url),
        # No sync with the (absent) parent nor duties meanwhile: the requests below meet the dropped connections.
        sync=msgspec.structs.replace(settings.sync, interval=3600, duties_interval=3600),
    )
    database = pg_url.rsplit("/", 1)[1]
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/errands").status_code == 200
        lost = _after_a_drop(database, lambda: client.get("/api/errands"))
        assert lost.json()["error"] == "database_unavailable" and lost.json()["retryable"] is True
        assert client.get("/api/errands").status_code == 200
        # A change: never a 500 either. Its write may be taken again on a new connection (201); when it is not,
        # it may have committed before its connection broke, so the answer says to look before doing it again.
        for _ in range(3):
            assert asyncio.run(_drop_connections(database)) >= 1
            changed = client.post("/api/errands", json=WALK_IN)
            assert changed.status_code in (201, 503), changed.text
            if changed.status_code == 503:
                assert changed.json()["retryable"] is False and "may or may not" in changed.json()["message"]
        assert client.post("/api/errands", json=WALK_IN).status_code == 201
