"""Opening a store: SQLite (WAL, one writer, BEGIN IMMEDIATE) or PostgreSQL.

SQLite gets two engines, as Datasette does: a single-connection writer whose
transactions start with ``BEGIN IMMEDIATE`` (so read-then-write never deadlocks)
and a reader pool that sees the last committed state without blocking it.
PostgreSQL gets one pool; writers there serialise on advisory locks.

Every book kept in the node's database (the ledger ``Store``, ``AuthBook``, ``OfficeBook``, the SMS
outbox, the trust book) writes through the one door here, ``Database.write``, so there is one writer
and one order of commits; the audit log joins a transaction through ``add_commit_hook``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, event, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from protocol.errors import SanjiError
from sanji.backup import backup
from sanji.store.revisions import MIGRATIONS, alembic_config, read_revisions, record_release, refuse_if_newer
from sanji.version import release

log = logging.getLogger("sanji.store")
__all__ = [
    "MIGRATIONS",
    "PG_SERVER_SETTINGS",
    "PG_TOUCHED_LOCKS",
    "PG_WRITER_LOCK",
    "CommitHook",
    "Database",
    "NotLocked",
    "ReadOnlyReplica",
    "SqlitePages",
    "normalise_url",
    "open_database",
    "sqlite_pages",
]

PG_WRITER_LOCK = 0x53414E4A49  # "SANJI": one writer at a time across hub processes
# The class of the locks a push takes on PostgreSQL, one for each stream and each errand it touches
# (``Database.write_touching``), in the two-key form: its key space never meets ``PG_WRITER_LOCK``'s.
PG_TOUCHED_LOCKS = 0x534A  # "SJ"
# Connections one process keeps open to its database for reading (SQLite's reader pool, PostgreSQL's one pool
# beside the writer's). A hub serves ``sanji.sync.server.SERVING_AT_ONCE`` (16) sync requests at a time, each
# holding one connection while its reads run (``Database.read``), beside the screens and the single writer:
# a pool smaller than that makes the 17th request wait for a connection, and on PostgreSQL, where the writer
# takes its connection from the same pool, readers holding every connection while they wait for the writer
# would leave it none. Connections are opened only when asked for, so a village that never serves many opens
# a few.
POOL_CONNECTIONS = 24
CommitHook = Callable[[AsyncConnection], Awaitable[None]]
# Set on every PostgreSQL connection as it opens (no statement of its own). asyncpg prepares each statement
# once per connection and PostgreSQL, after five runs of one, keeps a generic plan for it when that plan
# looks no dearer than the custom ones. For ``col = ANY($1)`` it prices the array at 10 values, so with a
# push's hundreds of ids it always does, and a generic plan made while a table was small scans all of it,
# comparing each row with each id, until the table is next analysed: on the 1,000-errand corpus the read of
# a push's action ids grew from 0.3 ms to 40 ms within 20 pushes (617 of 1,700 ms). Planned each time
# with the values known it stays an index lookup, for about 0.1 ms of the server's planning a statement
# (EXPLAIN ANALYZE of a push's errand upsert and reads). Needs PostgreSQL 12 or later.
PG_SERVER_SETTINGS: dict[str, str] = {"plan_cache_mode": "force_custom_plan"}


class DatabaseClosed(SanjiError):
    """A write asked for after the node began to stop (``Database.dispose``): refused, nothing written. A retry
    reaches the node once it runs again."""

    code = "database_closed"
    retryable = True
    default_hint = "节点正在停止，请稍后重试。 The node is stopping; try again once it is running."


class ReadOnlyReplica(SanjiError):
    """A write asked of a process whose database is a PostgreSQL standby (docs/scaling.md, 2.): refused before
    anything is sent, the same whatever the write. Retrying here cannot help; the primary's hub takes it."""

    code = "read_replica"
    default_hint = (
        "这里是只读副本，只能查看和导出；办理、登录和推送请到主节点（the county's primary hub）。"
        " This process reads a replica: views and exports only; desk actions, logins and pushes go to the primary."
    )


class NotLocked(Exception):
    """A push taken under the locks of what it touches (``Database.write_touching``) needs an errand or a
    stream it did not lock (a held successor drained, a foreign copy filed elsewhere), or PostgreSQL had no
    room left for its locks: it is rolled back and taken again under the writer lock (``Store.receive``)."""


# PostgreSQL's out_of_memory (its shared lock table full: "out of shared memory").
_LOCK_TABLE_FULL = "53200"
# Each key's lock in the order given (``unnest`` keeps the array's), in one round trip.
_LOCK_EACH = "SELECT count(pg_advisory_xact_lock($1::int4, k)) FROM unnest($2::int4[]) AS k"


