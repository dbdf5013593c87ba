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
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from sanji.backup import backup
from sanji.store.revisions import MIGRATIONS, alembic_config, read_revisions, record_release, refuse_if_newer
from sanji.version import release

log = logging.getLogger("sanji.store")
__all__ = ["MIGRATIONS", "PG_WRITER_LOCK", "CommitHook", "Database", "normalise_url", "open_database"]

PG_WRITER_LOCK = 0x53414E4A49  # "SANJI": one writer at a time across hub processes
CommitHook = Callable[[AsyncConnection], Awaitable[None]]


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
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    commit_hooks: list[CommitHook] = field(default_factory=list)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """The single writer's transaction: this process's lock, ``BEGIN IMMEDIATE`` on SQLite, and on
        PostgreSQL an advisory lock shared by every hub process. Commits when the block ends normally."""
        async with self.write_lock, self.writer.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(select(func.pg_advisory_xact_lock(PG_WRITER_LOCK)))
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
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # townships lose power; a commit must survive it
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_engine(url: str, *, immediate: bool) -> AsyncEngine:
    if immediate:
        engine = create_async_engine(url, pool_size=1, max_overflow=0)
    else:
        engine = create_async_engine(url, pool_size=4, max_overflow=4)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    def _begin(conn: Connection) -> None:
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


async def open_database(url: str, *, migrate: bool = True, backup_dir: Path | None = None, node: str = "") -> Database:
    """Open (and by default migrate) the store at ``url``.

    A store migrated by a newer release is refused (``DatabaseNewer``) before anything is written;
    a store behind the code is first copied into ``backup_dir`` (when given), then migrated.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = _sqlite_engine(url, immediate=True)
        reader = _sqlite_engine(url, immediate=False)
        db = Database(url=url, writer=writer, reader=reader, is_sqlite=True)
    else:
        engine = create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)
        db = Database(url=url, writer=engine, reader=engine, is_sqlite=False)
    if migrate:
        try:
            async with db.reader.connect() as conn:
                rev = await conn.run_sync(read_revisions)
            refuse_if_newer(rev, release())
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
