"""On PostgreSQL a push locks the streams and errands it touches, not the whole writer (issue 15): hub
processes taking different townships' pushes apply them at the same time, and the same pushes taken by
two processes at once are still stored once. Real processes on a real database."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select

from bench.hub_processes import county, run_processes
from bench.profile_apply import Saved, build
from protocol.batch import open_frame
from protocol.topology import Directory
from sanji.layout import Layout
from sanji.store import Store, open_database, repo
from sanji.store import schema as t
from tests.conftest import StoreOpener
from tests.store.test_intake import more_batches
from tests.store.test_store_sqlite import (
    SISTER,
    TOWN,
    VILLAGE,
    chain,
    enrolled,
    expected_digests,
    note,
    register,
    statuses,
    submit,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Saved]:
    saved = asyncio.run(build(12, seed=5, villages_per_town=1))
    path = tmp_path_factory.mktemp("corpus") / "corpus.msgpack"
    path.write_bytes(msgspec.msgpack.encode(saved))
    return path, saved


def digest_of_all(digests: dict[str, str]) -> str:
    return hashlib.sha256(msgspec.msgpack.encode(sorted(digests.items()))).hexdigest()


async def ready(saved: Saved, url: str) -> None:
    """The county's database migrated and its store started once, as a hub's is before its workers start."""
    store = await county(saved, url)
    await store.db.dispose()


async def digest_at(saved: Saved, url: str) -> str:
    """One digest of every errand the county at ``url`` holds."""
    store = await county(saved, url, migrate=False)
    try:
        return digest_of_all(await store.digests())
    finally:
        await store.db.dispose()


async def in_turn(saved: Saved, url: str) -> str:
    """Every push received by one process, one after the other: what the processes must leave."""
    store = await county(saved, url)
    try:
        for town, frames in saved.pushes:
            await store.receive(frames, peer=town)
        return digest_of_all(await store.digests())
    finally:
        await store.db.dispose()


async def hub_processes(
    corpus: Path, url: str, towns_each: list[list[str]], origins: list[str] | None = None
) -> list[dict[str, Any]]:
    """Real hub processes (``bench.hub_processes``), each taking those townships' pushes, all at once."""
    reports, _ = await run_processes(corpus, url, towns_each, origins)
    return reports


async def held(url: str) -> tuple[int, list[str]]:
    db = await open_database(url, migrate=False)
    try:
        async with db.reader.connect() as conn:
            batches = (await conn.execute(select(func.count()).select_from(t.batches))).scalar_one()
            ids = list((await conn.execute(select(t.actions.c.id))).scalars().all())
    finally:
        await db.dispose()
    return batches, ids


async def test_hub_processes_take_different_townships_at_once(corpus: tuple[Path, Saved], pg_url: str) -> None:
    path, saved = corpus
    towns = sorted({town for town, _ in saved.pushes})
    assert len(towns) == 2
    await ready(saved, pg_url)
    outs = await hub_processes(path, pg_url, [[towns[0]], [towns[1]]])
    frames = sum(len(f) for _, f in saved.pushes)
    assert sorted(s for o in outs for s in o["statuses"]) == ["stored"] * frames
    for out, town in zip(outs, towns, strict=True):  # each push under its own locks, none needed the writer's
        assert out["push_locks"] == {"touched": sum(1 for t_, _ in saved.pushes if t_ == town)}
    after = await digest_at(saved, pg_url)
    assert after == await in_turn(saved, f"sqlite:///{path.with_suffix('.in-turn.db')}")


