"""The administrator's accounts page over HTTP, on a real node with logins required.

Create an account and log in with the one-time password shown once; disable it and its login is
refused; reset a password; revoke a token; an admin cannot disable themself nor the last admin;
other posts get 403; every form needs the session's CSRF token; every change is audited as the admin's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_kit import PASSWORD, add, app, csrf_of, events, login, prepare, token, with_service
from litestar import Litestar
from litestar.testing import TestClient

from sanji.auth import events as ev
from sanji.auth.book import AccountError, Who
from sanji.auth.service import AuthService

Client = TestClient[Litestar]
ONE_TIME = re.compile(r'<span class="secret" id="password">([^<]+)</span>')


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


def one_time(html: str) -> str:
    found = ONE_TIME.findall(html)
    assert len(found) == 1, "the one-time password is shown exactly once on the page"
    return str(found[0])


def test_create_then_log_in_with_the_one_time_password(town: Path, admin: tuple[Client, str]) -> None:
    client, csrf = admin
    page = client.get("/admin/accounts")
    assert page.status_code == 200 and "王芳" in page.text and "李管理" in page.text
    assert 'href="/admin/accounts"' in page.text  # the admin's menu links the page
    assert "approver" not in page.text  # a township has no department approver post
    r = client.post("/admin/accounts", data={"name": "赵六", "role": "window_b", "_csrf_token": csrf})
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    password = one_time(r.text)
    assert "赵六" in client.get("/admin/accounts").text
    assert password not in client.get("/admin/accounts").text  # shown once only
    added = [e for e in events(town, event="account") if isinstance(e, ev.AccountChanged) and e.name == "赵六"]
    assert [(e.change, e.actor, e.staff_role) for e in added] == [("added", "李管理", "window_b")]
    with TestClient(app(town)) as fresh:
        login(fresh, "赵六", password)


def test_bad_create_keeps_what_was_typed_and_says_where(admin: tuple[Client, str]) -> None:
    client, csrf = admin
    r = client.post("/admin/accounts", data={"name": "王芳", "role": "window_a", "_csrf_token": csrf})
    assert r.status_code == 400 and 'id="err-name"' in r.text and "exists already" in r.text
    assert 'value="王芳"' in r.text
    r = client.post("/admin/accounts", data={"name": "钱七", "role": "approver", "_csrf_token": csrf})
    assert r.status_code == 400 and 'id="err-role"' in r.text and 'value="钱七"' in r.text
    r = client.post("/admin/accounts", data={"name": " ", "role": "window_a", "_csrf_token": csrf})
    assert r.status_code == 400 and 'id="err-name"' in r.text


def test_disable_refuses_login_and_enable_restores_it(town: Path, admin: tuple[Client, str]) -> None:
    client, csrf = admin
    r = client.post("/admin/accounts/active", data={"name": "王芳", "active": "0", "_csrf_token": csrf})
    assert r.status_code == 200 and "王芳" in r.text, r.text  # followed the 303 back to the list
    with TestClient(app(town)) as fresh:
        page = fresh.get("/login")
        r = fresh.post(
            "/login",
            data={"name": "王芳", "password": PASSWORD, "next": "/", "_csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert r.status_code != 303
    client.post("/admin/accounts/active", data={"name": "王芳", "active": "1", "_csrf_token": csrf})
    with TestClient(app(town)) as fresh:
        login(fresh, "王芳")
    changes = [e.change for e in events(town, event="account") if isinstance(e, ev.AccountChanged)]
    assert changes[-2:] == ["disabled", "enabled"]


def test_reset_password_and_revoke_token(town: Path, admin: tuple[Client, str]) -> None:
    client, csrf = admin
    secret = token(town, "王芳")
    page = client.get("/admin/accounts").text
    assert re.search(r'class="token-count">1', page)
    token_id = re.findall(r"/admin/accounts/tokens/(\d+)/revoke", page)[0]
    r = client.post(f"/admin/accounts/tokens/{token_id}/revoke", data={"_csrf_token": csrf})
    assert r.status_code == 200 and "Token revoked" in r.text
    assert client.get("/api/errands", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    kept = token(town, "王芳")  # a reset is the answer to a suspected compromise: it ends the tokens too
    assert client.get("/api/errands", headers={"Authorization": f"Bearer {kept}"}).status_code == 200
    r = client.post("/admin/accounts/password", data={"name": "王芳", "_csrf_token": csrf})
    assert r.status_code == 200
    assert "其 1 个接口令牌已吊销" in r.text and 'id="tokens-revoked">1</span> API token(s) revoked' in r.text
    assert client.get("/api/errands", headers={"Authorization": f"Bearer {kept}"}).status_code == 401
    password = one_time(r.text)
    with TestClient(app(town)) as fresh:
        login(fresh, "王芳", password)
    revoked = [e for e in events(town, event="token_revoked") if isinstance(e, ev.TokenRevoked)]
    assert revoked[-1].actor == "李管理"


def test_an_admin_cannot_disable_themself_or_the_last_admin(town: Path, admin: tuple[Client, str]) -> None:
    client, csrf = admin
    r = client.post("/admin/accounts/active", data={"name": "李管理", "active": "0", "_csrf_token": csrf})
    assert r.status_code == 409 and "不能停用自己的账号" in r.text and "your own account" in r.text
    add(town, "张副管", "admin")
    r = client.post("/admin/accounts/active", data={"name": "张副管", "active": "0", "_csrf_token": csrf})
    assert r.status_code == 200  # two admins: one may disable the other

    async def disable_last(service: AuthService) -> str:
        try:
            await service.set_active("李管理", False, by=Who(account="cli:root", via="cli"))
        except AccountError as exc:
            return exc.message
        return ""

    # Through a page the last admin is always the one asking (refused above); the rule is the service's own.
    assert "last active administrator" in with_service(town, disable_last)
    with TestClient(app(town)) as again:
        login(again, "李管理")


def test_other_posts_get_403_and_forms_need_csrf(town: Path, admin: tuple[Client, str]) -> None:
    client, _ = admin
    with TestClient(app(town)) as window:
        window_csrf = login(window, "王芳")
        menu = window.get("/lookup").text
        assert 'href="/admin/accounts"' not in menu  # not in a window's menu
        assert 'href="/enroll"' not in menu and window.get("/enroll").status_code == 403  # nor a page it cannot open
        assert window.get("/admin/accounts").status_code == 403
        r = window.post("/admin/accounts", data={"name": "x1", "role": "admin", "_csrf_token": window_csrf})
        assert r.status_code == 403
        for path in ("/admin/accounts/active", "/admin/accounts/password"):
            form = {"name": "李管理", "active": "0", "_csrf_token": window_csrf}
            assert window.post(path, data=form).status_code == 403
        assert window.post("/admin/accounts/tokens/1/revoke", data={"_csrf_token": window_csrf}).status_code == 403
    r = client.post("/admin/accounts", data={"name": "孙八", "role": "window_a"})
    assert r.status_code == 403
    r = client.post("/admin/accounts", data={"name": "孙八", "role": "window_a", "_csrf_token": "wrong"})
    assert r.status_code == 403
    assert "孙八" not in client.get("/admin/accounts").text
    with TestClient(app(town)) as anonymous:
        assert anonymous.get("/admin/accounts", follow_redirects=False).status_code in (302, 303, 401)


def test_the_page_speaks_english_when_asked(admin: tuple[Client, str]) -> None:
    client, _ = admin
    client.cookies.set("lang", "en")
    page = client.get("/admin/accounts").text
    assert '<html lang="en"' in page and "Accounts and posts" in page
    assert page.index("Create an account") < page.index("新建账号")  # English first, Chinese beside it


def test_an_administrator_lands_on_the_accounts_page(town: Path) -> None:
    with TestClient(app(town)) as client:
        page = client.get("/login")
        form = {"name": "李管理", "password": PASSWORD, "next": "/", "_csrf_token": csrf_of(page.text)}
        r = client.post("/login", data=form, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/admin/accounts/"


def test_a_name_with_a_slash_is_managed_like_any_other(town: Path, admin: tuple[Client, str]) -> None:
    client, csrf = admin
    add(town, "王芳/二窗", "window_a")
    r = client.post("/admin/accounts/active", data={"name": "王芳/二窗", "active": "0", "_csrf_token": csrf})
    assert r.status_code == 200 and "Account disabled" in r.text
    r = client.post("/admin/accounts/password", data={"name": "王芳/二窗", "_csrf_token": csrf})
    assert r.status_code == 200 and one_time(r.text)
    r = client.post("/admin/accounts/password", data={"name": "nobody", "_csrf_token": csrf})
    assert r.status_code == 404


def test_a_window_is_set_at_creation_and_changed_on_the_row(town: Path, admin: tuple[Client, str]) -> None:
    """A township's accounts carry a window (never a department: the county departments sit at the county)."""
    client, csrf = admin
    page = client.get("/admin/accounts").text
    assert 'name="window"' in page and 'name="department"' not in page and '<option value="综合窗口">' in page
    r = client.post(
        "/admin/accounts", data={"name": "赵六", "role": "window_a", "window": "社会救助窗口", "_csrf_token": csrf}
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/admin/accounts", data={"name": "钱七", "role": "window_a", "department": "县民政局", "_csrf_token": csrf}
    )
    assert r.status_code == 400 and 'id="err-role"' in r.text and "carries a department" in r.text
    r = client.post("/admin/accounts/place", data={"name": "王芳", "window": "综合窗口", "_csrf_token": csrf})
    assert r.status_code == 200 and "部门和窗口已保存" in r.text, r.text  # followed the 303 back to the list
    r = client.post("/admin/accounts/place", data={"name": "无此人", "window": "x", "_csrf_token": csrf})
    assert r.status_code == 404
    assert client.post("/admin/accounts/place", data={"name": "王芳", "window": "x"}).status_code == 403  # no CSRF

    async def places(service: AuthService) -> dict[str, tuple[str, str]]:
        return {a.name: (a.department, a.window) for a in await service.book.accounts()}

    assert with_service(town, places) == {"李管理": ("", ""), "王芳": ("", "综合窗口"), "赵六": ("", "社会救助窗口")}
    placed = [e for e in events(town, event="account") if isinstance(e, ev.AccountChanged) and e.change == "placed"]
    assert [(e.name, e.actor, e.window) for e in placed] == [("王芳", "李管理", "综合窗口")]


