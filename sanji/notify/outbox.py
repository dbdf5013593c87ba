"""The durable SMS outbox: every message a row, keyed so it is queued once and sent once.

A message's key (``accepted:<action id>``, ``result:<errand>``, ``warning_red:<errand>:<due>:leader``
…) is unique in ``sms_outbox``: an event seen again queues nothing. The key also goes to the
gateway as ``Idempotency-Key``, so a message whose sending was interrupted by a crash (sent,
not yet marked) is resent under the same key after the restart and the gateway drops the
copy. Transient failures are retried with exponential backoff up to ``max_attempts``; then,
or at once on a permanent refusal, the message is a dead letter an operator can see and retry.

Phones are not kept at rest: the row names the recipient (the applicant of the errand, the
leader of a department, the centre director, a window urged) and a masked number for the screen; the number
is opened (sealed errand) or looked up (configuration) when the message is handed over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, insert, select, update

from sanji.duties import mask_phone
from sanji.notify.gateway import Gateway, GatewayError
from sanji.notify.settings import SmsSection
from sanji.store import Store
from sanji.store import schema as t

Clock = Callable[[], float]
PENDING, SENT, DEAD = "pending", "sent", "dead"


class Message(dict[str, str]):
    """key, event, errand, recipient, contact, shown_to, text."""


def backoff(settings: SmsSection, attempts: int) -> float:
    return float(min(settings.max_delay, settings.base_delay * 2 ** max(0, attempts - 1)))


class Outbox:
    def __init__(self, store: Store, settings: SmsSection, *, clock: Clock = time.time) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    async def enqueue(self, messages: list[Message]) -> int:
        """Queue the messages whose keys are new; how many were queued."""
        if not messages:
            return 0
        keys = [m["key"] for m in messages]
        async with self.store.db.write() as conn:
            known: set[str] = set()
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                known |= set(
                    (await conn.scalars(select(t.sms_outbox.c.key).where(t.sms_outbox.c.key.in_(chunk)))).all()
                )
            now = self.clock()
            fresh = [m for m in messages if m["key"] not in known]
            seen: set[str] = set()
            rows = []
            for m in fresh:
                if m["key"] in seen:
                    continue
                seen.add(m["key"])
                rows.append(
                    {**m, "status": PENDING, "attempts": 0, "next_at": now, "created_at": now, "last_error": ""}
                )
            if rows:
                await conn.execute(insert(t.sms_outbox), rows)
        return len(rows)

    async def rows(self, status: str | None = None, *, limit: int = 500) -> list[dict[str, Any]]:
        query = select(t.sms_outbox).order_by(t.sms_outbox.c.id.desc()).limit(limit)
        if status:
            query = query.where(t.sms_outbox.c.status == status)
        async with self.store.db.reader.connect() as conn:
            # plain str keys: SQLAlchemy's column names are a str subclass msgspec refuses as keys
            return [{str(k): v for k, v in r.items()} for r in (await conn.execute(query)).mappings().all()]

    async def counts(self) -> dict[str, int]:
        query = select(t.sms_outbox.c.status, func.count()).group_by(t.sms_outbox.c.status)
        async with self.store.db.reader.connect() as conn:
            return {status: int(n) for status, n in (await conn.execute(query)).all()}

    async def _update(self, row_id: int, **values: Any) -> None:
        async with self.store.db.write() as conn:
            await conn.execute(update(t.sms_outbox).where(t.sms_outbox.c.id == row_id).values(**values))

    async def retry(self, row_id: int) -> bool:
        """A dead letter goes back to the queue with a fresh count of attempts (same key)."""
        if not 0 < row_id < 2**63:  # no such row; SQLite's integers stop at 2**63 - 1
            return False
        async with self.store.db.reader.connect() as conn:
            status = await conn.scalar(select(t.sms_outbox.c.status).where(t.sms_outbox.c.id == row_id))
        if status != DEAD:
            return False
        await self._update(row_id, status=PENDING, attempts=0, next_at=self.clock(), last_error="")
        return True

    async def _phone(self, row: dict[str, Any]) -> str:
        if row["recipient"] == "applicant":
            return await self.store.applicant_phone(row["errand"])
        if row["recipient"] == "leader":
            return self.settings.leaders.get(row["contact"], "")
        if row["recipient"] == "director":
            return self.settings.director
        if row["recipient"] == "window":
            return self.settings.windows.get(row["contact"], "")
        return ""

    async def deliver(self, gateway: Gateway) -> dict[str, int]:
        """Hand every due message to the gateway once; record sent, retry later, or dead letter."""
        now = self.clock()
        query = (
            select(t.sms_outbox)
            .where(t.sms_outbox.c.status == PENDING, t.sms_outbox.c.next_at <= now)
            .order_by(t.sms_outbox.c.id)
            .limit(200)
        )
        async with self.store.db.reader.connect() as conn:
            due = [dict(r) for r in (await conn.execute(query)).mappings().all()]
        tally = {"sent": 0, "retry": 0, "dead": 0}
        for row in due:
            phone = await self._phone(row)
            if not phone:
                await self._update(row["id"], status=DEAD, last_error="no phone for this recipient on this node")
                tally["dead"] += 1
                continue
            attempts = row["attempts"] + 1
            try:
                gateway_id = await gateway.send(row["key"], phone, row["text"])
            except GatewayError as exc:
                dead = exc.permanent or attempts >= self.settings.max_attempts
                await self._update(
                    row["id"],
                    attempts=attempts,
                    status=DEAD if dead else PENDING,
                    next_at=self.clock() + backoff(self.settings, attempts),
                    last_error=str(exc)[:500],
                )
                tally["dead" if dead else "retry"] += 1
                continue
            await self._update(
                row["id"],
                attempts=attempts,
                status=SENT,
                sent_at=self.clock(),
                gateway_id=gateway_id,
                last_error="",
                shown_to=mask_phone(phone),
            )
            tally["sent"] += 1
        return tally
