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
    "applicant_id_number": "430621195007307797",
    "materials": ["身份证复印件"],
    "actor": "窗口 王芳",
}


async def _drop_connections(database: str) -> int:
    admin = await connect()
    try:
        dropped = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
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
    settings = msgspec.structs.replace(settings, node=msgspec.structs.replace(settings.node, db=pg_url))
    database = pg_url.rsplit("/", 1)[1]
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/errands").status_code == 200
        lost = _after_a_drop(database, lambda: client.get("/api/errands"))
        assert lost.json()["error"] == "database_unavailable" and lost.json()["retryable"] is True
        assert client.get("/api/errands").status_code == 200
        # A change may have committed before its connection broke: look before doing it again.
        changed = _after_a_drop(database, lambda: client.post("/api/errands", json=WALK_IN))
        assert changed.json()["retryable"] is False and "may or may not" in changed.json()["message"]
        assert client.post("/api/errands", json=WALK_IN).status_code == 201
