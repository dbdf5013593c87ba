"""Passwords (Argon2id), growing delays instead of lock-outs, session ends: on an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sanji.auth import events as ev
from sanji.auth import passwords
from sanji.auth.book import AuthBook, Who
from sanji.auth.service import AccountError, AuthService, LoginRefused, throttled_texts
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


# -- throttling, never a lock-out -------------------------------------------------------------------


async def fail(service: AuthService, name: str, *, ip: str = "10.0.0.9", password: str = "guess") -> LoginRefused:
    with pytest.raises(LoginRefused) as refused:
        await service.login(name, password, ip=ip)
    return refused.value


async def test_failures_slow_down_further_attempts_alike_for_known_and_unknown_names(
    service: AuthService, clock: Clock
) -> None:
    await service.add_account("王芳", "window_a", PASSWORD, by=CLI)
    for name in ("王芳", "没有这个人"):
        answers = []
        for _ in range(5):
            answers.append(await fail(service, name, ip=f"10.1.0.{len(name)}"))
            clock.advance(0.1)
        assert {(a.reason, a.message) for a in answers} == {("bad_credentials", "wrong name or password")}
        throttled = await fail(service, name, ip=f"10.1.0.{len(name)}", password=PASSWORD)
        assert throttled.reason == "throttled" and throttled.until > clock.now
        assert throttled.message == "Too many login attempts; try again in 1 second"  # what happened, and when
    known, unknown = await fail(service, "王芳"), await fail(service, "没有这个人")
    assert (known.reason, known.message) == (unknown.reason, unknown.message)  # nothing tells names apart
    assert "locked" not in known.message
    assert throttled_texts(60) == ("登录尝试过于频繁，请60秒后再试", "Too many login attempts; try again in 60 seconds")


async def test_delays_grow_but_the_holder_of_a_name_always_gets_in_within_a_minute(
    service: AuthService, clock: Clock
) -> None:
    await service.add_account("王芳", "window_a", PASSWORD, by=CLI)
    waits = []
    for attempt in range(40):  # a guesser hammering the director's name from forty addresses
        refused = await fail(service, "王芳", ip=f"10.2.0.{attempt}")
        if refused.reason == "throttled":
            clock.now = refused.until
            refused = await fail(service, "王芳", ip=f"10.2.0.{attempt}")
        waits.append(service.throttle.wait("王芳", "10.3.0.1"))
    assert waits[:4] == [0, 0, 0, 0] and 0 < waits[5] < waits[7] and max(waits) == 60
    account = await service.book.account(name="王芳")
    assert account is not None and account.failed_logins == 40 and account.locked_until == 0
    clock.advance(60)
    result = await service.login("王芳", PASSWORD, ip="10.3.0.1")  # from her own desk: never locked out
    assert result.principal.name == "王芳"
    account = await service.book.account(name="王芳")
    assert account is not None and account.failed_logins == 0
    assert service.throttle.wait("王芳", "10.3.0.2") == 0  # a success clears the name
    assert not await service.book.events(event="locked")


@pytest.mark.usefixtures("real_hashing")
async def test_an_unknown_name_takes_as_long_as_a_wrong_password() -> None:
    """Both run one Argon2id check (an unknown name against a throw-away hash): timing tells no names apart."""
    import tempfile
    import time

    async def timed(service: AuthService, name: str) -> float:
        started = time.perf_counter()
        with pytest.raises(LoginRefused):
            await service.login(name, "wrong password 1")
        return time.perf_counter() - started

    passwords._absent_hash.cache_clear()  # made by an earlier test's fast hasher otherwise
    stored = passwords.hash_password(PASSWORD)

    def one_hash() -> float:
        started = time.perf_counter()
        passwords.verify(stored, "x" * 8)
        return time.perf_counter() - started

    hash_alone = min(one_hash() for _ in range(3))  # the fastest of three, as the logins it is compared with
    db_dir = Path(tempfile.mkdtemp())
    db = await open_database(f"sqlite:///{db_dir / 'node.db'}")
    try:
        service = AuthService(AuthBook(db), AuthSection(), node_id="T01", node_role="town", clock=Clock())
        await service.add_account("王芳", "window_a", PASSWORD, by=CLI)
        known = min([await timed(service, "王芳") for _ in range(3)])
        unknown = min([await timed(service, "没有这个人") for _ in range(3)])
    finally:
        await db.dispose()
        passwords._absent_hash.cache_clear()
    assert unknown > hash_alone / 4  # the unknown name really paid for a hash
    assert 0.5 < unknown / known < 2.0, (known, unknown)


async def test_one_address_guessing_many_names_is_slowed_down(service: AuthService, clock: Clock) -> None:
    for attempt in range(20):
        assert (await fail(service, f"name{attempt}", ip="10.4.0.1")).reason == "bad_credentials"
    assert (await fail(service, "another", ip="10.4.0.1")).reason == "throttled"
    assert (await fail(service, "another", ip="10.4.0.2")).reason == "bad_credentials"  # only that address
    waits = []
    for _ in range(15):
        clock.now += service.throttle.wait("x", "10.4.0.1")
        await fail(service, "x" + str(len(waits)), ip="10.4.0.1")
        waits.append(service.throttle.wait("x", "10.4.0.1"))
    assert waits == sorted(waits) and waits[-1] == 15 * 60  # doubling up to [auth] lockout_minutes


async def test_failures_are_forgotten_after_an_hour_and_a_good_login_clears_the_name(
    service: AuthService, clock: Clock
) -> None:
    await service.add_account("王芳", "window_a", PASSWORD, by=CLI)
    for _ in range(4):
        await fail(service, "王芳")
    await service.login("王芳", PASSWORD, ip="10.0.0.9")
    for _ in range(4):
        assert (await fail(service, "王芳")).reason == "bad_credentials"
    clock.advance(3601)
    for _ in range(5):
        assert (await fail(service, "王芳")).reason == "bad_credentials"
    assert (await fail(service, "王芳")).reason == "throttled"


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


async def test_guesses_sent_all_at_once_are_throttled_as_if_sent_one_by_one(
    service: AuthService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent attempts cannot outrun the throttle: each one in flight holds a turn, so a burst of guesses
    from one address (or at one name) pays for a few password checks, not one Argon2id check each."""
    import asyncio

    checks = 0
    real_verify = passwords.verify

    def counted(stored: str, password: str) -> bool:
        nonlocal checks
        checks += 1
        return real_verify(stored, password)

    monkeypatch.setattr(passwords, "verify", counted)
    await service.add_account("王芳", "window_a", PASSWORD, by=CLI)

    async def attempt(name: str, ip: str) -> str:
        try:
            await service.login(name, "a wrong guess", ip=ip)
        except LoginRefused as refused:
            return refused.reason
        return "in"

    # Every attempt takes or is refused its turn before its first await, so exactly the throttle's turns are
    # checked (``LoginThrottle.address_turns``, ``name_turns``): not fewer (a throttle refusing every one would
    # pass an upper bound alone), not more.
    assert (service.throttle.address_turns, service.throttle.name_turns) == (4, 2)
    burst = await asyncio.gather(*(attempt(f"name{i}", "10.7.0.1") for i in range(200)))
    assert (burst.count("bad_credentials"), burst.count("throttled")) == (4, 196)
    assert checks == 4
    checks = 0
    at_one_name = await asyncio.gather(*(attempt("王芳", f"10.8.0.{i}") for i in range(100)))
    assert (at_one_name.count("bad_credentials"), at_one_name.count("throttled")) == (2, 98)
    assert checks == 2
    assert (await service.login("王芳", PASSWORD, ip="10.9.0.1")).principal.name == "王芳"  # turns are given back


async def test_a_name_that_reads_as_another_accounts_is_refused(service: AuthService) -> None:
    """ｗａ１ (full width) or WA1 beside wa1 would pass as wa1 on every screen and in the audit log."""
    await service.add_account("wa1", "window_a", PASSWORD, by=CLI)
    for twin in ("ｗａ１", "WA1", "Wa1"):
        with pytest.raises(AccountError, match="differs from it only in width or case") as refused:
            await service.add_account(twin, "window_a", PASSWORD, by=CLI)
        assert refused.value.message_zh.startswith("已有账号「wa1」")
    for hidden in ("wa\u200b1", "\u115fwa1"):
        with pytest.raises(AccountError, match="invisible"):
            await service.add_account(hidden, "window_a", PASSWORD, by=CLI)
    await service.add_account("wa2", "window_a", PASSWORD, by=CLI)  # a different name is fine
    assert sorted(a.name for a in await service.book.accounts()) == ["wa1", "wa2"]
