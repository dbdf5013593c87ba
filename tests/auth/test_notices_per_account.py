"""In-app notices are read per account: one window marking them read leaves its colleague's unread.

A township with logins on and two window accounts; a walk-in errand accepted there is new work on
the desk. Marking read is a POST with the session's CSRF token (refused without it) and moves only
that account's mark (``notice_reads``); a later arrival is unread again for both.
"""

from __future__ import annotations

import re
from pathlib import Path

from auth_kit import GOOD, add, app, bearer, csrf_of, login, prepare, token
from litestar.testing import TestClient

UNREAD = re.compile(r"通知（(\d+) 条未读）")


def unread(client: TestClient) -> int:  # type: ignore[type-arg]
    page = client.get("/")
    assert page.status_code == 200, page.text
    found = UNREAD.search(page.text)
    assert found, "the home page has its notices"
    return int(found.group(1))


def walk_in(client: TestClient, secret: str) -> str:  # type: ignore[type-arg]
    r = client.post("/api/errands", json={**GOOD, "in_person": True}, headers=bearer(secret))
    assert r.status_code == 201, r.text
    errand = str(r.json()["errand"])
    r = client.post(f"/api/errands/{errand}/actions", json={"kind": "accept", "actor": "typed"}, headers=bearer(secret))
    assert r.status_code == 201, r.text
    return errand


def test_each_account_reads_its_own_notices(tmp_path: Path) -> None:
    config = prepare(tmp_path, "T01", required=True)
    add(config, "王芳", "window_a")
    add(config, "刘洋", "window_a")
    secret = token(config, "王芳")
    with TestClient(app(config)) as first, TestClient(app(config)) as second:
        walk_in(first, secret)
        csrf = login(first, "王芳")
        login(second, "刘洋")
        assert unread(first) == unread(second) == 1
        assert first.post("/notices/read", data={"upto": "0"}, follow_redirects=False).status_code == 403  # no CSRF
        r = first.post("/notices/read", data={"upto": "0", "_csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/#notices"
        assert unread(first) == 0
        assert unread(second) == 1  # the colleague's mark did not move
        home = first.get("/").text
        assert "全部标为已读" not in home and "新到办件" in home  # read, still listed while it is work
        walk_in(first, secret)
        assert unread(first) == 1 and unread(second) == 2
        r = second.post("/notices/read", data={"_csrf_token": csrf_of(second.get("/").text)}, follow_redirects=False)
        assert r.status_code == 303 and unread(second) == 0 and unread(first) == 1
