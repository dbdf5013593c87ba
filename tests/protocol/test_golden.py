"""Golden bytes: frames and encodings written by an earlier version must keep their meaning.

The fixtures in ``fixtures/`` were produced once by ``fixtures/make_golden.py`` and are data, not
output: if one of these tests fails, the wire format changed. Read protocol/VERSIONING.md.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
import typing
import zlib
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

from protocol.actions import Action
from protocol.batch import ENC_PLAIN, ENC_ZLIB, FORMAT_VERSION, open_frame, seal
from protocol.encoding import decode_action, decode_actions, encode
from protocol.errors import SignatureError
from protocol.signing import key_id_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sanji_make_golden", FIXTURES / "make_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden = _load_generator()
GENERATIONS = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in golden.generations()}
FIRST = GENERATIONS["actions_v1.json"]
LATEST = GENERATIONS[golden.generations()[-1].name]
ALL_KINDS = sorted(cls.__struct_config__.tag for cls in typing.get_args(Action))
STORED = [(name, kind) for name, doc in GENERATIONS.items() for kind in sorted(doc["actions"])]


def frame_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- keys ----------------------------------------------------------------------------------------


def test_golden_keys_and_key_ids_are_stable() -> None:
    keys = golden.golden_keys()
    assert {node: key.key_id for node, key in keys.items()} == FIRST["key_ids"] == LATEST["key_ids"]
    for key in keys.values():
        assert key.key_id == key_id_for("ed25519", key.public_bytes)
        assert key.key_id == hashlib.sha256(b"ed25519:" + key.public_bytes).hexdigest()[:16]


# --- frames ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(golden.FRAMES))
def test_stored_frame_is_unchanged(name: str) -> None:
    assert hashlib.sha256(frame_bytes(name)).hexdigest() == FIRST["frames"][name]["sha256"]


@pytest.mark.parametrize("name", sorted(golden.FRAMES))
def test_stored_frame_still_opens_and_means_the_same(name: str) -> None:
    spec = golden.frame_specs()[name]
    frame = frame_bytes(name)
    assert frame[:4] == b"SJB" + bytes([FORMAT_VERSION])
    batch = open_frame(frame, golden.golden_directory())
    assert batch.hash == hashlib.sha256(frame).digest()
    payload = batch.payload
    assert payload.format == FORMAT_VERSION
    assert (payload.origin, payload.scope, payload.seq, payload.prev, payload.created) == (
        spec["origin"],
        spec["scope"],
        spec["seq"],
        spec["prev"],
        spec["created"],
    )
    assert payload.audience == spec["audience"]
    assert payload.key_id == FIRST["key_ids"][spec["origin"]]
    assert payload.count == len(spec["actions"])
    assert batch.actions == spec["actions"]
    # The body is a msgpack array of exactly those actions, compressed or not.
    body = zlib.decompress(payload.body) if payload.encoding == ENC_ZLIB else payload.body
    assert decode_actions(body) == list(spec["actions"])


def test_the_fixtures_cover_both_body_encodings() -> None:
    encodings = {open_frame(frame_bytes(n), golden.golden_directory()).payload.encoding for n in golden.FRAMES}
    assert encodings == {ENC_PLAIN, ENC_ZLIB}


@pytest.mark.parametrize("name", sorted(golden.FRAMES))
def test_frame_layout_and_signature_are_reproducible(name: str) -> None:
    """Re-encoding the payload and re-signing it (Ed25519 is deterministic) gives the stored bytes."""
    frame = frame_bytes(name)
    batch = open_frame(frame, golden.golden_directory())
    payload = encode(batch.payload)
    key = golden.golden_keys()[batch.origin]
    kid = key.key_id.encode()
    signed = b"SJB" + bytes([FORMAT_VERSION, len(kid)]) + kid + struct.pack(">I", len(payload)) + payload
    assert signed == frame[: len(signed)]
    signature = key.sign(signed)
    assert frame == signed + struct.pack(">H", len(signature)) + signature


def test_sealing_today_gives_the_stored_plain_frame_byte_for_byte() -> None:
    """The whole writer path, pinned: while the actions encode as they did, seal() makes the same bytes.

    (The zlib frame is not re-sealed: another zlib build may compress the same body differently.)
    """
    spec = golden.frame_specs()["batch_v1_plain.bin"]
    stored = frame_bytes("batch_v1_plain.bin")
    body = open_frame(stored, golden.golden_directory()).payload.body
    if encode(list(spec["actions"])) != body:
        assert len(GENERATIONS) > 1, "action encodings changed: add a generation (make_golden.py --new-generation)"
        return
    key = golden.golden_keys()[spec["origin"]]
    assert seal(key=key, **spec) == stored
    assert golden.build_frame("batch_v1_plain.bin") == stored


def test_stored_frames_are_refused_by_a_directory_without_their_keys() -> None:
    from sanji.layout import county_layout

    fresh = county_layout(1, 1).directory  # same node ids, other keys
    for name in golden.FRAMES:
        with pytest.raises(SignatureError, match="unknown key"):
            open_frame(frame_bytes(name), fresh)


# --- action encodings ----------------------------------------------------------------------------


def test_the_latest_generation_covers_every_action_kind() -> None:
    assert sorted(golden.golden_actions()) == ALL_KINDS, "add the new kind to golden_actions() in make_golden.py"
    assert sorted(LATEST["actions"]) == ALL_KINDS, "add a generation: make_golden.py --new-generation"


@pytest.mark.parametrize("kind", sorted(LATEST["actions"]))
def test_encoding_is_byte_for_byte_the_latest_stored_one(kind: str) -> None:
    action = golden.golden_actions()[kind]
    assert encode(action).hex() == LATEST["actions"][kind]


@pytest.mark.parametrize("kind", sorted(LATEST["actions"]))
def test_latest_stored_encoding_decodes_to_the_same_action(kind: str) -> None:
    action = decode_action(bytes.fromhex(LATEST["actions"][kind]))
    assert action == golden.golden_actions()[kind]


@pytest.mark.parametrize("kind", sorted(FIRST["actions"]))
def test_first_generation_still_means_exactly_what_it_meant(kind: str) -> None:
    assert decode_action(bytes.fromhex(FIRST["actions"][kind])) == golden.v1_actions()[kind]


@pytest.mark.parametrize(("generation", "kind"), STORED)
def test_every_stored_encoding_still_decodes_under_the_evolution_rules(generation: str, kind: str) -> None:
    """VERSIONING.md, checked on real old bytes: every field an old encoding carries is still a field
    of today's struct, in the same relative order, and decodes to the same value."""
    old_bytes = bytes.fromhex(GENERATIONS[generation]["actions"][kind])
    action = decode_action(old_bytes)
    assert type(action).__struct_config__.tag == kind
    old = msgspec.msgpack.decode(old_bytes)
    assert old.pop("kind") == kind
    assert_means_the_same(old, action, kind)


