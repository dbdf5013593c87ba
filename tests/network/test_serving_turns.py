"""A parent serves a few sync requests at a time, first come first served (issue 15's recovery burst).

The archive tests' real SQLite tree (C, T01, T01V01); the township's real sync endpoints over HTTP on
loopback; the village's real ``sync_once`` and ``HttpTransport``. The test holds the township's turns
itself, as other children's requests would, to see what a request does while it waits for one.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.testing import TestClient
from sqlalchemy import select

from protocol.errors import SanjiError
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.store import schema as t
from sanji.sync.driver import sync_once
from sanji.sync.server import SERVING_AT_ONCE, SyncServer
from sanji.sync.transport import HttpTransport
from sanji.web.errors import http_error_handler, sanji_error_handler
from sanji.web.sync_routes import GONE_AFTER_S, SyncController
from tests.store import test_archive as archive_kit
from tests.store.test_archive import T, Tree, V
from town_node.app import create_app as create_town_app

tree = archive_kit.tree  # the archive tests' fixture: C, T01 and T01V01


@asynccontextmanager
async def serving(server: SyncServer) -> AsyncIterator[str]:
    """``server`` answering ``/sync/v1/*`` (the real controller) on a loopback port."""
    app = Litestar(
        route_handlers=[SyncController],
        dependencies={"sync": Provide(lambda: server, sync_to_thread=False)},
        exception_handlers={SanjiError: sanji_error_handler, HTTPException: http_error_handler},
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    http = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none"))
    task = asyncio.create_task(http.serve(sockets=[sock]))
    try:
        for _ in range(1500):  # uvicorn says it started by a flag, not an event
            if http.started:
                break
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        http.should_exit = True
        await task
        sock.close()


async def take_every_turn(server: SyncServer) -> None:
    for _ in range(SERVING_AT_ONCE):
        await server.turns.acquire()


def give_every_turn(server: SyncServer) -> None:
    for _ in range(SERVING_AT_ONCE):
        server.turns.release()


async def counter_at_parent(tree: Tree) -> int | None:
    """The last request counter the township accepted from the village (what admitting a request writes)."""
    async with tree.stores[T].db.reader.connect() as conn:
        value = await conn.scalar(select(t.sync_counters.c.counter).where(t.sync_counters.c.child == V))
    return None if value is None else int(value)


async def test_a_request_waits_for_a_turn_and_is_then_answered(tree: Tree) -> None:
    server = SyncServer(tree.stores[T])
    async with serving(server) as url:
        await take_every_turn(server)  # SERVING_AT_ONCE other children's requests being served
        transport = HttpTransport(url)
        try:
            exchange = asyncio.create_task(sync_once(tree.stores[V], transport))
            await asyncio.sleep(1.0)
            assert not exchange.done()  # queued, neither refused nor served beside the others
            server.turns.release()  # one of them is answered: the village's turn
            report = await asyncio.wait_for(exchange, 30)
        finally:
            await transport.close()
            for _ in range(SERVING_AT_ONCE - 1):
                server.turns.release()
    assert report.peer == T and transport.requests >= 1


async def test_a_request_whose_child_hung_up_while_it_waited_is_not_served(tree: Tree) -> None:
    server = SyncServer(tree.stores[T])
    before = await counter_at_parent(tree)
    async with serving(server) as url:
        await take_every_turn(server)
        # The opening request's idle limit is 1 s here: it and its one retry on a fresh connection time out
        # in the queue, and the village gives up, as after an outage with a long queue at the parent.
        impatient = HttpTransport(url, timeout=GONE_AFTER_S)
        try:
            with pytest.raises(SanjiError, match="ReadTimeout"):
                await sync_once(tree.stores[V], impatient)
        finally:
            await impatient.close()
        give_every_turn(server)
        await asyncio.sleep(0.5)  # both abandoned requests get their turns now
        # Neither was admitted: serving them would have spent the turns on answers nobody reads.
        assert await counter_at_parent(tree) == before
        transport = HttpTransport(url)
        try:
            report = await sync_once(tree.stores[V], transport)  # the village's next attempt is served at once
        finally:
            await transport.close()
    assert report.peer == T
    after = await counter_at_parent(tree)
    assert after is not None and after != before


def test_a_running_node_serves_every_sync_request_from_its_one_set_of_turns(tmp_path: Path) -> None:
    """The node makes a ``SyncServer`` for each request; the turns are the node's, or they would limit nothing."""
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    app = create_town_app(load_settings(cluster.nodes["T01"].config))
    with TestClient(app):
        runtime = app.state.runtime
        first, second = runtime.get_sync(), runtime.get_sync()
        assert first is not second and first.turns is second.turns is runtime.sync_turns
        assert runtime.sync_turns._value == SERVING_AT_ONCE
