"""The office's filters are chosen from lists (townships and villages by name, matters by code and name, the
catalogue's departments); an id still works (links, the API), a name typed by hand is taken as its id, and a value
that is neither says so instead of an empty table with no word."""

from __future__ import annotations

from litestar.testing import TestClient
from test_ledger_http_cli import NOVEMBER, client, county_node  # noqa: F401  (fixtures)


def test_the_ledger_filters_are_lists_and_an_unknown_value_says_so(client: TestClient) -> None:  # noqa: F811
    page = client.get("/office/ledger", params=NOVEMBER).text
    for field in ("township", "node", "matter", "department"):
        assert f'<select id="{field}" name="{field}"' in page, field
    assert '<option value="T02V01">河口乡便民服务中心 · ' in page  # a village under its township
    assert '<option value="MZ-003">MZ-003 临时救助申请</option>' in page
    assert '<option value="县民政局">县民政局</option>' in page

    by_id = client.get("/office/ledger", params={**NOVEMBER, "township": "T02"})
    by_name = client.get("/office/ledger", params={**NOVEMBER, "township": "河口乡便民服务中心"})
    assert by_id.status_code == by_name.status_code == 200
    assert 'value="T02" selected' in by_name.text and "E3" in by_name.text and "E1" not in by_name.text

    unknown = client.get("/office/ledger", params={**NOVEMBER, "township": "T09", "matter": "XX-999"})
    assert unknown.status_code == 400 and 'id="problem"' in unknown.text
    assert "没有乡镇“T09”" in unknown.text and "没有事项“XX-999”" in unknown.text
    assert '<option value="T09" selected>T09 (未知 unknown)</option>' in unknown.text  # kept, to correct

    api = client.get("/api/office/ledger", params={**NOVEMBER, "township": "T02"})
    assert api.status_code == 200 and {i["errand"] for i in api.json()["items"]} == {"E3", "E4"}


def test_supervision_offers_every_township_and_the_catalogues_departments(client: TestClient) -> None:  # noqa: F811
    page = client.get("/supervision").text
    township = page[page.index('id="f-township"') : page.index("</select>", page.index('id="f-township"'))]
    assert '<option value="T01">城关镇便民服务中心</option>' in township
    assert '<option value="T02">河口乡便民服务中心</option>' in township
    department = page[page.index('id="f-department"') : page.index("</select>", page.index('id="f-department"'))]
    assert '<option value="县民政局">县民政局</option>' in department
