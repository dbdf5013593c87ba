"""A screen's request the node cannot take gets a page in Chinese and English; the API keeps its JSON.

Before, a quarter typed as ``2026q4``, a month 13 in a date box or a calendar year ``abc`` showed a clerk the
API's JSON (``{"error":"bad_request", … matching regex …}``) (sanji/web/error_pages.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from county_node.app import create_app
from sanji.config import load_settings
from sanji.demo.cluster import Cluster


@pytest.fixture
def county(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    with TestClient(create_app(load_settings(cluster.nodes["C"].config))) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/office/assessment/?quarter=2026Q9", "季度 quarter"),
        ("/office/business/?from=2026-13-01", ""),
        ("/admin/calendar?year=abc", "年份 year"),
    ],
)
def test_a_screen_gets_a_page_naming_what_to_correct(county: TestClient[Litestar], path: str, field: str) -> None:
    r = county.get(path)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/html")
    assert 'id="problem"' in r.text and "填写的内容有误" in r.text and "返回上一页" in r.text
    if field:
        assert f"：{field}" in r.text


def test_a_quarter_in_lower_case_is_the_same_quarter(county: TestClient[Litestar]) -> None:
    page = county.get("/office/assessment/?quarter=2026q4")
    assert page.status_code == 200 and "2026Q4" in page.text
    assert county.get("/api/office/assessment", params={"quarter": "2026q4"}).json()["quarter"] == "2026Q4"


def test_the_api_keeps_its_json(county: TestClient[Litestar]) -> None:
    r = county.get("/api/office/assessment", params={"quarter": "2026Q9"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    missing = county.get("/no/such/page")
    assert missing.status_code == 404 and "找不到该页面或办件" in missing.text
    assert county.get("/api/no/such").json()["error"] == "not_found"
