"""The county's 业务报表 over HTTP: reports received from a township beside the county's own count.

The county's store holds the ledger stories of ``test_ledger`` (signed by their writers) and
receives T01's signed day reports the way the exchange hands them over (``BusinessBook.receive``).
One report says 0 satisfied on the day the county's errands show one 满意: the screen and the API
mark that difference; the days T01 has not reported are counted as missing, not as differences.
The read-only rules page (考核细则) answers in Chinese at the same node.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from office_kit import seed_store
from test_ledger import stories

from protocol.business import BusinessReport, sign_business
from protocol.session import NodeReport
from sanji.config import NodeSettings, load_settings
from sanji.demo.cluster import Cluster
from sanji.keys import read_directory, read_key
from sanji.store import Store, open_database
from sanji.store.business import BusinessBook
from sanji.tiers import create_app

PERIOD = {"from": "2026-11-02", "to": "2026-11-13"}


async def _seed(settings: NodeSettings, cluster: Cluster) -> None:
    db = await open_database(settings.db_url)
    try:
        directory = read_directory(settings.path(settings.node.directory))
        store = Store(db, node_id="C", key=read_key(settings.path(settings.node.key_file)), directory=directory)
        await store.start()
        await seed_store(store, stories(), cluster.layout.keys)
        key = cluster.layout.keys["T01"]
        days = (
            BusinessReport(node="T01", day="2026-11-02", at=1, received=2, accepted=2),
            # E1 was decided, delivered and rated 满意 that day; the township's report leaves the rating out.
            BusinessReport(node="T01", day="2026-11-06", at=2, decided=1, delivered=1, on_time=1),
        )
        report = NodeReport(node="T01", at=3, business=tuple(sign_business(d, key) for d in days))
        assert await BusinessBook(store).receive([report], via="T01") == 2
    finally:
        await db.dispose()


@pytest.fixture
def reporting_county(tmp_path: Path) -> NodeSettings:
    """A county holding the ledger stories and T01's two day reports (one leaving a rating out)."""
    cluster = Cluster.prepare(tmp_path / "county", towns=2, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes["C"].config)
    asyncio.run(_seed(settings, cluster))
    return settings


@pytest.fixture
def client(reporting_county: NodeSettings) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(reporting_county)) as c:
        yield c


def test_reported_beside_computed_with_the_difference(client: TestClient[Litestar]) -> None:
    r = client.get("/api/office/business", params=PERIOD)
    assert r.status_code == 200, r.text
    body = r.json()
    lines = {line["node"]: line for line in body["lines"]}
    assert (body["date_from"], body["date_to"]) == ("2026-11-02", "2026-11-13")
    assert {"T01", "T01V01", "T02", "T02V01"} <= set(lines)
    t01 = lines["T01"]
    assert (t01["days"], t01["days_reported"]) == (12, 2)
    computed = t01["computed"]
    assert (computed["received"], computed["accepted"], computed["decided"], computed["delivered"]) == (2, 2, 2, 1)
    assert (computed["on_time"], computed["late"], computed["satisfied"], computed["dissatisfied"]) == (1, 1, 1, 1)
    assert t01["reported"]["decided"] == 1  # E2 was decided on 11-13, a day T01 has not reported: not a difference
    assert t01["difference"] == {"satisfied": -1}
    assert lines["T02"]["days_reported"] == 0 and lines["T02"]["computed"]["deemed"] == 1

    page = client.get("/office/business/", params=PERIOD)
    assert page.status_code == 200, page.text
    html = page.text
    assert "业务报表" in html and 'id="business-T01"' in html and 'id="computed-T01"' in html
    row = html[html.index('id="business-T01"') : html.index('id="computed-T01"')]
    assert "2 / 12" in row and "(-1)" in row  # the missing days and the difference, marked
    note = html[html.index('id="difference-note"') :].split("</p>")[0]
    assert "尚未上报的日子记在“已报天数”中" in note  # the note says in Chinese what a (±n) means


@pytest.mark.parametrize(
    "params", [{"from": "2026-13-01"}, {"from": "2026-11-13", "to": "2026-11-01"}, {"from": "2020-01-01"}, {"to": "x"}]
)
def test_bad_periods_are_a_clear_400(client: TestClient[Litestar], params: dict[str, str]) -> None:
    assert client.get("/api/office/business", params=params).status_code == 400


def test_the_rules_page_reads_in_chinese(client: TestClient[Litestar]) -> None:
    page = client.get("/office/rules/")
    assert page.status_code == 200, page.text
    assert "季度考核细则" in page.text and "受理办件超过承诺时限" in page.text and 'id="rule-overdue_day"' in page.text
    held = client.get("/api/office/rules").json()
    assert held["version"] == 1 and held["county"] == "C"