def sqlstate(exc: BaseException) -> str:
    """PostgreSQL's SQLSTATE of a driver error SQLAlchemy wrapped ("" for anything else, SQLite's included)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return str(getattr(orig, "sqlstate", "") or "")


def _lock_key(name: str) -> int:
    """The advisory lock key of ``name``: 32 bits of its SHA-256, as PostgreSQL's signed int4."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
    return key - (1 << 32) if key >= 1 << 31 else key


async def _advisory_locks(conn: AsyncConnection, keys: list[int] | None) -> None:
    """The writer lock exclusively (``keys`` None), or shared and each of ``keys``' lock exclusively."""
    if keys is None:
        await conn.execute(select(func.pg_advisory_xact_lock(PG_WRITER_LOCK)))
        return
    await conn.execute(select(func.pg_advisory_xact_lock_shared(PG_WRITER_LOCK)))
    try:
        await conn.exec_driver_sql(_LOCK_EACH, (PG_TOUCHED_LOCKS, keys))
    except DBAPIError as exc:
        if sqlstate(exc) == _LOCK_TABLE_FULL:
            raise NotLocked(f"no room in PostgreSQL's lock table for {len(keys)} locks") from exc
        raise


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``sqlite:///`` URLs and pick the async drivers."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///") and "+aiosqlite" not in url:
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


@dataclass
class Database:
    url: str
    writer: AsyncEngine
    reader: AsyncEngine
    is_sqlite: bool
    # A PostgreSQL standby (``pg_is_in_recovery()`` when opened): every write is refused (``ReadOnlyReplica``).
    read_only: bool = False
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False  # ``dispose`` began: every later write is refused (``DatabaseClosed``)
    commit_hooks: list[CommitHook] = field(default_factory=list)
    # Writes waiting to go in one transaction, per event loop (``sanji.store.together``).
    queues: WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = field(
        default_factory=WeakKeyDictionary, repr=False, compare=False
    )
    # The connection ``reading`` lends to ``read`` in its block, and the task it belongs to (one per database).
    _lent: ContextVar[tuple[AsyncConnection, asyncio.Task[Any] | None] | None] = field(
        default_factory=lambda: ContextVar("sanji_reading", default=None)
    )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection to read on: the one ``reading`` lends in its block (same task), else one of the pool's."""
        lent = self._lent.get()
        if lent is not None and lent[1] is asyncio.current_task():
            yield lent[0]
            return
        async with self.reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """Every ``read`` of this task in the block on one connection, each statement on its own.

        A sync request reads a handful of rows in several steps (issue 15): each on a connection of its own
        was a pool checkout, a ``BEGIN`` and a ``ROLLBACK`` around one ``SELECT`` (on PostgreSQL each a
        round trip to the server). Here the statements run in autocommit, each seeing what is committed when
        it runs, as if each had its own connection: a write made meanwhile (this request's own, through
        ``write``) is seen by the reads after it. Tasks started in the block read on their own connections.
        """
        if self._lent.get() is not None:
            yield
            return
        async with self.reader.connect() as conn:
            if self.is_sqlite:
                await conn.execution_options(sanji_autocommit=True)  # no BEGIN (``_sqlite_engine``)
            else:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            token = self._lent.set((conn, asyncio.current_task()))
            try:
                yield
            finally:
                self._lent.reset(token)

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """The single writer's transaction: this process's lock, ``BEGIN IMMEDIATE`` on SQLite, and on
        PostgreSQL an advisory lock shared by every hub process. Commits when the block ends normally."""
        return self._transaction(None)

    def write_touching(self, names: Collection[str]) -> AbstractAsyncContextManager[AsyncConnection]:
        """A transaction that writes only rows of ``names`` (a push's streams and errands: ``Store.receive``).

        On SQLite, ``write``. On PostgreSQL the writer lock shared, and an advisory lock of its own for each
        name exclusively: pushes that touch no stream and no errand in common, taken by different hub
        processes, are applied at the same time, while every other write (``write``: the writer lock
        exclusively) still waits for them all and they for it. The names' locks are taken in one statement,
        in the order of their keys, so two pushes never hold each other's; two names whose keys coincide only
        wait for each other. What such a transaction finds it needs beyond ``names`` it does not read: it
        raises, rolls back, and is taken again through ``write`` (``NotLocked``); so does a push for which
        PostgreSQL's shared lock table has no room.
        """
        return self._transaction(None if self.is_sqlite else sorted({_lock_key(name) for name in names}))

    @asynccontextmanager
    async def _transaction(self, keys: list[int] | None) -> AsyncIterator[AsyncConnection]:
        """``write`` (``keys`` None) or ``write_touching`` (the names' lock keys); the commit hooks run last."""
        if self.read_only:
            raise ReadOnlyReplica(
                f"数据库只读副本不能写入（登录、办理、推送、查看个人信息的审计记录）: {self.url.split('@')[-1]} is a "
                "read-only replica; nothing can be written to it, the audit record of a read of personal data included"
            )
        async with self.write_lock:
            if self.closed:
                raise DatabaseClosed(f"{self.url.split('@')[-1]} is closed: the node is stopping; nothing was written")
            async with self.writer.begin() as conn:
                if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE is its writer lock
                    await _advisory_locks(conn, keys)
                yield conn
                for hook in self.commit_hooks:
                    await hook(conn)

    def add_commit_hook(self, hook: CommitHook) -> None:
        """Run ``hook`` at the end of every write transaction, before it commits and on its connection.

        What the hook writes commits together with the block's own writes or not at all (the audit
        log's ``ActionTaken`` beside the action it records). A block that raises runs no hook.
        """
        if hook not in self.commit_hooks:
            self.commit_hooks.append(hook)

    async def dispose(self) -> None:
        """Close every connection, once the write in flight (if any) has committed or rolled back.

        A writer that outlives the task that asked for it (``sanji.store.together`` and the request counters
        carry a write on when its caller is cancelled) would otherwise hand its connection back to a pool
        already emptied, and nothing would ever close it. Writes asked for from here on are refused."""
        self.closed = True
        async with self.write_lock:
            await self.writer.dispose()
            if self.reader is not self.writer:
                await self.reader.dispose()


