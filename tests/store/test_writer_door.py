"""The one writer door (``Database.write``) and its commit hook, on a real SQLite file.

A hook's rows commit with the block's or not at all; every book (the ledger ``Store``, ``AuthBook``)
goes through the same door, so a hook sees their transactions too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sanji.auth import events as ev
from sanji.auth.book import AuthBook
from sanji.store import Database, open_database
from sanji.store import schema as t


async def meta(db_url: str) -> dict[str, str]:
    db = await open_database(db_url, migrate=False)
    try:
        async with db.reader.connect() as conn:
            return {str(k): str(v) for k, v in (await conn.execute(select(t.meta.c.key, t.meta.c.value))).all()}
    finally:
        await db.dispose()


async def test_a_hook_commits_with_the_block_or_not_at_all(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    db = await open_database(url)
    ran: list[int] = []

    async def stamp(conn: AsyncConnection) -> None:
        ran.append(len(ran))
        await conn.execute(insert(t.meta).values(key=f"hook-{len(ran)}", value="in the same transaction"))

    db.add_commit_hook(stamp)
    db.add_commit_hook(stamp)  # the same hook twice is one hook
    try:
        async with db.write() as conn:
            await conn.execute(insert(t.meta).values(key="body", value="1"))
        with pytest.raises(RuntimeError):
            async with db.write() as conn:
                await conn.execute(insert(t.meta).values(key="lost", value="1"))
                raise RuntimeError("the block fails")
    finally:
        await db.dispose()
    held = await meta(url)
    assert held["body"] == "1" and held["hook-1"] == "in the same transaction"
    assert "lost" not in held and "hook-2" not in held
    assert ran == [0]


async def test_every_book_shares_the_door(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    db = await open_database(url)
    seen: list[int] = []

    async def watch(conn: AsyncConnection) -> None:
        seen.append(1)

    db.add_commit_hook(watch)
    book = AuthBook(db)
    try:
        # The audit log and hand-made writes at once take turns at the one door: the chain keeps one order.
        reads = [ev.PersonalDataRead(at=float(i), node="T01V01", errand=f"E{i}", what="errand") for i in range(6)]
        await asyncio.gather(*(book.record(r) for r in reads), *(bump(db, i) for i in range(6)))
        assert await book.verify_chain() == []
        assert sorted(e.errand for e in await book.events()) == sorted(r.errand for r in reads)
    finally:
        await db.dispose()
    assert len(seen) == 12  # every write, whichever book made it, went through the door
    assert (await meta(url))["bumped"] in {str(i) for i in range(6)}


async def bump(db: Database, i: int) -> None:
    async with db.write() as conn:
        await conn.execute(delete(t.meta).where(t.meta.c.key == "bumped"))
        await conn.execute(insert(t.meta).values(key="bumped", value=str(i)))


def test_no_book_opens_a_write_transaction_but_through_the_door() -> None:
    """Every write goes through ``Database.write`` (the lock, the advisory lock, the commit hooks); only the
    engine itself (and the migration it runs) opens the writer directly."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "sanji"
    strays = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "engine.py" and "writer.begin(" in path.read_text(encoding="utf-8")
    ]
    assert strays == []
