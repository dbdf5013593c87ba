"""Many rows through one statement, compiled once per dialect and driver and handed to the driver as tuples
(issue 15).

``conn.execute(stmt, rows)`` has SQLAlchemy build every row's parameters in Python (defaults, type
processors, one dict per row), which cost a county more than the projections for a push's thousands of
action, status and errand rows. The columns written here need no conversion by either driver (text,
integers, floats, bytes, booleans), so the statement is compiled once per (dialect, driver, paramstyle,
statement) and every row goes to the driver's ``executemany`` as a tuple in the compiled order
(``exec_driver_sql``): the same SQL, the same values, the same rows stored.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sanji.store.rows import dialect_module

Row = dict[str, Any]
Prepared = tuple[str, Callable[[Row], tuple[Any, ...]]]  # the SQL, and how a row becomes its parameters
# By the dialect, its driver and the driver's paramstyle (the compiled SQL is written in it: qmark for
# sqlite3, numeric_dollar for asyncpg), the statement, its columns and its keys.
_compiled: dict[tuple[str, str, str, str, tuple[str, ...], tuple[str, ...]], Prepared] = {}


def _prepared(
    conn: AsyncConnection, table: Table, kind: str, columns: tuple[str, ...], keys: tuple[str, ...]
) -> Prepared:
    dialect = conn.dialect
    cache_key = (dialect.name, dialect.driver, dialect.paramstyle, f"{kind}:{table.name}", columns, keys)
    found = _compiled.get(cache_key)
    if found is not None:
        return found
    stmt: Any
    if kind == "insert":
        stmt = insert(table).values({c: bindparam(c) for c in columns})
    elif kind == "upsert":
        dml = dialect_module(conn).insert(table).values({c: bindparam(c) for c in columns})
        updates = {c: dml.excluded[c] for c in columns if c not in keys}
        stmt = dml.on_conflict_do_update(index_elements=list(keys), set_=updates)
    else:  # "update": set ``columns`` where ``keys`` equal, bound as ``k_<name>``
        stmt = (
            update(table)
            .where(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
            .values({c: bindparam(c) for c in columns})
        )
    compiled = stmt.compile(dialect=conn.dialect)
    order = compiled.positiontup
    if not order:  # every dialect the store runs on binds positionally (qmark, numeric_dollar)
        raise TypeError(f"{conn.dialect.name} does not bind positionally")
    pick = operator.itemgetter(*order)
    as_tuple: Callable[[Row], tuple[Any, ...]] = pick if len(order) > 1 else (lambda row: (pick(row),))
    found = _compiled[cache_key] = (compiled.string, as_tuple)
    return found


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
