"""Shared fixtures: throwaway PostgreSQL databases and in-process county networks.

``pg_url``   a fresh, uniquely named PostgreSQL database for one test, dropped afterwards.
             Skips loudly when no server answers on 127.0.0.1:5432, unless
             ``SANJI_REQUIRE_POSTGRES=1``, which turns the skip into a failure (CI).
``network``  an async factory building a county of real stores (SQLite files in
             ``tmp_path``; optionally the root on PostgreSQL) wired child->parent
             with ``LocalTransport``s, or any other tree given as ``layout=`` (a city
             over counties: ``sanji.layout.city_layout``); every engine is disposed at teardown.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from devtools.throwaway_pg import PostgresUnreachable, throwaway_database
from protocol.session import DEFAULT_BUDGET_BYTES
from protocol.topology import Directory
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.layout import Layout, county_layout
from sanji.service import ErrandService
from sanji.store import Database, Store, open_database
from sanji.store import schema as t
from sanji.sync.driver import SessionReport, sync_once
from sanji.sync.requests_auth import RequestSigner
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport, TransportError
from sanji.workcalendar import load_calendar

_pg_skips: list[str] = []


def _require_postgres() -> bool:
    return os.environ.get("SANJI_REQUIRE_POSTGRES", "") == "1"


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A brand-new PostgreSQL database (``sanji_test_<random>``); dropped with its connections afterwards."""
    try:
        async with throwaway_database("sanji_test") as url:
            yield url
    except PostgresUnreachable as exc:
        if _require_postgres():
            pytest.fail(f"SANJI_REQUIRE_POSTGRES=1 but {exc}", pytrace=False)
        reason = (
            f"{exc} -- the PostgreSQL tests did NOT run. Start a server with trust auth, "
            "or set SANJI_REQUIRE_POSTGRES=1 to make this a failure."
        )
        _pg_skips.append(reason)
        pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _pg_skips:
        terminalreporter.write_sep("!", f"{len(_pg_skips)} PostgreSQL test(s) SKIPPED", red=True, bold=True)
        terminalreporter.write_line(_pg_skips[0], red=True)


# -- single stores ------------------------------------------------------------------------------

StoreOpener = Callable[..., Awaitable[Store]]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Where ``open_store`` puts its database: an SQLite file. A test module may override it (PostgreSQL)."""
    return f"sqlite:///{tmp_path / 'node.db'}"


@pytest.fixture
def layout() -> Layout:
    return county_layout(2, 1)  # C; T01 > T01V01; T02 > T02V01


@pytest.fixture
async def open_store(db_url: str, layout: Layout) -> AsyncIterator[StoreOpener]:
    """``await open_store(node)``: a started Store of ``layout`` on ``db_url``, a new Database object each call."""
    opened: list[Database] = []

    async def opener(node: str = "T01", *, url: str | None = None) -> Store:
        db = await open_database(url or db_url)
        opened.append(db)
        store = Store(db, node_id=node, key=layout.keys[node], directory=layout.directory)
        await store.start()
        return store

    try:
        yield opener
    finally:
        for db in opened:
            await db.dispose()


# -- in-process networks -------------------------------------------------------------------------


async def row_counts(store: Store) -> dict[str, int]:
    """Rows in every table of the store's database."""
    out: dict[str, int] = {}
    async with store.db.reader.connect() as conn:
        for table in t.metadata.sorted_tables:
            out[table.name] = int(await conn.scalar(select(func.count()).select_from(table)) or 0)
    return out


CATALOGUE = default_catalogue()
CALENDAR = load_calendar()


