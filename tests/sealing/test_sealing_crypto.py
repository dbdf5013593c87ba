"""protocol.sealing on its own: who can open a sealed blob, and that nothing else can.

The layout is ``county_layout(2, 2)``::

    C ── T01 ── T01V01, T01V02
      └─ T02 ── T02V01, T02V02

An errand of T01V01 is sealed to its path C, T01, T01V01 — never to the sister village
T01V02, the other township T02 or its villages.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

from protocol.actions import Applicant, Register
from protocol.encoding import decode_action, encode
from protocol.errand import project
from protocol.errors import SanjiError, SignatureError
from protocol.sealing import (
    FORMAT_VERSION,
    MAGIC,
    SUITE,
    Personal,
    SealError,
    SealingKey,
    applicant_view,
    open_for,
    recipients_for,
    seal_personal,
    sealed_to,
)
from protocol.signing import X25519, KeyRecord, key_id_for, verify
from protocol.topology import Directory, NodeEntry
from sanji.layout import Layout, county_layout

C, T01, VILLAGE, SISTER, T02, FAR = "C", "T01", "T01V01", "T01V02", "T02", "T02V01"
PATH = (C, T01, VILLAGE)
OFF_PATH = (SISTER, T02, FAR, "T02V02")
ERRAND = "T01V01-0011223344556677"
DETAILS = Personal(id_number="43062119520315442X", phone="13907301234", income="月收入800元", health="高血压")


@pytest.fixture(scope="module")
def layout() -> Layout:
    return county_layout(2, 2)


@pytest.fixture(scope="module")
def sealed(layout: Layout) -> bytes:
    recipients = recipients_for(layout.directory, VILLAGE)
    assert recipients is not None
    return seal_personal(DETAILS, recipients, errand=ERRAND, scope=VILLAGE)


def key_of(layout: Layout, node: str) -> SealingKey:
    key = layout.sealing_key(node)
    assert key is not None
    return key


# --- who can open ---------------------------------------------------------------------------------


def test_recipients_are_exactly_the_path_root_first(layout: Layout) -> None:
    recipients = recipients_for(layout.directory, VILLAGE)
    assert recipients is not None
    assert [r.node for r in recipients] == list(PATH)
    assert all(r.algorithm == X25519 for r in recipients)


@pytest.mark.parametrize("node", PATH)
def test_every_node_on_the_path_opens_it(layout: Layout, sealed: bytes, node: str) -> None:
    assert open_for(key_of(layout, node), sealed, ERRAND, VILLAGE) == DETAILS


@pytest.mark.parametrize("node", OFF_PATH)
def test_a_node_off_the_path_cannot_open_it(layout: Layout, sealed: bytes, node: str) -> None:
    with pytest.raises(SealError, match="not sealed to key"):
        open_for(key_of(layout, node), sealed, ERRAND, VILLAGE)


def test_a_key_off_the_path_cannot_open_it_even_by_claiming_a_recipients_key_id(layout: Layout, sealed: bytes) -> None:
    """Pretending to be the county (its key id, another private key) gives nothing: the KEK differs."""
    impostor = SealingKey.from_private_bytes(key_of(layout, SISTER).private_bytes())
    impostor.key_id = key_of(layout, C).key_id
    with pytest.raises(SealError, match="do not open"):
        open_for(impostor, sealed, ERRAND, VILLAGE)


def test_sealed_to_lists_the_path_without_opening(layout: Layout, sealed: bytes) -> None:
    assert sealed_to(sealed) == tuple((n, key_of(layout, n).key_id) for n in PATH)


def test_the_blob_holds_none_of_the_details_in_clear(sealed: bytes) -> None:
    for secret in (DETAILS.id_number, DETAILS.phone, DETAILS.income, DETAILS.health):
        assert secret.encode() not in sealed
    assert sealed[:4] == MAGIC + bytes([FORMAT_VERSION])


def test_each_seal_uses_a_fresh_ephemeral_key_and_content_key(layout: Layout) -> None:
    recipients = recipients_for(layout.directory, VILLAGE)
    assert recipients is not None
    a = seal_personal(DETAILS, recipients, errand=ERRAND, scope=VILLAGE)
    b = seal_personal(DETAILS, recipients, errand=ERRAND, scope=VILLAGE)
    assert a != b
    raw_a, raw_b = msgspec.msgpack.decode(a[4:]), msgspec.msgpack.decode(b[4:])
    assert raw_a[0] == raw_b[0] == SUITE
    assert raw_a[1] != raw_b[1]  # ephemeral public key
    assert raw_a[3] != raw_b[3]  # nonce
    assert open_for(key_of(layout, C), a, ERRAND, VILLAGE) == open_for(key_of(layout, C), b, ERRAND, VILLAGE)


# --- integrity and binding --------------------------------------------------------------------------


def test_changing_any_byte_makes_it_unreadable_for_everyone(layout: Layout, sealed: bytes) -> None:
    keys = [key_of(layout, n) for n in PATH]
    for i in range(len(sealed)):
        for flip in (0x01, 0x80):
            bad = sealed[:i] + bytes([sealed[i] ^ flip]) + sealed[i + 1 :]
            for key in keys:
                with pytest.raises(SealError):
                    open_for(key, bad, ERRAND, VILLAGE)


def test_truncated_or_extended_blobs_are_refused(layout: Layout, sealed: bytes) -> None:
    key = key_of(layout, VILLAGE)
    for bad in (b"", sealed[:3], sealed[:4], sealed[:-1], sealed[:40], sealed + b"\x00", sealed + sealed):
        with pytest.raises(SealError):
            open_for(key, bad, ERRAND, VILLAGE)


def test_a_blob_moved_to_another_errand_does_not_open(layout: Layout, sealed: bytes) -> None:
    for node in PATH:
        with pytest.raises(SealError, match="another errand"):
            open_for(key_of(layout, node), sealed, "T01V01-ffffffffffffffff", VILLAGE)


def test_a_blob_claimed_for_another_scope_does_not_open(layout: Layout, sealed: bytes) -> None:
    with pytest.raises(SealError):
        open_for(key_of(layout, C), sealed, ERRAND, T01)


def test_a_register_carrying_another_errands_blob_shows_no_details(layout: Layout, sealed: bytes) -> None:
    moved = Register(
        id="x",
        errand="T01V01-ffffffffffffffff",
        scope=VILLAGE,
        node=VILLAGE,
        actor="代办员",
        role="代办员",
        at=1,
        matter="MZ-001",
        applicant=Applicant(name="赵桂兰"),
        sealed=sealed,
    )
    view = applicant_view(moved, key_of(layout, C))
    assert (view.name, view.id_number, view.phone, view.sealed, view.readable) == ("赵桂兰", "", "", True, False)


def test_unsupported_format_or_suite_is_refused_with_a_hint(layout: Layout, sealed: bytes) -> None:
    with pytest.raises(SealError, match="format 2") as info:
        open_for(key_of(layout, C), MAGIC + b"\x02" + sealed[4:], ERRAND, VILLAGE)
    assert "Upgrade" in info.value.hint
    raw = msgspec.msgpack.decode(sealed[4:])
    raw[0] = "x448-hkdf-sha512-aes256gcm"
    with pytest.raises(SealError, match="suite") as info:
        open_for(key_of(layout, C), sealed[:4] + msgspec.msgpack.encode(raw), ERRAND, VILLAGE)
    assert "Upgrade" in info.value.hint


def test_seal_error_is_a_sanji_error_that_is_never_retried() -> None:
    error = SealError("x")
    assert isinstance(error, SanjiError) and not error.retryable and error.hint


# --- sealing needs the whole path --------------------------------------------------------------------


def test_no_recipients_when_any_node_on_the_path_has_no_sealing_key(layout: Layout) -> None:
    entries = [
        msgspec.structs.replace(e, keys=tuple(k for k in e.keys if k.algorithm != X25519)) if e.id == T01 else e
        for e in layout.entries
    ]
    directory = Directory(entries)
    assert recipients_for(directory, VILLAGE) is None
    assert recipients_for(directory, FAR) is not None  # T02's path is complete
    assert recipients_for(county_layout(1, 1, sealing=False).directory, "T01V01") is None


def test_a_revoked_sealing_key_is_not_sealed_to(layout: Layout) -> None:
    entries = [
        msgspec.structs.replace(
            e, keys=tuple(msgspec.structs.replace(k, revoked=k.algorithm == X25519) for k in e.keys)
        )
        if e.id == C
        else e
        for e in layout.entries
    ]
    directory = Directory(entries)
    assert directory.sealing_key(C) is None
    assert recipients_for(directory, VILLAGE) is None


def test_a_rotated_sealing_key_the_last_listed_one_wins(layout: Layout) -> None:
    fresh = SealingKey.generate()
    entries = [msgspec.structs.replace(e, keys=(*e.keys, fresh.record(C))) if e.id == C else e for e in layout.entries]
    assert Directory(entries).sealing_key(C) == fresh.record(C)


def test_sealing_refuses_keys_that_are_not_sealing_keys(layout: Layout) -> None:
    signing = layout.keys[C].record(C)
    with pytest.raises(SealError, match="not a sealing key"):
        seal_personal(DETAILS, [signing], errand=ERRAND, scope=VILLAGE)
    record = key_of(layout, C).record(C)
    with pytest.raises(SealError, match="does not belong"):
        seal_personal(DETAILS, [msgspec.structs.replace(record, key_id="0" * 16)], errand=ERRAND, scope=VILLAGE)
    with pytest.raises(SealError, match="not usable"):
        bad = KeyRecord(node=C, key_id=key_id_for(X25519, b"\x00" * 31), algorithm=X25519, public_key=b"\x00" * 31)
        seal_personal(DETAILS, [bad], errand=ERRAND, scope=VILLAGE)
    with pytest.raises(SealError):
        low = KeyRecord(node=C, key_id=key_id_for(X25519, bytes(32)), algorithm=X25519, public_key=bytes(32))
        seal_personal(DETAILS, [low], errand=ERRAND, scope=VILLAGE)
    with pytest.raises(SealError, match="at least one"):
        seal_personal(DETAILS, [], errand=ERRAND, scope=VILLAGE)


# --- keys in the directory ----------------------------------------------------------------------------


def test_a_sealing_key_is_listed_beside_the_signing_key_and_never_signs(layout: Layout) -> None:
    entry = layout.directory.get(VILLAGE)
    assert [k.algorithm for k in entry.keys] == ["ed25519", X25519]
    record = entry.keys[1]
    assert record.key_id == key_id_for(X25519, record.public_key)
    assert layout.directory.key(record.key_id) == record
    with pytest.raises(SignatureError, match="sealing key"):
        verify(record, b"data", bytes(64))


def test_a_directory_json_without_sealing_keys_still_loads() -> None:
    old = county_layout(1, 1, sealing=False)
    raw = msgspec.json.encode(old.entries)
    assert b"x25519" not in raw
    directory = Directory(msgspec.json.decode(raw, type=list[NodeEntry]))
    assert directory.sealing_key("T01V01") is None


# --- old and new registrations side by side --------------------------------------------------------


def register(**fields: object) -> Register:
    base: dict[str, object] = {
        "id": "r1",
        "errand": ERRAND,
        "scope": VILLAGE,
        "node": VILLAGE,
        "actor": "代办员",
        "role": "代办员",
        "at": 1 << 16,
        "matter": "MZ-001",
    }
    return Register(**{**base, **fields})  # type: ignore[arg-type]


def test_an_unsealed_registration_shows_its_clear_fields_and_encodes_as_before(layout: Layout) -> None:
    old = register(applicant=Applicant(name="赵桂兰", id_number=DETAILS.id_number, phone=DETAILS.phone))
    assert b"sealed" not in encode(old)  # omit_defaults: byte-identical to a pre-sealing registration
    view = applicant_view(old, key_of(layout, C))
    assert (view.id_number, view.phone, view.sealed, view.readable) == (DETAILS.id_number, DETAILS.phone, False, True)
    assert applicant_view(old, None).phone == DETAILS.phone


def test_the_projection_and_digest_ignore_the_seal(layout: Layout, sealed: bytes) -> None:
    """Replicas agree with or without the sealed bytes (an old node drops the unknown field)."""
    new = register(applicant=Applicant(name="赵桂兰"), sealed=sealed)
    without = msgspec.structs.replace(new, sealed=b"")
    a = project(ERRAND, [new], layout.directory)
    b = project(ERRAND, [without], layout.directory)
    assert a.state is not None and a.state.applicant_name == "赵桂兰"
    assert a.digest == b.digest


class OldApplicant(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    id_number: str = ""
    phone: str = ""


class OldRegister(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="register"):
    """What a node from before sealing knows of a registration (the fields that matter here)."""

    id: str
    errand: str
    matter: str
    applicant: OldApplicant
    receipt: str = ""


def test_an_old_node_decodes_a_sealed_registration(sealed: bytes) -> None:
    """A node from before sealing ignores the unknown ``sealed`` key and reads the name."""
    new = register(applicant=Applicant(name="赵桂兰"), sealed=sealed, receipt="R1")
    old = msgspec.msgpack.decode(encode(new), type=OldRegister)
    assert (old.applicant.name, old.applicant.id_number, old.applicant.phone, old.receipt) == ("赵桂兰", "", "", "R1")
    assert decode_action(encode(new)) == new


# --- the golden blob pins the format -------------------------------------------------------------------


def _golden() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "protocol" / "fixtures" / "make_golden.py"
    spec = importlib.util.spec_from_file_location("sanji_make_golden_for_sealing", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_golden_sealed_blob_still_opens_for_its_whole_path() -> None:
    golden = _golden()
    keys = golden.golden_sealing_keys()
    for node in (golden.COUNTY_ID, golden.TOWN_ID, golden.VILLAGE_ID):
        assert open_for(keys[node], golden.GOLDEN_SEALED, golden.ERRAND, golden.VILLAGE_ID) == golden.GOLDEN_PERSONAL
    register_action = golden.golden_actions()["register"]
    assert register_action.sealed == golden.GOLDEN_SEALED
    with pytest.raises(SealError):
        open_for(SealingKey.generate(), golden.GOLDEN_SEALED, golden.ERRAND, golden.VILLAGE_ID)
