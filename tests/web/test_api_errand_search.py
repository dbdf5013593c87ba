"""``GET /api/errands?q=``: the search 全部办件 offers, read by the same rule (``sanji.web.errand_search``).

One village node with logins on (the default), asked by its agent's API token: found by receipt number, errand
id, matter and applicant's name, never by the sealed ID number or phone; bounded, newest first on request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.auth.auth_kit import GOOD, add, app, bearer, prepare, token

Client = TestClient[Litestar]


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Client, dict[str, str]]]:
    config = prepare(tmp_path, "T01V01", required=True)
    add(config, "李建国", "village_agent")
    headers = bearer(token(config, "李建国"))
    with TestClient(app(config)) as client:
        yield client, headers


def test_the_api_finds_errands_as_the_screen_does_never_by_sealed_details(
    agent: tuple[Client, dict[str, str]],
) -> None:
    client, headers = agent
    assert client.get("/api/errands", params={"q": "张"}).status_code == 401  # no login, no list

    def register(**fields: Any) -> str:
        r = client.post("/api/errands", json={**GOOD, **fields}, headers=headers)
        assert r.status_code == 201, r.text
        return str(r.json()["errand"])

    zhang = register(applicant_name="张秀英", applicant_phone="13812345678", applicant_id_number="430621195007307791")
    li = register(applicant_name="李四", applicant_phone="13900001111", applicant_id_number="11010519491231002X")
    receipt = client.get(f"/api/errands/{li}", headers=headers).json()["receipt"]

    def found(q: str, **more: Any) -> list[str]:
        r = client.get("/api/errands", params={"q": q, **more}, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] >= len(page["items"])
        return [item["id"] for item in page["items"]]

    assert found("李四") == [li] and found("秀英") == [zhang]
    assert found(receipt) == [li] and found(receipt.lower()) == [li] and found(li) == [li]
    assert found("MZ-001") == [zhang, li] and found("") == [zhang, li]
    assert found("", newest_first="true") == [li, zhang]
    assert found("", newest_first="true", limit=1, offset=1) == [zhang]  # a page at a time
    # the sealed details are never searched: a hit would tell what every answer masks
    for sealed in ("13812345678", "5678", "430621195007307791", "11010519491231002X", "1002X"):
        assert found(sealed) == [], sealed
    assert found("%") == [] and found("_") == []  # typed, not wildcards
    assert found("李\x00四") == [li] and found("李\u200b四") == [li]  # what shows as nothing is dropped
    assert found("\x00") == [zhang, li]  # nothing left to search: every errand
    r = client.get("/api/errands", params={"q": "李四" + "x" * 300}, headers=headers)
    assert r.status_code == 400, r.text  # longer than the screen searches: refused, not cut in silence
    stage = client.get(f"/api/errands/{li}", headers=headers).json()["stage"]
    assert found("李四", stage=stage) == [li] and found("李四", stage="decided") == []  # with the other filters


def test_a_list_filter_with_a_control_character_or_too_long_is_refused(agent: tuple[Client, dict[str, str]]) -> None:
    """``stage``, ``holder``, ``matter`` and ``scope`` are compared with what the store holds: a NUL (which
    PostgreSQL refuses in any text it is sent: a 500 there) or a value longer than any held is a 400, as ``q``'s
    bound is; a well-formed value that matches nothing is an empty page."""
    client, headers = agent
    for name in ("stage", "holder", "matter", "scope"):
        for bad in ("decided\x00", "a\nb", "x" * 201):
            r = client.get("/api/errands", params={name: bad}, headers=headers)
            assert r.status_code == 400, (name, bad, r.status_code, r.text)
        r = client.get("/api/errands", params={name: "无此值"}, headers=headers)
        assert r.status_code == 200 and r.json()["total"] == 0, (name, r.text)
    assert client.get("/api/errands", params={"stage": "not_accepted"}, headers=headers).status_code == 200
