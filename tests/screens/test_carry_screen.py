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


def carried(village: TestClient[Litestar], recipient: str = "T01") -> bytes:
    r = village.post("/carry/export/file", data={"recipient": recipient})
    assert r.status_code == 200, r.text
    return r.content


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

    prepared = village.post("/carry/export", data={"recipient": "T01"})
    assert prepared.status_code == 200, prepared.text
    count = re.search(r'id="exported-count">(\d+) 个批次，涉及 (\d+) 件办件', prepared.text)
    assert count is not None, prepared.text
    assert int(count.group(1)) >= 1 and int(count.group(2)) == len(ids)
    assert "可以放心带送" in prepared.text and "改动任何一个字节" in prepared.text

    r = village.post("/carry/export/file", data={"recipient": "T01"})
    assert r.status_code == 200
    disposition = r.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="T01V01-to-T01-\d{8}\.sjx"', disposition), disposition
    file = read_carry(r.content)  # the format `sanji export` writes
    assert (file.header.exporter, file.header.recipient) == ("T01V01", "T01")
    assert int(r.headers["x-sanji-errands"]) == len(ids)

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
    back = town.post("/carry/export/file", data={"recipient": "T01V01"})
    assert back.status_code == 200 and back.headers["x-sanji-batches"] == "1"
    assert re.search(r'filename="T01-to-T01V01-\d{8}\.sjx"', back.headers["content-disposition"])
    home = upload(village, back.content, name="T01-to-T01V01.sjx")
    assert home.status_code == 200 and "新收到并办理：1" in home.text, home.text
    assert village.get("/api/digests").json()[ids[0]] == town.get("/api/digests").json()[ids[0]]


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


def test_a_file_over_the_nodes_limit_is_refused(county: Cluster) -> None:
    config = county.nodes["T01"].config
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[sync]\n", "[sync]\nmax_carry_bytes = 100\n"), encoding="utf-8")
    with TestClient(make_app(load_settings(config))) as town:
        r = upload(town, b"SJX\x01" + b"\x00" * 200)
        assert r.status_code == 413 and "超过本节点的上限 100 字节" in r.text


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
        refused = client.post("/carry/export/file", data={"recipient": "T01"})
        assert refused.status_code == 403
        refused = client.post("/carry/import", files={"carry": ("x.sjx", b"SJX\x01" + b"\x00" * 64, "x/y")})
        assert refused.status_code == 403
        token = csrf_of(page)
        r = client.post("/carry/export/file", data={"recipient": "T01", "_csrf_token": token})
        assert r.status_code == 200 and r.content.startswith(b"SJX")
