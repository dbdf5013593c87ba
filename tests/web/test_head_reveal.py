"""A HEAD that asks to reveal (``sanji.web.head``): refused alike for everyone, and nothing audited.

A HEAD answers no body, so a HEAD of ``GET /api/errands/{id}?reveal=true`` shows no number: audited as the GET
it stands for, it wrote a ``PersonalDataRead(what="reveal")`` of numbers nobody saw, and its status (200, 403,
404) told a caller its rights and the errand without a trace. One village node with logins on, served by
uvicorn on loopback (the server itself drops a HEAD's body).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from sanji.auth import events as ev
from tests.auth.auth_kit import GOOD, add, app, bearer, events, prepare, token
from tests.screens.screens_kit import served


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    config = prepare(tmp_path, "T01V01", required=True)
    add(config, "李建国", "village_agent")
    add(config, "钱纪", "inspector")  # may not reveal: a GET with reveal is a 403, audited
    with served(app(config), name="village") as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            r = client.post("/api/errands", json=GOOD, headers=bearer(token(config, "李建国")))
            assert r.status_code == 201, r.text
        yield url, config, r.json()["errand"]


def test_a_head_asking_to_reveal_is_refused_alike_and_audits_nothing(node: tuple[str, Path, str]) -> None:
    url, config, errand = node
    agent, inspector = bearer(token(config, "李建国")), bearer(token(config, "钱纪"))
    path = f"/api/errands/{quote(errand, safe='')}"
    before = len(events(config))
    with httpx.Client(base_url=url, timeout=30) as client:
        for who in (agent, inspector, {}):
            for where in (path, "/api/errands/NO-SUCH-ERRAND"):
                for value in ("true", "1", "false"):
                    head = client.head(where, params={"reveal": value}, headers=who)
                    assert (head.status_code, head.headers["allow"], head.content) == (405, "GET", b""), (who, where)
        assert len(events(config)) == before  # no read, no refusal: nothing was looked at

        # a HEAD without it is the masked GET, audited as that read; the GET with it shows and is audited
        assert client.head(path, headers=agent).status_code == 200
        shown = client.get(path, params={"reveal": "true"}, headers=agent)
        assert shown.status_code == 200 and "430621195007307791" in shown.text
    reveals = [e for e in events(config, errand=errand) if isinstance(e, ev.PersonalDataRead) and e.what == "reveal"]
    assert len(reveals) == 1
