"""Writes arriving together go in one transaction, each caller meeting its own outcome (``sanji.store.together``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sanji.store import Database, open_database
from sanji.store import schema as t
from sanji.store.engine import DatabaseClosed
from sanji.store.together import together


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    opened = await open_database(f"sqlite:///{tmp_path / 'one.db'}")
    try:
        yield opened
    finally:
        await opened.dispose()


def meta_write(key: str, *, fail: bool = False) -> Callable[[AsyncConnection], Awaitable[str]]:
    async def write(conn: AsyncConnection) -> str:
        await conn.execute(insert(t.meta).values(key=key, value="1"))
        if fail:
            raise ValueError(f"{key} fails")
        return key

    return write


async def keys(db: Database) -> set[str]:
    async with db.reader.connect() as conn:
        return {str(k) for k in (await conn.execute(select(t.meta.c.key))).scalars()}


async def test_writes_arriving_together_commit_once(db: Database) -> None:
    begun: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("BEGIN IMMEDIATE"):
            begun.append(statement)

    event.listen(db.writer.sync_engine, "before_cursor_execute", count)
    try:
        done = await asyncio.gather(*(together(db, meta_write(f"k{i}")) for i in range(20)))
    finally:
        event.remove(db.writer.sync_engine, "before_cursor_execute", count)
    assert done == [f"k{i}" for i in range(20)]
    assert {f"k{i}" for i in range(20)} <= await keys(db)
    assert len(begun) <= 2  # the first alone (nothing waited yet), the other 19 together


async def test_a_failing_write_takes_nobody_else_down(db: Database) -> None:
    writes = [meta_write("a"), meta_write("b", fail=True), meta_write("c")]
    outcomes = await asyncio.gather(
        together(db, meta_write("first")), *(together(db, w) for w in writes), return_exceptions=True
    )
    assert outcomes[0] == "first" and outcomes[1] == "a" and outcomes[3] == "c"
    assert isinstance(outcomes[2], ValueError)
    held = await keys(db)
    assert {"first", "a", "c"} <= held and "b" not in held


async def test_closing_waits_for_a_write_its_caller_gave_up_and_refuses_later_ones(tmp_path: Path) -> None:
    """A shielded write carries on after its caller is cancelled (a stopping sync driver); closing the database
    meanwhile waits for it, so its connection is closed with the rest, never left to the garbage collector."""
    db = await open_database(f"sqlite:///{tmp_path / 'one.db'}")
    inside = asyncio.Event()

    async def slow(conn: AsyncConnection) -> str:
        inside.set()
        await asyncio.sleep(0.2)
        await conn.execute(insert(t.meta).values(key="slow", value="1"))
        return "slow"

    caller = asyncio.create_task(together(db, slow))
    await inside.wait()
    caller.cancel()
    await asyncio.gather(caller, return_exceptions=True)
    await db.dispose()  # the write is still in its transaction here
    assert "slow" in await keys(db)  # committed before the connections were closed
    with pytest.raises(DatabaseClosed):
        await together(db, meta_write("late"))
    assert "late" not in await keys(db)
    await db.dispose()
