"""A form posted as ``application/x-www-form-urlencoded`` is held to a number of fields before it is parsed.

Litestar parses such a body whole into a dictionary; a million one-byte fields (10 MB, under the body
ceiling) kept a node's event loop busy for seconds, from ``/login`` and ``/complain`` without any login.
Over real HTTP on loopback, against a county with logins required.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
from auth_kit import PASSWORD, add, app, prepare, token

from sanji.web.bounded_form import URLENCODED_FIELD_LIMIT
from tests.screens.screens_kit import served

FORM = {"content-type": "application/x-www-form-urlencoded"}


def many_fields(n: int) -> bytes:
    return "&".join(f"f{i}=1" for i in range(n)).encode()


def test_a_form_of_too_many_fields_is_refused_before_it_is_parsed_and_the_node_keeps_answering(
    tmp_path: Path,
) -> None:
    config = prepare(tmp_path, "T01V01", required=True)
    add(config, "李建国", "village_agent")
    bearer = {"authorization": f"Bearer {token(config, '李建国')}"}
    with served(app(config), name="village") as url, httpx.Client(base_url=url, timeout=120) as client:
        slowest = [0.0]
        stop = threading.Event()

        def watch() -> None:
            with httpx.Client(base_url=url, timeout=120) as watcher:
                while not stop.is_set():
                    started = time.monotonic()
                    assert watcher.get("/healthz").status_code == 200
                    slowest[0] = max(slowest[0], time.monotonic() - started)
                    time.sleep(0.02)

        watching = threading.Thread(target=watch)
        watching.start()
        try:
            body = many_fields(300_000)
            for path, headers in (("/login", FORM), ("/complain", FORM), ("/register", {**FORM, **bearer})):
                r = client.post(path, content=body, headers=headers)
                assert r.status_code == 413 and str(URLENCODED_FIELD_LIMIT) in r.text, (path, r.status_code)
        finally:
            stop.set()
            watching.join()
        assert slowest[0] < 3.0, slowest[0]  # room for a loaded machine; a 300,000-field parse on the loop is not
        # a form of ordinary size still logs in
        page = client.get("/login")
        csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert csrf
        r = client.post("/login", data={"name": "李建国", "password": PASSWORD, "_csrf_token": csrf[1]})
        assert r.status_code == 303 and r.headers["location"] == "/"