def test_the_county_publishes_a_newer_version_over_the_api(client: TestClient[Litestar]) -> None:
    rules = client.get("/api/office/rules").json()
    newer = {**rules, "version": 2, "published_at": "2026-12-01"}
    r = client.post("/api/office/rules", json=newer)
    assert r.status_code == 201, r.text
    assert client.get("/api/office/rules").json()["version"] == 2
    assert "第2版" in client.get("/office/rules/").text
    assert client.post("/api/office/rules", json=newer).status_code == 409  # not newer than the one held
    broken = {**rules, "version": 3, "grades": []}  # rules that do not check are never signed
    assert client.post("/api/office/rules", json=broken).status_code == 409
    assert client.post("/api/office/rules", json={"version": "three"}).status_code == 400
    elsewhere = client.post("/api/office/rules", json={**rules, "version": 3, "county": "X"})  # named for another hub
    assert elsewhere.status_code == 409 and "this hub is 'C'" in elsewhere.json()["message"]
    no_day = client.post("/api/office/rules", json={**rules, "version": 3, "published_at": "0000-00-00"})
    assert no_day.status_code == 409 and "published_at" in no_day.json()["message"]
    assert client.get("/api/office/rules").json()["version"] == 2


def test_a_version_that_leaves_no_room_for_the_next_is_refused(client: TestClient[Litestar]) -> None:
    """2^63 - 1 is a number the store holds, yet published it would be the last: nothing newer could follow."""
    rules = client.get("/api/office/rules").json()
    for version in (2**63 - 1, 1 + 1_000_001):
        r = client.post("/api/office/rules", json={**rules, "version": version})
        assert r.status_code == 409 and "version" in r.json()["message"], r.text
        assert r.json()["error_code"] == "version_too_far" and r.json()["params"]["held"] == 1  # asked by the publisher
        assert r.json()["message_zh"].endswith("请发布第 2 版") and "use 2" not in r.json()["message_zh"]
    assert client.get("/api/office/rules").json()["version"] == 1
    assert client.post("/api/office/rules", json={**rules, "version": 1 + 1_000_000}).status_code == 201


def test_the_county_publishes_from_the_rules_screen(client: TestClient[Litestar]) -> None:
    page = client.get("/office/rules/").text
    assert 'id="publish-rules"' in page
    draft = json.loads(html.unescape(page.split('name="rules"', 1)[1].split(">", 1)[1].split("</textarea>")[0]))
    assert draft["version"] == 2  # the held version with the next number, ready to edit
    r = client.post("/office/rules/publish", data={"rules": "{not json"}, follow_redirects=False)
    assert r.status_code == 400 and 'id="problem"' in r.text and "{not json" in r.text  # what was sent, kept
    assert client.get("/api/office/rules").json()["version"] == 1
    r = client.post("/office/rules/publish", data={"rules": json.dumps(draft)}, follow_redirects=True)
    assert r.status_code == 200 and "已发布" in r.text and "第2版" in r.text
    assert client.get("/api/office/rules").json()["version"] == 2


def shown_problem(page: str) -> str:
    found = re.search(r'<p class="error" role="alert" id="problem">(.*?)</p>', page, re.S)
    assert found, page
    return html.unescape(found.group(1))


def test_the_rules_screen_says_why_it_did_not_publish_in_chinese_first(client: TestClient[Litestar]) -> None:
    rules = client.get("/api/office/rules").json()
    cases = [
        ({**rules, "version": 1}, "版本号须高于现行版本（现行第1版）", "assessment rules version 1 is not newer"),
        ({**rules, "version": 2, "county": "C9"}, "细则中的县（county）应为本中心", "the rules name county 'C9'"),
        ({**rules, "version": 2, "published_at": "0000-00-00"}, "细则未通过检查，未发布", "assessment rules"),
        (  # rules that check, numbered too far above: its own Chinese, not the lead of rules that do not check
            {**rules, "version": 2 + 1_000_000},
            "版本号 1000002 比现行版本（第 1 版）高出过多（最多高 1,000,000），"
            "之后将无法再发布更高的版本，请发布第 2 版",
            "Version 1000002 is more than 1,000,000 above the version held (1)",
        ),
    ]
    for sent, zh, en in cases:
        r = client.post("/office/rules/publish", data={"rules": json.dumps(sent)}, follow_redirects=True)
        said = shown_problem(r.text)
        assert said.startswith(zh) and '<span lang="en">' + en in said, said  # Chinese first, then English
        assert said.count("版本号") <= 1 and (zh == "细则未通过检查，未发布") == ("未通过检查" in said), said
    body = client.post("/api/office/rules", json={**rules, "version": 1}).json()
    assert body["message_zh"] == "版本号须高于现行版本（现行第1版）" and "not newer" in body["message"]
    assert client.get("/api/office/rules").json()["version"] == 1
