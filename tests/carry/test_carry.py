"""Hand-carried files: export at one node, import at any node on the path; twice is once; damage is refused whole."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from protocol import envelope
from protocol.batch import FORMAT_VERSION, MAGIC
from protocol.carry import MIN_FRAME_BYTES, CarryHeader, CarryToItself, check_recipient, read_carry, write_carry
from protocol.errors import FrameError
from protocol.signing import SigningKey
from sanji.carry import EXPORTED, PreparedFiles, export_for
from sanji.cli import carry_cmd
from sanji.cli.common import node_store
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from tests.conftest import row_counts


@pytest.fixture
def county(tmp_path: Path) -> Cluster:
    return Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)


def config(cluster: Cluster, node: str) -> str:
    return str(cluster.nodes[node].config)


async def register(cluster: Cluster, count: int) -> list[str]:
    async with node_store(load_settings(config(cluster, "T01V01"))) as (store, ctx):
        service = ErrandService(store, ctx)
        ids = []
        for i in range(count):
            form = RegisterForm(matter="MZ-001", applicant_name=f"村民{i}", actor="代办员")
            errand = (await service.register(form)).errand
            await service.act(errand, ActionForm(kind="submit", actor="代办员"))
            ids.append(errand)
        return ids


async def counts(cluster: Cluster, node: str) -> dict[str, int]:
    async with node_store(load_settings(config(cluster, node))) as (store, _):
        return await row_counts(store)


async def digests(cluster: Cluster, node: str) -> dict[str, str]:
    async with node_store(load_settings(config(cluster, node))) as (store, _):
        return await store.digests()


def test_export_import_moves_errands_and_twice_is_once(county: Cluster, tmp_path: Path) -> None:
    ids = asyncio.run(register(county, 5))
    usb = tmp_path / "usb" / "T01V01-to-T01.sjx"
    usb.parent.mkdir()
    assert carry_cmd.run_export(config(county, "T01V01"), "T01", usb) == 0
    assert carry_cmd.run_import(config(county, "T01"), usb) == 0
    town = asyncio.run(digests(county, "T01"))
    assert sorted(town) == sorted(ids)
    assert town == asyncio.run(digests(county, "T01V01"))
    before = asyncio.run(counts(county, "T01"))
    assert carry_cmd.run_import(config(county, "T01"), usb) == 0
    after = asyncio.run(counts(county, "T01"))
    assert after == {**before, "events": before["events"] + 1}  # only the log's line: this file was imported


def test_a_village_can_carry_straight_to_the_county(county: Cluster, tmp_path: Path) -> None:
    ids = asyncio.run(register(county, 3))
    usb = tmp_path / "to-county.sjx"
    assert carry_cmd.run_export(config(county, "T01V01"), "C", usb) == 0
    assert carry_cmd.run_import(config(county, "C"), usb) == 0
    assert sorted(asyncio.run(digests(county, "C"))) == sorted(ids)


def test_a_damaged_file_is_refused_whole(county: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(register(county, 3))
    usb = tmp_path / "f.sjx"
    carry_cmd.run_export(config(county, "T01V01"), "T01", usb)
    before = asyncio.run(counts(county, "T01"))
    data = bytearray(usb.read_bytes())
    for position in (len(data) // 2, 10, len(data) - 1):
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        usb.write_bytes(bytes(damaged))
        capsys.readouterr()
        assert carry_cmd.run_import(config(county, "T01"), usb) == 2
        assert "damaged" in capsys.readouterr().out or position < 8
        assert asyncio.run(counts(county, "T01")) == before
    usb.write_bytes(bytes(data[: len(data) // 3]))
    assert carry_cmd.run_import(config(county, "T01"), usb) == 2
    assert asyncio.run(counts(county, "T01")) == before


def test_a_refused_batch_is_said_chinese_first(
    county: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sound file whose batch is signed by a key no node of the county holds: the batch is refused, and the
    command says so in Chinese (what is wrong, by the refusal's code), the refusal's English under it."""
    asyncio.run(register(county, 1))
    usb = tmp_path / "f.sjx"
    assert carry_cmd.run_export(config(county, "T01V01"), "T01", usb) == 0
    frame = read_carry(usb.read_bytes()).frames[0]
    opened = envelope.open_envelope(frame, magic=MAGIC, version=FORMAT_VERSION, max_bytes=len(frame), what="batch")
    resigned = envelope.seal(MAGIC, opened.payload, SigningKey.generate(), version=FORMAT_VERSION)
    usb.write_bytes(write_carry(CarryHeader(exporter="T01V01", recipient="T01", created=1, count=1), [resigned]))
    capsys.readouterr()
    assert carry_cmd.run_import(config(county, "T01"), usb) == 1
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("  拒收：签名校验未通过，未应用")  # an unknown signer: no stream is named
    assert lines[at + 1].startswith("    refused: bad_signature: batch is signed by unknown key "), lines