async def test_two_hub_processes_taking_the_same_pushes_store_each_once(
    corpus: tuple[Path, Saved], pg_url: str
) -> None:
    """Both processes take every push at the same time (a township that gave up waiting and sent again to
    the other): each frame is stored by one of them, the other finds it held, and nothing is doubled."""
    path, saved = corpus
    towns = sorted({town for town, _ in saved.pushes})
    await ready(saved, pg_url)
    outs = await hub_processes(path, pg_url, [towns, towns])
    frames = sum(len(f) for _, f in saved.pushes)
    both = Counter(s for o in outs for s in o["statuses"])
    assert both["stored"] == frames and both["duplicate"] == frames, both
    batches, ids = await held(pg_url)
    directory = Directory(saved.entries)
    actions = sum(len(open_frame(frame, directory).actions) for _, pushed in saved.pushes for frame in pushed)
    assert batches == frames and len(ids) == len(set(ids)) == actions
    after = await digest_at(saved, pg_url)
    assert after == await in_turn(saved, f"sqlite:///{path.with_suffix('.in-turn-2.db')}")


async def test_two_streams_of_the_same_errands_taken_at_once_lose_nothing(
    corpus: tuple[Path, Saved], pg_url: str
) -> None:
    """One process takes the townships' own frames, the other their villages' frames about the same errands,
    at the same time (a village's file carried straight to the county while its township pushes): the
    errands end as when every frame came in turn. (Whether two such pushes meet depends on timing here;
    ``test_a_push_waits_for_one_touching_the_same_errand_and_for_no_other`` checks the lock itself.)"""
    path, saved = corpus
    towns = sorted({town for town, _ in saved.pushes})
    await ready(saved, pg_url)
    outs = await hub_processes(path, pg_url, [towns, towns], origins=["town", "village"])
    assert all("stored" in o["statuses"] for o in outs)  # each process stored frames of its streams
    assert set(s for o in outs for s in o["statuses"]) <= {"stored", "held"}
    store = await county(saved, pg_url)
    try:
        again = [await store.receive(frames, peer=town) for town, frames in saved.pushes]  # whatever was held
        after = digest_of_all(await store.digests())
    finally:
        await store.db.dispose()
    assert {r.status for outcome in again for r in outcome.results} <= {"stored", "duplicate"}
    assert after == await in_turn(saved, f"sqlite:///{path.with_suffix('.in-turn-3.db')}")


async def exclusive_write(store: Store) -> None:
    async with store.transaction() as conn:  # what every write but a push goes through
        await conn.execute(select(func.count()).select_from(t.meta))


async def test_a_push_waits_for_one_touching_the_same_errand_and_for_no_other(
    open_store: StoreOpener, layout: Layout, pg_url: str
) -> None:
    """Two hub processes' stores on one database: while one holds a push about E1 open, the other applies a
    push about another errand at once, and waits with one about E1 from another stream until the first
    commits, then applies it over what the first wrote."""
    county_id, other_village = "C", "T02V01"
    about_e1 = [[register("E1", 1), submit("E1", 2)]]  # the village's stream
    # The township's own stream, about the same errand: another stream, the same errand row.
    township_note = msgspec.structs.replace(note("E1", 3, "已电话联系申请人", node=TOWN), scope=VILLAGE)
    also_e1 = [[township_note]]
    elsewhere = [[register("E2", 4, node=other_village)]]
    # Three processes' stores (starting one writes: each is open before the first push holds its locks).
    first, second = await open_store(county_id, url=pg_url), await open_store(county_id, url=pg_url)
    third = await open_store(county_id, url=pg_url)
    inside, release = asyncio.Event(), asyncio.Event()
    take_all = first._take_all

    async def held_open(*args: Any, **kwargs: Any) -> Any:
        taken = await take_all(*args, **kwargs)
        inside.set()
        await release.wait()  # the transaction and its locks still held
        return taken

    first._take_all = held_open  # type: ignore[method-assign]
    pushing = asyncio.create_task(first.receive(chain(layout, about_e1), peer=TOWN))
    await asyncio.wait_for(inside.wait(), timeout=30)
    other = chain(layout, elsewhere, origin=other_village, scope=other_village, key=layout.keys[other_village])
    assert statuses(await asyncio.wait_for(second.receive(other, peer="T02"), timeout=30)) == ["stored"]
    same = chain(layout, also_e1, origin=TOWN, scope=VILLAGE, key=layout.keys[TOWN])
    waiting = asyncio.create_task(second.receive(same, peer=TOWN))
    done, _ = await asyncio.wait({waiting}, timeout=1.0)
    assert not done  # the errand's lock is held by the first push
    desk = asyncio.create_task(exclusive_write(third))  # a desk's write: the writer lock, exclusively
    done, _ = await asyncio.wait({desk}, timeout=1.0)
    assert not done  # the writer lock, exclusive, waits for the pushes holding it shared
    release.set()
    assert statuses(await pushing) == ["stored"]
    assert statuses(await asyncio.wait_for(waiting, timeout=30)) == ["stored"]
    await asyncio.wait_for(desk, timeout=30)
    assert first.push_locks == {"touched": 1} and second.push_locks == {"touched": 2}  # none needed the writer's
    assert await second.digests() == expected_digests(layout, [*about_e1, *also_e1, *elsewhere])


