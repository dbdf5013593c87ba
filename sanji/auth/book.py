"""Where accounts, sessions, tokens and audit events are kept: the node's own database.

Invariants:
- every write goes through the database's one writer door (``Database.write``: the same lock,
  ``BEGIN IMMEDIATE`` on SQLite, the same advisory lock on PostgreSQL), so the audit chain has one order;
- audit events are only ever appended; each row's ``hash`` is sha256 of the previous row's
  hash and its own body, so a deleted or edited row breaks the chain (``verify_chain``);
- a local errand action and its ``ActionTaken`` event commit together or not at all
  (``AuditedStore``, through the database's commit hook).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.actions import Action, kind_of
from protocol.bounds import MAX_NAME
from protocol.errand import Projection
from protocol.errors import SanjiError
from sanji.auth import events as ev
from sanji.auth.roles import PlaceRefused
from sanji.store import Store, submissions
from sanji.store import schema as t
from sanji.store.engine import Database
from sanji.store.submissions import Once

CHAIN_START = "0" * 64


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    role: str
    password_hash: str
    active: bool
    failed_logins: int
    locked_until: float
    created_at: float
    last_login_at: float | None = None
    must_change_password: bool = False  # a generated password: its holder changes it at the first login
    department: str = ""  # the county department it answers for ('' : the whole node; ``roles.place_refusal``)
    window: str = ""  # the window whose urgings it answers ('' : the whole node)
    display_name: str = ""  # the name its holder goes by where the login is another ('' : the login is the name)


class SessionRow(msgspec.Struct, frozen=True, kw_only=True):
    id_hash: str
    account_id: int
    csrf: str
    created_at: float
    seen_at: float
    expires_at: float
    ip: str = ""


class TokenRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    account_id: int
    label: str
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None


class AccountError(SanjiError):
    """An account change refused, in English (``message``) and, where a desk shows it, Chinese (``message_zh``;
    '' where only the command line says it). ``texts`` is both, Chinese first, for a screen."""

    code = "account_refused"

    def __init__(self, message: str, *, zh: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.message_zh = zh

    @property
    def texts(self) -> tuple[str, str]:
        return self.message_zh, self.message

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        if self.message_zh:
            out["message_zh"] = self.message_zh
        return out


class AccountExists(AccountError):
    code = "account_exists"


def _plain(row: Any) -> dict[str, Any]:
    return {str(k): v for k, v in row.items()}


def _clip(value: str, size: int) -> str:
    return value[:size]


async def insert_event(conn: AsyncConnection, event: ev.Event) -> None:
    """Append one audit event to the chain, on the caller's connection (so in the caller's transaction)."""
    body = ev.encode(event)
    prev = await conn.scalar(select(t.audit_events.c.hash).order_by(t.audit_events.c.id.desc()).limit(1))
    digest = hashlib.sha256(((prev or CHAIN_START) + body).encode()).hexdigest()
    await conn.execute(
        insert(t.audit_events).values(
            at=event.at,
            node=_clip(event.node, 64),
            event=ev.tag_of(event),
            actor=_clip(event.actor, MAX_NAME),  # an action's actor, role, acting_for and errand: their bound
            role=_clip(event.role, MAX_NAME),
            acting_for=_clip(event.acting_for, MAX_NAME),
            account=_clip(event.account, 64),
            errand=_clip(event.errand, MAX_NAME),
            body=body,
            hash=digest,
        )
    )


class AuthBook:
    """Accounts, sessions, API tokens and the audit log of one node."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- audit ----------------------------------------------------------------------------------

    async def record(self, *events: ev.Event) -> None:
        async with self.db.write() as conn:
            for event in events:
                await insert_event(conn, event)

    async def events(
        self, *, errand: str | None = None, event: str | None = None, actor: str | None = None, limit: int = 1000
    ) -> list[ev.Event]:
        query = select(t.audit_events.c.body).order_by(t.audit_events.c.id)
        if errand is not None:
            query = query.where(t.audit_events.c.errand == errand)
        if event is not None:
            query = query.where(t.audit_events.c.event == event)
        if actor is not None:
            query = query.where(t.audit_events.c.actor == actor)
        async with self.db.reader.connect() as conn:
            bodies = (await conn.execute(query.limit(limit))).scalars().all()
        return [ev.decode(b) for b in bodies]

    async def verify_chain(self) -> list[int]:
        """Ids of the audit rows whose hash does not follow from their predecessor and body ([] if intact)."""
        broken: list[int] = []
        prev = CHAIN_START
        async with self.db.reader.connect() as conn:
            rows = await conn.stream(
                select(t.audit_events.c.id, t.audit_events.c.body, t.audit_events.c.hash).order_by(t.audit_events.c.id)
            )
            async for row_id, body, digest in rows:
                if hashlib.sha256((prev + body).encode()).hexdigest() != digest:
                    broken.append(int(row_id))
                prev = digest
        return broken

    # -- accounts -------------------------------------------------------------------------------

    async def add_account(
        self,
        name: str,
        role: str,
        password_hash: str,
        *,
        now: float,
        event: ev.Event,
        must_change: bool = False,
        department: str = "",
        window: str = "",
        display_name: str = "",
        once: Once | None = None,
    ) -> Account:
        async with self.db.write() as conn:
            if once is not None:  # the same form sent again: the account its first sending created
                await submissions.refuse_if_used(conn, once)
            if await conn.scalar(select(t.accounts.c.id).where(t.accounts.c.name == name)) is not None:
                raise AccountExists(f"an account named {name} exists at this node", hint="Choose another name.")
            await conn.execute(
                insert(t.accounts).values(
                    name=name,
                    role=role,
                    password_hash=password_hash,
                    active=True,
                    failed_logins=0,
                    locked_until=0.0,
                    created_at=now,
                    must_change_password=must_change,
                    department=department,
                    window=window,
                    display_name=display_name,
                )
            )
            await insert_event(conn, event)
            if once is not None:
                await submissions.keep(conn, once, "", name)
        account = await self.account(name=name)
        assert account is not None
        return account

    async def account(self, *, name: str | None = None, account_id: int | None = None) -> Account | None:
        query = select(t.accounts)
        query = (
            query.where(t.accounts.c.name == name) if name is not None else query.where(t.accounts.c.id == account_id)
        )
        async with self.db.reader.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else msgspec.convert(_plain(row), Account)

    async def accounts(self) -> list[Account]:
        async with self.db.reader.connect() as conn:
            rows = (await conn.execute(select(t.accounts).order_by(t.accounts.c.name))).mappings().all()
        return [msgspec.convert(_plain(r), Account) for r in rows]

    async def update_account(
        self, account_id: int, values: dict[str, Any], *, event: ev.Event | None = None, once: Once | None = None
    ) -> None:
        """``once``: the sending form's one-time key, kept with the change (``AlreadySent`` if it was)."""
        async with self.db.write() as conn:
            if once is not None:
                await submissions.refuse_if_used(conn, once)
            await conn.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(**values))
            if event is not None:
                await insert_event(conn, event)
            if once is not None:
                await submissions.keep(conn, once, "", str(account_id))

    async def disable_unless_last_admin(self, account_id: int, admin_role: str, *, event: ev.Event) -> bool:
        """Disable an account unless it is the last active ``admin_role`` one, checked in the same write
        transaction as the update (two administrators disabling each other at once cannot both succeed).
        False, and nothing written, when it would leave no active administrator."""
        async with self.db.write() as conn:
            row = (
                await conn.execute(select(t.accounts.c.role, t.accounts.c.active).where(t.accounts.c.id == account_id))
            ).first()
            if row is not None and row[0] == admin_role and row[1]:
                others = await conn.scalar(
                    select(t.accounts.c.id)
                    .where(
                        t.accounts.c.role == admin_role,
                        t.accounts.c.active.is_(True),
                        t.accounts.c.id != account_id,
                    )
                    .limit(1)
                )
                if others is None:
                    return False
            await conn.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(active=False))
            await insert_event(conn, event)
        return True

    async def note_failure(
        self,
        account_id: int,
        *,
        now: float,
        max_failures: int,
        lockout: float,
        events: Callable[[int, float], Sequence[ev.Event]],
    ) -> tuple[int, float]:
        """Count one failed login (atomically); lock the account when the count reaches ``max_failures``.

        ``events(failures, locked_until)`` gives the audit events to write in the same transaction.
        """
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    select(t.accounts.c.failed_logins, t.accounts.c.locked_until).where(t.accounts.c.id == account_id)
                )
            ).first()
            assert row is not None
            failures, locked_until = int(row[0]), float(row[1])
            if locked_until and locked_until <= now:
                failures = 0  # the last lock-out is over: count afresh
                locked_until = 0.0
            failures += 1
            if failures >= max_failures:
                locked_until = now + lockout
            await conn.execute(
                update(t.accounts)
                .where(t.accounts.c.id == account_id)
                .values(failed_logins=failures, locked_until=locked_until)
            )
            for event in events(failures, locked_until):
                await insert_event(conn, event)
        return failures, locked_until

    # -- sessions -------------------------------------------------------------------------------

    async def open_session(self, session: SessionRow, *, values: dict[str, Any], event: ev.Event) -> None:
        """Start a session after a good login: reset the failure count, note the time, audit it."""
        async with self.db.write() as conn:
            await conn.execute(insert(t.auth_sessions).values(**msgspec.structs.asdict(session)))
            await conn.execute(update(t.accounts).where(t.accounts.c.id == session.account_id).values(**values))
            await insert_event(conn, event)

    async def session(self, id_hash: str) -> tuple[SessionRow, Account] | None:
        found = await self._with_account(t.auth_sessions, t.auth_sessions.c.id_hash == id_hash)
        if found is None:
            return None
        row, acc = found
        return msgspec.convert(row, SessionRow), acc

    async def _with_account(self, table: Table, where: ColumnElement[bool]) -> tuple[dict[str, Any], Account] | None:
        """The one row of ``table`` (a session's, a token's) ``where`` finds, and the account it belongs to."""
        async with self.db.reader.connect() as conn:
            row = (await conn.execute(select(table).where(where))).mappings().first()
            if row is None:
                return None
            acc = (
                (await conn.execute(select(t.accounts).where(t.accounts.c.id == row["account_id"]))).mappings().first()
            )
        if acc is None:
            return None
        return _plain(row), msgspec.convert(_plain(acc), Account)

    async def touch_session(self, id_hash: str, now: float) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(t.auth_sessions).where(t.auth_sessions.c.id_hash == id_hash).values(seen_at=now))

    async def close_session(self, id_hash: str, *, event: ev.Event | None = None) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(t.auth_sessions).where(t.auth_sessions.c.id_hash == id_hash))
            if event is not None:
                await insert_event(conn, event)

    async def close_sessions_of(self, account_id: int, *, keep: str = "") -> None:
        """End the account's sessions, all but the one whose id hash is ``keep`` (if given)."""
        async with self.db.write() as conn:
            query = delete(t.auth_sessions).where(t.auth_sessions.c.account_id == account_id)
            if keep:
                query = query.where(t.auth_sessions.c.id_hash != keep)
            await conn.execute(query)

    async def drop_expired_sessions(self, now: float) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(t.auth_sessions).where(t.auth_sessions.c.expires_at <= now))

    # -- API tokens -----------------------------------------------------------------------------

    async def add_token(
        self, account_id: int, label: str, token_hash: str, *, now: float, event: Callable[[int], ev.Event]
    ) -> int:
        async with self.db.write() as conn:
            result = await conn.execute(
                insert(t.api_tokens).values(account_id=account_id, label=label, token_hash=token_hash, created_at=now)
            )
            token_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            await insert_event(conn, event(token_id))
        return token_id

    async def token(self, token_hash: str) -> tuple[TokenRow, Account] | None:
        found = await self._with_account(t.api_tokens, t.api_tokens.c.token_hash == token_hash)
        if found is None:
            return None
        row, acc = found
        values = {k: v for k, v in row.items() if k != "token_hash"}
        return msgspec.convert(values, TokenRow), acc

    async def tokens(self, account_id: int | None = None) -> list[TokenRow]:
        query = select(t.api_tokens).order_by(t.api_tokens.c.id)
        if account_id is not None:
            query = query.where(t.api_tokens.c.account_id == account_id)
        async with self.db.reader.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [msgspec.convert({k: v for k, v in _plain(r).items() if k != "token_hash"}, TokenRow) for r in rows]

    async def touch_token(self, token_id: int, now: float) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(t.api_tokens).where(t.api_tokens.c.id == token_id).values(last_used_at=now))

    async def set_password(
        self,
        account_id: int,
        values: dict[str, Any],
        *,
        event: ev.Event,
        now: float,
        token_event: Callable[[int], ev.Event] | None,
        once: Once | None = None,
    ) -> int:
        """An administrator's new password, the account's sessions ended and (``token_event`` given) its tokens
        revoked, in one transaction: a crash between them cannot leave a token or a session that outlived the
        reset. How many tokens were revoked. ``once``: the reset form's one-time key, read first and kept with
        the reset (``AlreadySent``: the same form reset it before; nothing is written again)."""
        async with self.db.write() as conn:
            if once is not None:
                await submissions.refuse_if_used(conn, once)
            await conn.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(**values))
            await insert_event(conn, event)
            await conn.execute(delete(t.auth_sessions).where(t.auth_sessions.c.account_id == account_id))
            revoked = 0 if token_event is None else await _revoke_tokens(conn, account_id, now=now, event=token_event)
            if once is not None:
                await submissions.keep(conn, once, "", str(account_id))
            return revoked

    async def revoke_token(self, token_id: int, *, now: float, event: ev.Event, once: Once | None = None) -> bool:
        """``once``: the revoking form's one-time key, kept with the revocation (``AlreadySent`` if it was)."""
        async with self.db.write() as conn:
            if once is not None:
                await submissions.refuse_if_used(conn, once)
            result = await conn.execute(
                update(t.api_tokens)
                .where(t.api_tokens.c.id == token_id, t.api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            if not result.rowcount:
                return False
            await insert_event(conn, event)
            if once is not None:
                await submissions.keep(conn, once, "", str(token_id))
        return True


async def _revoke_tokens(
    conn: AsyncConnection, account_id: int, *, now: float, event: Callable[[int], ev.Event]
) -> int:
    live = t.api_tokens.c.account_id == account_id, t.api_tokens.c.revoked_at.is_(None)
    ids = list((await conn.execute(select(t.api_tokens.c.id).where(*live))).scalars())
    if ids:
        await conn.execute(update(t.api_tokens).where(t.api_tokens.c.id.in_(ids)).values(revoked_at=now))
        for token_id in ids:
            await insert_event(conn, event(token_id))
    return len(ids)


# -- the errand store, audited ------------------------------------------------------------------


def _asked(exc: SanjiError, action: Action | None) -> tuple[str, str, str, str]:
    """Who asked for which step (actor, role, acting_for, kind), for the audit row of a refusal: as the action
    built says it, or, refused for the account's place before the action was built, as the refusal says it
    (``roles.PlaceRefused``)."""
    if isinstance(exc, PlaceRefused):
        return exc.actor, exc.role, exc.acting_for, exc.kind
    if action is None:
        return "", "", "", ""
    return action.actor, action.role, action.acting_for, kind_of(action)


@dataclass(frozen=True)
class Who:
    """The caller behind the actions a request takes (the rest of each event comes from the action)."""

    account: str = ""
    via: str = "system"  # session, token, open, cli, system
    ip: str = ""
    os_user: str = ""  # via cli: the operating-system user who ran the command


SYSTEM = Who()
CALLER: ContextVar[Who | None] = ContextVar("sanji_audit_caller", default=None)


@dataclass
class _Pending:
    who: Who
    actions: list[Action] = field(default_factory=list)
    done: bool = False


_PENDING: ContextVar[_Pending | None] = ContextVar("sanji_audit_pending", default=None)


class AuditedStore(Store):
    """The node's Store, whose every local action writes its ``ActionTaken`` event in the same transaction.

    The caller is taken from ``CALLER`` (set by ``sanji.auth.guard.GuardedService`` for the span of
    one request's action); an action with no caller is the node's own (deemed approval): ``via=system``.
    A refused action writes ``ActionRefused`` in a transaction of its own.
    """

    def __init__(self, *args: Any, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audit_clock = clock
        self.db.add_commit_hook(self._record_taken)

    async def act(
        self,
        errand_id: str,
        build: Callable[[Projection, int], Action],
        *,
        attachment: bytes | None = None,
        once: Once | None = None,
        first: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> Projection:
        pending = _Pending(CALLER.get() or SYSTEM)

        def capture(before: Projection, at: int) -> Action:
            action = build(before, at)
            pending.actions.append(action)
            return action

        token = _PENDING.set(pending)
        try:
            return await super().act(errand_id, capture, attachment=attachment, once=once, first=first)
        except SanjiError as exc:
            pending.done = True
            actor, role, acting_for, kind = _asked(exc, pending.actions[-1] if pending.actions else None)
            who = pending.who
            await AuthBook(self.db).record(
                ev.ActionRefused(
                    at=self.audit_clock(),
                    node=self.node_id,
                    actor=actor,
                    role=role,
                    acting_for=acting_for,
                    account=who.account,
                    via=who.via,
                    ip=who.ip,
                    os_user=who.os_user,
                    errand=errand_id,
                    kind=kind,
                    reason=exc.message[:500],
                )
            )
            raise
        finally:
            pending.done = True
            _PENDING.reset(token)

    async def _record_taken(self, conn: AsyncConnection) -> None:
        """The commit hook: the transaction that wrote an ``act()``'s action also writes its ``ActionTaken``."""
        pending = _PENDING.get()
        if pending is not None and not pending.done and pending.actions:
            pending.done = True  # one transaction writes the events of one act() (tasks inherit contexts)
            for action in pending.actions:
                await insert_event(conn, self._taken(action, pending.who))

    def _taken(self, action: Action, who: Who) -> ev.ActionTaken:
        return ev.ActionTaken(
            at=self.audit_clock(),
            node=self.node_id,
            actor=action.actor,
            role=action.role,
            acting_for=action.acting_for,
            account=who.account,
            via=who.via,
            ip=who.ip,
            os_user=who.os_user,
            errand=action.errand,
            action_id=action.id,
            kind=kind_of(action),
            action_at=action.at,
            version=action.base,
        )
