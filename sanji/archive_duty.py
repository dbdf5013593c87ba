"""Archiving on a schedule while the node runs (``[archive] interval_hours``; 0 = only ``sanji archive --apply``).

Each run archives what ``sanji.store.archive`` allows (errands closed over ``after_days`` ago, attachments an
ancestor acknowledged), one attachment per transaction. The first run is one interval after start; a failed
run is logged and tried again at the next interval; it never stops the node.
"""

from __future__ import annotations

import asyncio
import logging

from sanji.store import Store

log = logging.getLogger("sanji.archive")


class ArchiveSchedule:
    def __init__(self, store: Store, *, interval_hours: float, after_days: float) -> None:
        self.store = store
        self.interval_s = interval_hours * 3600
        self.after_days = after_days
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"archive-{self.store.node_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def once(self) -> int:
        plan = await self.store.archive_blobs(after_days=self.after_days)
        if plan.archived:
            log.info(
                "archived %d attachments (%d bytes): their ancestors hold them", len(plan.archived), plan.bytes_freed
            )
        return len(plan.archived)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.once()
            except Exception:
                log.exception("archiving attachments at %s failed; trying again in %.0f h", self.store.node_id,
                              self.interval_s / 3600)  # fmt: skip
