"""What a hub process on a read-only replica (docs/scaling.md, 2.) takes up on a schedule.

Every other process learns of a catalogue, calendar, rules or trust document published by another process
when a sync request arrives (``sanji.sync.server``), and a replica serves none. So it looks on its own
every ``[sync] duties_interval`` seconds: one cheap read for trust (its mark) and one per document's
version held, a document only when newer. Nothing is written.
"""

from __future__ import annotations

import logging

from sanji.context import NodeContext
from sanji.periodic import PeriodicDuty
from sanji.store.trustbook import TrustBook

log = logging.getLogger("sanji.replica")


class ReplicaFollower(PeriodicDuty):
    def __init__(self, context: NodeContext, trust: TrustBook, *, interval_s: float) -> None:
        super().__init__(name="replica-follow", interval_hours=interval_s / 3600)
        self.context = context
        self.trust = trust

    async def tick(self) -> None:
        await self.trust.refresh()
        await self.context.refresh_catalogue()
        await self.context.refresh_calendar()
        await self.context.refresh_rules()

    def failed(self) -> None:
        log.exception("the replica could not take up the documents published at the primary; trying again")
