"""A form or request sent twice over real HTTP, for the tests that it takes its step once
(``sanji.store.submissions``; the API's ``Idempotency-Key``).

Log in through the form, read a page's one-time key (``_once``), send the same request several times together as
a double click or a script's retry does, and count what the node's database then holds.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import httpx

from tests.auth.auth_kit import PASSWORD, csrf_of

ONCE = re.compile(r'name="_once" value="([^"]+)"')


def logged_in(url: str, name: str) -> tuple[httpx.Cookies, str]:
    """Log in through the form; the session's cookies and its CSRF token (read off a page every account has)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        page = client.get("/login")
        data = {"name": name, "password": PASSWORD, "next": "/", "_csrf_token": csrf_of(page.text)}
        r = client.post("/login", data=data, follow_redirects=False)
        assert r.status_code == 303, r.text
        return client.cookies, csrf_of(client.get("/account/password").text)


def once_key(url: str, cookies: httpx.Cookies, path: str) -> str:
    """The one-time key of the last form on the page at ``path``."""
    with httpx.Client(base_url=url, timeout=30, cookies=cookies) as client:
        page = client.get(path)
    assert page.status_code == 200, page.text
    return str(ONCE.findall(page.text)[-1])


def count(db: Path, sql: str, *args: str) -> int:
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute(sql, args).fetchone()
    return int(n)


def sent_together(
    url: str,
    send: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]],
    *,
    times: int = 3,
    cookies: httpx.Cookies | None = None,
) -> list[httpx.Response]:
    """``send`` ``times`` times at once over one client, so the sendings really overlap at the server."""

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60, cookies=cookies) as client:
            return list(await asyncio.gather(*(send(client) for _ in range(times))))

    return asyncio.run(burst())


def at_once(
    url: str, cookies: httpx.Cookies, path: str, data: Mapping[str, object], times: int = 3
) -> list[httpx.Response]:
    """``times`` posts of the same form sent together, as a double click sends them."""
    return sent_together(url, lambda client: client.post(path, data=data), times=times, cookies=cookies)
