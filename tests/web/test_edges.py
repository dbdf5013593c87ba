"""Bad input at the JSON API: a clear 4xx with the error body, never a 500 (issue 12, items 2 and 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from protocol.bounds import MAX_ATTACHMENT_BYTES, MAX_JSON_BYTES
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from village_agent.app import create_app

GOOD = {"matter": "MZ-001", "applicant_name": "张秀英", "actor": "代办员 李建国", "materials": ["身份证"]}
JSON = {"content-type": "application/json"}
ERROR_KEYS = {"error", "message", "hint", "retryable"}

JPEG = {"content-type": "image/jpeg"}  # an attachment is a photo or a scan (protocol.scans)


@pytest.fixture(scope="module")
def village(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:  # type: ignore[type-arg]
    cluster = Cluster.prepare(tmp_path_factory.mktemp("edges") / "c", towns=1, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes["T01V01"].config)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def errand(village: TestClient) -> str:  # type: ignore[type-arg]
    r = village.post("/api/errands", json=GOOD)
    assert r.status_code == 201, r.text
    return str(r.json()["errand"])


def refused(response: object, status: int) -> dict[str, object]:
    r = response
    assert r.status_code == status, (r.status_code, r.text)  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) >= ERROR_KEYS and body["message"] and body["retryable"] is False, body
    return body  # type: ignore[no-any-return]


def json_paths(errand: str) -> list[str]:
    return ["/api/errands", f"/api/errands/{errand}/actions", "/api/precheck"]


DEEP = [
    b"[" * 1000 + b"]" * 1000,
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b"[" * 100_000,
    b'{"matter":' + b"[" * 1000 + b"]" * 1000 + b"}",
]


@pytest.mark.parametrize("body", DEEP, ids=["array", "object", "unclosed", "in-a-field"])
def test_deeply_nested_json_is_a_400_on_every_json_endpoint(village: TestClient, errand: str, body: bytes) -> None:  # type: ignore[type-arg]
    for path in json_paths(errand):
        assert "deep" in str(refused(village.post(path, content=body, headers=JSON), 400)["message"])


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None, "application/xml"])
def test_json_endpoints_read_only_application_json(village: TestClient, errand: str, content_type: str | None) -> None:  # type: ignore[type-arg]
    import json

    body = json.dumps(GOOD).encode()
    headers = {"content-type": content_type} if content_type else {}
    before = village.get("/api/errands").json()["total"]
    for path in json_paths(errand):
        refused(village.post(path, content=body, headers=headers), 415)
    assert village.get("/api/errands").json()["total"] == before
    charset = village.post("/api/errands", content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert charset.status_code == 201, charset.text


def test_an_oversized_json_body_is_a_413(village: TestClient) -> None:  # type: ignore[type-arg]
    body = b'{"matter": "' + b"x" * MAX_JSON_BYTES + b'"}'
    refused(village.post("/api/errands", content=body, headers=JSON), 413)


@pytest.mark.parametrize("size", [2**63, 2**64, 2**70, MAX_ATTACHMENT_BYTES + 1, -1])
def test_attachment_sizes_beyond_the_bound_are_refused_and_nothing_is_signed(
    village: TestClient,  # type: ignore[type-arg]
    errand: str,
    size: int,
) -> None:
    version = village.get(f"/api/errands/{errand}").json()["version"]
    form = {"kind": "attach", "actor": "代办员", "blob": "a" * 64, "size": size, "name": "scan.jpg"}
    refused(village.post(f"/api/errands/{errand}/actions", json=form), 400)
    history = village.get(f"/api/errands/{errand}").json()["history"]
    assert not [h for h in history if h["kind"] == "attach" and h.get("size") == size]
    assert village.get(f"/api/errands/{errand}").json()["version"] == version


def test_a_configured_attachment_limit_refuses_larger_uploads(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    config = cluster.nodes["T01V01"].config
    text = config.read_text(encoding="utf-8").replace("[sync]\n", "[sync]\nmax_attachment_bytes = 1000\n", 1)
    assert "max_attachment_bytes" in text
    config.write_text(text, encoding="utf-8")
    with TestClient(create_app(load_settings(config)), raise_server_exceptions=False) as client:
        errand = client.post("/api/errands", json=GOOD).json()["errand"]
        params = {"name": "scan.jpg", "actor": "代办员"}
        refused(
            client.post(f"/api/errands/{errand}/attachments", params=params, content=b"x" * 1001, headers=JPEG), 413
        )
        ok = client.post(f"/api/errands/{errand}/attachments", params=params, content=b"x" * 1000, headers=JPEG)
        assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    "field,value",
    [
        ("applicant_name", "张\x00秀英"),
        ("applicant_name", "张秀英\ue000"),
        ("applicant_name", "\u202e英秀张"),
        ("actor", "代办员\n李建国"),
        ("summary", "响铃\x07"),
        ("materials", ["身份证\U000f0000"]),
    ],
)
def test_names_and_text_outside_their_character_class_are_a_400(
    village: TestClient,  # type: ignore[type-arg]
    field: str,
    value: object,
) -> None:
    before = village.get("/api/errands").json()["total"]
    body = refused(village.post("/api/errands", json={**GOOD, field: value}), 400)
    assert field in str(body["message"])
    assert village.get("/api/errands").json()["total"] == before


def test_lone_surrogates_and_huge_numbers_are_a_400(village: TestClient, errand: str) -> None:  # type: ignore[type-arg]
    lone = b'{"matter":"MZ-001","applicant_name":"\\ud800","actor":"a"}'
    refused(village.post("/api/errands", content=lone, headers=JSON), 400)
    big = b'{"kind":"note","actor":"a","text":"x","expected_version":' + b"9" * 400 + b"}"
    refused(village.post(f"/api/errands/{errand}/actions", content=big, headers=JSON), 400)


def test_wrong_method_is_a_405_with_allow(village: TestClient) -> None:  # type: ignore[type-arg]
    r = village.delete("/api/errands")
    refused(r, 405)
    assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_head_answers_wherever_get_does_without_a_body(village: TestClient, errand: str) -> None:  # type: ignore[type-arg]
    """RFC 9110: a server that serves GET serves HEAD; health and link checkers ask HEAD (it was a 405)."""
    for path in ["/healthz", "/api/node", "/api/errands", f"/api/errands/{errand}", "/", f"/errands/{errand}"]:
        got, head = village.get(path), village.head(path)
        assert head.status_code == got.status_code == 200, (path, head.status_code, got.status_code)
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
    assert village.head("/api/nothing-here").status_code == 404
    post_only = village.head("/api/precheck")  # HEAD stands for a GET the path does not serve
    assert post_only.status_code == 405 and post_only.content == b"" and "POST" in post_only.headers["allow"]
    allow = village.options("/healthz").headers["allow"].replace(" ", "").split(",")
    assert {"GET", "HEAD", "OPTIONS"} <= set(allow)


def test_unknown_paths_are_a_404_with_the_error_body(village: TestClient) -> None:  # type: ignore[type-arg]
    assert refused(village.get("/api/nothing-here"), 404)["error"] == "not_found"


def test_every_json_refusal_says_itself_in_chinese_too(village: TestClient, errand: str) -> None:  # type: ignore[type-arg]
    """Refusals of the framework's layers (a body not read, a path not found, a method not allowed) carried only
    English; a desk's client shows ``message_zh`` first whichever layer refused."""
    answers = [
        village.post("/api/errands", content=b"{not json", headers=JSON),  # 400
        village.post("/api/errands", content=b'{"matter": "' + b"x" * MAX_JSON_BYTES + b'"}', headers=JSON),  # 413
        village.post("/api/errands", content=b"{}", headers={"content-type": "text/plain"}),  # 415
        village.get("/api/errands/NOPE-0"),  # 404
        village.delete(f"/api/errands/{errand}"),  # 405
        village.get("/api/errands", params={"limit": "many"}),  # 400 from the framework's validation
    ]
    for r in answers:
        assert 400 <= r.status_code < 500, r.text
        body = r.json()
        assert body["message_zh"] and body["error_code"], (r.status_code, body)
        assert any("\u4e00" <= c <= "\u9fff" for c in body["message_zh"]), body
