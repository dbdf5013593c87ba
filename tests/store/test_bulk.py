"""``sanji.store.bulk`` writes the same rows on both databases: on PostgreSQL many rows go as one statement over
arrays, a column each, and a value too wide for its column is refused there as a row bound alone is."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from sanji.store import bulk, open_database
from sanji.store import schema as t


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