def test_the_county_sets_a_department_clerk(tmp_path: Path) -> None:
    config = prepare(tmp_path, "C", required=True)
    add(config, "县管理", "admin")
    with TestClient(app(config)) as client:
        csrf = login(client, "县管理")
        page = client.get("/admin/accounts").text
        assert 'name="department"' in page and '<option value="县民政局">' in page
        body = {"name": "赵敏", "role": "approver", "department": "县民政局", "_csrf_token": csrf}
        r = client.post("/admin/accounts", data=body)
        assert r.status_code == 201, r.text
        row = client.get("/admin/accounts").text.split('data-name="赵敏"')[1].split("</tr>")[0]
        assert 'name="department" value="县民政局"' in row
        body = {"name": "周明", "role": "supervisor", "department": "县民政局", "_csrf_token": csrf}
        assert client.post("/admin/accounts", data=body).status_code == 400  # a supervisor sits at no department


def _seats(config: Path) -> dict[str, tuple[str, str]]:
    async def work(service: AuthService) -> dict[str, tuple[str, str]]:
        return {a.name: (a.department, a.window) for a in await service.book.accounts()}

    result: dict[str, tuple[str, str]] = with_service(config, work)
    return result


def test_a_department_the_catalogue_does_not_name_is_refused(tmp_path: Path) -> None:
    """The department is checked against the held catalogue's (approving and 联办): a typo would bind the clerk
    to a department no errand names. The form comes back with what was typed, the error under the field in both
    languages, and nothing is written; on an account's row the same, and its place stays as it was."""
    config = prepare(tmp_path, "C", required=True)
    add(config, "县管理", "admin")
    with TestClient(app(config)) as client:
        csrf = login(client, "县管理")
        body = {"name": "赵敏", "role": "approver", "department": "县民证局", "_csrf_token": csrf}
        r = client.post("/admin/accounts", data=body)
        assert r.status_code == 400
        error = r.text.split('id="err-department"')[1].split("</span></span>")[0]
        assert "没有“县民证局”这个部门" in error and "name a department “县民证局”" in error
        assert 'id="department" name="department" value="县民证局"' in r.text  # what was typed, kept
        assert "赵敏" not in _seats(config)

        body["department"] = "县住建局"  # a 联办 co-department only (ZR-001): named by the catalogue all the same
        assert client.post("/admin/accounts", data=body).status_code == 201
        r = client.post("/admin/accounts/place", data={"name": "赵敏", "department": "住建局", "_csrf_token": csrf})
        assert r.status_code == 400 and 'id="row-error"' in r.text and "name a department “" in r.text
        row = r.text.split('data-name="赵敏"')[1].split("</tr>")[0]
        assert 'name="department" value="住建局"' in row  # what was typed, beside the error, to mend
        assert _seats(config)["赵敏"] == ("县住建局", "")
        r = client.post("/admin/accounts/place", data={"name": "赵敏", "department": "县民政局", "_csrf_token": csrf})
        assert r.status_code == 200 and _seats(config)["赵敏"] == ("县民政局", "")


