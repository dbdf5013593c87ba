"""The JSON API of one node: clear 4xx for bad input, never a 500, never a partial write."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from protocol.session import PushRequest
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.web.openapi_dump import schema
from village_agent.app import create_app

GOOD = {
    "matter": "MZ-001",
    "applicant_name": "张秀英",
    "applicant_id_number": "430621195007307791",
    "applicant_phone": "13812345678",
    "materials": ["身份证复印件"],
    "actor": "代办员 李建国",
}

JPEG = {"content-type": "image/jpeg"}  # an attachment is a photo or a scan (protocol.scans)


@pytest.fixture
def village(tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes["T01V01"].config)
    with TestClient(create_app(settings)) as client:
        yield client


def count(client: TestClient) -> int:  # type: ignore[type-arg]
    return int(client.get("/api/errands").json()["total"])


def test_register_then_read_back(village: TestClient) -> None:  # type: ignore[type-arg]
    r = village.post("/api/errands", json=GOOD)
    assert r.status_code == 201, r.text
    errand = village.get(f"/api/errands/{r.json()['errand']}").json()
    assert errand["stage"] == "registered" and errand["holder"] == "T01V01"
    assert errand["history"][0]["applicant"]["id_number"] == "430621********7791"  # masked unless asked
    shown = village.get(f"/api/errands/{r.json()['errand']}?reveal=true").json()
    assert shown["history"][0]["applicant"]["id_number"] == GOOD["applicant_id_number"]
    assert len(errand["digest"]) == 64


@pytest.mark.parametrize(
    "body",
    [
        {**GOOD, "applicant_id_number": "12345"},
        {**GOOD, "applicant_name": ""},
        {**GOOD, "unexpected": 1},
        {k: v for k, v in GOOD.items() if k != "matter"},
        {**GOOD, "materials": ["x" * 500]},
        {**GOOD, "summary": "长" * 5000},
    ],
)
def test_bad_forms_get_a_clear_400_and_write_nothing(village: TestClient, body: dict[str, object]) -> None:  # type: ignore[type-arg]
    r = village.post("/api/errands", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["message"]
    assert count(village) == 0


def test_a_refused_registration_uses_up_no_receipt_number(village: TestClient) -> None:  # type: ignore[type-arg]
    def receipt() -> str:
        errand = village.post("/api/errands", json=GOOD).json()["errand"]
        return str(village.get(f"/api/errands/{errand}").json()["receipt"])

    first = receipt()
    for _ in range(3):
        assert village.post("/api/errands", json={**GOOD, "mandate": False}).status_code == 409  # no mandate
    second = receipt()
    # T01V01-yymmdd-NNNNC: the day's sequence, then a check character
    assert int(second.split("-")[-1][:-1]) == int(first.split("-")[-1][:-1]) + 1, (first, second)


def test_an_id_number_with_a_wrong_check_character_is_refused(village: TestClient) -> None:  # type: ignore[type-arg]
    """The schema holds the number to its shape; the check character is the rule's, as the screen says (409)."""
    r = village.post("/api/errands", json={**GOOD, "applicant_id_number": "430621195007307797"})
    assert r.status_code == 409 and r.json()["error_code"] == "id_number_check", r.text
    assert count(village) == 0