def assert_means_the_same(old: object, new: object, where: str) -> None:
    """``old`` is a raw decoded map/value of an old encoding; ``new`` is what today's structs made of it."""
    if isinstance(old, dict):
        assert isinstance(new, msgspec.Struct), f"{where} is no longer a struct"
        fields = new.__struct_fields__
        missing = [k for k in old if k not in fields]
        assert not missing, f"{where}: fields {missing} were removed or renamed"
        assert [f for f in fields if f in old] == list(old), f"{where}: fields were reordered"
        for key, value in old.items():
            assert_means_the_same(value, getattr(new, key), f"{where}.{key}")
    else:
        again = msgspec.msgpack.decode(encode(new))
        assert type(again) is type(old) and again == old, f"{where}: {old!r} now reads back as {new!r}"


def test_the_rules_check_notices_what_it_must() -> None:
    class Old(msgspec.Struct, kw_only=True):
        id: str
        at: int
        base: int = 0

    class Appended(msgspec.Struct, kw_only=True):
        id: str
        at: int
        base: int = 0
        extra: str = ""

    class Reordered(msgspec.Struct, kw_only=True):
        at: int
        id: str
        base: int = 0

    class Renamed(msgspec.Struct, kw_only=True):
        id: str
        time: int = 0
        base: int = 0

    class Retyped(msgspec.Struct, kw_only=True):
        id: str
        at: float
        base: int = 0

    raw = msgspec.msgpack.decode(msgspec.msgpack.encode(Old(id="a", at=1)))
    assert_means_the_same(raw, msgspec.convert(raw, Appended), "appended")
    for broken in (Reordered, Renamed, Retyped):
        with pytest.raises(AssertionError):
            assert_means_the_same(raw, msgspec.convert(raw, broken), broken.__name__)
