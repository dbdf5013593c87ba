"""The one thing kept about in-app notices: how far each account has read them (``notice_reads``)."""

from __future__ import annotations

from sqlalchemy import select

from sanji.store import schema as t
from sanji.store.engine import Database


class NoticeReads:
    """Per-account "read up to" marks (wall-clock milliseconds); everything else about notices is derived."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def read_upto(self, account: str) -> int:
        async with self.db.reader.connect() as conn:
            value = await conn.scalar(select(t.notice_reads.c.read_upto).where(t.notice_reads.c.account == account))
        return int(value or 0)

    async def mark_read(self, account: str, upto: int) -> int:
        """Move the mark forward to ``upto`` (never back: two tabs marking at once keep the later one).

        Through the one writer door (``Database.write``): on PostgreSQL its advisory lock serialises hub
        processes, so two first marks of a new account cannot both insert."""
        async with self.db.write() as conn:
            held = await conn.scalar(select(t.notice_reads.c.read_upto).where(t.notice_reads.c.account == account))
            if held is None:
                await conn.execute(t.notice_reads.insert().values(account=account, read_upto=upto))
                return upto
            if upto > held:
                await conn.execute(
                    t.notice_reads.update().where(t.notice_reads.c.account == account).values(read_upto=upto)
                )
                return upto
            return int(held)
