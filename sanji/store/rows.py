"""Row helpers every part of the store uses: plain dicts out, dialect-aware upserts in.

``compiled_once`` compiles a statement once per dialect, driver and paramstyle and what the caller says
shapes it, and hands back its SQL with how a row of values becomes the driver's parameters: ``upsert``
and ``sanji.store.bulk`` send every row as a tuple to the driver (``exec_driver_sql``), so SQLAlchemy
neither builds nor compiles nor processes anything per call. The columns written that way need no
conversion by either driver (text, integers, floats, bytes, booleans).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable
from types import ModuleType
from typing import Any

from sqlalchemy import Table, bindparam, func
from sqlalchemy.ext.asyncio import AsyncConnection

from sanji.store import report_inputs

__all__ = ["compiled_once", "dialect_module", "plain", "prepared_upsert", "upsert", "upsert_many"]

Row = dict[str, Any]
Prepared = tuple[str, Callable[[Row], tuple[Any, ...]]]  # the SQL, and how a row becomes its parameters
# By the dialect, its driver and the driver's paramstyle (the compiled SQL is written in it: qmark for
# sqlite3, numeric_dollar for asyncpg), then whatever the caller says shapes the statement.
_compiled: dict[tuple[Hashable, ...], Prepared] = {}


def dialect_module(conn: AsyncConnection) -> ModuleType:
    """The dialect module whose ``insert`` knows ON CONFLICT: imported by the store that uses it, so a
    village on SQLite never loads SQLAlchemy's PostgreSQL dialects (issue 16's footprint)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql
    from sqlalchemy.dialects import sqlite

    return sqlite


def plain(row: Any) -> dict[str, Any]:
    # Column names come back as sqlalchemy's str subclass, which msgspec will not take as str.
    return {str(k): v for k, v in row.items()}


async def upsert_many(conn: AsyncConnection, table: Any, rows: list[dict[str, Any]], *, keys: tuple[str, ...]) -> None:
    dialect = dialect_module(conn)
    stmt = dialect.insert(table)
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    await conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates), rows)


def compiled_once(
    conn: AsyncConnection, shape: tuple[Hashable, ...], build: Callable[..., Any], *args: Any
) -> Prepared:
    """``build(*args)``'s statement compiled for ``conn``'s dialect, once per ``shape`` (which must name
    everything the statement depends on but the dialect); its parameters bound by column name (``bindparam``)."""
    dialect = conn.dialect
    cache_key = (dialect.name, dialect.driver, dialect.paramstyle, *shape)
    found = _compiled.get(cache_key)
    if found is not None:
        return found
    stmt: Any = build(*args)  # Any: ``positiontup`` is the SQL compiler's, which ``compile`` does not promise
    compiled = stmt.compile(dialect=dialect)
    order = compiled.positiontup
    if not order:  # every dialect the store runs on binds positionally (qmark, numeric_dollar)
        raise TypeError(f"{dialect.name} does not bind positionally")
    pick = operator.itemgetter(*order)
    as_tuple: Callable[[Row], tuple[Any, ...]] = pick if len(order) > 1 else (lambda row: (pick(row),))
    found = _compiled[cache_key] = (compiled.string, as_tuple)
    return found


def _upsert_statement(
    conn: AsyncConnection, table: Table, columns: tuple[str, ...], keys: tuple[str, ...], greatest: str | None
) -> Any:
    stmt = dialect_module(conn).insert(table).values({c: bindparam(c) for c in columns})
    updates: dict[str, Any] = {c: stmt.excluded[c] for c in columns if c not in keys}
    if greatest is not None:
        held, given = table.c[greatest], stmt.excluded[greatest]
        updates[greatest] = func.greatest(held, given) if conn.dialect.name == "postgresql" else func.max(held, given)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)


def prepared_upsert(
    conn: AsyncConnection, table: Table, columns: tuple[str, ...], keys: tuple[str, ...], greatest: str | None = None
) -> Prepared:
    """Insert ``columns``, or update the others than ``keys`` of the row with the same ``keys``; ``greatest``:
    that column keeps the greater of the value held and the one given."""
    shape = ("upsert", table.name, columns, keys, greatest)
    return compiled_once(conn, shape, _upsert_statement, conn, table, columns, keys, greatest)


async def upsert(
    conn: AsyncConnection, table: Table, values: Row, *, keys: tuple[str, ...], greatest: str | None = None
) -> None:
    """One row of ``prepared_upsert``.

    The values go to the driver as they are, past SQLAlchemy's type processing: every table written here
    holds text, integers, floats, bytes or booleans, which both drivers take unchanged. A column whose type
    converts its value (JSON, a date, an enum) must be written with ``conn.execute`` instead."""
    sql, as_tuple = prepared_upsert(conn, table, tuple(values), keys, greatest)
    await conn.exec_driver_sql(sql, as_tuple(values))
    report_inputs.wrote(conn.sync_engine, table.name)  # a node report may say something else now
