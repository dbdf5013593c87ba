"""The parent's memory of request counters: each signed sync request is accepted once, in order.

A child signs every request with a counter (``sanji.sync.requests_auth``); the parent keeps, in
its own database, the highest counter it accepted from each child and takes a request only if
its counter is higher. The check and the update are one write transaction, so two hub processes
sharing a PostgreSQL database cannot both accept the same request.

Refusals are counted on the child's row; an event row is written at most once a minute per child
with the count since the last one, so a replay flood costs a counter increment, not a row each.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import insert, select, update

from sanji.store import Store
from sanji.store import schema as t
from sanji.sync.requests_auth import StaleRequest

log = logging.getLogger("sanji.sync")
LOG_EVERY_S = 60.0


class RequestCounters:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def admit(self, child: str, counter: int, *, path: str) -> None:
        """Take ``counter`` as ``child``'s newest request, or raise ``StaleRequest`` (counted, logged capped)."""
        refused_last: int | None = None
        async with self.store.transaction() as conn:
            row = (
                (await conn.execute(select(t.sync_counters).where(t.sync_counters.c.child == child))).mappings().first()
            )
            if row is None:
                await conn.execute(insert(t.sync_counters).values(child=child, counter=counter))
                return
            last = int(row["counter"])
            if counter > last:
                await conn.execute(
                    update(t.sync_counters).where(t.sync_counters.c.child == child).values(counter=counter)
                )
                return
            refused_last = last
            refused = int(row["refused"]) + 1
            now = time.time()
            if now - float(row["logged_at"]) >= LOG_EVERY_S:
                await self.store.log_event(
                    "stale_request",
                    child,
                    {"refused": refused, "counter": counter, "last": last, "path": path},
                    conn=conn,
                )
                log.warning("refused %d replayed or stale sync request(s) from %s (last on %s)", refused, child, path)
                await conn.execute(
                    update(t.sync_counters).where(t.sync_counters.c.child == child).values(refused=0, logged_at=now)
                )
            else:
                await conn.execute(
                    update(t.sync_counters).where(t.sync_counters.c.child == child).values(refused=refused)
                )
        raise StaleRequest(
            f"request counter {counter} from {child} is not above {refused_last}, the last one accepted "
            "(a replayed request, or a child whose counter went back)",
            last=refused_last,
        )
