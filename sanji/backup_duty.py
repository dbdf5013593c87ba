"""Backups on a schedule while the node runs: one copy every ``interval_hours``, kept ``keep_days``.

The first copy is taken one interval after start (a start right after a migration already took
one). A failed copy is logged and tried again at the next interval; it never stops the node.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sanji.backup import BackupFile, backup, prune
from sanji.periodic import PeriodicDuty

log = logging.getLogger("sanji.backup")


class BackupSchedule(PeriodicDuty):
    def __init__(self, url: str, out_dir: Path, *, node: str, interval_hours: float, keep_days: float) -> None:
        super().__init__(name=f"backup-{node}", interval_hours=interval_hours)
        self.url = url
        self.out_dir = out_dir
        self.node = node
        self.keep_days = keep_days
        self.last: BackupFile | None = None
        self.failures = 0

    async def once(self) -> BackupFile:
        made = await asyncio.to_thread(backup, self.url, self.out_dir, node=self.node, why="scheduled")
        gone = await asyncio.to_thread(prune, self.out_dir, node=self.node, keep_days=self.keep_days)
        self.last = made
        log.info("backup %s (%d bytes); %d older copies removed", made.path.name, made.size, len(gone))
        return made

    async def tick(self) -> None:
        await self.once()
        self.failures = 0

    def failed(self) -> None:
        self.failures += 1
        log.exception("scheduled backup of %s failed (%d in a row)", self.node, self.failures)
