"""bench.prefill makes a county store that already holds errands: a store a node opens, whose counts and
digests are what was copied, and into which the benchmark's recorded pushes go exactly as into an empty one."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from pathlib import Path

import pytest

from bench import prefill
from bench.profile_apply import Saved, build
from bench.store_growth import fresh_store, ingest, opened_counts, rechunk
from protocol import receipts
from protocol.batch import open_frame
from protocol.topology import Directory
from sanji.keys import NodeKey
from sanji.store import Store, open_database


@pytest.fixture(scope="module")
def corpus() -> Saved:
    return asyncio.run(build(8, seed=7, villages_per_town=1))  # two townships: pushes that take turns


def id_time(errand: str) -> int:
    return int(errand.rpartition("-")[2][:8], 16)


async def digests(db_path: Path, saved: Saved, directory: Directory) -> dict[str, str]:
    db = await open_database(f"sqlite:///{db_path}")
    try:
        store = Store(db, node_id=saved.county, key=NodeKey.from_raw(saved.signing, saved.sealing), directory=directory)
        await store.start()
        return await store.digests()
    finally:
        await db.dispose()


async def test_a_prefilled_store_holds_its_copies_and_takes_the_pushes_as_an_empty_one(
    corpus: Saved, tmp_path: Path
) -> None:
    directory = Directory(corpus.entries)
    empty = tmp_path / "empty.db"
    await fresh_store(f"sqlite:///{empty}", corpus, directory)
    await ingest(f"sqlite:///{empty}", corpus, directory, [(town, frames) for town, frames in corpus.pushes])
    ref = prefill.read_reference(empty, directory)
    assert ref.errands == 8 and ref.actions == sum(
        len(open_frame(f, directory).actions) for _, fs in corpus.pushes for f in fs
    )

    full = tmp_path / "full.db"
    await fresh_store(f"sqlite:///{full}", corpus, directory)
    made = prefill.prefill(full, ref, copies=3)
    assert made["errands"] == 24
    assert prefill.counts(full) == prefill.expected_counts(ref, 3)
    assert await opened_counts(f"sqlite:///{full}", corpus, directory) == 24
    copies = [prefill.errand_ids(ref, i, prefill.HELD_SUFFIX, i - 3) for i in range(3)]
    every = [new for copy in copies for new in copy.values()]
    assert len(set(every)) == 24
    # Time-ordered as sanji.service mints them: each copy's errands before the next copy's, all before the
    # measured ones, and within each village in the order they were registered.
    measured = sorted(ref.shapes, key=lambda old: ref.errand_ms[old])
    for earlier, later in itertools.pairwise(copies):
        assert max(id_time(new) for new in earlier.values()) < min(id_time(new) for new in later.values())
    assert max(id_time(new) for new in every) < min(id_time(old) for old in measured)
    for copy in copies:
        assert [id_time(copy[old]) for old in measured] == sorted(id_time(copy[old]) for old in measured)
    # The indexed times precede the measured ones too, and so do the action ids, copy after copy.
    held = sqlite3.connect(full).execute("SELECT id, at FROM actions ORDER BY rowid").fetchall()
    first = sqlite3.connect(empty).execute("SELECT min(at), min(id) FROM actions").fetchone()
    assert max(at for _, at in held) < first[0] and max(i for i, _ in held) < first[1]
    # Receipt numbers as a county's would be: valid, each copy's on its own earlier day, before the measured.
    copied = [r for (r,) in sqlite3.connect(full).execute("SELECT receipt FROM errands")]
    measured_receipts = [r for (r,) in sqlite3.connect(empty).execute("SELECT receipt FROM errands")]
    assert all(receipts.is_valid(r) for r in copied) and len({r.split("-")[1] for r in copied}) == 3
    assert max(r.split("-")[1] for r in copied) < min(r.split("-")[1] for r in measured_receipts)
    assert prefill.check_projections(full, every, directory) == 24

    # The measured pushes collide with nothing copied, and their errands end exactly as in the empty store.
    await ingest(f"sqlite:///{full}", corpus, directory, [(town, frames) for town, frames in corpus.pushes])
    before, after = await digests(empty, corpus, directory), await digests(full, corpus, directory)
    assert {k: after[k] for k in before} == before
    assert len(after) == 24 + 8


def test_pushes_of_about_200_actions_keep_every_frame_in_each_townships_order(corpus: Saved) -> None:
    directory = Directory(corpus.entries)
    cut = rechunk(corpus, directory, target=5)
    for town in {t for t, _ in corpus.pushes}:
        recorded = [f for t, fs in corpus.pushes if t == town for f in fs]
        assert [f for t, fs in cut if t == town for f in fs] == recorded
    assert all(fs for _, fs in cut)
