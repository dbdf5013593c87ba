"""Passwords the system gives must be changed (issue 13), over real HTTP on a node with logins required.

An account made on the administrator's desk, or whose password the desk resets, logs in with the password
shown once and reaches nothing but ``/account/password`` (and ``/logout``): every screen redirects there,
the JSON API answers 403 ``must_change_password``. Once the holder sets their own, the session is a normal
one and the password the admin saw no longer works. Every account changes its own password there at any
time (current + new twice, the node's rules, the session's CSRF token). Bearer tokens are never must-change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_kit import PASSWORD, add, app, bearer, csrf_of, events, login, prepare, token, with_service
from litestar import Litestar
from litestar.testing import TestClient

from sanji.auth import events as ev
from sanji.auth.book import AccountError, Who
from sanji.auth.first_run import FIRST_ADMIN, ensure_first_admin
from sanji.auth.service import AuthService, password_throttled_texts

Client = TestClient[Litestar]
ONE_TIME = re.compile(r'<span class="secret" id="password">([^<]+)</span>')
OWN = "my own password 7"


@pytest.fixture
def town(tmp_path: Path) -> Path:
    config = prepare(tmp_path, "T01", required=True)
    add(config, "李管理", "admin")
    add(config, "王芳", "window_a")
    return config


@pytest.fixture
def admin(town: Path) -> Iterator[tuple[Client, str]]:
    with TestClient(app(town)) as client:
        yield client, login(client, "李管理")


def log_in(client: Client, name: str, password: str) -> int:
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"name": name, "password": password, "next": "/", "_csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    if r.status_code == 303:
        assert r.headers["location"] in ("/account/password", "/", "/admin/accounts/")
    return r.status_code


def change(client: Client, current: str, new: str, again: str | None = None, *, csrf: str | None = None) -> int:
    page = client.get("/account/password")
    assert page.status_code == 200, page.text
    token_ = csrf_of(page.text) if csrf is None else csrf
    data = {"current": current, "new": new, "again": new if again is None else again, "_csrf_token": token_}
    return client.post("/account/password", data=data).status_code


def assert_only_the_password_page(client: Client) -> None:
    for path in ("/", "/register", "/office/ledger", "/admin/accounts", "/supervision"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/account/password", (path, r.status_code)
    r = client.get("/api/errands")
    assert r.status_code == 403 and r.json()["error"] == "must_change_password"
    hint = r.json()["hint"]  # what to do, Chinese first
    assert hint == "请先在 /account/password 设置您自己的密码 Change the password at /account/password.", hint
    assert "/account/password" in r.json()["message"]
    assert "设置自己的密码" in r.json()["message_zh"]  # Chinese too, as every refusal of the guard
    page = client.get("/account/password")
    assert page.status_code == 200 and 'id="must-change"' in page.text
    assert client.get("/lookup").status_code == 200  # the public pages stay public


def test_created_on_the_desk_must_change_then_works_and_the_admins_copy_does_not(
    town: Path, admin: tuple[Client, str]
) -> None:
    desk, csrf = admin
    r = desk.post("/admin/accounts", data={"name": "赵六", "role": "supervisor", "_csrf_token": csrf})
    assert r.status_code == 201, r.text
    given = ONE_TIME.findall(r.text)[0]
    assert "must set a password of their own" in r.text
    assert re.search(r'data-name="赵六".*?must change password', desk.get("/admin/accounts").text, re.S)
    with TestClient(app(town)) as holder:
        page = holder.get("/login")
        r = holder.post(
            "/login",
            data={"name": "赵六", "password": given, "next": "/supervision", "_csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/account/password"
        assert_only_the_password_page(holder)
        assert change(holder, given, OWN) == 200
        assert holder.get("/supervision").status_code == 200  # a normal session now, the same one
        assert holder.get("/api/errands").status_code == 200
    roster = desk.get("/admin/accounts").text
    row = roster[roster.index('data-name="赵六"') :]
    assert "must change password" not in row[: row.index("</tr>")]
    with TestClient(app(town)) as the_admin_as_someone_else:
        assert log_in(the_admin_as_someone_else, "赵六", given) == 401  # what the admin saw no longer works
    with TestClient(app(town)) as holder:
        assert log_in(holder, "赵六", OWN) == 303
        assert holder.get("/supervision").status_code == 200
    changes = [(e.change, e.actor) for e in events(town, event="account") if isinstance(e, ev.AccountChanged)]
    assert changes[-1] == ("password", "赵六")


def test_a_reset_on_the_desk_must_change_and_ends_the_admins_session_as_the_holder(
    town: Path, admin: tuple[Client, str]
) -> None:
    desk, csrf = admin
    r = desk.post("/admin/accounts/password", data={"name": "王芳", "_csrf_token": csrf})
    given = ONE_TIME.findall(r.text)[0]
    with TestClient(app(town)) as admin_as_her, TestClient(app(town)) as holder:
        assert log_in(admin_as_her, "王芳", given) == 303  # (it is still the given password)
        assert log_in(holder, "王芳", given) == 303
        assert_only_the_password_page(holder)
        assert change(holder, given, OWN) == 200
        assert holder.get("/").status_code == 200
        # the other session opened with the given password ends with the change
        r = admin_as_her.get("/account/password", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with TestClient(app(town)) as fresh:
        assert log_in(fresh, "王芳", PASSWORD) == 401  # the old one too


def test_a_normal_account_changes_its_own_password_any_time(town: Path) -> None:
    with TestClient(app(town)) as client:
        csrf = login(client, "王芳")
        home = client.get("/")
        assert 'href="/account/password"' in home.text  # linked from the header
        page = client.get("/account/password")
        assert 'id="must-change"' not in page.text
        assert change(client, "wrong current 1", OWN) == 400  # the current password is wrong
        assert change(client, PASSWORD, OWN, "something else 1") == 400  # the two differ
        assert change(client, PASSWORD, "short") == 400  # the node's rules
        assert change(client, PASSWORD, PASSWORD) == 400  # the same again
        # CSRF: without the session's token, or with another, refused and nothing changed
        r = client.post("/account/password", data={"current": PASSWORD, "new": OWN, "again": OWN})
        assert r.status_code == 403
        r = client.post(
            "/account/password", data={"current": PASSWORD, "new": OWN, "again": OWN, "_csrf_token": csrf + "x"}
        )
        assert r.status_code == 403
        assert change(client, PASSWORD, OWN) == 200
        assert client.get("/").status_code == 200
    with TestClient(app(town)) as fresh:
        assert log_in(fresh, "王芳", PASSWORD) == 401
        assert log_in(fresh, "王芳", OWN) == 303


def post_change(client: Client, current: str, new: str, again: str | None = None) -> httpx.Response:
    page = client.get("/account/password")
    data = {"current": current, "new": new, "again": new if again is None else again, "_csrf_token": csrf_of(page.text)}
    return client.post("/account/password", data=data)


def password_error(page: str) -> tuple[str, str]:
    """The page's refusal: its Chinese line and its English line."""
    found = re.search(
        r'id="password-error" lang="zh-CN"><b>([^<]*)</b><br><span class="en" lang="en">([^<]*)</span>', page
    )
    assert found, page
    return found.group(1), found.group(2)


