"""Two publications of the same next version sent at once, on a real county with logins required.

An adversarial run found both administrators told "published" while one version was kept: the routes ignored
``put_document``'s answer. Now the write transaction that keeps the document decides (``VersionNotNewer``),
and the one not kept is answered 409 with the refusal a publication sent afterwards gets. Each case is sent
by two threads released together, to one hub process and to two hub processes (two apps) sharing one
database; the outcome is exact either way: one published, one refused, one version and one audit event.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from auth_kit import add, app, bearer, events, login, prepare, token
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from sanji.catalogue import default_catalogue_path

Client = TestClient[Litestar]
CATALOGUE = default_catalogue_path().read_text(encoding="utf-8")
CALENDAR = (Path(__file__).resolve().parents[2] / "deploy" / "calendar.example.toml").read_text(encoding="utf-8")


@pytest.fixture
def county_config(tmp_path: Path) -> Path:
    config = prepare(tmp_path, "C", required=True)
    add(config, "管理员甲", "admin")
    add(config, "管理员乙", "admin")
    add(config, "监察员", "supervisor")
    return config


def at_once(*sends: Callable[[], Response]) -> list[Response]:
    """Send each from its own thread, all released by one barrier; their answers in the order given."""
    barrier = threading.Barrier(len(sends))
    answers: list[Response | None] = [None] * len(sends)
    failures: list[BaseException] = []

    def run(i: int, send: Callable[[], Response]) -> None:
        try:
            barrier.wait(timeout=30)
            answers[i] = send()
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(sends)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def reviewed(client: Client, csrf: str, kind: str, name: str, text: str) -> str:
    """The reviewed document's field, as the check step hands it to the publish form."""
    r = client.post(f"/admin/{kind}/check", data={"_csrf_token": csrf}, files={"file": (name, text.encode())})
    assert r.status_code == 200 and 'id="review"' in r.text, r.text[-2000:]
    return html.unescape(r.text.split(f'name="{kind}" value="', 1)[1].split('">', 1)[0])


def context_of(client: Client) -> Any:
    return client.app.state.runtime.get_context()


def one_published_one_refused(answers: list[Response], page: str, refusal: str) -> Response:
    """Exactly one answered 303 to the page with done=published; the other 409 saying ``refusal``."""
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [303, 409], [(a.status_code, a.text[-600:]) for a in answers]
    won = next(a for a in answers if a.status_code == 303)
    assert won.headers["location"] == f"{page}?done=published"
    lost = next(a for a in answers if a.status_code == 409)
    assert refusal in html.unescape(lost.text), html.unescape(lost.text)[-3000:]
    assert 'id="published"' not in lost.text
    return lost


@pytest.mark.timeout(180)
@pytest.mark.parametrize("processes", [1, 2])
def test_two_catalogue_publications_at_once_keep_one_and_refuse_the_other(county_config: Path, processes: int) -> None:
    with TestClient(app(county_config)) as first, TestClient(app(county_config)) as second:
        other = first if processes == 1 else second  # two hub processes: two apps over one database
        csrf_a = login(first, "管理员甲")
        csrf_b = login(other, "管理员乙") if processes == 2 else csrf_a
        field = reviewed(first, csrf_a, "catalogue", "v2.toml", CATALOGUE.replace("version = 1", "version = 2"))
        answers = at_once(
            lambda: first.post(
                "/admin/catalogue/publish",
                data={"_csrf_token": csrf_a, "catalogue": field},
                follow_redirects=False,
            ),
            lambda: other.post(
                "/admin/catalogue/publish",
                data={"_csrf_token": csrf_b, "catalogue": field},
                follow_redirects=False,
            ),
        )
        # the sequential refusal's own words (``version_refusal``): as if this one had been sent afterwards
        one_published_one_refused(answers, "/admin/catalogue/", "版本 2 不高于本中心所持的版本 2，请提高版本号")
        for client in (first, other):
            client.blocking_portal.call(context_of(client).refresh_catalogue)
            assert context_of(client).catalogue_version == 2
        assert first.blocking_portal.call(context_of(first).store.document, "catalogue")[0] == 2
        # then one sent afterwards gets the same refusal
        later = other.post("/admin/catalogue/publish", data={"_csrf_token": csrf_b, "catalogue": field})
        assert later.status_code == 409 and "版本 2 不高于本中心所持的版本 2" in html.unescape(later.text)
    published = events(county_config, event="published")
    assert [(e.document, e.version) for e in published] == [("catalogue", 2)]  # type: ignore[attr-defined]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("processes", [1, 2])
