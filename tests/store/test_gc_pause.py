"""Collection is paused while a push is taken, and resumes when the last overlapping pause ends."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from sanji.store.gc_pause import collections_paused


@pytest.fixture(autouse=True)
def _collection_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_paused_inside_and_resumed_after() -> None:
    gc.enable()
    with collections_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_resumed_after_an_error() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collections_paused():
        raise RuntimeError("a frame failed")
    assert gc.isenabled()


def test_overlapping_pauses_resume_only_when_the_last_ends() -> None:
    gc.enable()

    async def push(started: asyncio.Event, release: asyncio.Event, seen: list[bool]) -> None:
        with collections_paused():
            started.set()
            await release.wait()
        seen.append(gc.isenabled())

    async def run() -> list[bool]:
        seen: list[bool] = []
        a_started, b_started, a_release, b_release = (asyncio.Event() for _ in range(4))
        a = asyncio.create_task(push(a_started, a_release, seen))
        await a_started.wait()
        b = asyncio.create_task(push(b_started, b_release, seen))
        await b_started.wait()
        a_release.set()  # the first ends while the second still runs: still paused
        await a
        b_release.set()
        await b
        return seen

    assert asyncio.run(run()) == [False, True]
    assert gc.isenabled()


def test_left_off_when_it_was_off_before() -> None:
    gc.disable()
    with collections_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
