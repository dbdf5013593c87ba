"""PostgreSQL's shared lock table is bounded (``max_locks_per_transaction`` × connections). A push that finds
no room for the locks of what it touches is rolled back and taken again under the writer lock (``NotLocked``,
``Store.receive``), and stores what it would have; when there is no room even for the writer lock, the
push fails as the database being unavailable (503, retry later), writing nothing. A real server of the
test's own with a small lock table (``devtools.private_pg``), filled by another session's locks."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from devtools.private_pg import PrivateClusterUnavailable, Server, private_cluster
from sanji.layout import Layout
from sanji.store import engine
from sanji.web.errors import database_unavailable
from tests.conftest import StoreOpener
from tests.store.test_intake import more_batches
from tests.store.test_store_sqlite import TOWN, VILLAGE, chain, expected_digests, statuses

FILLER_CLASS = 77  # the filler's advisory locks: a key space of their own


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    try:
        with private_cluster({"max_locks_per_transaction": "10", "max_connections": "20"}) as (primary,):
            yield primary
    except PrivateClusterUnavailable as exc:
        if os.environ.get("SANJI_REQUIRE_POSTGRES", "") == "1":
            pytest.fail(f"SANJI_REQUIRE_POSTGRES=1 but {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture
async def url(server: Server) -> AsyncIterator[str]:
    admin = await asyncpg.connect(server.url())
    try:
        await admin.execute("DROP DATABASE IF EXISTS town")
        await admin.execute("CREATE DATABASE town")
        yield server.url("town")
    finally:
        await admin.execute("DROP DATABASE IF EXISTS town WITH (FORCE)")
        await admin.close()


async def fill(server: Server, *, leave: int) -> asyncpg.Connection:
    """A session holding advisory locks until the lock table has no room, then giving back ``leave`` of them."""
    filler = await asyncpg.connect(server.url())
    taken = 0
    while True:
        try:
            await filler.execute("SELECT pg_advisory_lock($1::int4, $2::int4)", FILLER_CLASS, taken)
        except asyncpg.exceptions.OutOfMemoryError:
            break
        taken += 1
        assert taken < 100_000, "the lock table never filled"
    for key in range(taken - leave, taken):
        assert await filler.fetchval("SELECT pg_advisory_unlock($1::int4, $2::int4)", FILLER_CLASS, key)
    return filler


async def test_a_push_with_no_room_for_its_locks_is_taken_under_the_writer_lock(
    open_store: StoreOpener, layout: Layout, server: Server, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = more_batches()
    town = await open_store(TOWN, url=url)
    filler = await fill(server, leave=1)  # room for the writer lock, none for the stream's and errands' beside it
    eased = []
    touched_locks = engine._advisory_locks

    async def then_eased(conn: object, keys: list[int] | None) -> None:
        try:
            await touched_locks(conn, keys)  # type: ignore[arg-type]
        except engine.NotLocked:
            # The pressure passes (the other session ends) before the push is taken again.
            await filler.execute("SELECT pg_advisory_unlock_all()")
            eased.append(len(keys or ()))
            raise

    monkeypatch.setattr(engine, "_advisory_locks", then_eased)
    try:
        outcome = await town.receive(chain(layout, batches), peer=VILLAGE)
    finally:
        await filler.close()
    assert eased and eased[0] > 1
    assert statuses(outcome) == ["stored"] * len(batches)
    assert town.push_locks == {"writer": 1, "fell_back": 1}
    assert await town.digests() == expected_digests(layout, batches)


async def test_a_push_with_no_room_even_for_the_writer_lock_fails_as_unavailable_and_writes_nothing(
    open_store: StoreOpener, layout: Layout, server: Server, url: str
) -> None:
    batches = more_batches()
    town = await open_store(TOWN, url=url)
    filler = await fill(server, leave=0)
    try:
        with pytest.raises(Exception) as failed:
            await town.receive(chain(layout, batches), peer=VILLAGE)
        assert database_unavailable(failed.value), repr(failed.value)
    finally:
        await filler.close()
    assert await town.digests() == {}
    again = await town.receive(chain(layout, batches), peer=VILLAGE)  # room again: the same push, whole
    assert statuses(again) == ["stored"] * len(batches)
    assert await town.digests() == expected_digests(layout, batches)
