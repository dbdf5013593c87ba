"""A screen's request the node cannot take gets a page in Chinese and English; the API keeps its JSON.

Before, a quarter typed as ``2026q4``, a month 13 in a date box or a calendar year ``abc`` showed a clerk the
API's JSON (``{"error":"bad_request", … matching regex …}``) (sanji/web/error_pages.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from county_node.app import create_app
from protocol.encoding import encode
from protocol.enrollment import EnrollRequest
from sanji.config import NodeSettings, load_settings
from sanji.demo.cluster import Cluster
from tests.web.test_department_inbox import T02, C, open_county


@pytest.fixture
def county(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    with TestClient(create_app(load_settings(cluster.nodes["C"].config))) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "field"),
    [
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


def test_a_node_refusing_on_a_screen_shows_the_forbidden_page_and_the_api_keeps_its_json(tmp_path: Path) -> None:
    """A ``SanjiError`` of status 403 on a screen: here ``RouteError`` (``wrong_route``), for an errand of a
    township the county's directory no longer lists. It was answered with the API's JSON."""

    async def escalated() -> tuple[Path, str, object]:
        county = await open_county(tmp_path)
        try:
            return tmp_path, await county.escalate(T02, "RS-002", "县人社局", "李桂兰"), county.settings[C]
        finally:
            await county.close()

    _, errand, settings = asyncio.run(escalated())
    assert isinstance(settings, NodeSettings)
    listed = settings.path(settings.node.directory)
    nodes = json.loads(listed.read_text(encoding="utf-8"))
    listed.write_text(json.dumps([n for n in nodes if n["id"] not in (T02, "T02V01")]), encoding="utf-8")
    with TestClient(create_app(settings)) as county:
        page = county.get(f"/errands/{errand}")
        assert page.status_code == 403 and page.headers["content-type"].startswith("text/html"), page.text[:300]
        assert page.text.index("本节点不能办理这项请求") < page.text.index("This node refuses the request")
        assert 'data-error="wrong_route"' in page.text and "告诉管理员" in page.text
        assert "您的岗位无权" not in page.text  # not the post's rights: nothing to ask a colleague for
        for path in ("/inbox", "/supervision"):  # the lists name the unlisted node, as they can
            assert county.get(path).status_code == 200, path
        # Programs keep the JSON: the same kind of refusal (TrustError, 403) on a sync path, from a county
        # on directory.json that enrolls nobody.
        request = EnrollRequest(token_hash="0" * 64, node="T03", role="town", keys=(), instance="x")
        sync = county.post("/sync/v1/enroll", content=encode(request), headers={"content-type": "application/msgpack"})
        assert sync.status_code == 403 and sync.json()["error"] == "untrusted", sync.text


def test_a_refusal_with_its_own_chinese_shows_it_on_the_page_before_the_english(tmp_path: Path) -> None:
    """A screen's refusal that carries ``message_zh`` (an office's, a throttled search's) shows that Chinese under the
    page's title, before the English title and message (``<span lang="en">``)."""
    from litestar import get

    from county_node.desk import DESK
    from sanji.office.book import OfficeRefused
    from sanji.web.app import build_app
    from sanji.web.throttle import Throttled

    @get("/test/office-refused", include_in_schema=False)
    async def office_refused() -> None:
        raise OfficeRefused("the appeal was decided already", zh="该申诉已复核，不能再次复核")

    @get("/test/throttled", include_in_schema=False)
    async def throttled() -> None:
        raise Throttled("查找过于频繁，请5秒后再试", "Too many searches from this address: try again in 5 s", 5)

    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes["C"].config)
    with TestClient(build_app(settings, desk=DESK, extra_handlers=[office_refused, throttled])) as client:
        r = client.get("/test/office-refused")
        assert r.status_code == 409 and r.headers["content-type"].startswith("text/html")
        box = r.text.split('id="problem" lang="zh-CN">', 1)[1].split("</div>", 1)[0]
        assert box.index("该申诉已复核，不能再次复核") < box.index("the appeal was decided already")
        r = client.get("/test/throttled")
        assert r.status_code == 429 and r.headers["retry-after"] == "5"
        box = r.text.split('id="problem" lang="zh-CN">', 1)[1].split("</div>", 1)[0]
        assert box.count("查找过于频繁") == 1 and box.index("查找过于频繁") < box.index("Too many searches")


@pytest.mark.parametrize("typed", ["Q4", "2026Q9"])
def test_a_quarter_typed_wrong_shows_the_assessment_form_again_with_the_value_kept(
    county: TestClient[Litestar], typed: str
) -> None:
    r = county.get("/office/assessment/", params={"quarter": typed})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert "regex" not in r.text and "Expected" not in r.text
    assert "应写成 2026Q4" in r.text and f'value="{typed}"' in r.text and 'aria-invalid="true"' in r.text
    assert 'id="staff-scores"' in r.text  # the screen itself, not an error page


def test_a_validator_refusal_on_another_screen_says_how_the_field_is_written(county: TestClient[Litestar]) -> None:
    page = county.get("/admin/calendar", params={"year": "abc"})
    assert page.status_code == 400 and "regex" not in page.text and "Expected `" not in page.text
    assert "年份应写成 2026 这样的四位数字" in page.text