@pytest.mark.parametrize(
    ("current", "new", "again", "zh", "en"),
    [
        ("wrong current 1", OWN, None, "当前密码不正确", "the current password is wrong"),
        (PASSWORD, OWN, "something else 1", "两次输入的新密码不一致", "the two new passwords differ"),
        (PASSWORD, "short", None, "密码至少需要", "a password has at least"),
        (PASSWORD, PASSWORD, None, "新密码不能与当前密码相同", "the new password must differ from the current one"),
    ],
)
def test_a_refused_change_says_why_in_chinese_first_then_english(
    town: Path, current: str, new: str, again: str | None, zh: str, en: str
) -> None:
    with TestClient(app(town)) as client:
        login(client, "王芳")
        r = post_change(client, current, new, again)
        assert r.status_code == 400
        said_zh, said_en = password_error(r.text)
        assert said_zh.startswith(f"密码未修改：{zh}"), said_zh
        assert said_en.startswith(f"Password not changed: {en}"), said_en


def test_too_many_wrong_current_passwords_say_so_and_when_to_retry_in_both_languages(town: Path) -> None:
    assert password_throttled_texts(1) == (
        "本账号的密码核对过于频繁，请1秒后再试",
        "Too many password checks for this account; try again in 1 second",
    )
    assert password_throttled_texts(60)[1] == "Too many password checks for this account; try again in 60 seconds"
    with TestClient(app(town)) as client:
        login(client, "王芳")
        statuses = []
        for _ in range(12):
            r = post_change(client, "wrong current 1", OWN)
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
        assert statuses[-1] == 429 and set(statuses[:-1]) == {400}, statuses
        wait = int(r.headers["retry-after"])
        assert wait >= 1
        zh, en = password_throttled_texts(wait)  # the same wait as Retry-After, Chinese first
        assert password_error(r.text) == (f"密码未修改：{zh}", f"Password not changed: {en}")
        assert "too many wrong passwords" not in r.text and " s</span>" not in r.text  # not the old English-only text


