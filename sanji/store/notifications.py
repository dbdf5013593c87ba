"""The applicant's SMS queue: one message per (errand, event), masked numbers once sent."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, insert, select, update

from sanji.store import schema as t
from sanji.store.rows import plain as _plain
from sanji.store.section import Section


class NotificationQueue(Section):
    """The applicant's SMS queue kept in the store (``sanji.duties``; the gateway's outbox is ``sanji.notify``)."""

    async def queue_notification(self, errand_id: str, event: str, phone: str, text: str) -> bool:
        """Queue a message once per (errand, event); False if it was queued before.

        ``phone`` is what the row keeps: the duties queue a masked number (``sanji.duties.mask_phone``)
        and open the real one from the errand when they send.
        """
        async with self._write() as conn:
            exists = await conn.scalar(
                select(func.count())
                .select_from(t.notifications)
                .where(t.notifications.c.errand == errand_id, t.notifications.c.event == event)
            )
            if exists:
                return False
            await conn.execute(
                insert(t.notifications).values(
                    errand=errand_id, event=event, phone=phone, text=text, created_at=time.time(), error=""
                )
            )
        return True

    async def unsent_notifications(self) -> list[dict[str, Any]]:
        async with self.db.reader.connect() as conn:
            rows = (
                (await conn.execute(select(t.notifications).where(t.notifications.c.sent_at.is_(None))))
                .mappings()
                .all()
            )
        return [_plain(r) for r in rows]

    async def mark_notification(self, notification_id: int, *, error: str = "", phone: str | None = None) -> None:
        """Record a failed attempt (``error``) or the message as sent; ``phone`` replaces the kept number."""
        values: dict[str, Any] = {"error": error} if error else {"sent_at": time.time(), "error": ""}
        if phone is not None:
            values["phone"] = phone
        async with self._write() as conn:
            await conn.execute(update(t.notifications).where(t.notifications.c.id == notification_id).values(**values))

    async def mask_sent_notification_phones(self, mask: Callable[[str], str]) -> int:
        """Replace the phone of every sent message by ``mask(phone)`` where that differs; how many rows changed."""
        sent = t.notifications.c.sent_at.is_not(None)
        async with self.db.reader.connect() as conn:
            rows = (await conn.execute(select(t.notifications.c.id, t.notifications.c.phone).where(sent))).all()
        changes = {row.id: mask(row.phone) for row in rows if mask(row.phone) != row.phone}
        if changes:
            async with self._write() as conn:
                for notification_id, masked in changes.items():
                    await conn.execute(
                        update(t.notifications).where(t.notifications.c.id == notification_id).values(phone=masked)
                    )
        return len(changes)
