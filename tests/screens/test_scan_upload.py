"""A scan or photo attached from the errand page (multipart form), as a phone or a scanner sends it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import make_app, prepared_node, register

from sanji.config import load_settings

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # what a phone's camera hands the form (bytes, not parsed)


def _attach(client: TestClient[Litestar], errand: str, data: bytes, mime: str, **fields: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/errands/{errand}/attach",
        files={"scan": ("身份证.png", data, mime)},
        data={"actor": "李建国", **fields},
        follow_redirects=False,
    )


def test_a_photo_attached_from_the_page_is_kept_listed_and_served(village: TestClient[Litestar]) -> None:
    errand = register(village)
    page = village.get(f"/errands/{errand}").text
    assert 'enctype="multipart/form-data"' in page and 'capture="environment"' in page
    assert "暂无附件" in page

    r = _attach(village, errand, PNG, "image/png", name="身份证复印件（正反面）")
    assert r.status_code == 303 and r.headers["location"].endswith("?done=attach"), r.text
    page = village.get(f"/errands/{errand}").text
    digest = hashlib.sha256(PNG).hexdigest()
    assert re.search(rf'<a href="/api/attachments/{digest}">身份证复印件（正反面）</a>', page)
    served = village.get(f"/api/attachments/{digest}")
    assert served.status_code == 200 and served.content == PNG
    history = village.get(f"/api/errands/{errand}").json()["history"]
    attach = [h for h in history if h["kind"] == "attach"]
    assert [(h["name"], h["mime"], h["size"], h["actor"]) for h in attach] == [
        ("身份证复印件（正反面）", "image/png", len(PNG), "李建国")
    ]


def test_the_file_name_is_the_default_name_and_invisible_characters_go(village: TestClient[Litestar]) -> None:
    errand = register(village)
    r = village.post(
        f"/errands/{errand}/attach",
        files={"scan": ("户口\u202e簿\u200b.pdf", b"%PDF-1.4 scan", "application/pdf")},  # RTL override
        data={"actor": "李建国"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    [attach] = [h for h in village.get(f"/api/errands/{errand}").json()["history"] if h["kind"] == "attach"]
    assert attach["name"] == "户口 簿 .pdf" and attach["mime"] == "application/pdf"


def test_bad_uploads_are_explained_and_keep_nothing(village: TestClient[Litestar]) -> None:
    errand = register(village)
    before = village.get(f"/api/errands/{errand}").json()["version"]
    cases = [
        (_attach(village, errand, b"", "image/png"), 400, "所选文件是空的"),
        (_attach(village, errand, b"MZ\x90\x00 not a scan", "application/x-msdownload"), 400, "只能上传照片"),
        (village.post(f"/errands/{errand}/attach", data={"actor": "李建国"}, follow_redirects=False), 400, "请选择"),
    ]
    for response, status, words in cases:
        assert response.status_code == status and words in response.text, (status, response.text[:300])
    assert village.get(f"/api/errands/{errand}").json()["version"] == before


def test_a_file_over_the_nodes_limit_is_refused(tmp_path: Path) -> None:
    cluster, _ = prepared_node(tmp_path, "T01V01")
    limit = 64 * 1024  # a node may take less than the protocol's limit ([sync] max_attachment_bytes)
    config = cluster.nodes["T01V01"].config
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[sync]\n", f"[sync]\nmax_attachment_bytes = {limit}\n"), encoding="utf-8")
    settings = load_settings(config)
    assert settings.sync.max_attachment_bytes == limit
    with TestClient(make_app(settings)) as client:
        errand = register(client)
        r = _attach(client, errand, b"\xff" * (limit + 1), "image/jpeg")
        assert r.status_code == 413 and "文件超过" in r.text


def test_an_unknown_errand_is_a_404_page(village: TestClient[Litestar]) -> None:
    r = _attach(village, "T01V01-nope", PNG, "image/png")
    assert r.status_code == 404


def test_with_logins_the_form_needs_the_sessions_token_and_names_the_account(tmp_path: Path) -> None:
    from tests.auth.auth_kit import add, app, csrf_of, login, prepare

    config = prepare(tmp_path, "T01V01", required=True)
    add(config, "李建国", "village_agent")
    with TestClient(app(config)) as client:
        token = login(client, "李建国")
        errand = register(client, _csrf_token=token)
        page = client.get(f"/errands/{errand}").text
        assert 'id="attach-actor"' not in page  # the account acts: no name to type
        files = {"scan": ("scan.jpg", b"\xff\xd8\xff jpeg", "image/jpeg")}
        refused = client.post(f"/errands/{errand}/attach", files=files, follow_redirects=False)
        assert refused.status_code == 403
        r = client.post(
            f"/errands/{errand}/attach", files=files, data={"_csrf_token": csrf_of(page)}, follow_redirects=False
        )
        assert r.status_code == 303, r.text
        [attach] = [h for h in client.get(f"/api/errands/{errand}").json()["history"] if h["kind"] == "attach"]
        assert attach["actor"] == "李建国" and attach["name"] == "scan.jpg"
