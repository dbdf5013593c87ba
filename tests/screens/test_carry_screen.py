"""The sync panel's hand-carried files (/carry), over HTTP with real SQLite stores and the nodes' own apps.

A village whose township is unreachable exports a file on its screen; the township imports it on its
screen and holds the same errands with the same digests. Twice is once; a changed byte, a file for
another node, random bytes and a file over the node's limit are each a clear 4xx, never a 500.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import _seed_catalogue, act, make_app, register

from protocol import envelope
from protocol.batch import FORMAT_VERSION, MAGIC
from protocol.carry import CarryHeader, read_carry, write_carry
from protocol.signing import SigningKey
from sanji.config import load_settings
from sanji.demo.cluster import Cluster


@pytest.fixture
def county(tmp_path: Path) -> Cluster:
    cluster = Cluster.prepare(tmp_path / "county", towns=2, villages_per_town=1, open_demo=True)
    for node in ("T01V01", "T01", "T02"):
        asyncio.run(_seed_catalogue(load_settings(cluster.nodes[node].config), cluster.layout.keys["C"]))
    return cluster


@pytest.fixture
def nodes(county: Cluster) -> Iterator[dict[str, TestClient[Litestar]]]:
    """The village, its township and another township, each its own app (no parent of any is running)."""
    clients = {n: TestClient(make_app(load_settings(county.nodes[n].config))) for n in ("T01V01", "T01", "T02")}
    for client in clients.values():
        client.__enter__()
    try:
        yield clients
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)


def prepare_file(client: TestClient[Litestar], recipient: str = "T01", **extra: str) -> tuple[str, str]:
    """准备文件: the page, and the name of the prepared file its 下载文件 form sends."""
    r = client.post("/carry/export", data={"recipient": recipient, **extra})
    assert r.status_code == 200, r.text
    token = re.search(r'name="file" value="([^"]+)"', r.text)
    assert token is not None, r.text
    return r.text, token.group(1)


def download(client: TestClient[Litestar], token: str, **extra: str):  # type: ignore[no-untyped-def]
    return client.post("/carry/export/file", data={"file": token, **extra})


def carried(village: TestClient[Litestar], recipient: str = "T01") -> bytes:
    r = download(village, prepare_file(village, recipient)[1])
    assert r.status_code == 200, r.text
    return r.content


def exports_logged(client: TestClient[Litestar]) -> int:
    """How many exports the panel's history lists (the node's event log)."""
    history = client.get("/carry").text.split('id="carry-history"')
    return history[1].count(">导出 <span") if len(history) > 1 else 0


def upload(client: TestClient[Litestar], data: bytes, name: str = "T01V01-to-T01.sjx"):  # type: ignore[no-untyped-def]
    return client.post("/carry/import", files={"carry": (name, data, "application/octet-stream")})


def test_a_village_exports_on_its_screen_and_the_township_imports_on_its_screen(
    nodes: dict[str, TestClient[Litestar]],
) -> None:
    village, town = nodes["T01V01"], nodes["T01"]
    ids = [register(village, name=name) for name in ("张秀英", "李桂兰")]
    home = village.get("/").text
    assert 'href="/carry"' in home  # the operator panel links the sync panel

    panel = village.get("/carry")
    assert panel.status_code == 200
    assert 'option value="T01"' in panel.text and "导出带送文件" in panel.text and "导入带来的文件" in panel.text

    prepared, token = prepare_file(village)
    count = re.search(r'id="exported-count">(\d+) 个批次，涉及 (\d+) 件办件', prepared)
    assert count is not None, prepared
    assert int(count.group(1)) >= 1 and int(count.group(2)) == len(ids)
    assert "可以放心带送" in prepared and "改动任何一个字节" in prepared

    r = download(village, token)
    assert r.status_code == 200
    disposition = r.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="T01V01-to-T01-\d{8}\.sjx"', disposition), disposition
    assert disposition.split('"')[1] in prepared  # the name the page showed
    file = read_carry(r.content)  # the format `sanji export` writes
    assert (file.header.exporter, file.header.recipient) == ("T01V01", "T01")
    assert len(file.frames) == int(count.group(1)) and int(r.headers["x-sanji-errands"]) == len(ids)
    assert exports_logged(village) == 1  # prepared once, downloaded: one export

    done = upload(town, r.content)
    assert done.status_code == 200, done.text
    assert f"新收到并办理：{len(file.frames)}" in done.text and "拒收：0" in done.text
    village_digests = village.get("/api/digests").json()
    town_digests = town.get("/api/digests").json()
    assert sorted(town_digests) == sorted(ids)
    assert town_digests == {e: village_digests[e] for e in ids}

    again = upload(town, r.content)  # the same file twice: nothing doubles
    assert again.status_code == 200, again.text
    assert "新收到并办理：0" in again.text and f"未重复记录：{len(file.frames)}" in again.text
    assert town.get("/api/digests").json() == town_digests
    history = town.get("/carry").text
    assert history.count("来自 T01V01") == 2

    # The township carries back what it owes the village (a progress note here) the same way.
    act(town, ids[0], "note", text="材料已收到，下周一送县里")
    back = download(town, prepare_file(town, "T01V01")[1])
    assert back.status_code == 200 and back.headers["x-sanji-batches"] == "1"
    assert re.search(r'filename="T01-to-T01V01-\d{8}\.sjx"', back.headers["content-disposition"])
    home = upload(village, back.content, name="T01-to-T01V01.sjx")
    assert home.status_code == 200 and "新收到并办理：1" in home.text, home.text
    assert village.get("/api/digests").json()[ids[0]] == town.get("/api/digests").json()[ids[0]]


def test_the_download_is_the_prepared_file_whatever_was_registered_since(
    nodes: dict[str, TestClient[Litestar]],
) -> None:
    village = nodes["T01V01"]
    first = register(village, name="张秀英")
    page, token = prepare_file(village)
    shown = re.search(r'id="exported-count">(\d+) 个批次，涉及 (\d+) 件办件', page)
    assert shown is not None and int(shown.group(2)) == 1, page
    later = register(village, name="李桂兰")  # owed to T01 too, but not in the prepared file

    r = download(village, token)
    assert r.status_code == 200 and int(r.headers["x-sanji-batches"]) == int(shown.group(1))
    frames = read_carry(r.content).frames
    assert len(frames) == int(shown.group(1)) and r.headers["x-sanji-errands"] == "1"
    again = download(village, token)  # a failed download can be tried again: the same bytes
    assert again.status_code == 200 and again.content == r.content
    assert exports_logged(village) == 1

    page, newer = prepare_file(village)  # preparing again writes what is owed now and replaces the earlier file
    assert "涉及 2 件办件" in page and exports_logged(village) == 2
    gone = download(village, token)
    assert gone.status_code == 410 and "准备好的文件已不在" in gone.text and "Prepare the file again" in gone.text
    assert download(village, newer).headers["x-sanji-errands"] == "2"
    for bad in ("", "../../node.db", "x" * 32):
        r = download(village, bad)
        assert r.status_code == 410 and "请重新准备文件" in r.text, bad
    assert {first, later} <= set(village.get("/api/digests").json())


def test_bad_files_are_clear_4xx_and_change_nothing(
    nodes: dict[str, TestClient[Litestar]],
) -> None:
    village, town, other = nodes["T01V01"], nodes["T01"], nodes["T02"]
    register(village)
    data = carried(village)
    before = town.get("/api/digests").json()

    tampered = bytearray(data)
    tampered[len(data) // 2] ^= 0x01
    r = upload(town, bytes(tampered))
    assert r.status_code == 422 and "文件已损坏或被改动" in r.text and "damaged or was changed" in r.text

    r = upload(town, data[: len(data) // 2])  # truncated
    assert r.status_code == 422 and "文件已损坏或被改动" in r.text

    r = upload(other, data)  # written for T01
    assert r.status_code == 422 and "此文件是 T01V01 带给 T01 的，不是给本节点 T02 的" in r.text

    r = upload(town, b"SJX\x09" + data[4:])  # a format this release does not read
    assert r.status_code == 422 and "请先升级本节点" in r.text

    r = upload(town, os.urandom(4096), name="photo.jpg")
    assert r.status_code == 422 and "这不是三级联办的带送文件" in r.text

    r = town.post("/carry/import", data={"nothing": "1"})
    assert r.status_code == 400 and "请选择U盘上带来的文件" in r.text

    r = village.post("/carry/export", data={"recipient": "T02"})  # not this node's parent or child
    assert r.status_code == 400 and "请选择文件带给哪个节点" in r.text

    # A sound file whose batch is signed by a key the county never issued: refused batch by batch, said why.
    crafted = write_carry(
        CarryHeader(exporter="T01V01", recipient="T01", created=1, count=1), [_resign(read_carry(data).frames[0])]
    )
    r = upload(town, crafted)
    assert r.status_code == 422 and "拒收：1" in r.text and "签名节点未知" in r.text, r.text
    assert 'data-refusal="bad_signature"' in r.text
    assert town.get("/api/digests").json() == before


def test_the_panel_writes_no_file_for_this_node_itself(nodes: dict[str, TestClient[Litestar]]) -> None:
    """Not offered, and a post naming it anyway is a 400 with nothing prepared or logged (``sanji export --for``
    its own id is refused by the same rule, ``protocol.carry.check_recipient``)."""
    village = nodes["T01V01"]
    register(village)
    assert 'option value="T01V01"' not in village.get("/carry").text
    r = village.post("/carry/export", data={"recipient": "T01V01"})
    assert r.status_code == 400 and "请选择文件带给哪个节点" in r.text, r.text
    assert 'name="file" value=' not in r.text
    assert exports_logged(village) == 0


def test_a_file_over_the_nodes_limit_is_refused(county: Cluster) -> None:
    config = county.nodes["T01"].config
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[sync]\n", "[sync]\nmax_carry_bytes = 100\n"), encoding="utf-8")
    with TestClient(make_app(load_settings(config))) as town:
        r = upload(town, b"SJX\x01" + b"\x00" * 200)
        assert r.status_code == 413 and "超过本节点的上限 100 字节" in r.text


def test_a_form_field_is_bounded_as_it_streams_in(county: Cluster, tmp_path: Path) -> None:
    """A text field (no filename) of 1 MiB beside the file: refused as soon as it passes 64 KiB. Before, the
    whole field was held in memory (600 MiB in the adversarial run) before anything looked at it."""
    from tests.auth.auth_kit import add, app, csrf_of, login, prepare

    big = {"x": "0" * (1024 * 1024)}
    with TestClient(make_app(load_settings(county.nodes["T01"].config))) as town:  # the open demo: the handler
        files = {"carry": ("a.sjx", b"SJX\x01" + b"\x00" * 64, "application/octet-stream")}
        r = town.post("/carry/import", data=big, files=files)
        assert r.status_code == 413 and "未导入任何内容" in r.text
        r = town.post("/carry/import", data={"x": "短"}, files=files)
        assert r.status_code in (400, 422) and "未导入任何内容" in r.text  # small fields: read, the file judged
    config = prepare(tmp_path / "logins", "T01V01", required=True)
    add(config, "李建国", "village_agent")
    with TestClient(app(config)) as client:  # with logins the CSRF check reads the form first: bounded too
        login(client, "李建国")
        csrf = csrf_of(client.get("/carry").text)
        r = client.post("/carry/import", data={"_csrf_token": csrf, **big}, files=files)
        assert r.status_code == 413, r.text
        r = client.post("/carry/import", data={"_csrf_token": csrf}, files=files)
        assert r.status_code in (400, 422) and "未导入任何内容" in r.text


def test_a_part_naming_a_charset_that_is_no_text_codec_is_a_400(county: Cluster) -> None:
    """A field's own ``charset=`` (``nonesuch``, ``rot13``) picked the codec, and an unknown one was a 500."""
    with TestClient(make_app(load_settings(county.nodes["T01"].config))) as town:
        for charset in ("nonesuch", "rot13", "utf-16"):
            body = (
                b'--XyZ\r\nContent-Disposition: form-data; name="x"\r\n'
                b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n\r\n\xff\xfe\r\n--XyZ--\r\n"
            )
            r = town.post("/carry/import", content=body, headers={"content-type": "multipart/form-data; boundary=XyZ"})
            assert r.status_code == 400 and "未导入任何内容" in r.text, (charset, r.status_code)


