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

Rows that give every column of their table (the errands', actions', batches' and cursors' rows of a push) go
to PostgreSQL as one array of the table's own row type instead, each row the dict it is: asyncpg checks every
element of an array for being a nested array, two calls into ``collections.abc`` for each text or bytes
value, a push's errand upsert over 24 arrays thousands of them. As rows, the errand upsert of a push took
the event loop 1.7 -> 0.9 ms (all bulk writes over the 1,000-errand corpus 148 -> 95 ms of CPU), and its
wall time fell too (155 errands, half new: 3.6 -> 2.7 ms, medians of 80 alternated). The row type's fields
are matched by name (asyncpg maps a dict onto them), and the server receives each with its column's length,
so a value too long is refused as before. Only rows naming exactly the same columns go so: asyncpg would
store NULL for a field a dict lacks, where the arrays refuse the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from sanji.store import report_inputs
from sanji.store.engine import sqlstate
from sanji.store.rows import Prepared, Row, compiled_once, prepared_upsert

# By (driver, kind, table, columns, keys): the SQL of one statement over arrays (PostgreSQL).
_over_arrays: dict[tuple[Any, ...], str] = {}
# By the same: the SQL over an array of the table's row type, None when the rows do not give every column.
_over_rows: dict[tuple[Any, ...], str | None] = {}
# Set once a row type changed while this process ran (another process migrated the database): asyncpg keeps
# the layout it first read on each connection and sends rows the server refuses, so from then on every
# table's rows go as arrays of columns, which name only the columns given, until the process restarts with
# the new schema. Every table, not only the one refused: the push is taken again at once (``Store._take_all``)
# and must not meet the next stale table.
_row_types_changed = False
# PostgreSQL's datatype_mismatch: a row of the type's old layout ("wrong number of columns", a field's type).
_ROW_TYPE_CHANGED = "42804"


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
        over_rows = _over_rows_sql(conn, table, kind, columns, keys)
        # asyncpg fills a field a dict lacks with NULL and refuses one it does not know: only rows that name
        # exactly the first row's columns go as rows; others as arrays, which refuse a missing one as before.
        first = rows[0].keys()
        if over_rows is not None and all(r.keys() == first for r in rows):
            try:
                await conn.exec_driver_sql(over_rows, (rows,))
            except DBAPIError as exc:
                if sqlstate(exc) == _ROW_TYPE_CHANGED:
                    global _row_types_changed
                    _row_types_changed = True  # raised still: the transaction is aborted, the caller retakes
                raise
            report_inputs.wrote(conn.sync_engine, table.name)
            return
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
            sql += _on_conflict_update(conn, columns, keys)
    _over_arrays[cache_key] = sql
    return sql


def _over_rows_sql(
    conn: AsyncConnection, table: Table, kind: str, columns: tuple[str, ...], keys: tuple[str, ...]
) -> str | None:
    """The insert or upsert of rows given as one array of ``table``'s row type (``$1``), or None: rows that
    leave a column out (a field left out of a dict would be sent as NULL, not the column's default), an
    update (its rows name keys, not columns), or once a row type changed since this process started."""
    if _row_types_changed:
        return None
    cache_key = (conn.dialect.driver, kind, table.name, columns, keys)
    if cache_key in _over_rows:
        return _over_rows[cache_key]
    sql: str | None = None
    if kind != "update" and len(columns) == len(table.c) and set(columns) == set(table.c.keys()):
        quote = conn.dialect.identifier_preparer.quote
        name = quote(table.name)
        into = ", ".join(quote(c) for c in columns)
        # The fields named, not ``v.*``: a column another release added stays out of the statement.
        fields = ", ".join(f"v.{quote(c)}" for c in columns)
        sql = f"INSERT INTO {name} ({into}) SELECT {fields} FROM unnest($1::{name}[]) AS v"
        if kind == "upsert":
            sql += _on_conflict_update(conn, columns, keys)
    _over_rows[cache_key] = sql
    return sql


def _on_conflict_update(conn: AsyncConnection, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    """An upsert's tail on PostgreSQL: a row whose ``keys`` are held takes every other of ``columns``."""
    quote = conn.dialect.identifier_preparer.quote
    sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in keys)
    return f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET {sets}"
