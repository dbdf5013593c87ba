"""Archiving on a schedule while the node runs (``[archive] interval_hours``; 0 = only ``sanji archive --apply``).

Each run archives what ``sanji.store.archive`` allows (errands closed over ``after_days`` ago, attachments an
ancestor acknowledged), one attachment per transaction. The first run is one interval after start; a failed
run is logged and tried again at the next interval; it never stops the node.
"""

from __future__ import annotations

import logging

from sanji.periodic import PeriodicDuty
from sanji.store import Store

log = logging.getLogger("sanji.archive")


class ArchiveSchedule(PeriodicDuty):
    def __init__(self, store: Store, *, interval_hours: float, after_days: float) -> None:
        super().__init__(name=f"archive-{store.node_id}", interval_hours=interval_hours)
        self.store = store
        self.after_days = after_days

    async def once(self) -> int:
        plan = await self.store.archive_blobs(after_days=self.after_days)
        if plan.archived:
            log.info(
                "archived %d attachments (%d bytes): their ancestors hold them", len(plan.archived), plan.bytes_freed
            )
        return len(plan.archived)

    async def tick(self) -> None:
        await self.once()

    def failed(self) -> None:
        log.exception("archiving attachments at %s failed; trying again in %.0f h", self.store.node_id,
                      self.interval_s / 3600)  # fmt: skip
