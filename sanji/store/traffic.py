"""Bytes sent per business day and kind (the daily attachment budget), and the outbox's length."""

from __future__ import annotations

from sqlalchemy import func, select

from sanji.store import schema as t
from sanji.store.rows import upsert as _upsert
from sanji.store.section import Section


class Traffic(Section):
    """Bytes counted per day and kind, and what waits in the outbox."""

    async def add_traffic(self, kind: str, count: int, *, day: str) -> int:
        """Count ``count`` bytes of ``kind`` against ``day``; returns the day's total."""
        async with self._write() as conn:
            held = int(
                await conn.scalar(select(t.traffic.c.bytes).where(t.traffic.c.day == day, t.traffic.c.kind == kind))
                or 0
            )
            await _upsert(conn, t.traffic, {"day": day, "kind": kind, "bytes": held + count}, keys=("day", "kind"))
        return held + count

    async def traffic(self, day: str) -> dict[str, int]:
        async with self.db.reader.connect() as conn:
            rows = (await conn.execute(select(t.traffic.c.kind, t.traffic.c.bytes).where(t.traffic.c.day == day))).all()
        return {str(k): int(v) for k, v in rows}

    async def outbox_size(self) -> int:
        async with self.db.read() as conn:
            return int(await conn.scalar(select(func.count()).select_from(t.outbox)) or 0)