@dataclass(frozen=True)
class SqlitePages:
    """How much memory one node's SQLite connections may hold of the database's pages (issue 15).

    ``writer_cache_kib`` is the page cache of the one writer connection (``PRAGMA cache_size``; it grows
    to that as pages are touched, and is kept across its transactions); readers keep SQLite's default
    cache. The ingest writes into indexes on random ids (``actions.id``, ``actions.errand``, ``errands.id``;
    ≈ 750 MB at a million errands): with SQLite's default 2 MB cache nearly every lookup misses on its way
    down the trees. Measured on a million-errand store (bench/README.md, "Page memory by tier"): 2-6 % less
    ingest CPU with the file also memory-mapped, within the noise, and the same bytes written; what grows
    with the store is the writing of those random leaves, which no cache saves. The cache is kept for the
    hubs (they have the memory, and a village pays nothing); the mapping is not: it measured nothing, and
    through a mapping a read error of the disk kills the process (SIGBUS) where ``pread`` returns an error
    the node reports.

    ``wal_autocheckpoint`` is how many pages the WAL may hold before a commit copies them into the file
    (``PRAGMA wal_autocheckpoint``; SQLite's default 1,000, 4 MB). A page changed by several pushes between
    two checkpoints is copied once: on the million-errand store, 4,000 pages (16 MB) wrote 19 % fewer bytes
    and took 9 % less CPU per ingest, the push p99 no worse (16,000 saved more but the push that pays the
    bigger checkpoint got slower). Durability is the same: every commit is in the WAL, synced.
    """

    writer_cache_kib: int
    wal_autocheckpoint: int = 1000


SQLITE_DEFAULT_PAGES = SqlitePages(writer_cache_kib=2000, wal_autocheckpoint=1000)  # SQLite's own
# By the node's role (``protocol.topology.ROLES``). A village keeps SQLite's defaults: its laptop idles
# under 80 MB (issue 16, ``bench.footprint``), and its store stays small. The hubs take more.
SQLITE_PAGES: dict[str, SqlitePages] = {
    "village": SQLITE_DEFAULT_PAGES,
    "town": SqlitePages(writer_cache_kib=64 * 1024),
    "county": SqlitePages(writer_cache_kib=256 * 1024, wal_autocheckpoint=4000),
    "city": SqlitePages(writer_cache_kib=256 * 1024, wal_autocheckpoint=4000),
    "province": SqlitePages(writer_cache_kib=256 * 1024, wal_autocheckpoint=4000),
}


def sqlite_pages(role: str) -> SqlitePages:
    """The page memory of a node of ``role`` (no role, or one not listed: SQLite's defaults)."""
    return SQLITE_PAGES.get(role, SQLITE_DEFAULT_PAGES)


