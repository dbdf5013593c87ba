"""A page of batches is read a bounded number of rows at a time: a long stream pages out exactly as before
(``protocol.ledger.PageBudget`` over all of it), without reading the rest of the stream for every page."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from protocol.ledger import PageBudget
from protocol.stream import StreamKey
from sanji.layout import county_layout
from sanji.store import Store, open_database, repo

STREAMS = (StreamKey("T01V01", "T01V01"), StreamKey("T01", "T01V01"), StreamKey("C", "T01V01"))


def reference(
    sizes: dict[StreamKey, list[int]], after: dict[StreamKey, int], budget: int
) -> list[tuple[StreamKey, int]]:
    """The page as the whole rest of every stream, offered at once, makes it."""
    page = PageBudget(budget)
    out: list[tuple[StreamKey, int]] = []
    for key in sorted(after):
        rest = list(enumerate(sizes[key], start=1))[after[key] :]
        fit = page.take([size for _, size in rest])
        out.extend((key, seq) for seq, _ in rest[:fit])
        if page.full:
            break
    return out


@pytest.mark.parametrize("rows", [1, 3, 7, 256])
async def test_pages_of_long_streams_are_what_the_whole_streams_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    monkeypatch.setattr(repo, "PAGE_ROWS", rows)
    rng = random.Random(rows)
    layout = county_layout(1, 1)
    db = await open_database(f"sqlite:///{tmp_path}/T01.db")
    try:
        store = Store(db, node_id="T01", key=layout.keys["T01"], directory=layout.directory)
        await store.start()
        # Small batches, a few larger than the whole budget (one of those must still move alone).
        sizes = {key: [rng.choice([40, 90, 300, 1300]) for _ in range(rng.randint(20, 60))] for key in STREAMS}
        with sqlite3.connect(tmp_path / "T01.db") as conn:
            conn.executemany(
                "INSERT INTO batches (origin, scope, seq, hash, frame, size, received_at) VALUES (?, ?, ?, ?, ?, ?, 0)",
                [
                    (key.origin, key.scope, seq, b"h" * 32, f"{key}#{seq}".encode().ljust(size, b"."), size)
                    for key, row in sizes.items()
                    for seq, size in enumerate(row, start=1)
                ],
            )
        for budget in (1000, 1024, 4096):
            held = dict.fromkeys(STREAMS, 0)
            held[STREAMS[1]] = 5  # one stream partly held already
            pages = 0
            while True:
                frames, more = await store.frames_after(held, budget)
                expected = reference(sizes, held, budget)
                assert [f.split(b".")[0].decode() for f in frames] == [f"{k}#{s}" for k, s in expected]
                for key, seq in expected:
                    held[key] = seq
                pages += 1
                if not more:
                    break
            assert held == {key: len(row) for key, row in sizes.items()}
            assert pages > 3
    finally:
        await db.dispose()
