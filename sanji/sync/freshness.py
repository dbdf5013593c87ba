"""The parent's memory of request counters: each signed sync request is accepted once, in order.

A child signs every request with a counter (``sanji.sync.requests_auth``); the parent keeps, in
its own database, the highest counter it accepted from each child and takes a request only if
its counter is higher. The check and the update are one write transaction, so two hub processes
sharing a PostgreSQL database cannot both accept the same request.

Refusals are counted on the child's row; an event row is written at most once a minute per child
with the count since the last one, so a replay flood costs a counter increment, not a row each.

Requests that arrive while the counters are being written wait for the next write and go in it
together (group commit, issue 15): each is still accepted only once its counter is committed, but a
hub with thousands of children pays one durable commit for all the requests of that moment instead
of one each, which at 5,000 children exchanging every minute kept its single writer busy most of
the time and made every request queue behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sanji.store import Store
from sanji.store import schema as t
from sanji.sync.requests_auth import StaleRequest

log = logging.getLogger("sanji.sync")
LOG_EVERY_S = 60.0


@dataclass
class _Asking:
    child: str
    counter: int
    path: str
    answer: asyncio.Future[None]


@dataclass
class _Row:
    """A child's ``sync_counters`` row as the batch leaves it (None fields: no row yet)."""

    counter: int | None
    refused: int = 0
    logged_at: float = 0.0
    changed: bool = False


@dataclass
class _Counters:
    """The admissions waiting for the next write to the counters of one store, and the task writing them."""

    waiting: list[_Asking] = field(default_factory=list)
    writing: asyncio.Task[None] | None = None


# One queue per store and event loop: requests on two loops (a test's portal and its own loop) never share a
# writer, whose futures belong to the loop that made them.
_batches: WeakKeyDictionary[Store, WeakKeyDictionary[asyncio.AbstractEventLoop, _Counters]] = WeakKeyDictionary()


def _counters(store: Store, loop: asyncio.AbstractEventLoop) -> _Counters:
    per_loop = _batches.get(store)
    if per_loop is None:
        per_loop = _batches[store] = WeakKeyDictionary()
    batch = per_loop.get(loop)
    if batch is None:
        batch = per_loop[loop] = _Counters()
    return batch


def _read_outcome(answer: asyncio.Future[None]) -> None:
    """A request given up while it waited leaves its answer unread: read it, so asyncio does not log it."""
    if not answer.cancelled():
        answer.exception()


class RequestCounters:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def admit(self, child: str, counter: int, *, path: str) -> None:
        """Take ``counter`` as ``child``'s newest request, or raise ``StaleRequest`` (counted, logged capped).

        Returns once the counter is committed, in the same write as every request waiting meanwhile."""
        loop = asyncio.get_running_loop()
        batch = _counters(self.store, loop)
        answer: asyncio.Future[None] = loop.create_future()
        answer.add_done_callback(_read_outcome)
        batch.waiting.append(_Asking(child, counter, path, answer))
        if batch.writing is None or batch.writing.done():
            batch.writing = loop.create_task(self._write_all(batch))
        # Shielded: a request given up meanwhile leaves its counter to be written with the others.
        await asyncio.shield(answer)

    async def _write_all(self, batch: _Counters) -> None:
        while batch.waiting:
            asking, batch.waiting = batch.waiting, []
            try:
                refused = await self._write(asking)
            except BaseException as exc:
                if not isinstance(exc, Exception):  # the writer itself is stopped: none still waiting is written
                    asking, batch.waiting = asking + batch.waiting, []
                for one in asking:
                    if not one.answer.done():
                        one.answer.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for one in asking:
                if one.answer.done():
                    continue
                if id(one) in refused:
                    one.answer.set_exception(refused[id(one)])
                else:
                    one.answer.set_result(None)

    async def _write(self, asking: list[_Asking]) -> dict[int, StaleRequest]:
        """One transaction: each request judged in the order it arrived against the counters as the ones
        before it left them, as if written one by one. Returns the refusals, by ``id`` of the request."""
        refused: dict[int, StaleRequest] = {}
        async with self.store.transaction() as conn:
            rows = await _rows(conn, sorted({a.child for a in asking}))
            for one in asking:
                row = rows.setdefault(one.child, _Row(counter=None))
                if row.counter is None or one.counter > row.counter:
                    row.counter, row.changed = one.counter, True
                    continue
                refused[id(one)] = await self._refuse(conn, one, row)
            for child, row in rows.items():
                if row.changed:
                    await _store_row(conn, child, row)
        return refused

    async def _refuse(self, conn: AsyncConnection, one: _Asking, row: _Row) -> StaleRequest:
        last = int(row.counter or 0)
        row.refused += 1
        row.changed = True
        now = time.time()
        if now - row.logged_at >= LOG_EVERY_S:
            await self.store.log_event(
                "stale_request",
                one.child,
                {"refused": row.refused, "counter": one.counter, "last": last, "path": one.path},
                conn=conn,
            )
            log.warning(
                "refused %d replayed or stale sync request(s) from %s (last on %s)", row.refused, one.child, one.path
            )
            row.refused, row.logged_at = 0, now
        return StaleRequest(
            f"request counter {one.counter} from {one.child} is not above {last}, the last one accepted "
            "(a replayed request, or a child whose counter went back)",
            last=last,
        )


async def _rows(conn: AsyncConnection, children: list[str]) -> dict[str, _Row]:
    found = (await conn.execute(select(t.sync_counters).where(t.sync_counters.c.child.in_(children)))).mappings()
    return {
        str(r["child"]): _Row(counter=int(r["counter"]), refused=int(r["refused"]), logged_at=float(r["logged_at"]))
        for r in found
    }


async def _store_row(conn: AsyncConnection, child: str, row: _Row) -> None:
    values = {"counter": row.counter, "refused": row.refused, "logged_at": row.logged_at}
    updated = await conn.execute(update(t.sync_counters).where(t.sync_counters.c.child == child).values(**values))
    if not updated.rowcount:
        await conn.execute(insert(t.sync_counters).values(child=child, **values))
