"""Accounts, logins with lock-out, sessions and API tokens: the rules, over ``AuthBook``.

- Failed logins never lock an account (anyone could lock the director out): they slow down
  further attempts per address and per name with growing delays (``sanji.auth.throttle``),
  alike for names that exist and names that do not. ``failed_logins`` still counts them.
- An unknown name, a disabled account and a wrong password get the same answer and take
  the same time (an unknown name is checked against a throw-away hash).
- A session ends ``session_hours`` after login or ``idle_minutes`` after its last use,
  at logout, or when its account is disabled or its password is changed.
- A password the system generates (the administrator's desk: a new account, a reset; the first
  start's ``admin``) is marked must-change: its session reaches only ``/account/password`` and
  ``/logout`` until the holder sets their own, so whoever saw it (the admin post) never keeps a
  working password of another post. A password an operator types at the command line is not.
- The clock is injected (``clock``) so the rules can be tested without waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypedDict

import msgspec

from protocol.errors import SanjiError
from protocol.names import invisible
from sanji.auth import events as ev
from sanji.auth import passwords, roles
from sanji.auth.book import Account, AccountError, AuthBook, SessionRow, TokenRow, Who
from sanji.auth.throttle import LoginThrottle
from sanji.config import AuthSection
from sanji.store import submissions
from sanji.store.submissions import Once

__all__ = [
    "AccountError",
    "AccountLine",
    "AuthService",
    "LoginRefused",
    "LoginResult",
    "Principal",
    "one_time_password",
    "password_throttled_texts",
    "throttled_texts",
]

TOKEN_PREFIX = "sanji_"
TOUCH_EVERY = 60.0  # seconds: how stale a session's or token's last-use time may get before it is written
MAX_DISPLAY_NAME = 64  # a display name, as long as a login may be

log = logging.getLogger("sanji.auth")


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """A logged-in account, as a request sees it."""

    account_id: int
    name: str
    role: str
    via: str  # session or token
    must_change: bool = False  # a session whose password the system generated: only /account/password
    department: str = ""  # the county department it answers for ('' : the whole node; ``roles.place_refusal``)
    window: str = ""  # the window whose urgings it answers ('' : the whole node)

    @classmethod
    def of(cls, account: Account, via: str, *, must_change: bool = False) -> Principal:
        """The account as a caller through ``via`` (session, token, cli)."""
        return cls(
            account_id=account.id,
            name=account.name,
            role=account.role,
            via=via,
            must_change=must_change,
            department=account.department,
            window=account.window,
        )

    @property
    def label(self) -> str:
        return roles.label(self.role)

    @property
    def label_en(self) -> str:
        return roles.ROLE_LABELS_EN.get(self.role, self.role)


class LoginRefused(SanjiError):
    code = "login_refused"

    def __init__(self, message: str, *, reason: str, until: float = 0.0, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        self.until = until


def throttled_texts(seconds: int) -> tuple[str, str]:
    """What a throttled login is told, in Chinese and English: attempts came too often (failed ones, or too many
    at once: the throttle does not say which, nor whether the name exists), and in how many seconds to retry."""
    unit = "second" if seconds == 1 else "seconds"
    return f"登录尝试过于频繁，请{seconds}秒后再试", f"Too many login attempts; try again in {seconds} {unit}"


def password_throttled_texts(seconds: int) -> tuple[str, str]:
    """What a throttled password change is told, in Chinese and English, and in how many seconds to retry. The
    login throttle's counters answer it, which count guesses at this name from anywhere and checks running at
    once, so it does not say the clerk typed the current password wrong: someone else may have."""
    unit = "second" if seconds == 1 else "seconds"
    return (
        f"本账号的密码核对过于频繁，请{seconds}秒后再试",
        f"Too many password checks for this account; try again in {seconds} {unit}",
    )


@dataclass(frozen=True)
class LoginResult:
    session_id: str
    csrf: str
    principal: Principal
    expires_at: float


class DisablingSelf(AccountError):
    code = "disabling_self"


class LastAdministrator(AccountError):
    code = "last_administrator"


class PasswordChangeRefused(AccountError):
    """Why ``/account/password`` changed nothing, in English (``message``) and Chinese (``message_zh``); a throttled
    attempt (``reason`` throttled) names when it may try again (``until``, on the service's clock)."""

    code = "password_change_refused"

    def __init__(self, message: str, *, zh: str, reason: str = "refused", until: float = 0.0) -> None:
        super().__init__(message, zh=zh)
        self.reason = reason
        self.until = until


@dataclass(frozen=True)
class AccountLine:
    """One account as the roster lists it: ``state`` is active or disabled; ``locked_until`` 0 unless locked now."""

    account: Account
    state: str
    locked_until: float
    tokens: list[TokenRow]

    @property
    def live_tokens(self) -> list[TokenRow]:
        return [tok for tok in self.tokens if tok.revoked_at is None]


ONE_TIME_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud or copied by hand


def one_time_password() -> str:
    """A generated password of 12 letters and digits in three groups (about 59 bits), e.g. ``k7qm-x2rt-9awe``."""
    raw = "".join(secrets.choice(ONE_TIME_ALPHABET) for _ in range(12))
    return "-".join(raw[i : i + 4] for i in range(0, 12, 4))


class _Base(TypedDict):
    at: float
    node: str
    account: str
    via: str
    ip: str
    os_user: str


def look_alike(name: str) -> str:
    """What two login names that read the same have in common: full-width and half-width letters, and case, alike."""
    return unicodedata.normalize("NFKC", name).casefold()


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


FIRST_SENDING_WAIT = 10.0  # seconds: a password's check and the new one's hash, at production's cost


class AuthService:
    def __init__(
        self,
        book: AuthBook,
        settings: AuthSection,
        *,
        node_id: str,
        node_role: str,
        clock: Callable[[], float] = time.time,
        places: Callable[[], Awaitable[roles.KnownPlaces | None]] | None = None,
    ) -> None:
        """``places``: the departments and windows an account may be seated at (``sanji.auth.places.known_places``,
        read afresh at each change, as the catalogue held may have changed); None, or an answer of None: any."""
        self.book = book
        self.places = places
        self.settings = settings
        self.node_id = node_id
        self.node_role = node_role
        self.clock = clock
        lockout = max(1.0, settings.lockout_minutes * 60)
        self.throttle = LoginThrottle(
            name_free=max(1, settings.max_failures), address_cap=lockout, name_cap=min(60.0, lockout), clock=clock
        )

    def _event_base(self, who: Who) -> _Base:
        return {
            "at": self.clock(),
            "node": self.node_id,
            "account": who.account,
            "via": who.via,
            "ip": who.ip,
            "os_user": who.os_user,
        }

    async def record(self, event: ev.Event) -> None:
        if self.book.db.read_only and isinstance(event, ev.AccessDenied):
            # A replica writes no audit row; the refusal stands (a 403, not the write's 503), and is logged.
            log.warning("access denied on a read replica (not audited here): %s", msgspec.json.encode(event).decode())
            return
        await self.book.record(event)

    # -- accounts -------------------------------------------------------------------------------

    async def _check_place(self, role: str, department: str, window: str, *, kept: tuple[str, str] = ("", "")) -> None:
        """``kept``: the department and window the account has now; a value kept as it is is not checked against
        the catalogue again (it may predate the check, or the catalogue), so changing one never fails on the other."""
        zh, problem = roles.place_problem_texts(role, self.node_role, department, window)
        if problem:
            raise AccountError(problem, zh=zh)
        department = "" if department == kept[0] else department
        window = "" if window == kept[1] else window
        if (department or window) and self.places is not None:
            unknown = roles.unknown_place(department, window, await self.places())
            if unknown is not None:
                zh, en = unknown[1]
                raise AccountError(en, zh=zh)

    def _check_new(self, name: str, role: str) -> None:
        if not name.strip() or name != name.strip() or len(name) > 64:
            raise AccountError(
                "an account name has 1 to 64 characters and no spaces at either end",
                zh="登录名为1至64个字符，首尾不能有空格",
            )
        if any(invisible(c) for c in name):
            raise AccountError(
                "an account name has no control or invisible characters (a line break, a zero-width space)",
                zh="登录名不能含控制字符或不可见字符（换行、零宽空格等）",
            )
        if role not in roles.STAFF_ROLES:
            raise AccountError(
                f"unknown role {role!r}", zh="没有这个岗位", hint="One of: " + ", ".join(roles.STAFF_ROLES)
            )
        if not roles.works_at(role, self.node_role):
            where = ", ".join(sorted(roles.WORKS_AT[role]))
            raise AccountError(
                f"a {roles.ROLE_LABELS_EN[role]} does not work at a {self.node_role} node (only at: {where})",
                zh=f"{roles.label(role)}不在{roles.NODE_LABELS.get(self.node_role, self.node_role).split(' ')[0]}工作",
            )

    async def add_account(
        self,
        name: str,
        role: str,
        password: str,
        *,
        by: Who,
        must_change: bool = False,
        department: str = "",
        window: str = "",
        display_name: str = "",
        once: Once | None = None,
    ) -> Account:
        """A new account. ``must_change``: the password was generated, its holder sets their own at first login.
        ``department`` / ``window``: where it sits (``roles.place_problem``); '' acts for the whole node.
        ``display_name``: the name its holder goes by where the login is another ('' : the login is the name).
        ``once``: the sending form's one-time key (``AlreadySent``: that form created the account already)."""
        self._check_new(name, role)
        # ｗａ１ or WA1 beside wa1 would pass as wa1 on every screen and in the audit log
        twin = next((a.name for a in await self.book.accounts() if look_alike(a.name) == look_alike(name)), None)
        if twin is not None and twin != name:
            raise AccountError(
                f"an account named {twin!r} exists; a name that differs from it only in width or case is refused",
                zh=f"已有账号「{twin}」，与之仅全角半角或大小写不同的登录名不能使用",
            )
        await self._check_place(role, department, window)
        self.check_display_name(display_name)
        try:
            hashed = passwords.hash_password(password)
        except passwords.WeakPassword as exc:
            raise AccountError(str(exc), zh=exc.message_zh) from None
        event = ev.AccountChanged(
            **self._event_base(by),
            actor=by.account,
            name=name,
            change="added",
            staff_role=role,
            department=department,
            window=window,
            display_name=display_name,
        )
        return await self.book.add_account(
            name,
            role,
            hashed,
            now=self.clock(),
            event=event,
            must_change=must_change,
            department=department,
            window=window,
            display_name=display_name,
            once=once,
        )

    @staticmethod
    def check_display_name(display_name: str) -> None:
        """A display name names a person as a score does ('' : none): no spaces at either end, no character that
        shows as nothing (``protocol.names.invisible``), at most ``MAX_DISPLAY_NAME`` characters (a login's limit).
        Asked by ``add_account`` and ``rename``; the create form asks it first, to say it under its own field."""
        if not display_name:
            return
        if display_name != display_name.strip() or len(display_name) > MAX_DISPLAY_NAME or display_name.isspace():
            raise AccountError(
                f"a display name has 1 to {MAX_DISPLAY_NAME} characters and no spaces at either end",
                zh=f"显示姓名为1至{MAX_DISPLAY_NAME}个字符，首尾不能有空格",
            )
        if any(invisible(c) for c in display_name):
            raise AccountError(
                "a display name has no control or invisible characters (a line break, a zero-width space)",
                zh="显示姓名不能含控制字符或不可见字符（换行、零宽空格等）",
            )

    async def rename(self, name: str, display_name: str, *, by: Who) -> Account:
        """Set (or clear, with '') the name the holder of account ``name`` goes by, where the login is another:
        scores and appeals name people by it (``sanji.office.book.OfficeBook.subject_person``)."""
        account = await self._existing(name)
        self.check_display_name(display_name)
        event = ev.AccountChanged(
            **self._event_base(by),
            actor=by.account,
            name=name,
            change="renamed",
            staff_role=account.role,
            display_name=display_name,
        )
        await self.book.update_account(account.id, {"display_name": display_name}, event=event)
        return msgspec.structs.replace(account, display_name=display_name)

    async def place(self, name: str, *, by: Who, department: str | None = None, window: str | None = None) -> Account:
        """Set (or clear, with '') where an account sits: its county department, its window; None keeps one as it is.
        Takes effect at its next request (sessions and tokens read the account afresh)."""
        account = await self._existing(name)
        department = account.department if department is None else department
        window = account.window if window is None else window
        await self._check_place(account.role, department, window, kept=(account.department, account.window))
        event = ev.AccountChanged(
            **self._event_base(by),
            actor=by.account,
            name=name,
            change="placed",
            staff_role=account.role,
            department=department,
            window=window,
        )
        await self.book.update_account(account.id, {"department": department, "window": window}, event=event)
        return msgspec.structs.replace(account, department=department, window=window)

    async def _existing(self, name: str) -> Account:
        account = await self.book.account(name=name)
        if account is None:
            raise AccountError(f"no account named {name} at this node", zh=f"本节点没有名为 {name} 的账号")
        return account

    async def set_password(
        self,
        name: str,
        password: str,
        *,
        by: Who,
        must_change: bool = False,
        keep_tokens: bool = False,
        once: Once | None = None,
    ) -> int:
        """A new password for ``name``, set by an administrator; ends its sessions and, unless ``keep_tokens``, its
        API tokens (returns how many were revoked). ``must_change``: a generated one, changed at first login; a
        password an operator chose and typed (``sanji accounts passwd``) is not.

        An administrator sets a password when the holder forgot it or it may be known to someone else: the
        second is the case to be safe in, so everything that lets the account in ends with it, tokens too (the
        one it is for gets a new one from ``sanji accounts token``). The holder's own change (``/account/password``)
        keeps them: the holder cannot issue a token, so a password they knew says nothing about one."""
        account = await self._existing(name)
        try:
            hashed = passwords.hash_password(password)
        except passwords.WeakPassword as exc:
            raise AccountError(str(exc), zh=exc.message_zh) from None
        event = ev.AccountChanged(**self._event_base(by), actor=by.account, name=name, change="password")
        values = {"password_hash": hashed, "must_change_password": must_change}

        def token_event(token_id: int) -> ev.Event:
            return ev.TokenRevoked(**self._event_base(by), actor=by.account, token_id=token_id)

        return await self.book.set_password(
            account.id,
            values,
            event=event,
            now=self.clock(),
            token_event=None if keep_tokens else token_event,
            once=once,
        )

    async def change_own_password(
        self, session_id: str, current: str, new: str, again: str, *, ip: str = "", once: Once | None = None
    ) -> Principal:
        """The logged-in holder sets their own password (``/account/password``): the current one, the new one
        twice, the node's rules; it must differ from the current one. Clears must-change; every other session of
        the account ends (one someone else opened with the old password too), this one goes on. ``once``: the
        form's one-time key: sent again, the form finds it (``AlreadySent``) before the current password, which
        it changed, is checked and counted a failure."""
        found = await self.resolve_session(session_id)
        if found is None:
            raise PasswordChangeRefused("log in first", zh="请先登录")
        principal, _ = found
        await submissions.sent_before(self.book.db, once)
        account = await self._existing(principal.name)
        now = self.clock()
        wait = self.throttle.begin(principal.name, ip)
        if wait > 0 and once is not None and not self.throttle.wait(principal.name, ip):
            # Not locked out, but a check of this account's password is under way: the same form's first
            # sending (a double click) is, whose key this one finds once written, or waits its turn behind.
            wait = await self._turn_or_first_sending(principal.name, ip, once)
        if wait > 0:  # the login throttle's counters: guessing here is no faster than at /login
            zh, en = password_throttled_texts(max(1, math.ceil(wait)))
            raise PasswordChangeRefused(en, zh=zh, reason="throttled", until=now + wait)
        try:
            right = await asyncio.to_thread(passwords.verify, account.password_hash, current)
        finally:
            self.throttle.end(principal.name, ip)
        if not right:
            await submissions.sent_before(self.book.db, once)  # changed by the first sending: not a failure
            self.throttle.failed(principal.name, ip)
            raise PasswordChangeRefused("the current password is wrong", zh="当前密码不正确")
        if new != again:
            raise PasswordChangeRefused("the two new passwords differ", zh="两次输入的新密码不一致")
        if new == current:
            raise PasswordChangeRefused(
                "the new password must differ from the current one", zh="新密码不能与当前密码相同"
            )
        try:
            hashed = await asyncio.to_thread(passwords.hash_password, new)
        except passwords.WeakPassword as exc:
            raise PasswordChangeRefused(str(exc), zh=exc.message_zh) from None
        self.throttle.succeeded(principal.name)
        who = Who(account=principal.name, via="session", ip=ip)
        event = ev.AccountChanged(**self._event_base(who), actor=principal.name, name=principal.name, change="password")
        await self.book.update_account(
            account.id, {"password_hash": hashed, "must_change_password": False}, event=event, once=once
        )
        await self.book.close_sessions_of(account.id, keep=digest(session_id))
        return msgspec.structs.replace(principal, must_change=False)

    async def _turn_or_first_sending(self, name: str, ip: str, once: Once) -> float:
        """The throttle's turn to check ``name``'s password (0.0, taken), watched for ``FIRST_SENDING_WAIT``
        seconds; ``AlreadySent`` as soon as the form's first sending writes its key; else the wait ``begin``
        answers last (a lockout, or a turn still held)."""
        deadline = time.monotonic() + FIRST_SENDING_WAIT
        while True:
            await submissions.sent_before(self.book.db, once)
            wait = self.throttle.begin(name, ip)
            if not wait or self.throttle.wait(name, ip) or time.monotonic() >= deadline:
                return wait
            await asyncio.sleep(0.1)

    async def set_active(self, name: str, active: bool, *, by: Who) -> None:
        """Enable or disable an account. Nobody disables their own account, and the last active
        administrator stays: a node without one could no longer manage its accounts on its desk."""
        account = await self._existing(name)
        if not active and by.account == name:
            raise DisablingSelf("you cannot disable your own account", hint="Ask another administrator.")
        change = "enabled" if active else "disabled"
        event = ev.AccountChanged(**self._event_base(by), actor=by.account, name=name, change=change)
        if active:
            await self.book.update_account(account.id, {"active": True}, event=event)
            return
        # checked inside the write transaction of the update: two admins disabling each other at once
        # cannot both succeed
        if not await self.book.disable_unless_last_admin(account.id, roles.ADMIN, event=event):
            raise LastAdministrator(
                f"{name} is the last active administrator of this node",
                hint="Create or enable another administrator first.",
            )
        await self.book.close_sessions_of(account.id)

    async def add_with_one_time_password(
        self,
        name: str,
        role: str,
        *,
        by: Who,
        department: str = "",
        window: str = "",
        display_name: str = "",
        once: Once | None = None,
    ) -> tuple[Account, str]:
        """A new account with a generated password, returned once to be handed to its holder, who must change it
        at the first login."""
        password = one_time_password()
        account = await self.add_account(
            name,
            role,
            password,
            by=by,
            must_change=True,
            department=department,
            window=window,
            display_name=display_name,
            once=once,
        )
        return account, password

    async def reset_password(self, name: str, *, by: Who, once: Once | None = None) -> tuple[str, int]:
        """A new generated password (returned once, to be changed at the next login) and how many API tokens were
        revoked with it: the account's sessions and tokens end (``set_password``). ``once``: the 重置密码 form's
        one-time key: sent twice, reset once (``AlreadySent``), no second password, no token issued in between
        revoked."""
        password = one_time_password()
        revoked = await self.set_password(name, password, by=by, must_change=True, once=once)
        return password, revoked

    def posts_here(self) -> tuple[str, ...]:
        """The posts (roles) an account of this node may hold."""
        return roles.posts_at(self.node_role)

    async def roster(self) -> list[AccountLine]:
        """Every account of this node with its state and its API tokens (``sanji accounts list``, the desk)."""
        now = self.clock()
        tokens = await self.book.tokens()
        return [
            AccountLine(
                account=account,
                state="active" if account.active else "disabled",
                locked_until=account.locked_until if account.locked_until > now else 0.0,
                tokens=[tok for tok in tokens if tok.account_id == account.id],
            )
            for account in await self.book.accounts()
        ]

    async def unlock(self, name: str, *, by: Who) -> None:
        account = await self._existing(name)
        event = ev.AccountChanged(**self._event_base(by), actor=by.account, name=name, change="unlocked")
        await self.book.update_account(account.id, {"failed_logins": 0, "locked_until": 0.0}, event=event)

    async def post_holder(self, name: str) -> str:
        """The role of the active account called ``name`` here ('' if none): whom a B post may act for."""
        account = await self.book.account(name=name)
        return account.role if account is not None and account.active else ""

    async def post_window(self, name: str) -> str | None:
        """The window of the active account called ``name`` here ('' : bound to none; None if no such account): the
        window a B post standing in for it acts at (AB岗)."""
        account = await self.book.account(name=name)
        return account.window if account is not None and account.active else None

    # -- logging in -----------------------------------------------------------------------------

    async def login(self, name: str, password: str, *, ip: str = "") -> LoginResult:
        now = self.clock()
        who = Who(account="", via="login", ip=ip)
        wait = self.throttle.begin(name, ip)
        if wait > 0:
            # Before any lookup, alike for every name: a throttled answer tells nothing about accounts. Not
            # written to the audit log one row each (that would be unbounded work for a flood): the failures
            # that led here were. Also when too many checks from this address or for this name are in flight.
            raise LoginRefused(
                throttled_texts(max(1, math.ceil(wait)))[1],
                reason="throttled",
                until=now + wait,
                hint="Failed logins slow down further attempts for a while; nothing is locked.",
            )
        try:
            return await self._login_in_turn(name, password, ip=ip, now=now, who=who)
        finally:
            self.throttle.end(name, ip)

    async def _login_in_turn(self, name: str, password: str, *, ip: str, now: float, who: Who) -> LoginResult:
        account = await self.book.account(name=name) if 0 < len(name) <= 64 else None
        bad = LoginRefused("wrong name or password", reason="bad_credentials")

        def failed(reason: str, failures: int = 0) -> ev.LoginFailed:
            return ev.LoginFailed(
                **self._event_base(who),
                actor=name[:64],
                role=account.role if account else "",
                name=name[:64],
                reason=reason,
                failures=failures,
            )

        if account is None or not account.active:
            await asyncio.to_thread(passwords.verify_absent, password)  # the time a real check takes
            await self.book.record(failed("bad_credentials" if account is None else "disabled"))
            self.throttle.failed(name, ip)
            raise bad
        if not await asyncio.to_thread(passwords.verify, account.password_hash, password):
            # Counted for the administrator (failed_logins), never locked: the throttle slows the guesser.
            await self.book.note_failure(
                account.id,
                now=now,
                max_failures=2**31,
                lockout=0.0,
                events=lambda failures, _until: [failed("bad_credentials", failures)],
            )
            self.throttle.failed(name, ip)
            raise bad
        if not roles.works_at(account.role, self.node_role):
            await self.book.record(failed("wrong_level"))
            raise LoginRefused(
                f"a {roles.ROLE_LABELS_EN.get(account.role, account.role)} account cannot log in at a "
                f"{self.node_role} node",
                reason="wrong_level",
            )
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now + self.settings.session_hours * 3600
        values: dict[str, object] = {"failed_logins": 0, "locked_until": 0.0, "last_login_at": now}
        if passwords.needs_rehash(account.password_hash):
            values["password_hash"] = await asyncio.to_thread(passwords.hash_password, password)
        principal = Principal.of(account, "session", must_change=account.must_change_password)
        session = SessionRow(
            id_hash=digest(session_id),
            account_id=account.id,
            csrf=csrf,
            created_at=now,
            seen_at=now,
            expires_at=expires,
            ip=ip[:64],
        )
        event = ev.LoggedIn(
            **self._event_base(Who(account=account.name, via="session", ip=ip)),
            actor=account.name,
            role=roles.label(account.role),
        )
        await self.book.drop_expired_sessions(now)
        await self.book.open_session(session, values=values, event=event)
        self.throttle.succeeded(name)
        return LoginResult(session_id=session_id, csrf=csrf, principal=principal, expires_at=expires)

    async def logout(self, session_id: str, *, ip: str = "") -> None:
        found = await self.resolve_session(session_id)
        if found is None:
            return
        principal, _ = found
        event = ev.LoggedOut(
            **self._event_base(Who(account=principal.name, via="session", ip=ip)),
            actor=principal.name,
            role=principal.label,
        )
        await self.book.close_session(digest(session_id), event=event)

    async def resolve_session(self, session_id: str) -> tuple[Principal, str] | None:
        """The account and CSRF token of a live session, or None (an ended session is removed)."""
        if not session_id or len(session_id) > 128:
            return None
        key = digest(session_id)
        found = await self.book.session(key)
        if found is None:
            return None
        session, account = found
        now = self.clock()
        idle = self.settings.idle_minutes * 60
        if (
            session.expires_at <= now
            or session.seen_at + idle <= now
            or not account.active
            or not roles.works_at(account.role, self.node_role)
        ):
            if not self.book.db.read_only:  # a replica reads the primary's sessions; the primary ends them
                await self.book.close_session(key)
            return None
        # On a replica the session is not touched: its idle time runs from its last use at the primary.
        if now - session.seen_at >= TOUCH_EVERY and not self.book.db.read_only:
            await self.book.touch_session(key, now)
        principal = Principal.of(account, "session", must_change=account.must_change_password)
        return principal, session.csrf

    # -- API tokens -----------------------------------------------------------------------------

    async def issue_token(self, name: str, label: str = "", *, by: Who) -> tuple[int, str]:
        """A new bearer token for the account; the token itself is returned once and stored only hashed."""
        account = await self._existing(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)

        def event(token_id: int) -> ev.Event:
            return ev.TokenIssued(
                **self._event_base(by),
                actor=by.account,
                name=name,
                token_id=token_id,
                label=label[:64],
            )

        token_id = await self.book.add_token(account.id, label[:64], digest(token), now=self.clock(), event=event)
        return token_id, token

    async def revoke_token(self, token_id: int, *, by: Who, once: Once | None = None) -> bool:
        """``once``: the revoking form's key: sent again, ``AlreadySent``, not False (no live token)."""
        if not 0 < token_id < 2**63:  # no such token: the database's integers stop at 2**63 - 1
            return False
        await submissions.sent_before(self.book.db, once)
        event = ev.TokenRevoked(**self._event_base(by), actor=by.account, token_id=token_id)
        return await self.book.revoke_token(token_id, now=self.clock(), event=event, once=once)

    async def resolve_token(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        found = await self.book.token(digest(token))
        if found is None:
            return None
        row, account = found
        if row.revoked_at is not None or not account.active or not roles.works_at(account.role, self.node_role):
            return None
        now = self.clock()
        stale = row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY
        if stale and not self.book.db.read_only:  # a replica notes no use: the primary does
            await self.book.touch_token(row.id, now)
        return Principal.of(account, "token")