def _sqlite_pragmas(
    dbapi_connection: Any, _record: Any, *, cache_kib: int = 2000, wal_autocheckpoint: int = 1000
) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    # Opening the WAL can find another process recovering or switching it (two commands started together, a
    # command beside a node starting): SQLite answers "database is locked" at once there, past busy_timeout.
    # Asked again for as long as busy_timeout would have waited.
    deadline = time.monotonic() + 10
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except Exception as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA synchronous=FULL")  # townships lose power; a commit must survive it
    cursor.execute("PRAGMA foreign_keys=ON")
    if cache_kib != SQLITE_DEFAULT_PAGES.writer_cache_kib:
        cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")  # negative: KiB, not pages
    if wal_autocheckpoint != SQLITE_DEFAULT_PAGES.wal_autocheckpoint:
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
    cursor.close()


def _sqlite_engine(url: str, *, immediate: bool, pages: SqlitePages = SQLITE_DEFAULT_PAGES) -> AsyncEngine:
    if immediate:
        engine = create_async_engine(url, pool_size=1, max_overflow=0)
    else:
        engine = create_async_engine(url, pool_size=POOL_CONNECTIONS, max_overflow=4)
    cache_kib = pages.writer_cache_kib if immediate else SQLITE_DEFAULT_PAGES.writer_cache_kib
    pragmas = partial(_sqlite_pragmas, cache_kib=cache_kib, wal_autocheckpoint=pages.wal_autocheckpoint)
    event.listen(engine.sync_engine, "connect", pragmas)
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get("sanji_autocommit"):
            return  # ``Database.reading``: each statement its own transaction (the connection's own mode)
        conn.exec_driver_sql(begin)

    event.listen(engine.sync_engine, "begin", _begin)
    return engine


def _upgrade(connection: Connection, release: str) -> None:
    rev = read_revisions(connection)
    refuse_if_newer(rev, release)  # checked again under the write lock
    if not rev.pending:  # another process migrated it meanwhile, or nothing to do: Alembic stays unloaded
        if rev.written_by != release:
            record_release(connection, release)
        return
    from alembic import command  # only to migrate (see sanji.store.revisions.alembic_config)

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
    record_release(connection, release)


async def open_database(
    url: str, *, migrate: bool = True, backup_dir: Path | None = None, node: str = "", role: str = ""
) -> Database:
    """Open (and by default migrate) the store at ``url``; a SQLite store with the page memory of a node
    of ``role`` (``sqlite_pages``: none given, SQLite's defaults, as a village).

    A store migrated by a newer release is refused (``DatabaseNewer``) before anything is written;
    a store behind the code is first copied into ``backup_dir`` (when given), then migrated.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        pages = sqlite_pages(role)
        writer = _sqlite_engine(url, immediate=True, pages=pages)
        reader = _sqlite_engine(url, immediate=False, pages=pages)
        db = Database(url=url, writer=writer, reader=reader, is_sqlite=True)
    else:
        # No ``pool_pre_ping``: on asyncpg it is three round trips (BEGIN, a ping, ROLLBACK) before every use
        # of a pooled connection, as many again as the reads it precedes, which under load is most of what a
        # hub serving a thousand children waits for (bench.many_nodes, session 10). A connection the server
        # dropped (PostgreSQL restarted) fails the statement that meets it; SQLAlchemy then discards every
        # pooled connection, so one request fails and the next runs on a fresh connection.
        engine = create_async_engine(
            url,
            pool_size=POOL_CONNECTIONS,
            max_overflow=8,
            connect_args={"server_settings": dict(PG_SERVER_SETTINGS)},
        )
        db = Database(url=url, writer=engine, reader=engine, is_sqlite=False)
        try:
            async with db.reader.connect() as conn:
                db.read_only = bool(await conn.scalar(select(func.pg_is_in_recovery())))
        except BaseException:
            await db.dispose()
            raise
    if migrate:
        try:
            async with db.reader.connect() as conn:
                rev = await conn.run_sync(read_revisions)
            refuse_if_newer(rev, release())
            if db.read_only:  # a standby is migrated by its primary; it is only read here
                if rev.pending:
                    raise SanjiError(
                        f"the replica at {url.split('@')[-1]} holds schema {rev.current}, this release needs "
                        f"{rev.head}",
                        hint="Upgrade the primary's hub first (it migrates the database), then start this process.",
                    )
                return db
            if rev.pending and rev.current is not None and backup_dir is not None:
                copy = await asyncio.to_thread(backup, url, backup_dir, node=node or "store", why=f"pre-{rev.head}")
                log.warning("schema %s backed up to %s before migrating to %s", rev.current, copy.path, rev.head)
            if rev.pending or rev.written_by != release():
                async with db.writer.begin() as conn:
                    await conn.run_sync(_upgrade, release())
        except BaseException:
            await db.dispose()
            raise
    return db