@dataclass
class Network:
    """A county in one process: one Store per node, a LocalTransport from each child to its parent."""

    layout: Layout
    directory: Directory
    stores: dict[str, Store]
    servers: dict[str, SyncServer]
    transports: dict[str, LocalTransport]  # child id -> link to its parent
    budget: int = DEFAULT_BUDGET_BYTES
    failures: list[tuple[str, str]] = field(default_factory=list)

    def service(self, node: str) -> ErrandService:
        """A desk on ``node`` that holds the county's catalogue (nothing is accepted without one) and the built-in
        working calendar (an acceptance names its deadline)."""
        context = NodeContext(self.stores[node], CALENDAR)
        context.catalogue = CATALOGUE
        return ErrandService(self.stores[node], context)

    def signed(self, node: str, *, to: str | None = None) -> LocalTransport:
        """A link from ``node`` to ``to`` (default: its parent) whose requests ``node`` signs, as a driver's are."""
        parent = to or self.directory.parent(node)
        assert parent is not None
        link = LocalTransport(self.servers[parent])
        if node in self.stores:  # a node of another county has nothing to sign with: sent unsigned
            link.signer = RequestSigner(node, self.stores[node])
        return link

    def depth(self, node: str) -> int:
        return len(self.directory.path(node))

    def children_bottom_up(self) -> list[str]:
        """Every node that has a parent, deepest first (villages, then towns)."""
        kids = [n for n in self.stores if self.directory.parent(n) is not None]
        return sorted(kids, key=lambda n: (-self.depth(n), n))

    async def sync_node(self, node: str, *, budget: int | None = None) -> SessionReport | None:
        """One sync_once for ``node`` with its parent; None (and a recorded failure) if the link is down."""
        try:
            return await sync_once(self.stores[node], self.transports[node], budget=budget or self.budget)
        except TransportError as exc:
            self.failures.append((node, exc.message))
            return None

    async def sync_all(self, rounds: int = 1, *, budget: int | None = None) -> list[SessionReport]:
        """Each round: every child syncs bottom-up (pushes climb), then top-down (pulls descend)."""
        reports: list[SessionReport] = []
        up = self.children_bottom_up()
        for _ in range(rounds):
            for node in [*up, *reversed(up)]:
                report = await self.sync_node(node, budget=budget)
                if report is not None:
                    reports.append(report)
        return reports

    async def row_counts(self, node: str) -> dict[str, int]:
        return await row_counts(self.stores[node])

    async def digests(self, node: str) -> dict[str, str]:
        return await self.stores[node].digests()

    async def divergence(self) -> list[str]:
        """Why the network has not converged; empty when every errand is identical on its whole path only."""
        held = {n: await s.digests() for n, s in self.stores.items()}
        problems: list[str] = []
        scopes: dict[str, str] = {}
        for node, store in self.stores.items():
            for errand_id in held[node]:
                row = await store.errand(errand_id)
                assert row is not None
                scopes.setdefault(errand_id, row["scope"])
        for errand_id, scope in sorted(scopes.items()):
            path = set(self.directory.path(scope))
            digests = {n: held[n].get(errand_id) for n in path}
            if len(set(digests.values())) != 1 or None in digests.values():
                problems.append(f"{errand_id}: digests on its path differ: {digests}")
            strays = [n for n in self.stores if n not in path and errand_id in held[n]]
            if strays:
                problems.append(f"{errand_id} (scope {scope}) leaked to {strays}")
        for node, store in self.stores.items():
            status = await store.status()
            if status["held_batches"] or status["quarantined_batches"] or status["queue_length"]:
                problems.append(
                    f"{node}: {status['held_batches']=} {status['quarantined_batches']=} {status['queue_length']=}"
                )
        return problems


NetworkFactory = Callable[..., Awaitable[Network]]


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[NetworkFactory]:
    """``await network(towns, villages, county_url=None, budget=..., layout=None)`` -> a started ``Network``."""
    built: list[Network] = []
    dbs: list[Database] = []

    async def build(
        towns: int = 1,
        villages: int = 1,
        *,
        county_url: str | None = None,
        budget: int = DEFAULT_BUDGET_BYTES,
        layout: Layout | None = None,
    ) -> Network:
        layout = layout or county_layout(towns, villages)
        directory = layout.directory
        stores: dict[str, Store] = {}
        base = tmp_path / f"net{len(built)}"
        for entry in layout.entries:
            url = county_url if (entry.parent is None and county_url) else f"sqlite:///{base / entry.id}.db"
            db = await open_database(url)
            dbs.append(db)
            store = Store(db, node_id=entry.id, key=layout.keys[entry.id], directory=directory)
            await store.start()
            stores[entry.id] = store
        servers = {n: SyncServer(s) for n, s in stores.items()}
        transports = {n: LocalTransport(servers[p]) for n in stores if (p := directory.parent(n)) is not None}
        net = Network(layout, directory, stores, servers, transports, budget)
        built.append(net)
        return net

    try:
        yield build
    finally:
        for db in dbs:
            await db.dispose()
