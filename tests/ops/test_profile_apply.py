"""bench.profile_apply replays a county's recorded pushes, in turn or with the townships pushing at the same
time: both must leave the county holding the same errands, every frame stored (the store takes concurrent
pushes from different townships in turn, whatever order their awaits interleave in)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.profile_apply import Saved, apply, build


@pytest.fixture(scope="module")
def corpus() -> Saved:
    return asyncio.run(build(12, seed=5, villages_per_town=1))


async def test_townships_pushing_at_once_leave_what_pushing_in_turn_leaves(corpus: Saved, tmp_path: Path) -> None:
    towns = {town for town, _ in corpus.pushes}
    assert len(towns) == 2
    frames = sum(len(pushed) for _, pushed in corpus.pushes)
    in_turn = await apply(corpus, tmp_path / "in-turn.db", None, settle=False)
    at_once = await apply(corpus, tmp_path / "at-once.db", None, settle=False, at_once=True)
    assert in_turn["towns_at_once"] is False and at_once["towns_at_once"] is True
    assert in_turn["frames"] == at_once["frames"] == frames
    assert in_turn["actions"] == at_once["actions"] > 0
    assert in_turn["errands"] == at_once["errands"] > 0
    assert at_once["digests_sha256"] == in_turn["digests_sha256"]
