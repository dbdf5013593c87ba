"""Many rows through one statement, compiled once per dialect and driver and handed to the driver as tuples
(issue 15).

``conn.execute(stmt, rows)`` has SQLAlchemy build every row's parameters in Python (defaults, type
processors, one dict per row), which cost a county more than the projections for a push's thousands of
action, status and errand rows. The columns written here need no conversion by either driver (text,
integers, floats, bytes, booleans), so the statement is compiled once per (dialect, driver, paramstyle,
statement) (``sanji.store.rows.compiled_once``, which the one-row ``upsert`` uses too) and every row goes to
the driver's ``executemany`` as a tuple in the compiled order (``exec_driver_sql``): the same SQL, the same
values, the same rows stored.

On PostgreSQL many rows go as one statement over arrays, a column each (``unnest``): ``executemany`` runs the
statement once per row on the server, where one statement over the arrays plans and runs once. Over the
1,000-errand corpus (48 pushes, medians of 3 interleaved runs) the errand upserts took 557 -> 498 ms and the
action inserts 264 -> 213 ms. SQLite keeps ``executemany``: there a prepared statement stepped per row is
already the cheapest way in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sanji.store import report_inputs
from sanji.store.rows import Prepared, Row, compiled_once, prepared_upsert

# By (driver, kind, table, columns, keys): the SQL of one statement over arrays (PostgreSQL).
_over_arrays: dict[tuple[Any, ...], str] = {}


def _prepared(
    conn: AsyncConnection, table: Table, kind: str, columns: tuple[str, ...], keys: tuple[str, ...]
) -> Prepared:
    if kind == "upsert":
        return prepared_upsert(conn, table, columns, keys)

    return compiled_once(conn, (kind, table.name, columns, keys), _statement, table, kind, columns, keys)


def _statement(table: Table, kind: str, columns: tuple[str, ...], keys: tuple[str, ...]) -> Any:
    if kind == "insert":
        return insert(table).values({c: bindparam(c) for c in columns})
    # "update": set ``columns`` where ``keys`` equal, bound as ``k_<name>``
    return (
        update(table)
        .where(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
        .values({c: bindparam(c) for c in columns})
    )


async def insert_many(conn: AsyncConnection, table: Table, rows: Sequence[Row]) -> None:
    """Insert ``rows`` (every one with the same columns, all of them given)."""
    if rows:
        await _run(conn, table, "insert", tuple(rows[0]), (), rows)


async def upsert_many(conn: AsyncConnection, table: Table, rows: Sequence[Row], *, keys: tuple[str, ...]) -> None:
    """Insert ``rows``, or update every other column of the row with the same ``keys`` (no two of ``rows`` with
    the same ``keys``: PostgreSQL refuses to update a row twice in one statement)."""
    if rows:
        await _run(conn, table, "upsert", tuple(rows[0]), keys, rows)


async def update_many(conn: AsyncConnection, table: Table, rows: Sequence[Row], *, keys: tuple[str, ...]) -> None:
    """Set the other columns of each row where its ``keys`` match; ``rows`` name the keys ``k_<key>`` (no two
    with the same keys: on PostgreSQL one of them would be taken, not the last)."""
    if rows:
        columns = tuple(c for c in rows[0] if not c.startswith("k_"))
        await _run(conn, table, "update", columns, keys, rows)


async def _run(
    conn: AsyncConnection,
    table: Table,
    kind: str,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    rows: Sequence[Row],
) -> None:
    if conn.dialect.name == "postgresql" and len(rows) > 1:
        names = (*columns, *(f"k_{k}" for k in keys)) if kind == "update" else columns
        sql = _over_arrays_sql(conn, table, kind, columns, keys)
        await conn.exec_driver_sql(sql, tuple([r[c] for r in rows] for c in names))
    else:
        sql, as_tuple = _prepared(conn, table, kind, columns, keys)
        await conn.exec_driver_sql(sql, [as_tuple(r) for r in rows])
    report_inputs.wrote(conn.sync_engine, table.name)  # SQL handed to the driver: the listener cannot name it


def _over_arrays_sql(
    conn: AsyncConnection, table: Table, kind: str, columns: tuple[str, ...], keys: tuple[str, ...]
) -> str:
    """The statement ``kind`` over rows given as one array per column (``$1`` the first column's values …;
    an update's keys after its columns), in the driver's ``$n`` paramstyle (asyncpg's, the one PostgreSQL
    driver the store runs on)."""
    cache_key = (conn.dialect.driver, kind, table.name, columns, keys)
    found = _over_arrays.get(cache_key)
    if found is not None:
        return found
    quote = conn.dialect.identifier_preparer.quote
    names = (*columns, *keys) if kind == "update" else columns
    # Arrays of the column's type without its length: a cast to varchar(n) would cut a longer value short,
    # where storing it into the column refuses it, as a row bound on its own is refused.
    arrays = ", ".join(
        f"${i}::{table.c[c].type.compile(dialect=conn.dialect).split('(')[0]}[]" for i, c in enumerate(names, 1)
    )
    into = ", ".join(quote(c) for c in columns)
    if kind == "update":
        alias = ", ".join(quote(f"k_{c}") if i >= len(columns) else quote(c) for i, c in enumerate(names))
        sets = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns)
        match = " AND ".join(f"{quote(table.name)}.{quote(k)} = v.{quote(f'k_{k}')}" for k in keys)
        sql = f"UPDATE {quote(table.name)} SET {sets} FROM unnest({arrays}) AS v({alias}) WHERE {match}"
    else:
        sql = f"INSERT INTO {quote(table.name)} ({into}) SELECT * FROM unnest({arrays})"
        if kind == "upsert":
            sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in keys)
            sql += f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET {sets}"
    _over_arrays[cache_key] = sql
    return sql
