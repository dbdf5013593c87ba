"""``sanji.store.bulk`` writes the same rows on both databases: on PostgreSQL many rows go as one statement over
arrays, a column each, and a value too wide for its column is refused there as a row bound alone is."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from sanji.layout import Layout
from sanji.store import bulk, open_database
from sanji.store import schema as t
from tests.conftest import StoreOpener
from tests.store.test_store_sqlite import TOWN, VILLAGE, chain, expected_digests, standard_batches, statuses


def _stream(origin: str, seq: int) -> dict[str, Any]:
    return {"origin": origin, "scope": "S", "seq": seq, "last_hash": bytes([seq])}


async def _written(url: str) -> list[tuple[Any, ...]]:
    db = await open_database(url)
    try:
        async with db.write() as conn:
            await bulk.insert_many(conn, t.streams, [_stream("A", 1), _stream("B", 2)])
            await bulk.upsert_many(conn, t.streams, [_stream("B", 3), _stream("C", 4)], keys=("origin", "scope"))
            moved = [{"seq": 9, "last_hash": b"\x09", "k_origin": o, "k_scope": "S"} for o in ("A", "C")]
            await bulk.update_many(conn, t.streams, moved, keys=("origin", "scope"))
        async with db.reader.connect() as conn:
            rows = (await conn.execute(select(t.streams).order_by(t.streams.c.origin))).all()
    finally:
        await db.dispose()
    return [tuple(r) for r in rows]


@pytest.mark.postgres
async def test_postgresql_writes_the_rows_sqlite_writes(tmp_path: Any, pg_url: str) -> None:
    expected = [("A", "S", 9, b"\x09"), ("B", "S", 3, b"\x03"), ("C", "S", 9, b"\x09")]
    assert await _written(f"sqlite:///{tmp_path / 'node.db'}") == expected
    assert await _written(pg_url) == expected


@pytest.mark.postgres
async def test_postgresql_refuses_a_value_too_wide_among_many(pg_url: str) -> None:
    db = await open_database(pg_url)
    try:
        with pytest.raises(DBAPIError, match="too long"):
            async with db.write() as conn:
                await bulk.insert_many(conn, t.streams, [_stream("A", 1), _stream("B" * 65, 2)])
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_postgresql_takes_a_push_after_another_process_added_a_column(
    open_store: StoreOpener, layout: Layout, pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """Whole rows go as the table's row type, whose layout asyncpg learns once per connection: a column added
    meanwhile by another process (a newer release migrating) makes the server refuse that layout, and the
    push is taken again with the rows as arrays of columns, the same rows stored."""
    monkeypatch.setattr(bulk, "_row_types_changed", False)
    batches = standard_batches()
    frames = chain(layout, batches)
    town = await open_store(TOWN, url=pg_url)
    await town.receive(frames[:2], peer=VILLAGE)  # several actions and errands: their row types learnt
    assert not bulk._row_types_changed
    other = await open_database(pg_url, migrate=False)
    try:
        async with other.write() as conn:
            for table in ("actions", "errands"):
                await conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN added_later integer NOT NULL DEFAULT 7")
    finally:
        await other.dispose()
    outcome = await town.receive(frames[2:], peer=VILLAGE)
    assert statuses(outcome) == ["stored"]
    assert bulk._row_types_changed
    assert "taking them again frame by frame" in caplog.text
    assert await town.digests() == expected_digests(layout, batches)
    async with town.db.reader.connect() as conn:
        assert set((await conn.exec_driver_sql("SELECT added_later FROM errands")).scalars()) == {7}


def test_only_rows_giving_every_column_go_as_the_table_s_row_type() -> None:
    """A field a row leaves out would be sent as NULL, not the column's default: such rows go as arrays."""
    conn = cast(AsyncConnection, SimpleNamespace(dialect=asyncpg.dialect()))
    every = tuple(reversed(t.errands.c.keys()))  # in any order: the fields are matched by name
    sql = bulk._over_rows_sql(conn, t.errands, "upsert", every, ("id",))
    assert sql is not None and "FROM unnest($1::errands[]) AS v ON CONFLICT (id)" in sql
    assert bulk._over_rows_sql(conn, t.errands, "upsert", every[1:], ("id",)) is None
    assert bulk._over_rows_sql(conn, t.actions, "update", ("status", "reason"), ("id",)) is None


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_a_row_missing_a_column_among_many_is_refused_not_stored_empty(
    tmp_path: Any, pg_url: str, database: str
) -> None:
    """Rows naming other columns than the first (a caller's bug) fail as they did over arrays: never a NULL
    stored in the column a row left out, on either database."""
    url = pg_url if database == "postgresql" else f"sqlite:///{tmp_path / 'node.db'}"
    db = await open_database(url)
    try:
        short = _stream("B", 2)
        del short["last_hash"]
        with pytest.raises(KeyError):
            async with db.write() as conn:
                await bulk.insert_many(conn, t.streams, [_stream("A", 1), short])
        async with db.reader.connect() as conn:
            assert (await conn.execute(select(t.streams))).all() == []
    finally:
        await db.dispose()
