"""A read replica never fetches back an archived attachment: it could not keep the bytes, so it refuses at once
(``ReadOnlyReplica``, 503 ``read_replica``: ask the primary) without asking any ancestor, and the mark stays.

Real servers: a private PostgreSQL primary holding the village's database and its streaming hot standby
(``devtools.private_pg``); the archive tests' tree (C and T01 on SQLite) with the village on the primary; the
township's real sync endpoints on loopback, which do give the bytes back to the primary's store.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import asyncpg
import pytest

from devtools.private_pg import PrivateClusterUnavailable, Server, private_cluster
from sanji.store import ReadOnlyReplica, Store, open_database
from sanji.sync.fetch_back import FetchBack
from tests.network.test_fetch_back import LATER, links, serving_sync
from tests.store.test_archive import T, V, _snapshot, grown


async def _replicated(standby: Server, digest: str, within: float = 30.0) -> None:
    """Wait until the standby holds the village's archive mark of ``digest`` (replication is asynchronous)."""
    deadline = time.monotonic() + within
    while True:
        conn = await asyncpg.connect(standby.url("village"))
        try:
            if await conn.fetchval("select count(*) from blob_archive where hash = $1", digest):
                return
        except asyncpg.UndefinedTableError:
            pass  # the schema itself has not arrived yet
        finally:
            await conn.close()
        assert time.monotonic() < deadline, "the standby never caught up with the primary"
        await asyncio.sleep(0.2)


async def test_a_read_replica_refuses_to_fetch_back_an_archived_attachment(tmp_path: Path) -> None:
    try:
        with private_cluster(standby=True) as (primary, standby):
            admin = await asyncpg.connect(primary.url())
            try:
                await admin.execute("CREATE DATABASE village")
            finally:
                await admin.close()
            async with grown(tmp_path, {V: primary.url("village")}) as tree:
                village = tree.stores[V]
                closed = tree.blobs["closed"]
                assert [c.hash for c in (await village.archive_blobs(after_days=90, now=LATER)).archived] == [closed]
                _, _, original = await tree.stores[T].blob_read(closed, 0, 1 << 20)
                await _replicated(standby, closed)

                opened = await open_database(standby.url("village"))
                try:
                    assert opened.read_only
                    replica = Store(opened, node_id=V, key=village.key, directory=village.directory)
                    await replica.start()
                    mark = await replica.archived_blob(closed)
                    assert mark is not None and mark.held_at == T
                    before = await _snapshot(replica)
                    async with serving_sync(tree.stores[T]) as township:
                        make, asked = links(township)
                        with pytest.raises(ReadOnlyReplica, match="read replica cannot take it back") as refused:
                            await FetchBack(replica, make, max_bytes=1 << 20).open(closed)
                        assert refused.value.code == "read_replica"
                        assert asked == []  # no ancestor was asked: the bytes could not be kept here
                        assert await _snapshot(replica) == before  # the mark and the empty row as they were
                        # The same link gives the bytes back to the primary's store, which keeps them.
                        assert await FetchBack(village, make, max_bytes=1 << 20).open(closed) == original
                        assert len(asked) == 1 and await village.archived_blob(closed) is None
                finally:
                    await opened.dispose()
    except PrivateClusterUnavailable as exc:
        if os.environ.get("SANJI_REQUIRE_POSTGRES", "") == "1":
            pytest.fail(f"SANJI_REQUIRE_POSTGRES=1 but {exc}", pytrace=False)
        pytest.skip(str(exc))
