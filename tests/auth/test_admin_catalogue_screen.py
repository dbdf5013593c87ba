"""The administrator's catalogue page over HTTP, on a real county and township with logins required.

The county's admin uploads a catalogue file; the checker ``sanji catalogue check`` runs lists
every problem (4xx, nothing published); a clean one is reviewed, then signed and published, and
the county holds its version. A township shows what it holds and offers no upload.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from auth_kit import add, app, events, login, prepare
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from protocol.catalogue import catalogue_digest
from sanji.auth import events as ev
from sanji.catalogue import default_catalogue, default_catalogue_path
from sanji.web.admin_screens import PROBLEMS_LISTED
from tests.catalogue import hostile_xlsx

Client = TestClient[Litestar]
TEXT = default_catalogue_path().read_text(encoding="utf-8")


@pytest.fixture
def county_config(tmp_path: Path) -> Path:
    config = prepare(tmp_path, "C", required=True)
    add(config, "县管理员", "admin")
    add(config, "审批员", "approver")
    return config


@pytest.fixture
def county(county_config: Path) -> Iterator[tuple[Client, str]]:
    with TestClient(app(county_config)) as client:
        yield client, login(client, "县管理员")


def upload(client: Client, csrf: str, name: str, text: str | bytes) -> Response:
    data = text.encode() if isinstance(text, str) else text
    return client.post("/admin/catalogue/check", data={"_csrf_token": csrf}, files={"file": (name, data)})


def held(client: Client) -> int:
    return int(client.app.state.runtime.get_context().catalogue_version)


def test_the_page_shows_the_catalogue_held_and_a_matter(county: tuple[Client, str]) -> None:
    client, _ = county
    page = client.get("/admin/catalogue")
    assert page.status_code == 200 and 'id="version">v1' in page.text and "示例县" in page.text
    assert 'id="upload"' in page.text  # the county offers the upload
    code = client.app.state.runtime.get_context().catalogue.matters[0].code
    detail = client.get(f"/admin/catalogue/{code}")
    assert detail.status_code == 200 and 'id="materials"' in detail.text
    assert client.get("/admin/catalogue/NO-SUCH").status_code == 404


def test_a_bad_file_lists_its_problems_and_publishes_nothing(county: tuple[Client, str]) -> None:
    client, csrf = county
    bad = TEXT.replace("version = 1", "version = 2").replace("committed_limit = 5", "committed_limit = -5", 1)
    bad = bad.replace('name = "', 'name = "', 1).replace("accept_levels = [", 'accept_levels = ["moon", ', 1)
    r = upload(client, csrf, "bad.toml", bad)
    assert r.status_code == 400, r.text
    assert 'id="problems"' in r.text and "accept_levels" in r.text
    assert held(client) == 1
    r = upload(client, csrf, "catalogue.csv", "code,name\n")
    assert r.status_code == 400 and ".toml" in r.text
    r = upload(client, csrf, "big.json", b"{" + b" " * (2 * 1024 * 1024 + 10) + b"}")
    assert r.status_code == 413
    r = upload(client, csrf, "same.toml", TEXT)  # version 1 is held already
    assert r.status_code == 409
    r = client.post("/admin/catalogue/publish", data={"_csrf_token": csrf, "catalogue": '{"county": "x"}'})
    assert r.status_code == 400 and held(client) == 1


def test_a_good_file_is_reviewed_then_published(county: tuple[Client, str], county_config: Path) -> None:
    client, csrf = county
    r = upload(client, csrf, "v2.toml", TEXT.replace("version = 1", "version = 2"))
    assert r.status_code == 200 and 'id="review"' in r.text
    assert held(client) == 1  # reviewed, not yet signed
    json_field = r.text.split('name="catalogue" value="', 1)[1].split('">', 1)[0]
    r = client.post("/admin/catalogue/publish", data={"_csrf_token": csrf, "catalogue": html.unescape(json_field)})
    assert r.status_code == 200 and 'id="published"' in r.text and 'id="version">v2' in r.text
    assert held(client) == 2
    r = client.post("/admin/catalogue/publish", data={"catalogue": html.unescape(json_field)})
    assert r.status_code == 403  # no CSRF token
    (published,) = events(county_config, event="published")  # who published which version and digest
    assert isinstance(published, ev.DocumentPublished)
    assert (published.document, published.version, published.county) == ("catalogue", 2, "示例县")
    assert (published.actor, published.account, published.role, published.via) == (
        "县管理员",
        "县管理员",
        "admin",
        "session",
    )
    blob = client.blocking_portal.call(client.app.state.runtime.get_context().catalogue_blob)
    assert blob is not None and published.digest == catalogue_digest(blob)


def test_a_version_that_leaves_no_room_for_the_next_is_refused(county: tuple[Client, str]) -> None:
    """Published, 2^63 - 1 would be the last catalogue this county could ever publish."""
    client, csrf = county
    for version in (2**63 - 1, 1_000_002):
        r = upload(client, csrf, "v.toml", TEXT.replace("version = 1", f"version = {version}"))
        assert r.status_code == 409 and "1,000,000" in html.unescape(r.text), r.text[-2000:]
        good = upload(client, csrf, "v2.toml", TEXT.replace("version = 1", "version = 2"))
        field = html.unescape(good.text.split('name="catalogue" value="', 1)[1].split('">', 1)[0])
        assert '"version":2,' in field
        field = field.replace('"version":2,', f'"version":{version},')
        r = client.post("/admin/catalogue/publish", data={"_csrf_token": csrf, "catalogue": field})
        assert r.status_code == 409 and held(client) == 1, r.text[-2000:]


def test_other_posts_and_the_township(county_config: Path, tmp_path: Path) -> None:
    with TestClient(app(county_config)) as same:
        approver_csrf = login(same, "审批员")
        assert same.get("/admin/catalogue").status_code == 403
        assert same.get("/admin/calendar").status_code == 403
        assert 'href="/admin/catalogue"' not in same.get("/lookup").text
        r = same.post("/admin/catalogue/check", data={"_csrf_token": approver_csrf}, files={"file": ("a.toml", b"x")})
        assert r.status_code == 403
    town = prepare(tmp_path / "t", "T01", required=True)
    add(town, "乡管理员", "admin")
    with TestClient(app(town)) as t:
        login(t, "乡管理员")
        page = t.get("/admin/catalogue")
        assert page.status_code == 200 and 'id="upload"' not in page.text and 'id="version">v' in page.text


def test_a_json_catalogue_is_checked_the_same_way(county: tuple[Client, str]) -> None:
    client, csrf = county
    body = msgspec.to_builtins(default_catalogue()) | {"version": 3}
    r = upload(client, csrf, "v3.json", json.dumps(body, ensure_ascii=False))
    assert r.status_code == 200 and 'id="review"' in r.text and "v3" in r.text
    body["matters"][0]["committed_limit"] = "thirty"
    r = upload(client, csrf, "v3.json", json.dumps(body, ensure_ascii=False))
    assert r.status_code == 400 and "committed_limit" in r.text


def test_a_json_catalogue_of_too_many_matters_is_refused_before_they_are_checked(county: tuple[Client, str]) -> None:
    """200,000 empty matters in 600 KB: before, each was checked (4 million problems, the hub stalled for a
    minute and held 1.8 GB); now one problem, the limit, and nothing else."""
    client, csrf = county
    body = '{"county": "示范县", "version": 3, "published_at": "2026-12-01", "matters": [' + ",".join(["{}"] * 200_000)
    r = upload(client, csrf, "big.json", body + "]}")
    assert r.status_code == 400, r.text
    text = html.unescape(r.text)
    assert "lists 200000 matters; the limit is 2000" in text
    assert text.count("<li>") == 1 and "committed_limit" not in text
    assert held(client) == 1


def test_a_page_lists_the_first_problems_and_counts_the_rest(county: tuple[Client, str]) -> None:
    client, csrf = county
    body = {"county": "示范县", "version": 3, "published_at": "2026-12-01", "matters": [{}] * 1500}
    r = upload(client, csrf, "many.json", json.dumps(body))
    assert r.status_code == 400
    text = html.unescape(r.text)
    assert text.count("<li>") == PROBLEMS_LISTED + 1 and "more not listed" in text


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("make", "says"),
    [
        (hostile_xlsx.dimension_trick, "too many rows"),
        (hostile_xlsx.zip_bomb, "refused before it is read"),
        (hostile_xlsx.too_many_rows, "too many rows"),
        (hostile_xlsx.cut_short, "不是可读取的 XLSX 表格：文件已损坏或不完整"),  # was a 500 (ParseError)
        (hostile_xlsx.entity_expansion, "含有 DTD 或实体声明"),
        (hostile_xlsx.external_entity, "declares a DTD or entities"),
    ],
)
def test_a_hostile_spreadsheet_is_refused_and_the_hub_keeps_serving(
    county: tuple[Client, str], make: Callable[[], bytes], says: str
) -> None:
    """A tiny file asking for unbounded work gets a clear 400, nothing is published, the hub still answers."""
    client, csrf = county
    r = upload(client, csrf, "hostile.xlsx", make())
    assert r.status_code == 400, r.text
    assert 'id="problems"' in r.text and says in html.unescape(r.text)
    assert held(client) == 1
    assert client.get("/admin/catalogue").status_code == 200


def test_the_audit_record_and_the_publication_are_one_transaction(county: tuple[Client, str]) -> None:
    """A record that fails leaves no catalogue kept: both are written, or neither."""
    client, _ = county
    context = client.app.state.runtime.get_context()

    async def failing(conn: object, digest: str) -> None:
        raise RuntimeError("the audit log is full")

    async def publish() -> None:
        await context.publish(msgspec.structs.replace(default_catalogue(), version=5), record=failing)

    with pytest.raises(RuntimeError):
        client.blocking_portal.call(publish)
    assert held(client) == 1
    assert client.blocking_portal.call(context.store.document, "catalogue")[0] == 1
