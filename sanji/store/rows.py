"""Row helpers every part of the store uses: plain dicts out, dialect-aware upserts in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["plain", "upsert", "upsert_many"]


def plain(row: Any) -> dict[str, Any]:
    # Column names come back as sqlalchemy's str subclass, which msgspec will not take as str.
    return {str(k): v for k, v in row.items()}


async def upsert_many(conn: AsyncConnection, table: Any, rows: list[dict[str, Any]], *, keys: tuple[str, ...]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    await conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates), rows)


async def upsert(
    conn: AsyncConnection, table: Any, values: dict[str, Any], *, keys: tuple[str, ...], greatest: str | None = None
) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values)
    updates = {k: v for k, v in values.items() if k not in keys}
    if greatest is not None:
        col = getattr(table.c, greatest)
        updates[greatest] = (
            func.max(col, stmt.excluded[greatest]) if dialect is sqlite else func.greatest(col, stmt.excluded[greatest])
        )
    await conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates))
