"""One-time form keys: the same form sent twice takes its step once.

Every form that takes a step (代办登记's 确认登记, the errand page's steps and its 上传 of a scan, the
public complaint) carries a random key minted when the page was drawn (``new_key``). ``Store.act`` given the
key (``Once``) reads it inside its write transaction before the step is built, and writes it, with the errand
and the action the step wrote, in that same transaction: the writer's transaction is one at a time
(``Database.write``: a process lock, ``BEGIN IMMEDIATE`` on SQLite, an advisory lock shared by every hub
process on PostgreSQL), and the key is the table's primary key besides, so of two sendings at once exactly one
writes and the other finds the key (``AlreadySent``), whichever process took it. A refused step writes no key:
the form may be sent again.

Keys are kept ``KEEP_MS`` (a week: long enough for the browser's back and resubmit) and trimmed by the writes
that add one. A key the form does not carry, or of another shape (an older page, a script), protects nothing
and is ignored: the step is taken as before. A JSON client's ``Idempotency-Key`` header (``HEADER``) is kept the
same way, by its digest (``sanji.web.api``).

Forms that write something other than an errand's step keep their key the same way, in the transaction of
their own write, with ``errand`` left empty and ``action`` naming what the first sending wrote: the county's
考核 entry, appeal and decision (``sanji.office.book``: the record's id), a new account (``sanji.auth.book``:
its name), a changed own password and a revoked API token, an enrollment token and a revocation
(``sanji.store.trustbook``), a reset password (``sanji.auth.book``), a published catalogue, calendar or assessment
rules (``sanji.context.with_once``); the county's office API takes a client's ``Idempotency-Key`` for the same
records (``Once.one_body``: there another body under a key used is refused, ``KeyReused``).
Where a rule would refuse the second sending before that transaction reads the key, the form asks
``sent_before`` / ``was_sent`` first. A form whose second sending is harmless as it is (enabling, seating,
marking notices read; a read) carries none.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import msgspec
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.errors import SanjiError
from sanji.store import schema as t

if TYPE_CHECKING:
    from sanji.store.engine import Database

KEEP_MS = 7 * 24 * 3600 * 1000
FIELD = "_once"  # the hidden field a form carries its key in
HEADER = "Idempotency-Key"
_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")

Purpose = Literal[
    "register",
    "act",
    "attach",
    "complain",
    "entry",
    "appeal",
    "decision",
    "account",
    "password",
    "reset",
    "enroll",
    "publish",
    "revoke",
]


def new_key() -> str:
    """A fresh key for one drawn form: 128 random bits."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Once:
    """A form's key for one purpose; keys of different purposes never meet.

    ``content``: what the form said, where the same drawn form can be sent again saying something else (the
    browser's back to the errand page, another step or another note typed in it): that is a new step, taken,
    while the same form saying the same thing is the same sending. Kept as a digest in the stored key."""

    purpose: Purpose
    key: str
    content: str = ""
    # ``one_body``: the key names one request, whatever it says (a client's ``Idempotency-Key`` on the county's
    # office API): the same key saying something else is refused (``KeyReused``), not taken as another step
    one_body: bool = False

    @property
    def stored(self) -> str:
        said = ":" + hashlib.sha256(self.content.encode()).hexdigest()[:16] if self.content else ""
        return f"{self.purpose}:{self.key}{said}"

    @property
    def bare(self) -> str:
        """The key's mark, ``purpose:key:``, kept beside a ``one_body`` key's stored form (``keep``): what any
        other content sent under the key is found by, by equality (no stored form ends in ``:``)."""
        return f"{self.purpose}:{self.key}:"


def once(purpose: Purpose, sent: str, content: str = "") -> Once | None:
    """The key a form sent, or None when it sent none of the right shape."""
    return Once(purpose, sent, content) if _SHAPE.fullmatch(sent) else None


