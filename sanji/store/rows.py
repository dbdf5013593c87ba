"""Row helpers every part of the store uses: plain dicts out, dialect-aware upserts in."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["dialect_module", "plain", "upsert", "upsert_many"]


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


async def upsert(
    conn: AsyncConnection, table: Any, values: dict[str, Any], *, keys: tuple[str, ...], greatest: str | None = None
) -> None:
    dialect = dialect_module(conn)
    stmt = dialect.insert(table).values(**values)
    updates = {k: v for k, v in values.items() if k not in keys}
    if greatest is not None:
        col = getattr(table.c, greatest)
        updates[greatest] = (
            func.greatest(col, stmt.excluded[greatest])
            if conn.dialect.name == "postgresql"
            else func.max(col, stmt.excluded[greatest])
        )
    await conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates))