def test_a_window_neither_the_catalogue_nor_an_errand_names_is_refused(town: Path, admin: tuple[Client, str]) -> None:
    client, csrf = admin
    r = client.post(
        "/admin/accounts", data={"name": "赵六", "role": "window_a", "window": "综合窗", "_csrf_token": csrf}
    )
    assert r.status_code == 400 and 'id="err-window"' in r.text and "没有“综合窗”这个窗口" in r.text
    r = client.post("/admin/accounts/place", data={"name": "王芳", "window": "九号窗口", "_csrf_token": csrf})
    assert r.status_code == 400 and "name a window “九号窗口”" in r.text
    assert _seats(town) == {"李管理": ("", ""), "王芳": ("", "")}


def test_the_page_offers_and_takes_a_window_given_a_duty_phone(tmp_path: Path) -> None:
    """A window ``[sms.windows]`` gives a duty phone is offered and taken before any errand is assigned there."""
    config = prepare(tmp_path, "T01", required=True)
    add(config, "李管理", "admin")
    with config.open("a", encoding="utf-8") as f:
        f.write('\n[sms.windows]\n"七号窗口" = "13800000007"\n')
    with TestClient(app(config)) as client:
        csrf = login(client, "李管理")
        assert '<option value="七号窗口">' in client.get("/admin/accounts").text
        body = {"name": "赵六", "role": "window_a", "window": "七号窗口", "_csrf_token": csrf}
        assert client.post("/admin/accounts", data=body).status_code == 201
        body = {"name": "钱七", "role": "window_a", "window": "八号窗口", "_csrf_token": csrf}
        assert client.post("/admin/accounts", data=body).status_code == 400


