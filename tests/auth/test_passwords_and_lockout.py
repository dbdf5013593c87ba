"""Passwords (Argon2id), lock-out after five failures for fifteen minutes, session ends: on an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sanji.auth import events as ev
from sanji.auth import passwords
from sanji.auth.book import AuthBook, Who
from sanji.auth.service import AccountError, AuthService, LoginRefused
from sanji.config import AuthSection
from sanji.store import open_database

CLI = Who(account="cli:test", via="cli")
PASSWORD = "correct horse 9"


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def service(tmp_path: Path, clock: Clock) -> AsyncIterator[AuthService]:
    db = await open_database(f"sqlite:///{tmp_path / 'node.db'}")
    try:
        yield AuthService(AuthBook(db), AuthSection(), node_id="T01", node_role="town", clock=clock)
    finally:
        await db.dispose()


# -- passwords ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("real_hashing")
def test_a_password_is_stored_as_a_salted_argon2id_hash() -> None:
    first, second = passwords.hash_password(PASSWORD), passwords.hash_password(PASSWORD)
    assert first.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and PASSWORD not in first  # RFC 9106 low-memory
    assert first != second  # salted
    assert passwords.verify(first, PASSWORD) and passwords.verify(second, PASSWORD)
    assert not passwords.verify(first, PASSWORD + "x")
    assert not passwords.verify("not a hash", PASSWORD)
    assert not passwords.needs_rehash(first)


@pytest.mark.parametrize("weak", ["short", "", " leading space", "x" * 300])
def test_weak_passwords_are_refused(weak: str) -> None:
    with pytest.raises(passwords.WeakPassword):
        passwords.hash_password(weak)


async def test_accounts_are_created_only_for_roles_that_work_at_this_level(service: AuthService) -> None:
    account = await service.add_account("王芳", "window_a", PASSWORD, by=CLI)
    assert account.role == "window_a" and account.password_hash.startswith("$argon2id$")
    with pytest.raises(AccountError, match="exists"):
        await service.add_account("王芳", "window_b", PASSWORD, by=CLI)
    with pytest.raises(AccountError, match="does not work at a town node"):
        await service.add_account("李建国", "village_agent", PASSWORD, by=CLI)  # agents work at villages only
    with pytest.raises(AccountError, match="does not work at a town node"):
        await service.add_account("赵敏", "approver", PASSWORD, by=CLI)  # approvers at the county only
    with pytest.raises(AccountError, match="unknown role"):
        await service.add_account("某人", "boss", PASSWORD, by=CLI)
    with pytest.raises(AccountError, match="at least 8"):
        await service.add_account("某人", "window_b", "short", by=CLI)
    added = [e for e in await service.book.events(event="account") if isinstance(e, ev.AccountChanged)]
    assert [(e.name, e.change, e.staff_role, e.account) for e in added] == [("王芳", "added", "window_a", "cli:test")]


async def test_login_succeeds_with_the_right_password_only(service: AuthService) -> None:
    await service.add_account("王芳", "window_a", PASSWORD, by=CLI)
    with pytest.raises(LoginRefused) as wrong:
        await service.login("王芳", "wrong password")
    with pytest.raises(LoginRefused) as unknown:
        await service.login("没有这个人", PASSWORD)
    assert wrong.value.message == unknown.value.message == "wrong name or password"  # names cannot be probed
    result = await service.login("王芳", PASSWORD, ip="10.0.0.7")
    assert result.principal.name == "王芳" and result.principal.label == "窗口A岗"
    found = await service.resolve_session(result.session_id)
    assert found is not None and found[1] == result.csrf
    assert await service.resolve_session("made-up") is None


# -- lock-out ----------------------------------------------------------------------------------------


async def test_five_failures_lock_the_account_for_fifteen_minutes(service: AuthService, clock: Clock) -> None:
    await service.add_account("王芳", "window_a", PASSWORD, by=CLI)
    for _ in range(4):
        with pytest.raises(LoginRefused) as refused:
            await service.login("王芳", "guess")
        assert refused.value.reason == "bad_credentials"
        clock.advance(10)
    with pytest.raises(LoginRefused) as fifth:
        await service.login("王芳", "guess")
    assert fifth.value.reason == "locked"
    locked_at = clock.now

    clock.advance(14 * 60)
    with pytest.raises(LoginRefused) as still:
        await service.login("王芳", PASSWORD)  # the right password does not open a locked account
    assert still.value.reason == "locked"

    clock.now = locked_at + 15 * 60 + 1
    result = await service.login("王芳", PASSWORD)
    assert result.principal.name == "王芳"
    account = await service.book.account(name="王芳")
    assert account is not None and account.failed_logins == 0 and account.locked_until == 0

    kinds = [ev.tag_of(e) for e in await service.book.events()]
    assert kinds.count("login_failed") == 6 and kinds.count("locked") == 1 and kinds[-1] == "login"
    locked = next(e for e in await service.book.events(event="locked") if isinstance(e, ev.AccountLocked))
    assert locked.until == pytest.approx(locked_at + 15 * 60)


async def test_after_a_lock_runs_out_failures_count_afresh(service: AuthService, clock: Clock) -> None:
    await service.add_account("王芳", "window_a", PASSWORD, by=CLI)
    for _ in range(5):
        with pytest.raises(LoginRefused):
            await service.login("王芳", "guess")
    clock.advance(15 * 60 + 1)
    with pytest.raises(LoginRefused) as once_more:
        await service.login("王芳", "guess")
    assert once_more.value.reason == "bad_credentials"  # one failure, not an immediate new lock
    await service.unlock("王芳", by=CLI)
    assert (await service.login("王芳", PASSWORD)).principal.name == "王芳"


async def test_a_good_login_resets_the_count(service: AuthService) -> None:
    await service.add_account("王芳", "window_a", PASSWORD, by=CLI)
    for _ in range(4):
        with pytest.raises(LoginRefused):
            await service.login("王芳", "guess")
    await service.login("王芳", PASSWORD)
    for _ in range(4):
        with pytest.raises(LoginRefused) as refused:
            await service.login("王芳", "guess")
        assert refused.value.reason == "bad_credentials"


# -- sessions and tokens -----------------------------------------------------------------------------


async def test_sessions_end_when_idle_expired_logged_out_or_disabled(service: AuthService, clock: Clock) -> None:
    await service.add_account("王芳", "window_a", PASSWORD, by=CLI)
    idle = await service.login("王芳", PASSWORD)
    clock.advance(121 * 60)
    assert await service.resolve_session(idle.session_id) is None
    kept = await service.login("王芳", PASSWORD)
    for _ in range(7):  # used every 100 minutes: never idle, but over after 12 hours
        clock.advance(100 * 60)
        assert await service.resolve_session(kept.session_id) is not None
    clock.advance(100 * 60)
    assert await service.resolve_session(kept.session_id) is None
    out = await service.login("王芳", PASSWORD)
    await service.logout(out.session_id)
    assert await service.resolve_session(out.session_id) is None
    disabled = await service.login("王芳", PASSWORD)
    await service.set_active("王芳", False, by=CLI)
    assert await service.resolve_session(disabled.session_id) is None
    with pytest.raises(LoginRefused):
        await service.login("王芳", PASSWORD)


async def test_tokens_are_stored_hashed_and_can_be_revoked(service: AuthService) -> None:
    await service.add_account("王芳", "window_a", PASSWORD, by=CLI)
    token_id, secret = await service.issue_token("王芳", "scanner", by=CLI)
    principal = await service.resolve_token(secret)
    assert principal is not None and principal.name == "王芳" and principal.via == "token"
    async with service.book.db.reader.connect() as conn:
        stored = (await conn.exec_driver_sql("select token_hash from api_tokens")).scalars().all()
    assert secret not in stored and len(stored[0]) == 64
    assert await service.resolve_token(secret[:-1] + "x") is None
    assert await service.revoke_token(token_id, by=CLI)
    assert await service.resolve_token(secret) is None
    assert not await service.revoke_token(token_id, by=CLI)
