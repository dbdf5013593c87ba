"""A hub whose PostgreSQL connections were dropped (the server restarted) answers 503, retryable, never a
500, and the next request works on a new connection: the pool no longer pings before every use."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
from litestar.testing import TestClient

from county_node.app import create_app
from devtools.throwaway_pg import connect
from sanji.config import load_settings
from sanji.demo.cluster import Cluster


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


def test_lost_connections_are_a_retryable_503_then_the_pool_is_new(tmp_path: Path, pg_url: str) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes["C"].config)
    settings = msgspec.structs.replace(settings, node=msgspec.structs.replace(settings.node, db=pg_url))
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/errands").status_code == 200
        assert asyncio.run(_drop_connections(pg_url.rsplit("/", 1)[1])) >= 1
        lost = client.get("/api/errands")
        assert lost.status_code == 503, lost.text
        assert lost.json()["error"] == "database_unavailable" and lost.json()["retryable"] is True
        assert client.get("/api/errands").status_code == 200