def _resign(frame: bytes) -> bytes:
    """The frame's payload signed again by a key no node of the county holds (an unknown signer)."""
    opened = envelope.open_envelope(frame, magic=MAGIC, version=FORMAT_VERSION, max_bytes=len(frame), what="batch")
    return envelope.seal(MAGIC, opened.payload, SigningKey.generate(), version=FORMAT_VERSION)


def test_with_logins_only_posts_that_keep_the_node_in_step_use_it_and_forms_need_the_token(tmp_path: Path) -> None:
    from tests.auth.auth_kit import add, app, csrf_of, login, prepare

    config = prepare(tmp_path, "T01V01", required=True)
    add(config, "李建国", "village_agent")
    add(config, "赵监察", "supervisor")
    with TestClient(app(config)) as client:
        assert client.get("/carry", follow_redirects=False).status_code in (302, 303, 401)
        login(client, "赵监察")
        assert client.get("/carry").status_code == 403
        assert 'href="/carry"' not in client.get("/").text
    with TestClient(app(config)) as client:
        login(client, "李建国")
        page = client.get("/carry").text
        assert client.post("/carry/export", data={"recipient": "T01"}).status_code == 403
        refused = client.post("/carry/import", files={"carry": ("x.sjx", b"SJX\x01" + b"\x00" * 64, "x/y")})
        assert refused.status_code == 403
        csrf = csrf_of(page)
        _, file = prepare_file(client, _csrf_token=csrf)
        assert download(client, file).status_code == 403  # the form's token is still needed
        r = download(client, file, _csrf_token=csrf)
        assert r.status_code == 200 and r.content.startswith(b"SJX")
    add(config, "王代办", "village_agent")
    with TestClient(app(config)) as client:  # another agent of the same station
        login(client, "王代办")
        r = download(client, file, _csrf_token=csrf_of(client.get("/carry").text))
        assert r.status_code == 410 and "不是您准备的" in r.text  # a prepared file is its preparer's alone