def test_two_calendar_publications_at_once_keep_one_and_refuse_the_other(county_config: Path, processes: int) -> None:
    with TestClient(app(county_config)) as first, TestClient(app(county_config)) as second:
        other = first if processes == 1 else second
        csrf_a = login(first, "管理员甲")
        csrf_b = login(other, "管理员乙") if processes == 2 else csrf_a
        field = reviewed(first, csrf_a, "calendar", "2026.toml", CALENDAR)
        answers = at_once(
            lambda: first.post(
                "/admin/calendar/publish", data={"_csrf_token": csrf_a, "calendar": field}, follow_redirects=False
            ),
            lambda: other.post(
                "/admin/calendar/publish", data={"_csrf_token": csrf_b, "calendar": field}, follow_redirects=False
            ),
        )
        one_published_one_refused(answers, "/admin/calendar/", "already holds calendar v1")
        for client in (first, other):
            client.blocking_portal.call(context_of(client).refresh_calendar)
            assert context_of(client).calendar_version == 1
        later = other.post("/admin/calendar/publish", data={"_csrf_token": csrf_b, "calendar": field})
        assert later.status_code == 409 and "already holds calendar v1" in html.unescape(later.text)
    published = events(county_config, event="published")
    assert [(e.document, e.version) for e in published] == [("calendar", 1)]  # type: ignore[attr-defined]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("processes", [1, 2])
def test_two_rules_publications_at_once_keep_one_and_refuse_the_other(county_config: Path, processes: int) -> None:
    auth = bearer(token(county_config, "监察员"))
    with TestClient(app(county_config)) as first, TestClient(app(county_config)) as second:
        other = first if processes == 1 else second
        rules = first.get("/api/office/rules", headers=auth).json()
        assert rules["version"] == 1
        mine = {**rules, "version": 2, "published_at": "2026-12-01", "centre_bonus_cap": 18}
        theirs = {**rules, "version": 2, "published_at": "2026-12-02", "centre_bonus_cap": 19}
        answers = at_once(
            lambda: first.post("/api/office/rules", json=mine, headers=auth),
            lambda: other.post("/api/office/rules", json=theirs, headers=auth),
        )
        assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
        won = next(a for a in answers if a.status_code == 201).json()
        lost = next(a for a in answers if a.status_code == 409).json()
        assert lost["error"] == "office_refused" and lost["message_zh"] == "版本号须高于现行版本（现行第2版）", lost
        for client in (first, other):  # both processes hold the rules the winner was told were published
            held = client.get("/api/office/rules", headers=auth).json()
            assert held["version"] == 2 and held["centre_bonus_cap"] == won["centre_bonus_cap"]
        later = other.post("/api/office/rules", json=theirs, headers=auth)  # the same, sent afterwards
        assert later.status_code == 409 and later.json()["message_zh"] == lost["message_zh"]


@pytest.mark.timeout(120)
def test_two_rules_forms_at_once_publish_one_and_say_why_the_other_was_not(county_config: Path) -> None:
    """The county's ``/office/rules`` form: the one not kept is sent back with the refusal, Chinese first."""
    with TestClient(app(county_config)) as client:
        csrf = login(client, "监察员")
        rules = client.get("/api/office/rules").json()
        texts = [json.dumps({**rules, "version": 2, "centre_bonus_cap": cap}, ensure_ascii=False) for cap in (15, 16)]
        answers = at_once(
            *(
                partial(
                    client.post,
                    "/office/rules/publish",
                    data={"_csrf_token": csrf, "rules": text},
                    follow_redirects=False,
                )
                for text in texts
            )
        )
        assert sorted(a.status_code for a in answers) == [303, 409], [a.status_code for a in answers]
        (won,) = [a for a in answers if a.status_code == 303]
        assert parse_qs(urlparse(won.headers["location"]).query) == {"done": ["published"]}
        (lost,) = [a for a in answers if a.status_code == 409]  # the screen again, the refusal on it
        found = re.search(r'<p class="error" role="alert" id="problem">(.*?)</p>', lost.text, re.S)
        assert found, lost.text
        problem = html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))
        assert (
            problem.startswith("版本号须高于现行版本（现行第2版）")
            and "assessment rules version 2 is not newer" in problem
        )
        assert client.get("/api/office/rules").json()["version"] == 2
