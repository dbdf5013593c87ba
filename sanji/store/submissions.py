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
same way, as long, by its digest (below).

Forms that write something other than an errand's step keep their key the same way, in the transaction of
their own write, with ``errand`` left empty and ``action`` naming what the first sending wrote: the county's
考核 entry, appeal and decision (``sanji.office.book``: the record's id), a new account (``sanji.auth.book``:
its name), a changed own password and a revoked API token, an enrollment token and a revocation
(``sanji.store.trustbook``), a reset password (``sanji.auth.book``), a published catalogue, calendar or assessment
rules (``sanji.context.with_once``).

A JSON client's ``Idempotency-Key`` follows one rule on every API (``from_header``; the errands' and the county's
office API alike): the key names one request of one account on one node. Sent again with the same method, path
and body, the request is answered as the first was and nothing is done twice (``AlreadySent``); under a key
already used, another method, path or body is refused (``KeyReused``, 409: no retry under that key can help); a
key that is no 1–``MAX_KEY`` visible ASCII characters is refused (``KeyMalformed``, 400). Two accounts, or two
nodes, sending the same key never meet: the key is kept by a digest of the node, the account and the key.
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
MAX_KEY = 200  # an Idempotency-Key's length: a UUID, a ULID, any client's own scheme
# visible ASCII, spaces within (an HTTP field value is trimmed of them at its ends): what every client can send
_KEY_SHAPE = r"[!-~](?:[ -~]*[!-~])?"  # visible ASCII, spaces only inside
# As the OpenAPI schema says it: ``$(?!\n)`` so Python's ``$`` reads as ECMA's (never before a final line feed),
# as every pattern of the schema (tests/hardening/test_patterns_agree.py).
HEADER_PATTERN = rf"^{_KEY_SHAPE}$(?!\n)"
_HEADER_SHAPE = re.compile(_KEY_SHAPE)

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
    "api",  # a JSON client's Idempotency-Key (``from_header``): one purpose, a key names one request on any path
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
    # ``one_body``: the key names one request, whatever it says (a client's ``Idempotency-Key``, ``from_header``):
    # the same key saying something else is refused (``KeyReused``), not taken as another step
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


def from_header(sent: str | None, data: object, *, node: str, account: str, method: str, path: str) -> Once | None:
    """A JSON client's ``Idempotency-Key``, the one rule of every API: None when the header is absent (the request
    is taken as before); ``KeyMalformed`` when it is not 1–``MAX_KEY`` visible ASCII characters.

    The key is scoped to the ``node`` and the ``account`` (kept by a digest of the three, so two accounts sending
    the same key never meet) and names one request: its content is the ``method``, the ``path`` and the body, so
    the same key with any of them different is refused (``KeyReused``), never taken as another step."""
    if sent is None:
        return None
    if len(sent) > MAX_KEY or not _HEADER_SHAPE.fullmatch(sent):
        raise KeyMalformed(
            f"幂等键格式有误：须为 1–{MAX_KEY} 个可见 ASCII 字符（如 UUID），未作任何更改 · the {HEADER} must be "
            f"1–{MAX_KEY} visible ASCII characters (a UUID will do); nothing was changed",
            zh=f"幂等键格式有误：须为 1–{MAX_KEY} 个可见 ASCII 字符（如 UUID），未作任何更改",
        )
    scope = hashlib.sha256("\n".join((node, account, sent)).encode()).hexdigest()[:32]
    return Once("api", scope, msgspec.json.encode([method, path, data]).decode(), one_body=True)


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


class _SaidInChinese(SanjiError):
    """A refusal of a client's key, in Chinese too (``message_zh``: a desk's client shows it first)."""

    def __init__(self, message: str, *, zh: str) -> None:
        super().__init__(message)
        self.message_zh = zh

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "message_zh": self.message_zh}


class KeyReused(_SaidInChinese):
    """An ``Idempotency-Key`` sent before with another method, path or body: a client's bug, never a retry."""

    code = "idempotency_key_reused"
    default_hint = (
        "Retrying under this key cannot help: send a new Idempotency-Key for a new request; a retry sends the same "
        "request under its key."
    )


class KeyMalformed(_SaidInChinese):
    """An ``Idempotency-Key`` that is no key: empty, too long, or not visible ASCII (400)."""

    code = "idempotency_key_malformed"
    default_hint = f"Send 1–{MAX_KEY} visible ASCII characters, a new key for each request (a UUID will do)."


REUSED_ZH = "该幂等键已用于另一个请求（方法、路径或内容不同），本次未写入；用同一键重试无济于事，请换用新的键"


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
                f"{REUSED_ZH} · this Idempotency-Key was used for another request (another method, path or body); "
                "nothing was written, and no retry under it can help: send this request under a new key",
                zh=REUSED_ZH,
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