def _raw_file(head: bytes, frames: tuple[bytes, ...] = ()) -> bytes:
    """A transfer file around any header bytes, with a correct checksum (plain SHA-256: anyone recomputes it)."""
    import hashlib
    import struct

    body = b"SJX\x01" + struct.pack(">I", len(head)) + head + b"".join(struct.pack(">I", len(f)) + f for f in frames)
    return body + hashlib.sha256(body).digest()


def test_the_file_is_from_the_nodes_that_signed_its_batches_not_from_what_its_header_says(
    nodes: dict[str, TestClient[Litestar]],
) -> None:
    """The header is unsigned: re-packed under another exporter, the file still shows (and logs) its signer."""
    village, town = nodes["T01V01"], nodes["T01"]
    register(village)
    frames = read_carry(carried(village)).frames

    relabelled = write_carry(CarryHeader(exporter="T02", recipient="T01", created=1, count=len(frames)), frames)
    r = upload(town, relabelled)
    assert r.status_code == 200, r.text
    assert "已导入来自 T01V01 的文件" in r.text and "文件头标明由 T02 导出，未经签名核实" in r.text
    history = town.get("/carry").text.split('id="carry-history"')[1]
    assert "来自 T01V01" in history and "来自 T02" not in history

    for exporter in ("../../etc", "x" * 30_000, '<img src=x onerror="alert(1)">\u202e', "T09"):
        r = upload(town, write_carry(CarryHeader(exporter=exporter, recipient="T01", created=1, count=0), []))
        assert r.status_code == 422 and "文件头标明的节点编号不合规或本节点不认识" in r.text, exporter[:20]
        assert "\u202e" not in r.text and "x" * 100 not in r.text
    assert town.get("/carry").text.split('id="carry-history"')[1].count("<tr>") == 2  # heading + the one import

    r = upload(town, _raw_file(b"\xc1" * 10))  # a header that is not msgpack
    assert r.status_code == 422 and "文件头无法读取" in r.text and "校验不符" not in r.text
    deep = b"\x85\xa8exporter\xa6T01V01\xa9recipient\xa3T01\xa7created\x01\xa5count\x00\xa1z" + b"\x91" * 100 + b"\xc0"
    r = upload(town, _raw_file(deep))
    assert r.status_code == 422 and "文件头嵌套过深" in r.text and "校验不符" not in r.text
    damaged = bytearray(relabelled)
    damaged[-40] ^= 0x01
    r = upload(town, bytes(damaged))
    assert r.status_code == 422 and "文件已损坏或被改动（校验不符）" in r.text
