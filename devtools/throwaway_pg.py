"""Throwaway PostgreSQL databases for tests and benchmarks: create one, hand out its URL, drop it after.

The server is the one the tests and the benchmarks share: ``127.0.0.1:5432`` as ``postgres`` with trust auth,
overridden by ``SANJI_PG_HOST``, ``SANJI_PG_PORT`` and ``SANJI_PG_USER``. Each caller decides what a missing
server means (a test skips or fails, a benchmark records ``{"skipped": …}``), so it is raised as
``PostgresUnavailable`` (``PostgresUnreachable`` when nothing answered), apart from whatever goes wrong inside
the ``with``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

PG_HOST = os.environ.get("SANJI_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SANJI_PG_PORT", "5432"))
PG_USER = os.environ.get("SANJI_PG_USER", "postgres")
PG_UNREACHABLE = "PostgreSQL not reachable at"  # how a "no server" message begins, in a skip or a result


class PostgresUnavailable(Exception):
    """No server answered, or it would not create the database: a benchmark skips what needs one."""


class PostgresUnreachable(PostgresUnavailable):
    """No server answered at all: the one case a test skips rather than fails (a server that answers and
    refuses is broken, and a test says so)."""


def url_of(name: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def connect(name: str = "postgres", *, wait_s: float = 5) -> asyncpg.Connection:
    """A connection to database ``name`` (``postgres``: the maintenance database, to create and drop others),
    given up after ``wait_s`` seconds so that a server that does not answer is reported, not waited for."""
    return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=name, timeout=wait_s)


async def create_database(name: str, *, template: str | None = None) -> None:
    """A new database ``name`` (a copy of ``template``, which must have no connections, when given)."""
    admin = await connect()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await admin.close()


async def drop_database(name: str) -> None:
    """Drop ``name`` even while something still holds a connection to it (a pool a failed test left open)."""
    admin = await connect()
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await admin.close()


async def server_version() -> str:
    admin = await connect()
    try:
        return str(await admin.fetchval("SHOW server_version"))
    finally:
        await admin.close()


@asynccontextmanager
async def throwaway_database(prefix: str) -> AsyncIterator[str]:
    """A brand-new database ``<prefix>_<random>``, its URL handed out, dropped with its connections afterwards.

    Raises ``PostgresUnreachable`` before handing anything out when the server cannot be reached, and
    ``PostgresUnavailable`` when it will not create the database; an error inside the ``with`` is the
    caller's own and passes through unchanged.
    """
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        admin = await connect()
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        problem = f"{PG_UNREACHABLE} {PG_HOST}:{PG_PORT} as {PG_USER} ({type(exc).__name__}: {exc})"
        raise PostgresUnreachable(problem) from exc
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.PostgresError as exc:
        raise PostgresUnavailable(f"could not create a database on {PG_HOST}:{PG_PORT}: {exc}") from exc
    finally:
        await admin.close()
    try:
        yield url_of(name)
    finally:
        await drop_database(name)