def test_a_file_for_another_node_is_refused_whole(
    county: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two = Cluster.prepare(tmp_path / "two", towns=2, villages_per_town=1, open_demo=True)
    asyncio.run(register(two, 2))
    usb = tmp_path / "wrong.sjx"
    carry_cmd.run_export(config(two, "T01V01"), "T01", usb)
    capsys.readouterr()
    assert carry_cmd.run_import(config(two, "T02"), usb) == 2  # written for T01
    assert "for T01, not for T02" in capsys.readouterr().out
    assert asyncio.run(digests(two, "T02")) == {}


def test_carry_format_round_trip_and_limits() -> None:
    header = CarryHeader(exporter="A", recipient="B", created=1, count=2)
    one, two = b"one".ljust(MIN_FRAME_BYTES, b"."), b"two".ljust(MIN_FRAME_BYTES + 9, b".")
    data = write_carry(header, [one, two])
    assert read_carry(data).frames == (one, two)
    with pytest.raises(FrameError):
        read_carry(b"XXXX" + data[4:])
    with pytest.raises(ValueError):
        write_carry(header, [b"only one"])


def test_township_catches_up_from_the_county_after_a_village_carried_past_it(county: Cluster, tmp_path: Path) -> None:
    from sanji.sync.driver import sync_once
    from sanji.sync.server import SyncServer
    from sanji.sync.transport import LocalTransport

    ids = asyncio.run(register(county, 4))
    usb = tmp_path / "to-county.sjx"
    carry_cmd.run_export(config(county, "T01V01"), "C", usb)
    carry_cmd.run_import(config(county, "C"), usb)

    async def township_syncs() -> None:
        async with (
            node_store(load_settings(config(county, "C"))) as (hub, hub_ctx),
            node_store(load_settings(config(county, "T01"))) as (town, town_ctx),
        ):
            await sync_once(town, LocalTransport(SyncServer(hub, hub_ctx)), context=town_ctx)

    asyncio.run(township_syncs())
    assert sorted(asyncio.run(digests(county, "T01"))) == sorted(ids)
    assert asyncio.run(digests(county, "T01")) == asyncio.run(digests(county, "C"))


def test_a_prepared_file_is_kept_for_its_account_until_it_expires(county: Cluster, tmp_path: Path) -> None:
    asyncio.run(register(county, 2))
    late = [0.0]
    kept = PreparedFiles(tmp_path / "prepared", ttl_s=600.0, clock=lambda: time.time() + late[0])

    async def scenario() -> None:
        async with node_store(load_settings(config(county, "T01V01"))) as (store, _):
            written = await export_for(store, "T01")
        prepared = await kept.keep(written, "李建国")
        assert (prepared.batches, prepared.errands, prepared.size) == (written.batches, 2, len(written.data))
        assert await kept.find(prepared.token, "王代办") is None  # bound to the account that prepared it
        found = await kept.find(prepared.token, "李建国")
        assert found is not None and found == (prepared, written.data)
        late[0] = 599.0
        assert await kept.find(prepared.token, "李建国") is not None
        late[0] = 600.0
        assert await kept.find(prepared.token, "李建国") is None
        assert sorted((tmp_path / "prepared").iterdir()) == []  # an expired file is removed, not only refused

    asyncio.run(scenario())


def test_a_refused_file_is_said_chinese_first_in_words_not_a_generic_failure(
    county: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sanji import`` says what is wrong with a refused file in Chinese, as the sync panel does: damaged, not
    for this node, not a transfer file; never only 操作未完成 ("not completed") before the English."""
    asyncio.run(register(county, 1))
    usb = tmp_path / "f.sjx"
    assert carry_cmd.run_export(config(county, "T01V01"), "T01", usb) == 0
    data = usb.read_bytes()
    said: dict[str, str] = {}
    for name, body, node in (
        ("damaged", data[:-1] + bytes([data[-1] ^ 1]), "T01"),
        ("elsewhere", data, "C"),
        ("not_sjx", b"PK\x03\x04" + bytes(100), "T01"),
    ):
        usb.write_bytes(body)
        capsys.readouterr()
        assert carry_cmd.run_import(config(county, node), usb) == 2
        (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("error:")]
        assert not line.startswith("error: 操作未完成"), line
        said[name] = line
    assert said["damaged"].startswith("error: 文件已损坏或被改动（校验不符），未导入任何内容"), said
    assert said["elsewhere"].startswith("error: 此文件是 T01V01 带给 T01 的，不是给本节点 C 的"), said
    assert said["not_sjx"].startswith("error: 这不是三级联办的带送文件（.sjx）"), said


@pytest.mark.parametrize("where", ["missing_folder", "directory"])
def test_an_export_to_a_path_it_cannot_write_is_refused_leaving_nothing(
    county: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """A USB stick not mounted (its folder absent) or ``--out`` naming a folder: exit 2, Chinese first, no
    traceback, and no ``.part`` file of personal data left behind."""
    asyncio.run(register(county, 1))
    usb = tmp_path / "usb"
    out = usb / "T01V01-to-T01.sjx"
    if where == "directory":
        usb.mkdir()
        out = usb
    capsys.readouterr()
    assert carry_cmd.run_export(config(county, "T01V01"), "T01", out) == 2
    (said,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error:")]
    assert re.match(r"error: [\u4e00-\u9fff]", said), said
    assert list(tmp_path.glob("**/*.part")) == []


@pytest.mark.parametrize("key_is", ["gone", "garbled"])
def test_an_import_the_node_cannot_open_for_blames_the_node_not_the_file(
    county: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str], key_is: str
) -> None:
    """A whole, good file at a node whose key file is gone: the refusal names the key, and does not tell the
    operator the file is damaged and to copy it again (which would not help)."""
    asyncio.run(register(county, 1))
    usb = tmp_path / "T01V01-to-T01.sjx"
    assert carry_cmd.run_export(config(county, "T01V01"), "T01", usb) == 0
    key = Path(config(county, "T01")).parent / load_settings(config(county, "T01")).node.key_file
    if key_is == "gone":
        key.unlink()
    else:
        key.write_bytes(b"not a key")
    capsys.readouterr()
    assert carry_cmd.run_import(config(county, "T01"), usb) == 2
    said = capsys.readouterr().out
    assert "文件已损坏" not in said and "damaged" not in said, said
    assert "key" in said.lower() or "密钥" in said, said


def test_an_export_for_this_node_itself_is_refused_writing_nothing(
    county: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sanji export --for <its own id>`: exit 2, Chinese first, no file and no export in the node's log."""
    asyncio.run(register(county, 1))
    out = tmp_path / "usb" / "T01V01-to-T01V01.sjx"
    out.parent.mkdir()
    capsys.readouterr()
    assert carry_cmd.run_export(config(county, "T01V01"), "T01V01", out) == 2
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("error: 不能为本节点（T01V01）自己写带送文件"), said
    assert "cannot be written for T01V01, the node writing it" in said[0], said
    assert said[1].startswith("hint: 请指明将导入该文件的节点：上级节点或下级节点"), said
    assert list(out.parent.iterdir()) == []
    with pytest.raises(CarryToItself):  # the rule the sync panel's export runs too (``export_for``)
        check_recipient("T01V01", "T01V01")
    check_recipient("T01V01", "C")  # any other node: the directory says whether it is in the tree

    async def exports_logged() -> int:
        async with node_store(load_settings(config(county, "T01V01"))) as (store, _):
            return len(await store.recent_events((EXPORTED,), limit=10))

    assert asyncio.run(exports_logged()) == 0
    assert carry_cmd.run_export(config(county, "T01V01"), "T01", out) == 0  # its parent: written, and logged
    assert asyncio.run(exports_logged()) == 1