def test_the_password_page_needs_a_login_and_a_bearer_token_is_never_must_change(town: Path) -> None:
    async def reset(service: AuthService) -> str:
        return await service.reset_password("王芳", by=Who(account="李管理", via="session"))

    secret = token(town, "王芳")
    with_service(town, reset)  # must-change now
    with TestClient(app(town)) as client:
        r = client.get("/account/password", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert client.get("/api/errands", headers=bearer(secret)).status_code == 200  # issued, not a password
        r = client.post("/account/password", headers=bearer(secret), data={"current": "x", "new": OWN, "again": OWN})
        assert r.status_code == 403


def test_the_first_start_admin_password_is_must_change(tmp_path: Path) -> None:
    config = prepare(tmp_path, "T01", required=True)
    password = with_service(config, ensure_first_admin)
    assert password
    with TestClient(app(config)) as client:
        assert log_in(client, FIRST_ADMIN, password) == 303
        assert_only_the_password_page(client)
        assert client.get("/api/node").status_code == 403
        assert change(client, password, OWN) == 200
        assert client.get("/api/node").status_code == 200
        assert client.get("/admin/accounts").status_code == 200


def test_an_operators_chosen_password_at_the_command_line_is_not_must_change(town: Path) -> None:
    with TestClient(app(town)) as client:
        assert log_in(client, "王芳", PASSWORD) == 303  # `sanji accounts add` with a typed password
        assert client.get("/").status_code == 200


def test_a_token_id_beyond_the_databases_integers_is_a_clean_404(admin: tuple[Client, str]) -> None:
    desk, csrf = admin
    for token_id in (2**64, 2**63, 0):
        r = desk.post(f"/admin/accounts/tokens/{token_id}/revoke", data={"_csrf_token": csrf})
        assert r.status_code in (400, 404), (token_id, r.status_code)


@pytest.mark.parametrize("name", ["王\n芳", "王\u200b芳", "王\u202e芳", "王\x00芳", "王\u2028芳", "王\u2029芳"])
def test_account_names_refuse_control_and_invisible_characters(
    town: Path, admin: tuple[Client, str], name: str
) -> None:
    desk, csrf = admin
    r = desk.post("/admin/accounts", data={"name": name, "role": "window_a", "_csrf_token": csrf})
    assert r.status_code == 400 and 'id="err-name"' in r.text

    async def create(service: AuthService) -> str:
        try:
            await service.add_account(name, "window_a", PASSWORD, by=Who(account="cli:root", via="cli"))
        except AccountError as exc:
            return exc.message
        return ""

    assert "invisible" in with_service(town, create)


def test_two_admins_disabling_each_other_at_once_leave_one(town: Path) -> None:
    add(town, "张副管", "admin")

    async def both(service: AuthService) -> list[str]:
        import asyncio

        async def disable(name: str, by: str) -> str:
            try:
                await service.set_active(name, False, by=Who(account=by, via="session"))
            except AccountError as exc:
                return exc.code
            return "ok"

        results = await asyncio.gather(disable("张副管", "李管理"), disable("李管理", "张副管"))
        admins = [a for a in await service.book.accounts() if a.role == "admin" and a.active]
        assert len(admins) == 1
        return sorted(results)

    assert with_service(town, both) == ["last_administrator", "ok"]
