"""Logging in over HTTP: what needs a login when ``[auth] required = true``, CSRF on forms, open demo mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from auth_kit import GOOD, PASSWORD, add, app, bearer, csrf_of, events, login, prepare, token
from litestar import Litestar
from litestar.testing import TestClient

from sanji.auth import events as ev

Client = TestClient[Litestar]
FORM = {
    "matter": "MZ-001",
    "applicant_name": "张秀英",
    "materials": ["身份证复印件"],
    "actor": "李建国",
    "role": "代办员",
    "step": "confirm",
    "confirm": "1",
    "mandate": "1",
}


@pytest.fixture
def village_config(tmp_path: Path) -> Path:
    config = prepare(tmp_path, "T01V01", required=True)
    add(config, "李建国", "village_agent")
    add(config, "管理员", "admin")
    return config


@pytest.fixture
def village(village_config: Path) -> Iterator[Client]:
    with TestClient(app(village_config)) as client:
        yield client


# -- what needs a login --------------------------------------------------------------------------


def test_the_api_needs_credentials_and_takes_a_bearer_token(village_config: Path) -> None:
    secret = token(village_config, "李建国")
    with TestClient(app(village_config)) as client:
        r = client.get("/api/errands")
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "not_logged_in" and r.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/api/errands", headers=bearer(secret)).status_code == 200
        assert client.get("/api/errands", headers=bearer("sanji_not-a-token")).status_code == 401
        assert client.get("/api/errands", headers={"Authorization": "Basic eDp5"}).status_code == 401
        r = client.post("/api/errands", json=GOOD, headers=bearer(secret))  # a token needs no CSRF token
        assert r.status_code == 201, r.text
        detail = client.get(f"/api/errands/{r.json()['errand']}", headers=bearer(secret)).json()
        register = detail["history"][0]
        assert (register["actor"], register["role"]) == ("李建国", "代办员")  # the account, not what was typed


def test_public_routes_stay_open(village: Client) -> None:
    assert village.get("/lookup").status_code == 200
    assert village.get("/api/lookup/T01V01-261123-0001K").status_code == 400  # not 401: asks for a second factor
    assert village.get("/api/lookup/T01V01-261123-00013?code=1234").status_code == 404
    assert village.get("/public").status_code == 200
    assert village.get("/complain").status_code == 200
    assert village.get("/schema/openapi.json").status_code == 200
    login = village.get("/login")
    assert login.status_code == 200
    # what a clerk can do about a lost password, in plain words (no shell command a clerk cannot run)
    assert "请找本中心的管理员" in login.text and "sanji accounts" not in login.text
    r = village.post("/sync/v1/cursors", content=b"garbage")  # signed batches, never accounts
    assert "log in" not in r.text and r.json()["error"] == "unauthenticated", r.text  # the node signature's 401


def test_screens_send_a_stranger_to_the_login_page(village: Client) -> None:
    r = village.get("/errands/x?done=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next_url=%2Ferrands%2Fx%3Fdone%3D1"
    assert village.get("/", follow_redirects=False).status_code == 303
    assert village.post("/register", data=FORM, follow_redirects=False).headers["location"].startswith("/login")


def test_login_shows_who_is_logged_in_and_logout_ends_the_session(village: Client) -> None:
    csrf = login(village, "李建国")
    home = village.get("/")
    assert home.status_code == 200 and "李建国 · 代办员" in home.text
    assert village.post("/logout", follow_redirects=False).status_code == 403  # logout is a form too
    r = village.post("/logout", data={"_csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert village.get("/", follow_redirects=False).status_code == 303
    assert village.get("/api/errands").status_code == 401


def test_wrong_passwords_slow_down_further_attempts_without_telling_names_apart(village: Client) -> None:
    answers = {}
    for name in ("李建国", "没有这个人"):
        for _ in range(5):
            page = village.get("/login")
            r = village.post("/login", data={"name": name, "password": "guess", "_csrf_token": csrf_of(page.text)})
            assert r.status_code == 401 and "wrong name or password" in r.text
        page = village.get("/login")
        r = village.post("/login", data={"name": name, "password": PASSWORD, "_csrf_token": csrf_of(page.text)})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, r.text
        # It says what happened and when to retry, the same wait as Retry-After, in both languages.
        wait = int(r.headers["retry-after"])
        assert f"登录尝试过于频繁，请{wait}秒后再试" in r.text
        assert f"Too many login attempts; try again in {wait} second" in r.text
        assert "account is locked" not in r.text and "登录失败次数过多" not in r.text
        answers[name] = r.text.replace(name, "NAME")
    unknown = answers["没有这个人"].replace(csrf_of(answers["没有这个人"]), csrf_of(answers["李建国"]))
    assert answers["李建国"] == unknown


def test_the_login_form_has_its_own_csrf_token(village: Client) -> None:
    village.get("/login")
    r = village.post("/login", data={"name": "李建国", "password": PASSWORD, "_csrf_token": "forged"})
    assert r.status_code == 403
    assert village.get("/", follow_redirects=False).status_code == 303  # not logged in


def test_an_administrator_sees_no_errands(village: Client) -> None:
    login(village, "管理员")
    assert village.get("/api/node").status_code == 200
    r = village.get("/")
    assert r.status_code == 403 and "无权" in r.text
    assert village.get("/api/errands").status_code == 403


# -- CSRF on forms -------------------------------------------------------------------------------


def test_a_form_post_needs_the_sessions_csrf_token(village: Client, village_config: Path) -> None:
    csrf = login(village, "李建国")
    form_page = village.get("/register")
    assert csrf_of(form_page.text) == csrf  # the hidden field every form carries
    assert village.post("/register", data=FORM, follow_redirects=False).status_code == 403
    assert village.post("/register", data={**FORM, "_csrf_token": "x" * 43}, follow_redirects=False).status_code == 403
    r = village.post("/register", data={**FORM, "_csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    errand = r.headers["location"].split("/")[2]

    act = f"/errands/{quote(errand, safe='')}/act"
    note = {"kind": "note", "text": "材料已核对", "actor": "x", "role": "y"}
    assert village.post(act, data=note, follow_redirects=False).status_code == 403
    r = village.post(act, data={**note, "_csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    # the JSON API with a session cookie wants the token in a header
    api = f"/api/errands/{errand}/actions"
    assert village.post(api, json={"kind": "note", "actor": "x", "text": "a"}).status_code == 403
    r = village.post(api, json={"kind": "note", "actor": "x", "text": "a"}, headers={"X-CSRFToken": csrf})
    assert r.status_code == 201, r.text
    denied = [e for e in events(village_config, event="denied") if isinstance(e, ev.AccessDenied)]
    assert [e.reason for e in denied] == ["csrf"] * 4 and {e.actor for e in denied} == {"李建国"}


# -- open demo mode ------------------------------------------------------------------------------


def test_open_demo_mode_works_as_before(tmp_path: Path) -> None:
    config = prepare(tmp_path, "T01V01")  # no [auth] section: required = false
    with TestClient(app(config)) as client:
        assert client.get("/api/errands").status_code == 200
        r = client.post("/api/errands", json=GOOD)
        assert r.status_code == 201, r.text
        errand = r.json()["errand"]
        history = client.get(f"/api/errands/{errand}").json()["history"]
        assert history[0]["actor"] == "typed by the desk"  # the desk's own words, as before
        r = client.post("/register", data=FORM, follow_redirects=False)  # forms need no token without a session
        assert r.status_code == 303, r.text
        assert '<a href="/login">' in client.get("/").text  # the header offers a login, the demo needs none
    taken = [e for e in events(config, event="action") if isinstance(e, ev.ActionTaken)]
    assert [(e.actor, e.account, e.via) for e in taken] == [("typed by the desk", "", "open"), ("李建国", "", "open")]
