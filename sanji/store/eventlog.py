"""The node's event log: sync faults, refusals, security events (not the staff's audit log, ``sanji.auth``)."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sanji.store import schema as t
from sanji.store.section import Section


class EventLog(Section):
    """The node's event log, written alone or inside the caller's transaction."""

    async def log_event(
        self, kind: str, peer: str, detail: dict[str, Any], *, conn: AsyncConnection | None = None
    ) -> None:
        """Write an entry to the node's event log (sync faults, security events), in ``conn``'s transaction if given."""
        await self._log_event(kind, peer, detail, conn=conn)

    async def _log_event(
        self, kind: str, peer: str, detail: dict[str, Any], *, conn: AsyncConnection | None = None
    ) -> None:
        values = {"at": time.time(), "kind": kind, "peer": peer, "detail": json.dumps(detail, ensure_ascii=False)}
        if conn is not None:
            await conn.execute(insert(t.events).values(**values))
            return
        async with self._write() as own:
            await own.execute(insert(t.events).values(**values))

    async def recent_events(self, kinds: tuple[str, ...], limit: int = 10) -> list[dict[str, Any]]:
        """The newest ``limit`` entries of ``kinds``, newest first (``at`` in epoch seconds, ``detail`` decoded)."""
        query = select(t.events).where(t.events.c.kind.in_(kinds)).order_by(t.events.c.id.desc()).limit(limit)
        async with self.db.reader.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [{"at": r["at"], "kind": r["kind"], "peer": r["peer"], "detail": json.loads(r["detail"])} for r in rows]
