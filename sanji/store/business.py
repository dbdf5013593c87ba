"""Signed business reports (protocol.business) kept beside the store: this node's own and its subtree's.

A node builds its own once per business day (``sanji.office.business``) and keeps it here; every
exchange sends its last ``KEEP_DAYS`` up inside its node report, and every ancestor keeps the
reports of the nodes below it after checking each one's signature against that node's key. A
report is a signed statement and is never replaced: the first one held for a node and day stays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from sqlalchemy import select

from protocol.business import KEEP_DAYS, BusinessReport, open_business, read_business
from protocol.errors import SanjiError
from protocol.session import NodeReport
from sanji.store import Store
from sanji.store import schema as t

log = logging.getLogger("sanji.office")


class BusinessBook:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def days_held(self, node: str, days: Iterable[str]) -> set[str]:
        wanted = list(days)
        async with self.store.db.reader.connect() as conn:
            found = await conn.execute(
                select(t.business_reports.c.day).where(
                    t.business_reports.c.node == node, t.business_reports.c.day.in_(wanted)
                )
            )
            return {str(d) for d in found.scalars()}

    async def keep(self, report: BusinessReport, blob: bytes) -> bool:
        """Keep a verified report unless one is held for its node and day; True if kept."""
        async with self.store.transaction() as conn:
            held = await conn.scalar(
                select(t.business_reports.c.at).where(
                    t.business_reports.c.node == report.node, t.business_reports.c.day == report.day
                )
            )
            if held is not None:
                return False
            await conn.execute(
                t.business_reports.insert().values(
                    node=report.node, day=report.day, at=report.at, blob=blob, received_at=time.time()
                )
            )
        return True

    async def own_latest(self) -> tuple[bytes, ...]:
        """This node's last ``KEEP_DAYS`` reports, newest first: what goes up with its node report."""
        async with self.store.db.reader.connect() as conn:
            blobs = await conn.execute(
                select(t.business_reports.c.blob)
                .where(t.business_reports.c.node == self.store.node_id)
                .order_by(t.business_reports.c.day.desc())
                .limit(KEEP_DAYS)
            )
            return tuple(bytes(b) for b in blobs.scalars())

    async def receive(self, reports: Iterable[NodeReport], *, via: str) -> int:
        """Keep the business reports inside node reports from a child; each checked against its node's key."""
        kept = 0
        subtree = self.store.directory.subtree(via)
        for node_report in reports:
            if node_report.node not in subtree:
                continue
            for blob in node_report.business[:KEEP_DAYS]:  # what a node sends; more is never read
                try:
                    report = open_business(blob, self.store.directory.key)
                except SanjiError as exc:
                    log.warning("a business report from %s was refused: %s", via, exc.message)
                    await self.store.log_event("business_refused", via, {"message": exc.message})
                    continue
                if report.node != node_report.node:
                    continue  # one node's report inside another's: not where it belongs, not kept
                kept += await self.keep(report, blob)
        return kept

    async def reports(self, date_from: str, date_to: str) -> list[BusinessReport]:
        """Every report held for a day in the period (verified when kept), by node and day."""
        async with self.store.db.reader.connect() as conn:
            rows = await conn.execute(
                select(t.business_reports.c.blob)
                .where(t.business_reports.c.day >= date_from, t.business_reports.c.day <= date_to)
                .order_by(t.business_reports.c.node, t.business_reports.c.day)
            )
            blobs = [bytes(b) for b in rows.scalars()]
        return [read_business(b) for b in blobs]