def from_header(purpose: Purpose, sent: str | None, data: object, *, one_body: bool = False) -> Once | None:
    """A JSON client's ``Idempotency-Key`` (any text the header carries, kept by its digest) with the request's
    body as its content; None when the header is absent or blank (the request is taken as before)."""
    if not sent or not sent.strip():
        return None
    key = hashlib.sha256(sent.encode()).hexdigest()[:32]
    return Once(purpose, key, msgspec.json.encode(data).decode(), one_body=one_body)


def said(form: Mapping[str, Sequence[str]]) -> str:
    """A form's fields as one text (``Once.content``), less its tokens (``_once``, ``_csrf_token``,
    ``_public_token``: fields named with a leading ``_``), which say nothing of the step."""
    return "\n".join(f"{name}={value}" for name in sorted(form) if not name.startswith("_") for value in form[name])


class AlreadySent(Exception):
    """The form's key was used: its step was written by the first sending (``errand``, ``action``)."""

    def __init__(self, errand: str, action: str) -> None:
        super().__init__(f"already sent: errand {errand}, action {action}")
        self.errand = errand
        self.action = action


class KeyReused(SanjiError):
    """An ``Idempotency-Key`` sent before with another body (``Once.one_body``): a client's bug, never a retry."""

    code = "idempotency_key_reused"
    default_hint = "Send a new Idempotency-Key for a new request; a retry sends the same body under its key."


async def refuse_if_used(conn: AsyncConnection, key: Once) -> None:
    row = (
        await conn.execute(
            select(t.submissions.c.errand, t.submissions.c.action).where(t.submissions.c.key == key.stored)
        )
    ).first()
    if row is not None:
        raise AlreadySent(row[0], row[1])
    if key.one_body:
        # the key's mark (``keep``), read by the primary key: a range ``purpose:key:`` to ``purpose:key;`` would
        # hold every content under the key only in a bytewise collation; PostgreSQL's zh_CN or ICU ones pass over
        # the punctuation, and the range then finds nothing
        other = await conn.scalar(select(t.submissions.c.key).where(t.submissions.c.key == key.bare))
        if other is not None:
            raise KeyReused(
                "此幂等键已用于另一请求，本次未写入 · this Idempotency-Key was sent before with another body; "
                "nothing was written"
            )


async def sent_before(db: Database, key: Once | None) -> None:
    """``AlreadySent`` if ``key`` was used, read before the write: where a rule would refuse the second sending
    before its write transaction reads the key (an appeal decided, a password changed, a version held), the
    form asks this first, so the same form sent again lands where the first did instead of being refused."""
    if key is None:
        return
    async with db.reader.connect() as conn:
        await refuse_if_used(conn, key)


async def was_sent(db: Database, key: Once | None) -> bool:
    """Whether ``key`` was used: asked after a refusal (a version another sending kept first), to land the
    same form sent twice at once where the first did."""
    try:
        await sent_before(db, key)
    except AlreadySent:
        return True
    return False


async def forget(conn: AsyncConnection, key: Once) -> None:
    """Take back a key kept before its write (``TrustBook.revoke``: trust documents are judged in memory before
    their transaction, so the key is kept first) when that write failed: the form may be sent again."""
    await conn.execute(delete(t.submissions).where(t.submissions.c.key.in_(_rows_of(key))))


async def keep(conn: AsyncConnection, key: Once, errand: str, action: str, *, now_ms: int | None = None) -> None:
    """Write ``key`` as used by ``action`` on ``errand``, in the step's own transaction; trim old keys."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    await conn.execute(delete(t.submissions).where(t.submissions.c.at < now - KEEP_MS))
    for stored in _rows_of(key):
        await conn.execute(insert(t.submissions).values(key=stored, errand=errand, action=action, at=now))


def _rows_of(key: Once) -> list[str]:
    """The rows a used ``key`` keeps: its stored form and, for ``one_body``, the key's mark (``Once.bare``, which
    no stored form equals: one ends in ``:`` and a digest), so another body under it is found by equality."""
    return [key.stored, key.bare] if key.one_body else [key.stored]