def test_a_display_name_is_set_and_cleared_on_the_row(town: Path, admin: tuple[Client, str]) -> None:
    """The name an account's holder goes by where the login is another: set on the row, refused when it holds a
    character that shows as nothing (the row keeps what was typed), cleared with '', and each change audited."""
    client, csrf = admin
    r = client.post("/admin/accounts/rename", data={"name": "王芳", "display_name": "王芳芳", "_csrf_token": csrf})
    assert r.status_code == 200 and "显示姓名已保存" in r.text and 'value="王芳芳"' in r.text, r.text
    r = client.post("/admin/accounts/rename", data={"name": "王芳", "display_name": "王\u200b芳", "_csrf_token": csrf})
    assert r.status_code == 400 and 'id="row-error"' in r.text and "显示姓名不能含控制字符或不可见字符" in r.text
    assert client.post("/admin/accounts/rename", data={"name": "无此人", "_csrf_token": csrf}).status_code == 404
    assert client.post("/admin/accounts/rename", data={"name": "王芳", "display_name": "x"}).status_code == 403
    assert client.post("/admin/accounts/rename", data={"name": "王芳", "_csrf_token": csrf}).status_code == 200

    async def shown(service: AuthService) -> dict[str, str]:
        return {a.name: a.display_name for a in await service.book.accounts()}

    assert set(with_service(town, shown).values()) == {""}
    renamed = [e for e in events(town, event="account") if isinstance(e, ev.AccountChanged) and e.change == "renamed"]
    assert [(e.name, e.actor, e.display_name) for e in renamed] == [
        ("王芳", "李管理", "王芳芳"),
        ("王芳", "李管理", ""),
    ]


def test_a_display_name_is_given_at_creation_as_on_the_row(town: Path, admin: tuple[Client, str]) -> None:
    """The create form's optional 显示姓名, held to the row's rule (``AuthService.check_display_name``): a name that
    holds a character that shows as nothing, or a space at either end, is refused under its own field with what
    was typed kept, and no account is made; a good one is kept and audited with the account's creation."""
    client, csrf = admin
    page = client.get("/admin/accounts").text
    assert 'id="display_name" name="display_name"' in page and "显示姓名（与登录名不同时填，可不填）" in page
    for bad, said in (("王\u200b大芳", "显示姓名不能含控制字符或不可见字符"), (" 王大芳", "首尾不能有空格")):
        body = {"name": "wdf", "role": "window_b", "display_name": bad, "_csrf_token": csrf}
        r = client.post("/admin/accounts", data=body)
        assert r.status_code == 400 and 'id="err-display_name"' in r.text and said in r.text, r.text
        assert 'value="wdf"' in r.text and f'value="{bad}"' in r.text
        assert 'id="err-name"' not in r.text
    body = {"name": "wdf", "role": "window_b", "display_name": "王大芳", "_csrf_token": csrf}
    r = client.post("/admin/accounts", data=body)
    assert r.status_code == 201, r.text
    one_time(r.text)

    async def shown(service: AuthService) -> dict[str, str]:
        return {a.name: a.display_name for a in await service.book.accounts()}

    assert with_service(town, shown) == {"李管理": "", "王芳": "", "wdf": "王大芳"}
    added = [e for e in events(town, event="account") if isinstance(e, ev.AccountChanged) and e.name == "wdf"]
    assert [(e.change, e.actor, e.display_name) for e in added] == [("added", "李管理", "王大芳")]
    r = client.post("/admin/accounts", data={"name": "赵六", "role": "window_b", "_csrf_token": csrf})
    assert r.status_code == 201 and with_service(town, shown)["赵六"] == ""  # left empty: the login is the name