def test_malformed_json_is_a_400(village: TestClient) -> None:  # type: ignore[type-arg]
    r = village.post("/api/errands", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert count(village) == 0


def test_actions_outside_the_rules_are_refused_with_a_reason(village: TestClient) -> None:  # type: ignore[type-arg]
    errand_id = village.post("/api/errands", json=GOOD).json()["errand"]
    r = village.post(f"/api/errands/{errand_id}/actions", json={"kind": "accept", "actor": "代办员"})
    assert r.status_code == 409
    assert "township" in r.json()["message"]
    r = village.post(f"/api/errands/{errand_id}/actions", json={"kind": "deliver", "actor": "x", "confirmed_by": "y"})
    assert r.status_code == 409
    assert village.get(f"/api/errands/{errand_id}").json()["version"] == 1
    r = village.post("/api/errands/nope/actions", json={"kind": "submit", "actor": "代办员"})
    assert r.status_code == 404  # not held here, as GET answers
    assert village.get("/api/errands/nope").status_code == 404


def test_stale_view_is_refused(village: TestClient) -> None:  # type: ignore[type-arg]
    errand_id = village.post("/api/errands", json=GOOD).json()["errand"]
    r = village.post(f"/api/errands/{errand_id}/actions", json={"kind": "submit", "actor": "a", "expected_version": 7})
    assert r.status_code == 409 and "changed meanwhile" in r.json()["message"]


@pytest.mark.parametrize("payload", [b"", b"\x00\x01garbage", b"\x81\xa6sender\xc0", b"\x93" * 100])
def test_unsigned_garbage_on_sync_endpoints_is_refused_before_it_is_read(
    village: TestClient,  # type: ignore[type-arg]
    payload: bytes,
) -> None:
    # The request's signature is checked before its body is decoded (tests/hardening has signed garbage: 400).
    for path in ("/sync/v1/cursors", "/sync/v1/push", "/sync/v1/pull"):
        r = village.post(path, content=payload, headers={"content-type": "application/msgpack"})
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert r.json()["error"] == "unauthenticated"


def test_sync_from_a_stranger_is_forbidden(village: TestClient) -> None:  # type: ignore[type-arg]
    body = msgspec.msgpack.encode(PushRequest(sender="T02V09", at=0, frames=(b"x",)))
    r = village.post("/sync/v1/push", content=body, headers={"content-type": "application/msgpack"})
    assert r.status_code == 401  # not signed by a node this one knows: refused before the body is read
    assert r.json()["error"] == "unauthenticated"


def test_node_endpoint_describes_the_node(village: TestClient) -> None:  # type: ignore[type-arg]
    node = village.get("/api/node").json()
    assert node["id"] == "T01V01" and node["role"] == "village" and node["parent"] == "T01"
    assert node["queue_length"] == 0 and node["streams"] == []
    village.post("/api/errands", json=GOOD)
    assert village.get("/api/node").json()["queue_length"] == 1


def test_home_screen_speaks_chinese_first(village: TestClient) -> None:  # type: ignore[type-arg]
    village.post("/api/errands", json=GOOD)
    page = village.get("/").text
    assert "村代办点" in page and "张秀英" in page and '已登记 <span lang="en">registered</span>' in page


def test_openapi_schema_is_checked_in() -> None:
    checked_in = json.loads(Path("docs/openapi.json").read_text(encoding="utf-8"))
    assert json.loads(json.dumps(schema(), ensure_ascii=False)) == checked_in, (
        "API changed: run `python -m sanji.web.openapi_dump > docs/openapi.json`"
    )


def test_attach_and_download_a_scan(village: TestClient) -> None:  # type: ignore[type-arg]
    errand_id = village.post("/api/errands", json=GOOD).json()["errand"]
    scan = bytes(range(256)) * 40
    r = village.post(
        f"/api/errands/{errand_id}/attachments",
        params={"name": "户口簿.jpg", "actor": "代办员"},
        content=scan,
        headers={"content-type": "image/jpeg"},
    )
    assert r.status_code == 201, r.text
    attach = [h for h in village.get(f"/api/errands/{errand_id}").json()["history"] if h["kind"] == "attach"]
    assert attach[0]["size"] == len(scan) and attach[0]["mime"] == "image/jpeg"
    got = village.get(f"/api/attachments/{attach[0]['blob']}")
    assert got.status_code == 200 and got.content == scan
    assert village.get("/api/attachments/" + "0" * 64).status_code == 404
    empty = village.post(f"/api/errands/{errand_id}/attachments", params={"name": "x", "actor": "a"}, content=b"")
    assert empty.status_code == 409


def blobs_held(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "c" / "T01V01" / "node.db") as con:
        return int(con.execute("SELECT count(*) FROM blobs").fetchone()[0])


def test_a_refused_attachment_keeps_no_bytes(village: TestClient, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """Before: the bytes were kept first and the step judged after, so every refused upload stayed on disk."""
    scan = bytes(range(256)) * 4000
    for _ in range(3):
        r = village.post(
            "/api/errands/NOPE-0/attachments", params={"name": "a.jpg", "actor": "代办员"}, content=scan, headers=JPEG
        )
        assert r.status_code == 404 and r.json()["error_code"] == "errand_unknown", r.text  # as GET answers
    assert blobs_held(tmp_path) == 0
    step = village.post("/api/errands/NOPE-0/actions", json={"kind": "note", "actor": "代办员", "text": "x"})
    assert step.status_code == 404 and village.get("/api/errands/NOPE-0").status_code == 404


def test_an_attachment_names_bytes_held_here(village: TestClient, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """An ``attach`` step by hash alone must name a file this node holds whole, or every replica would wait
    for bytes nobody has."""
    errand_id = village.post("/api/errands", json=GOOD).json()["errand"]
    ghost = {
        "kind": "attach",
        "actor": "代办员",
        "blob": "ab" * 32,
        "size": 12345,
        "name": "ghost.jpg",
        "mime": "image/jpeg",
    }
    r = village.post(f"/api/errands/{errand_id}/actions", json=ghost)
    assert r.status_code == 409 and r.json()["error_code"] == "attachment_not_held", r.text
    scan = bytes(range(256)) * 40
    sent = village.post(
        f"/api/errands/{errand_id}/attachments", params={"name": "a.jpg", "actor": "代办员"}, content=scan, headers=JPEG
    )
    assert sent.status_code == 201
    digest = next(h for h in village.get(f"/api/errands/{errand_id}").json()["history"] if h["kind"] == "attach")[
        "blob"
    ]
    again = {**ghost, "blob": digest, "size": len(scan), "name": "又一份.jpg"}  # the same bytes, held: fine
    assert village.post(f"/api/errands/{errand_id}/actions", json=again).status_code == 201
    assert village.post(f"/api/errands/{errand_id}/actions", json={**again, "size": 1}).status_code == 409
    # another errand's scan is not linked by its hash: its bytes are sent with it, by one who has them
    other = village.post("/api/errands", json={**GOOD, "applicant_name": "王德明"}).json()["errand"]
    linked = village.post(f"/api/errands/{other}/actions", json=again)
    assert linked.status_code == 409 and linked.json()["error_code"] == "attachment_not_held", linked.text
    assert not [h for h in village.get(f"/api/errands/{other}").json()["history"] if h["kind"] == "attach"]
    assert blobs_held(tmp_path) == 1


def test_an_archived_attachment_no_ancestor_can_give_back_says_so(village: TestClient, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """Archived (sanji archive: hash and size kept, bytes dropped) and the township dark: a 503 naming the
    ancestor holding it, with Retry-After; a browser gets the same in Chinese and English."""
    errand_id = village.post("/api/errands", json=GOOD).json()["errand"]
    scan = bytes(range(256)) * 40
    r = village.post(
        f"/api/errands/{errand_id}/attachments",
        params={"name": "户口簿.jpg", "actor": "代办员"},
        content=scan,
        headers=JPEG,
    )
    history = village.get(f"/api/errands/{errand_id}").json()["history"]
    digest = next(h for h in history if h["kind"] == "attach")["blob"]
    assert r.status_code == 201
    with sqlite3.connect(tmp_path / "c" / "T01V01" / "node.db") as con:  # what Archive._archive_one writes
        con.execute("INSERT INTO blob_archive VALUES (?, ?, 'T01', ?)", (digest, len(scan), time.time()))
        con.execute("UPDATE blobs SET data = x'', received = 0 WHERE hash = ?", (digest,))
    # Its township is not running: no ancestor gives it back now, and the caller is told to come back.
    got = village.get(f"/api/attachments/{digest}")
    assert got.status_code == 503 and got.json()["error"] == "attachment_archived_unreachable"
    assert "held at T01" in got.json()["message"] and got.json()["retryable"] is True
    assert int(got.headers["retry-after"]) > 0
    page = village.get(f"/api/attachments/{digest}", headers={"accept": "text/html"})
    assert page.status_code == 503 and int(page.headers["retry-after"]) > 0
    assert "已归档在乡镇/县级" in page.text and "archived at the township/county" in page.text
    assert 'class="archived"' in village.get(f"/errands/{errand_id}").text  # the attachment list marks it
    assert village.get("/api/node").json()["attachments"]["archived_here"] == 1


def test_only_a_photo_or_a_scan_is_attached_by_every_surface(village: TestClient, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """The API took a web page or a program the errand page's 附件 form refuses (adversarial run, session 20)."""
    errand_id = village.post("/api/errands", json=GOOD).json()["errand"]
    params = {"name": "x.html", "actor": "代办员"}
    for declared in ("text/html", "application/x-msdownload", "application/octet-stream", None):
        headers = {"content-type": declared} if declared else {}
        r = village.post(f"/api/errands/{errand_id}/attachments", params=params, content=b"<p>x</p>", headers=headers)
        assert r.status_code == 415 and r.json()["error_code"] == "attachment_type", r.text
        assert r.json()["message_zh"].startswith("只能附照片"), r.text
    assert blobs_held(tmp_path) == 0
    scan = bytes(range(256)) * 40
    sent = village.post(
        f"/api/errands/{errand_id}/attachments",
        params={**params, "name": "a.pdf"},
        content=scan,
        headers={"content-type": "Application/PDF; name=a.pdf"},
    )
    assert sent.status_code == 201, sent.text
    history = village.get(f"/api/errands/{errand_id}").json()["history"]
    held = next(h for h in history if h["kind"] == "attach")
    assert held["mime"] == "application/pdf"  # kept without its parameters
    # naming bytes held here by their hash: the same rule
    by_hash = {"kind": "attach", "actor": "代办员", "blob": held["blob"], "size": len(scan), "name": "y.html"}
    for mime in ("text/html", ""):
        r = village.post(f"/api/errands/{errand_id}/actions", json={**by_hash, "mime": mime})
        assert r.status_code == 415 and r.json()["error_code"] == "attachment_type", r.text
    assert len([h for h in village.get(f"/api/errands/{errand_id}").json()["history"] if h["kind"] == "attach"]) == 1


def test_a_blank_or_invisible_applicant_name_is_refused_by_the_api_as_by_the_screen(village: TestClient) -> None:  # type: ignore[type-arg]
    """A 400, as the register screen answers and as every other character a name may not hold is answered (a NUL,
    a bidi override), with the refusal's own code and words: the sender's to correct, not a conflict."""
    for name in (" ", "\u3000", "\u200b", "张\u200b秀英", "\u115f", "李\u00ad明", "\u034f", "张\u200d三"):
        r = village.post("/api/errands", json={**GOOD, "applicant_name": name})
        assert r.status_code == 400 and r.json()["error_code"] in ("name_blank", "name_invisible"), (name, r.text)
        assert r.json()["message_zh"], r.text
    joined = village.post("/api/errands", json={**GOOD, "applicant_name": "张\u200d三"}).json()  # an emoji's joiner
    assert joined["error_code"] == "name_invisible"
    assert joined["message_zh"] == "申请人姓名含不可见字符 U+200D（零宽空格、零宽连接符、方向标记等），请删去后重新输入"
    assert "U+200D" in joined["message"] and "zero-width space or joiner" in joined["message"]
    for other in ("张\x00三", "张\u202e三"):
        assert village.post("/api/errands", json={**GOOD, "applicant_name": other}).status_code == 400
    assert count(village) == 0
    assert village.post("/api/errands", json={**GOOD, "applicant_name": "欧阳 秀英"}).status_code == 201
