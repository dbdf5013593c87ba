"""What one idle exchange costs the hub in database statements (issue 15).

At 5,000 children exchanging every minute every statement the hub runs per idle exchange is paid 83
times a second; this pins the count so it cannot creep back up. A real certified county (``TrustNet``:
trust on, leases, request counters) with its working context (catalogue, calendar, rules), its real sync
endpoints over HTTP on loopback, and the township's real ``sync_once`` over ``HttpTransport``. Every
statement the hub's engines run while serving the township's idle exchange is counted (an SQLAlchemy
``before_cursor_execute`` event: ``BEGIN`` included, ``COMMIT`` is the driver's own call and not).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event

from sanji.context import NodeContext
from sanji.store import Database
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import HttpTransport
from sanji.workcalendar import load_calendar
from tests.network.test_serving_turns import serving
from tests.trust.trust_net import TrustNet, certified_net

# The idle exchange's statements at the hub (34 before session 10): what it asks first in one statement
# (``sanji.sync.glance``: trust mark, frozen, documents' versions); the request counter's write (BEGIN,
# read, update); the lease handed out (BEGIN, 6 statements: ``TrustBook.check_child``; 7 once a child had 64
# leases, before the old ones are pruned in one statement); the cursors the answer carries on one connection
# (``Database.reading``): the streams from or about the child's subtree in one read, the outbox's size.
IDLE_STATEMENTS = 13


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[TrustNet]:
    built = await certified_net(tmp_path, towns=1, villages=0)
    try:
        yield built
    finally:
        await built.close()


@contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(" ".join(statement.split())[:120])

    engines = {id(e.sync_engine): e.sync_engine for e in (db.writer, db.reader)}
    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", count)


async def test_an_idle_exchange_costs_the_hub_few_statements(net: TrustNet) -> None:
    hub = net.stores["C"]
    context = NodeContext(hub, load_calendar())
    await context.load()
    server = SyncServer(hub, context, net.books["C"])
    async with serving(server) as url:
        transport = HttpTransport(url)
        try:
            town = net.stores["T01"]
            town_context = NodeContext(town, None)
            await town_context.load()
            trust = net.child_trust["T01"]
            first = await sync_once(town, transport, context=town_context, trust=trust)
            assert first.bytes_received > 0
            await sync_once(town, transport, context=town_context, trust=trust)  # caught up
            with counting(hub.db) as seen:
                idle = await sync_once(town, transport, context=town_context, trust=trust)
        finally:
            await transport.close()
    assert idle.pushed == idle.pulled == 0
    assert len(seen) <= IDLE_STATEMENTS, "\n".join(seen)
