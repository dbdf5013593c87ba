"""Sealed applicant details on a real in-process county (tests/conftest.py ``network``).

``network(2, 1)``::

    C ── T01 ── T01V01      the errand's path: C, T01, T01V01
      └─ T02 ── T02V01      never receives it

The village registers with an ID number and a phone; the county and the township read them;
no frame, carried file or database file anywhere holds them in clear.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from protocol.actions import Applicant, Register
from protocol.batch import ENC_ZLIB, open_frame
from protocol.carry import CarryHeader, read_carry, write_carry
from protocol.encoding import decode_action
from protocol.sealing import SealError, open_for, sealed_to
from protocol.signing import SigningKey
from sanji.forms import ActionForm, RegisterForm
from sanji.layout import county_layout
from sanji.service import ErrandService, new_action_id, new_errand_id
from sanji.store import Store, open_database
from sanji.store import schema as t
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport

Net = Any  # tests/conftest.py Network
NetworkFactory = Callable[..., Awaitable[Net]]

C, TOWN, VILLAGE, OTHER_TOWN, FAR_VILLAGE = "C", "T01", "T01V01", "T02", "T02V01"
ID_NUMBER = "43062119520315442X"
PHONE = "13907301234"
SECRETS = (ID_NUMBER.encode(), PHONE.encode())


def form(**fields: Any) -> RegisterForm:
    values: dict[str, Any] = {
        "matter": "MZ-001",
        "applicant_name": "赵桂兰",
        "applicant_id_number": ID_NUMBER,
        "applicant_phone": PHONE,
        "actor": "李代办",
    }
    return RegisterForm(**{**values, **fields})


def readable_bytes(frames: list[bytes], directory: Any) -> list[bytes]:
    """Every frame as stored, and its body as decompressed: whatever anyone holding the frame can read."""
    out = []
    for frame in frames:
        out.append(frame)
        payload = open_frame(frame, directory).payload
        out.append(zlib.decompress(payload.body) if payload.encoding == ENC_ZLIB else payload.body)
    return out


def assert_no_secrets(blobs: list[bytes], where: str) -> None:
    for blob in blobs:
        for secret in SECRETS:
            assert secret not in blob, f"{secret!r} in clear in {where}"


def database_files_without_secrets(root: Path) -> int:
    """Check every SQLite file (and WAL) under ``root`` byte for byte; how many there were."""
    files = [p for p in root.rglob("*.db*") if p.is_file()]
    for path in files:
        assert_no_secrets([path.read_bytes()], str(path.relative_to(root)))
    return len(files)


async def register_and_submit(net: Net, **fields: Any) -> str:
    service: ErrandService = net.service(VILLAGE)
    errand = (await service.register(form(**fields))).errand
    await service.act(errand, ActionForm(kind="submit", actor="李代办"))
    return errand


async def test_a_register_batch_carries_no_id_number_or_phone_in_clear(network: NetworkFactory) -> None:
    net = await network(2, 1)
    errand = await register_and_submit(net, summary="独居老人" * 40)  # long enough for a zlib body
    village: Store = net.stores[VILLAGE]
    await village.seal_outbox(force=True)
    frames = await village.frames_for_node(TOWN)
    assert frames
    batches = [open_frame(f, net.directory) for f in frames]
    registers = [a for b in batches for a in b.actions if isinstance(a, Register)]
    assert len(registers) == 1
    (reg,) = registers
    assert reg.errand == errand
    assert (reg.applicant.name, reg.applicant.id_number, reg.applicant.phone) == ("赵桂兰", "", "")
    assert [node for node, _ in sealed_to(reg.sealed)] == [C, TOWN, VILLAGE]
    assert_no_secrets(readable_bytes(frames, net.directory), "the village's frames")
    assert ENC_ZLIB in {b.payload.encoding for b in batches}  # the check looked inside a compressed body too


async def test_the_county_reads_the_phone_a_sibling_township_never_gets_the_errand(
    network: NetworkFactory, tmp_path: Path
) -> None:
    net = await network(2, 1)
    errand = await register_and_submit(net)

    # The village syncs with its township; the township's uplink is down, so it carries a file to the county.
    assert await net.sync_node(VILLAGE) is not None
    town: Store = net.stores[TOWN]
    frames = await town.frames_for_node(C)
    carried = write_carry(CarryHeader(exporter=TOWN, recipient=C, created=town.clock.now(), count=len(frames)), frames)
    assert_no_secrets([carried], "the carried file")
    assert_no_secrets(readable_bytes(list(read_carry(carried).frames), net.directory), "the carried frames")

    county: Store = net.stores[C]
    outcome = await county.receive(read_carry(carried).frames, peer=f"file:{TOWN}")
    assert {r.status for r in outcome.results} == {"stored"}
    assert await county.applicant_phone(errand) == PHONE
    row = await county.errand(errand)
    assert row is not None
    applicant = row["history"][0]["applicant"]
    assert applicant == {"name": "赵桂兰", "id_number": ID_NUMBER, "phone": PHONE, "sealed": True, "readable": True}
    assert "sealed" not in row["history"][0]  # the ciphertext is not handed on by the view
    view = await town.applicant(errand)
    assert view is not None and (view.id_number, view.phone, view.readable) == (ID_NUMBER, PHONE, True)

    await net.sync_all(rounds=2)
    assert await net.divergence() == []
    for node in (OTHER_TOWN, FAR_VILLAGE):
        store: Store = net.stores[node]
        assert await store.errand(errand) is None
        assert await store.applicant(errand) is None
        async with store.db.reader.connect() as conn:
            held = await conn.scalar(select(func.count()).select_from(t.batches).where(t.batches.c.scope == VILLAGE))
        assert held == 0, f"{node} holds batches of {VILLAGE}'s errands"

    # At rest, no node's database file (nor its WAL) holds the details in clear: village disks rely on the seal.
    assert database_files_without_secrets(tmp_path) >= 5


async def test_a_node_without_its_sealing_key_loaded_shows_the_name_only(network: NetworkFactory) -> None:
    net = await network(1, 1)
    errand = await register_and_submit(net)
    await net.sync_all()
    county: Store = net.stores[C]
    signing_only = SigningKey.from_private_bytes(county.key.private_bytes())
    blind = Store(county.db, node_id=C, key=signing_only, directory=net.directory)
    await blind.start()
    assert blind.sealing_key is None
    assert await blind.applicant_phone(errand) == ""
    row = await blind.errand(errand)
    assert row is not None
    assert row["history"][0]["applicant"] == {
        "name": "赵桂兰",
        "id_number": "",
        "phone": "",
        "sealed": True,
        "readable": False,
    }
    assert row["applicant_name"] == "赵桂兰"  # lists and receipts keep working


async def test_a_sealed_blob_copied_into_another_errand_does_not_open(network: NetworkFactory) -> None:
    net = await network(1, 1)
    first = await register_and_submit(net)
    village: Store = net.stores[VILLAGE]
    async with village.db.reader.connect() as conn:
        body = await conn.scalar(
            select(t.actions.c.body).where(t.actions.c.errand == first, t.actions.c.kind == "register")
        )
    original = decode_action(body)
    assert isinstance(original, Register)
    other = new_errand_id(VILLAGE)

    def build(_: Any, at: int) -> Register:
        return Register(
            id=new_action_id(),
            errand=other,
            scope=VILLAGE,
            node=VILLAGE,
            actor="李代办",
            role="代办员",
            at=at,
            matter="MZ-001",
            applicant=Applicant(name="冒名者"),
            sealed=original.sealed,
        )

    await village.act(other, build)
    await net.sync_all()
    for node in (C, TOWN, VILLAGE):
        view = await net.stores[node].applicant(other)
        assert view is not None and (view.id_number, view.phone, view.readable) == ("", "", False)
        assert (await net.stores[node].applicant(first)).phone == PHONE  # type: ignore[union-attr]


async def test_an_old_unsealed_registration_still_travels_and_shows(network: NetworkFactory) -> None:
    """A village not yet upgraded writes the details in clear; every node still decodes and shows them."""
    net = await network(1, 1)
    village: Store = net.stores[VILLAGE]
    errand = new_errand_id(VILLAGE)

    def build(_: Any, at: int) -> Register:
        return Register(
            id=new_action_id(),
            errand=errand,
            scope=VILLAGE,
            node=VILLAGE,
            actor="李代办",
            role="代办员",
            at=at,
            matter="MZ-001",
            applicant=Applicant(name="赵桂兰", id_number=ID_NUMBER, phone=PHONE),
        )

    await village.act(errand, build)
    await net.service(VILLAGE).act(errand, ActionForm(kind="submit", actor="李代办"))
    await net.sync_all()
    for node in (C, TOWN, VILLAGE):
        store: Store = net.stores[node]
        row = await store.errand(errand)
        assert row is not None
        assert row["history"][0]["applicant"] == {"name": "赵桂兰", "id_number": ID_NUMBER, "phone": PHONE}
        assert await store.applicant_phone(errand) == PHONE
    assert await net.divergence() == []


async def test_a_county_whose_directory_has_no_sealing_keys_registers_in_clear(tmp_path: Path) -> None:
    """Before sealing keys are listed (rollout: readers first), registration works exactly as before."""
    layout = county_layout(1, 1, sealing=False)
    directory = layout.directory
    dbs = []
    stores: dict[str, Store] = {}
    try:
        for entry in layout.entries:
            db = await open_database(f"sqlite:///{tmp_path / entry.id}.db")
            dbs.append(db)
            stores[entry.id] = Store(db, node_id=entry.id, key=layout.keys[entry.id], directory=directory)
            await stores[entry.id].start()
        service = ErrandService(stores[VILLAGE])
        errand = (await service.register(form())).errand
        await stores[VILLAGE].seal_outbox(force=True)
        frames = await stores[VILLAGE].frames_for_node(TOWN)
        (reg,) = [a for f in frames for a in open_frame(f, directory).actions if isinstance(a, Register)]
        assert reg.sealed == b"" and (reg.applicant.id_number, reg.applicant.phone) == (ID_NUMBER, PHONE)
        assert any(ID_NUMBER.encode() in b for b in readable_bytes(frames, directory))  # the detector works
        for child, parent in ((VILLAGE, TOWN), (TOWN, C)):
            await sync_once(stores[child], LocalTransport(SyncServer(stores[parent])))
        assert await stores[C].applicant_phone(errand) == PHONE
    finally:
        for db in dbs:
            await db.dispose()


async def test_every_node_on_the_path_can_open_the_stored_blob_with_its_key_file(network: NetworkFactory) -> None:
    net = await network(2, 1)
    errand = await register_and_submit(net)
    await net.sync_all()
    async with net.stores[C].db.reader.connect() as conn:
        body = await conn.scalar(
            select(t.actions.c.body).where(t.actions.c.errand == errand, t.actions.c.kind == "register")
        )
    reg = decode_action(body)
    assert isinstance(reg, Register)
    for node in (C, TOWN, VILLAGE):
        key = net.layout.sealing_key(node)
        assert key is not None
        assert open_for(key, reg.sealed, errand, VILLAGE).phone == PHONE
    for node in (OTHER_TOWN, FAR_VILLAGE):
        key = net.layout.sealing_key(node)
        assert key is not None
        with pytest.raises(SealError):
            open_for(key, reg.sealed, errand, VILLAGE)