async def test_a_push_that_drains_another_errand_is_taken_under_the_writer_lock(
    open_store: StoreOpener, layout: Layout, pg_url: str
) -> None:
    """A held successor drained by a push names errands the push did not lock: the push is rolled back and
    taken again under the writer lock, and stores what it would have."""
    batches = more_batches()
    frames = chain(layout, batches)
    town = await open_store(TOWN, url=pg_url)
    early = await town.receive([frames[3]], peer=VILLAGE)  # batch 4 (registers E3) before 1-3: held
    assert statuses(early) == ["held"]
    assert town.push_locks == {"touched": 1}
    rest = await town.receive(frames[:3], peer=VILLAGE)
    assert statuses(rest) == ["stored"] * 3
    assert town.push_locks == {"touched": 1, "writer": 1, "fell_back": 1}
    assert await town.digests() == expected_digests(layout, batches[:4])
    last = await town.receive(frames[4:], peer=VILLAGE)
    assert statuses(last) == ["stored"]
    assert town.push_locks == {"touched": 2, "writer": 1, "fell_back": 1}
    assert await town.digests() == expected_digests(layout, batches)


async def test_a_push_naming_more_than_its_share_of_locks_takes_the_writer_lock(
    open_store: StoreOpener, layout: Layout, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's lock table is shared and bounded: a push naming more streams and errands than
    ``MAX_TOUCHED_LOCKS`` (a hand-carried file of thousands) takes the one writer lock instead."""
    batches = more_batches()
    town = await open_store(TOWN, url=pg_url)
    monkeypatch.setattr(repo, "MAX_TOUCHED_LOCKS", 3)  # the first two frames name a stream and two errands
    first = await town.receive(chain(layout, batches)[:2], peer=VILLAGE)
    assert statuses(first) == ["stored"] * 2 and town.push_locks == {"touched": 1}
    rest = await town.receive(chain(layout, batches)[2:], peer=VILLAGE)  # E1, E2, E3 and the stream: four
    assert statuses(rest) == ["stored"] * 3 and town.push_locks == {"touched": 1, "writer": 1}
    assert await town.digests() == expected_digests(layout, batches)


async def test_a_push_whose_frames_open_otherwise_by_its_turn_takes_the_writer_lock(
    open_store: StoreOpener, layout: Layout, pg_url: str
) -> None:
    """The directory changes while a push waits for its turn (the village that wrote it dropped): its frames,
    opened again, no longer name what it locked, so it is taken under the writer lock, and refused there as
    any frame of a node not in the directory is."""
    bigger = enrolled(layout)
    county = await open_store("C", url=pg_url)
    county.use_directory(bigger.directory)
    frames = chain(bigger, [[register("E9", 0, node=SISTER)]], origin=SISTER, scope=SISTER)
    async with county.transaction():  # this process's writer held: the push waits for its turn
        pushing = asyncio.create_task(county.receive(frames, peer=TOWN))
        done, _ = await asyncio.wait({pushing}, timeout=0.5)
        assert not done
        county.use_directory(layout.directory)
    outcome = await asyncio.wait_for(pushing, timeout=30)
    assert statuses(outcome) == ["refused"]
    assert county.push_locks == {"writer": 1, "fell_back": 1}
    assert await county.digests() == {}
