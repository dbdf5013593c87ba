"""Many rows through one statement, compiled once per dialect and driver and handed to the driver as tuples
(issue 15).

``conn.execute(stmt, rows)`` has SQLAlchemy build every row's parameters in Python (defaults, type
processors, one dict per row), which cost a county more than the projections for a push's thousands of
action, status and errand rows. The columns written here need no conversion by either driver (text,
integers, floats, bytes, booleans), so the statement is compiled once per (dialect, driver, paramstyle,
statement) (``sanji.store.rows.compiled_once``, which the one-row ``upsert`` uses too) and every row goes to
the driver's ``executemany`` as a tuple in the compiled order (``exec_driver_sql``): the same SQL, the same
values, the same rows stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sanji.store import report_inputs
from sanji.store.rows import Prepared, Row, compiled_once, prepared_upsert


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
    """Insert ``rows``, or update every other column of the row with the same ``keys``."""
    if rows:
        await _run(conn, table, "upsert", tuple(rows[0]), keys, rows)


async def update_many(conn: AsyncConnection, table: Table, rows: Sequence[Row], *, keys: tuple[str, ...]) -> None:
    """Set the other columns of each row where its ``keys`` match; ``rows`` name the keys ``k_<key>``."""
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
    sql, as_tuple = _prepared(conn, table, kind, columns, keys)
    await conn.exec_driver_sql(sql, [as_tuple(r) for r in rows])
    report_inputs.wrote(conn.sync_engine, table.name)  # SQL handed to the driver: the listener cannot name it
