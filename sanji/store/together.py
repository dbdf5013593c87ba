"""Writes that arrive together go in one transaction (group commit, issue 15).

A hub serving many children writes a little for most requests: the child's node reports, the lease it
hands out. Each in a transaction of its own is a commit (a sync to disk) and, on PostgreSQL, the advisory
writer lock and five round trips to the server; after an outage, 500 first exchanges at once queued
behind one another's commits until their children gave up. ``together`` runs every write waiting at the
moment in one transaction, one after another in the order they arrived, so each sees what the ones
before it wrote, exactly as if each had had its own transaction in that order. Each caller goes on only
once its write is committed.

A write that raises takes nobody else down with it: the transaction is rolled back and every write of
it runs again in a transaction of its own, so each caller meets its own outcome. A write may therefore
run twice: it must do nothing outside its connection before it returns (log after, not inside).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from sanji.store.engine import Database

T = TypeVar("T")
Write = Callable[[AsyncConnection], Awaitable[Any]]


@dataclass
class _Waiting:
    write: Write
    answer: asyncio.Future[Any]


@dataclass
class _Queue:
    waiting: list[_Waiting] = field(default_factory=list)
    writing: asyncio.Task[None] | None = None


def _queue(db: Database, loop: asyncio.AbstractEventLoop) -> _Queue:
    """One queue per database and event loop (futures belong to the loop that made them)."""
    queue = db.queues.get(loop)
    if not isinstance(queue, _Queue):
        queue = db.queues[loop] = _Queue()
    return queue


def _read_outcome(answer: asyncio.Future[Any]) -> None:
    """A caller given up while it waited leaves its answer unread: read it, so asyncio does not log it."""
    if not answer.cancelled():
        answer.exception()


async def together(db: Database, write: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """``write(conn)`` in the next transaction of ``db``'s writer, with every write waiting meanwhile."""
    loop = asyncio.get_running_loop()
    queue = _queue(db, loop)
    answer: asyncio.Future[Any] = loop.create_future()
    answer.add_done_callback(_read_outcome)
    queue.waiting.append(_Waiting(write, answer))
    if queue.writing is None or queue.writing.done():
        queue.writing = loop.create_task(_write_all(db, queue))
    # Shielded: a caller given up meanwhile leaves its write to be made with the others.
    result: T = await asyncio.shield(answer)
    return result


async def _write_all(db: Database, queue: _Queue) -> None:
    while queue.waiting:
        batch, queue.waiting = queue.waiting, []
        try:
            try:
                results = await _in_one(db, batch)
            except Exception as exc:
                if len(batch) == 1:
                    if not batch[0].answer.done():
                        batch[0].answer.set_exception(exc)
                else:
                    await _one_by_one(db, batch)
                continue
        except BaseException as exc:  # the writer itself is stopped: none still waiting is written
            batch, queue.waiting = batch + queue.waiting, []
            for one in batch:
                if not one.answer.done():
                    one.answer.set_exception(exc)
            raise
        for one, result in zip(batch, results, strict=True):
            if not one.answer.done():
                one.answer.set_result(result)


async def _in_one(db: Database, batch: list[_Waiting]) -> list[Any]:
    async with db.write() as conn:
        return [await one.write(conn) for one in batch]


async def _one_by_one(db: Database, batch: list[_Waiting]) -> None:
    """Each write of a transaction that failed, in its own: its caller meets its own outcome."""
    for one in batch:
        try:
            async with db.write() as conn:
                result = await one.write(conn)
        except Exception as exc:
            if not one.answer.done():
                one.answer.set_exception(exc)
            continue
        if not one.answer.done():
            one.answer.set_result(result)
