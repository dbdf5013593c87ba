"""The administrator's calendar page over HTTP, on a real county with logins required.

A year's days off and worked weekend days, official or 暂定 marked as such; at the county an uploaded
calendar file is checked as ``sanji calendar check`` checks it (problems listed, 4xx, nothing
published), reviewed, then published as ``sanji calendar publish`` publishes it.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_kit import add, app, events, login, prepare
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from sanji.auth import events as ev

Client = TestClient[Litestar]
EXAMPLE = (Path(__file__).resolve().parents[2] / "deploy" / "calendar.example.toml").read_text(encoding="utf-8")


@pytest.fixture
def county_config(tmp_path: Path) -> Path:
    config = prepare(tmp_path, "C", required=True)
    add(config, "县管理员", "admin")
    return config


@pytest.fixture
def county(county_config: Path) -> Iterator[tuple[Client, str]]:
    with TestClient(app(county_config)) as client:
        yield client, login(client, "县管理员")


def upload(client: Client, csrf: str, name: str, text: str) -> Response:
    return client.post("/admin/calendar/check", data={"_csrf_token": csrf}, files={"file": (name, text.encode())})


def held(client: Client) -> int:
    return int(client.app.state.runtime.get_context().calendar_version)


def test_official_and_provisional_years_are_marked(county: tuple[Client, str]) -> None:
    client, _ = county
    page = client.get("/admin/calendar?year=2025")
    assert page.status_code == 200 and 'data-status="official"' in page.text
    assert "2025-10-01" in page.text and 'id="version">v0' in page.text
    assert "国庆节 National Day" in page.text and "星期三" in page.text  # 2025-10-01: the notice's name, Chinese first
    later = client.get("/admin/calendar?year=2028")
    assert later.status_code == 200 and 'data-status="provisional"' in later.text and "暂定" in later.text
    gone = client.get("/admin/calendar?year=1990")
    assert gone.status_code == 404
    said = gone.text.split('id="unknown">', 1)[1].split("</p>", 1)[0]
    assert said.startswith("没有1990年的工作日历") and '<span lang="en">no official data for 1990' in said, said
    assert 'data-status="provisional"' in client.get("/admin/calendar?year=2040").text
    assert client.get("/admin/calendar?year=abc").status_code == 400


def test_a_bad_file_is_refused_with_its_problems(county: tuple[Client, str]) -> None:
    client, csrf = county
    r = upload(client, csrf, "bad.toml", EXAMPLE.replace("2026-10-01, ", "", 1))
    assert r.status_code == 400 and "2026-10-01" in r.text and 'id="problems"' in r.text
    r = upload(client, csrf, "broken.toml", "county = \n")
    assert r.status_code == 400
    r = upload(client, csrf, "calendar.xlsx", EXAMPLE)
    assert r.status_code == 400
    assert held(client) == 0


def test_a_good_file_is_reviewed_then_published(county: tuple[Client, str], county_config: Path) -> None:
    client, csrf = county
    r = upload(client, csrf, "2026.toml", EXAMPLE)
    assert r.status_code == 200 and 'id="review"' in r.text
    assert held(client) == 0
    field = html.unescape(r.text.split('name="calendar" value="', 1)[1].split('">', 1)[0])
    r = client.post("/admin/calendar/publish", data={"_csrf_token": csrf, "calendar": field})
    assert r.status_code == 200 and 'id="published"' in r.text and 'id="version">v1' in r.text
    assert held(client) == 1
    assert "county calendar v1" in client.get("/admin/calendar?year=2026").text
    r = client.post("/admin/calendar/publish", data={"_csrf_token": csrf, "calendar": field})
    assert r.status_code == 409 and held(client) == 1  # the same version again is refused
    (published,) = events(county_config, event="published")  # who published what, once
    assert isinstance(published, ev.DocumentPublished)
    assert (published.document, published.version, published.actor, published.account) == (
        "calendar",
        1,
        "县管理员",
        "县管理员",
    )
    assert published.role == "admin" and published.via == "session" and published.node == "C"
    blob = client.blocking_portal.call(client.app.state.runtime.get_context().calendar_blob)
    assert blob is not None and published.digest == hashlib.sha256(blob).hexdigest()


def test_a_version_that_leaves_no_room_for_the_next_is_refused(county: tuple[Client, str]) -> None:
    """Published, 2^63 - 1 would be the last calendar this county could ever publish."""
    client, csrf = county
    for version in (2**63 - 1, 1_000_001):
        r = upload(client, csrf, "2026.toml", EXAMPLE.replace("version = 1", f"version = {version}"))
        assert r.status_code == 409 and "1,000,000" in html.unescape(r.text), r.text[-2000:]
        r = upload(client, csrf, "2026.toml", EXAMPLE)  # the reviewed form, its version changed by hand
        field = html.unescape(r.text.split('name="calendar" value="', 1)[1].split('">', 1)[0])
        field = field.replace('"version":1,', f'"version":{version},')
        r = client.post("/admin/calendar/publish", data={"_csrf_token": csrf, "calendar": field})
        assert r.status_code == 409 and held(client) == 0, r.text[-2000:]
    r = upload(client, csrf, "2026.toml", EXAMPLE.replace("version = 1", "version = 1000000"))
    assert r.status_code == 200 and 'id="review"' in r.text
