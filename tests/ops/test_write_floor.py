"""bench.write_floor times the database alone doing an ingest's writes: what it replays must be every write
the store made, so the replayed store holds exactly what the applied one holds."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bench import write_floor
from bench.profile_apply import Saved, build
from protocol.topology import COUNTY, Directory
from sanji.keys import NodeKey
from sanji.store import Store, open_database
from sanji.store import schema as t
from sanji.store.engine import Database, sqlite_pages

TABLES = ("batches", "actions", "errands", "streams", "meta")


@pytest.fixture(scope="module")
def corpus() -> Saved:
    return asyncio.run(build(8, seed=11, villages_per_town=1))


async def started(path: Path, saved: Saved) -> tuple[Database, Store]:
    db = await open_database(f"sqlite:///{path}", role=COUNTY)
    key = NodeKey.from_raw(saved.signing, saved.sealing)
    store = Store(db, node_id=saved.county, key=key, directory=Directory(saved.entries))
    await store.start()
    return db, store


def rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    con = sqlite3.connect(path)
    try:
        held = {table: sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr) for table in TABLES}
    finally:
        con.close()
    held["meta"] = [row for row in held["meta"] if row[0] != "instance_id"]  # each store's own, made at start
    return held


async def test_the_replayed_writes_leave_what_the_apply_left(corpus: Saved, tmp_path: Path) -> None:
    applied, replayed = tmp_path / "applied.db", tmp_path / "replayed.db"
    log = write_floor.WriteLog()
    db, store = await started(applied, corpus)
    try:
        log.attach(db.writer.sync_engine)
        for town, frames in corpus.pushes:
            log.next_push()
            await store.receive(frames, peer=town)
        log.detach(db.writer.sync_engine)
    finally:
        await db.dispose()
    db, _ = await started(replayed, corpus)
    await db.dispose()
    before = rows(replayed)
    assert before["actions"] == [] and before["errands"] == []

    seconds = write_floor.replay(replayed, log, sqlite_pages(COUNTY))

    assert seconds > 0 and len(log.pushes) == len(corpus.pushes)
    assert all(log.pushes), "every push wrote something"
    assert not any(s.lstrip().upper().startswith("SELECT") for push in log.pushes for s, _, _ in push)
    after, expected = rows(replayed), rows(applied)
    assert after["errands"] and after == expected


async def test_what_a_push_undid_is_undone_in_the_replay(tmp_path: Path) -> None:
    """A savepoint rolled back (a frame that failed, taken again) is rolled back in the replay too, and a push
    whose whole transaction rolled back replays nothing."""
    recorded, replayed = tmp_path / "recorded.db", tmp_path / "replayed.db"
    for path in (recorded, replayed):
        db = await open_database(f"sqlite:///{path}", role=COUNTY)
        await db.dispose()
    log = write_floor.WriteLog()
    db = await open_database(f"sqlite:///{recorded}", role=COUNTY)
    row = {"origin": "A", "scope": "S", "seq": 1, "last_hash": b"h"}
    try:
        log.attach(db.writer.sync_engine)
        log.next_push()
        async with db.write() as conn:
            await conn.execute(t.streams.insert().values(row))
            with pytest.raises(RuntimeError):
                async with conn.begin_nested():
                    await conn.execute(t.streams.insert().values({**row, "origin": "B"}))
                    raise RuntimeError("a frame failed")
            await conn.execute(t.streams.insert().values({**row, "origin": "C"}))
        log.next_push()
        with pytest.raises(RuntimeError):
            async with db.write() as conn:
                await conn.execute(t.streams.insert().values({**row, "origin": "D"}))
                raise RuntimeError("the push failed")
        log.detach(db.writer.sync_engine)
    finally:
        await db.dispose()
    assert log.pushes[1] == []

    write_floor.replay(replayed, log, sqlite_pages(COUNTY))

    assert rows(replayed)["streams"] == rows(recorded)["streams"] == [("A", "S", 1, b"h"), ("C", "S", 1, b"h")]
