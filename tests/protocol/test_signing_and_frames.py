"""Frames: what a receiver accepts, and every way it refuses bytes it must not trust."""

from __future__ import annotations

import hashlib
import random
import zlib

import pytest
from protocol_kit import (
    COUNTY_ID,
    FAR_VILLAGE,
    OTHER_TOWN,
    SISTER_VILLAGE,
    TOWN_ID,
    VILLAGE_ID,
    happy_path,
    note,
    payload_for,
    raw_frame,
    seal_for,
    with_revoked,
)

from protocol import limits
from protocol.batch import ENC_PLAIN, ENC_ZLIB, FORMAT_VERSION, frame_hash, open_frame, split_frame
from protocol.encoding import encode
from protocol.errors import FrameError, FrameTooLarge, RouteError, SanjiError, SignatureError, UnsupportedFormat
from protocol.signing import KeyRecord, SigningKey, verify
from protocol.topology import Directory
from sanji.layout import Layout


def small_frame(layout: Layout) -> bytes:
    """One short action: the body stays plain msgpack."""
    return seal_for(layout, VILLAGE_ID, [note(VILLAGE_ID, "n1", text="已受理")])


def zlib_frame(layout: Layout) -> bytes:
    notes = [note(VILLAGE_ID, f"n{i:03d}", text="申请人补交材料,已核对原件。" * 3) for i in range(12)]
    return seal_for(layout, VILLAGE_ID, notes)


# --- round trip -----------------------------------------------------------------------------


def test_seal_open_round_trip(layout: Layout, directory: Directory) -> None:
    actions = happy_path(escalate=False)[:2]
    frame = seal_for(layout, VILLAGE_ID, actions, seq=3, prev=bytes(range(32)))
    batch = open_frame(frame, directory)
    assert batch.actions == tuple(actions)
    assert batch.frame == frame
    assert batch.hash == hashlib.sha256(frame).digest() == frame_hash(frame)
    assert (batch.origin, batch.scope, batch.seq, batch.prev) == (VILLAGE_ID, VILLAGE_ID, 3, bytes(range(32)))
    assert batch.payload.audience == (COUNTY_ID, TOWN_ID)
    assert batch.payload.key_id == layout.keys[VILLAGE_ID].key_id
    assert batch.payload.count == 2


def test_small_bodies_stay_plain(layout: Layout, directory: Directory) -> None:
    batch = open_frame(small_frame(layout), directory)
    assert batch.payload.encoding == ENC_PLAIN
    assert batch.payload.body == encode(list(batch.actions))
    assert [a.id for a in batch.actions] == ["n1"]


def test_large_bodies_are_compressed_and_round_trip(layout: Layout, directory: Directory) -> None:
    frame = zlib_frame(layout)
    batch = open_frame(frame, directory)
    assert batch.payload.encoding == ENC_ZLIB
    assert len(batch.payload.body) < len(encode(list(batch.actions)))
    assert [a.id for a in batch.actions] == [f"n{i:03d}" for i in range(12)]


def test_a_town_writes_to_its_county_and_the_errands_village(layout: Layout, directory: Directory) -> None:
    frame = seal_for(layout, TOWN_ID, happy_path(escalate=False)[2:3], scope=VILLAGE_ID)
    batch = open_frame(frame, directory)
    assert (batch.origin, batch.scope, batch.payload.audience) == (TOWN_ID, VILLAGE_ID, (COUNTY_ID, VILLAGE_ID))


# --- every single changed bit is refused ------------------------------------------------------


@pytest.mark.parametrize("make_frame", [small_frame, zlib_frame], ids=["plain", "zlib"])
def test_every_flipped_bit_is_refused(layout: Layout, directory: Directory, make_frame) -> None:
    frame = make_frame(layout)
    open_frame(frame, directory)  # the original is fine
    accepted = []
    for position in range(len(frame)):
        for bit in range(8):
            damaged = bytearray(frame)
            damaged[position] ^= 1 << bit
            try:
                open_frame(bytes(damaged), directory)
            except SanjiError:
                continue
            accepted.append((position, bit))
    assert accepted == [], f"damaged frames were accepted at (byte, bit) {accepted[:10]}"


def test_every_changed_byte_value_in_the_header_is_refused(layout: Layout, directory: Directory) -> None:
    frame = small_frame(layout)
    header = 5 + frame[4] + 4
    for position in range(header):
        for value in range(256):
            if value == frame[position]:
                continue
            damaged = frame[:position] + bytes([value]) + frame[position + 1 :]
            with pytest.raises(SanjiError):
                open_frame(damaged, directory)


def test_the_signature_is_over_the_exact_bytes(layout: Layout) -> None:
    frame = small_frame(layout)
    _, signed, signature = split_frame(frame)
    record = layout.keys[VILLAGE_ID].record(VILLAGE_ID)
    verify(record, signed, signature)
    with pytest.raises(SignatureError):
        verify(record, signed + b"\x00", signature)
    with pytest.raises(SignatureError):
        verify(record, signed, signature[:-1])


# --- keys -------------------------------------------------------------------------------------


def test_key_not_in_the_directory_is_refused(layout: Layout, directory: Directory) -> None:
    stranger = SigningKey.generate()
    frame = seal_for(layout, VILLAGE_ID, happy_path(escalate=False)[:1], key=stranger)
    with pytest.raises(SignatureError, match="unknown key"):
        open_frame(frame, directory)


def test_another_nodes_key_cannot_claim_the_origin(layout: Layout, directory: Directory) -> None:
    # The sister village is in the directory and signs correctly, but writes as VILLAGE_ID.
    frame = seal_for(layout, VILLAGE_ID, happy_path(escalate=False)[:1], key=layout.keys[SISTER_VILLAGE])
    with pytest.raises(SignatureError, match="claims origin"):
        open_frame(frame, directory)


def test_the_parent_cannot_write_in_the_childs_name(layout: Layout, directory: Directory) -> None:
    frame = seal_for(layout, VILLAGE_ID, happy_path(escalate=False)[:1], key=layout.keys[TOWN_ID])
    with pytest.raises(SignatureError):
        open_frame(frame, directory)


def test_payload_naming_a_different_key_than_its_frame_is_refused(layout: Layout, directory: Directory) -> None:
    key = layout.keys[VILLAGE_ID]
    body = encode(happy_path(escalate=False)[:1])
    payload = payload_for(directory, key, VILLAGE_ID, body, count=1, key_id=layout.keys[TOWN_ID].key_id)
    with pytest.raises(SignatureError, match="different key"):
        open_frame(raw_frame(key, payload), directory)


def test_revoked_key_is_refused(layout: Layout) -> None:
    frame = small_frame(layout)
    with pytest.raises(SignatureError, match="revoked"):
        open_frame(frame, with_revoked(layout, VILLAGE_ID))
    # Revoking someone else's key changes nothing for this stream.
    assert open_frame(frame, with_revoked(layout, TOWN_ID)).seq == 1


def test_key_record_with_an_unknown_algorithm_is_refused(layout: Layout) -> None:
    frame = small_frame(layout)
    key = layout.keys[VILLAGE_ID]
    record = KeyRecord(node=VILLAGE_ID, key_id=key.key_id, algorithm="sm2", public_key=key.public_bytes)
    _, signed, signature = split_frame(frame)
    with pytest.raises(SignatureError, match="sm2"):
        verify(record, signed, signature)


def test_signing_key_survives_a_round_trip_through_its_private_bytes() -> None:
    key = SigningKey.generate()
    again = SigningKey.from_private_bytes(key.private_bytes())
    assert (again.key_id, again.public_bytes) == (key.key_id, key.public_bytes)
    assert again.sign(b"x") == key.sign(b"x")  # Ed25519 is deterministic
    assert SigningKey.generate().key_id != key.key_id


# --- sizes and shapes -------------------------------------------------------------------------


def test_every_truncation_is_refused(layout: Layout, directory: Directory) -> None:
    frame = small_frame(layout)
    for length in range(len(frame)):
        with pytest.raises(FrameError):
            open_frame(frame[:length], directory)


def test_trailing_bytes_are_refused(layout: Layout, directory: Directory) -> None:
    frame = small_frame(layout)
    with pytest.raises(FrameError, match="does not match its header"):
        open_frame(frame + b"\x00", directory)


def test_oversized_frame_is_refused_before_anything_else(directory: Directory) -> None:
    with pytest.raises(FrameTooLarge):
        open_frame(b"SJB\x01" + bytes(limits.MAX_FRAME_BYTES), directory)
    # Even garbage is judged by size first: no parsing of anything that big.
    with pytest.raises(FrameTooLarge):
        open_frame(b"\xff" * (limits.MAX_FRAME_BYTES + 1), directory)


def test_seal_refuses_what_it_could_not_send(layout: Layout) -> None:
    one = happy_path(escalate=False)[:1]
    with pytest.raises(ValueError, match="start at 1"):
        seal_for(layout, VILLAGE_ID, one, seq=0)
    with pytest.raises(ValueError, match="32-byte"):
        seal_for(layout, VILLAGE_ID, one, prev=b"\x00" * 31)
    with pytest.raises(ValueError, match="holds"):
        seal_for(layout, VILLAGE_ID, [])
    too_many = [note(VILLAGE_ID, f"n{i}") for i in range(limits.MAX_ACTIONS_PER_BATCH + 1)]
    with pytest.raises(ValueError, match="holds"):
        seal_for(layout, VILLAGE_ID, too_many)
    # Incompressible text beyond the frame limit: 200 notes of 4000 random CJK characters.
    rng = random.Random(1)
    big = [
        note(VILLAGE_ID, f"n{i}", text="".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(4000)))
        for i in range(200)
    ]
    with pytest.raises(ValueError, match="fewer actions"):
        seal_for(layout, VILLAGE_ID, big)


def test_bad_magic_is_refused(layout: Layout, directory: Directory) -> None:
    frame = small_frame(layout)
    with pytest.raises(FrameError, match="magic"):
        open_frame(b"SJX" + frame[3:], directory)
    # Correctly signed, but not with our magic.
    key = layout.keys[VILLAGE_ID]
    payload = payload_for(directory, key, VILLAGE_ID, encode(happy_path(escalate=False)[:1]), count=1)
    with pytest.raises(FrameError, match="magic"):
        open_frame(raw_frame(key, payload, magic=b"SJA"), directory)


@pytest.mark.parametrize("version", [0, FORMAT_VERSION + 1, 255])
def test_unsupported_frame_version_is_refused(layout: Layout, directory: Directory, version: int) -> None:
    key = layout.keys[VILLAGE_ID]
    payload = payload_for(directory, key, VILLAGE_ID, encode(happy_path(escalate=False)[:1]), count=1)
    frame = raw_frame(key, payload, version=version)
    with pytest.raises(UnsupportedFormat) as caught:
        open_frame(frame, directory)
    assert caught.value.retryable is False
    assert "Upgrade" in caught.value.hint


def test_payload_claiming_another_format_is_refused(layout: Layout, directory: Directory) -> None:
    key = layout.keys[VILLAGE_ID]
    body = encode(happy_path(escalate=False)[:1])
    payload = payload_for(directory, key, VILLAGE_ID, body, count=1, format=FORMAT_VERSION + 1)
    with pytest.raises(UnsupportedFormat):
        open_frame(raw_frame(key, payload), directory)


def test_non_ascii_key_id_is_refused(layout: Layout, directory: Directory) -> None:
    key = layout.keys[VILLAGE_ID]
    payload = payload_for(directory, key, VILLAGE_ID, encode(happy_path(escalate=False)[:1]), count=1)
    with pytest.raises(FrameError, match="ASCII"):
        open_frame(raw_frame(key, payload, key_id="钥匙"), directory)


def test_signed_payload_that_is_not_a_batch_payload_is_refused(layout: Layout, directory: Directory) -> None:
    key = layout.keys[VILLAGE_ID]
    with pytest.raises(FrameError, match="does not decode"):
        open_frame(raw_frame(key, encode({"format": 1, "origin": VILLAGE_ID})), directory)
    with pytest.raises(FrameError, match="does not decode"):
        open_frame(raw_frame(key, b"\xc1"), directory)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"seq": 0}, FrameError, "out of range"),
        ({"prev": b"\x00" * 31}, FrameError, "out of range"),
        ({"count": 2}, FrameError, "holds 1"),
        ({"encoding": "msgpack+lz4"}, UnsupportedFormat, "lz4"),
        ({"encoding": ENC_ZLIB}, FrameError, "decompress"),
        ({"body": b"\x91\x01"}, FrameError, "do not decode"),
        ({"body": encode([{"kind": "cancel", "id": "x"}])}, FrameError, "do not decode"),
        ({"body": encode([]), "count": 0}, FrameError, "holds 0"),
    ],
)
def test_signed_but_malformed_payloads_are_refused(
    layout: Layout, directory: Directory, overrides: dict, error: type[Exception], match: str
) -> None:
    key = layout.keys[VILLAGE_ID]
    body = encode(happy_path(escalate=False)[:1])
    fields = {"count": 1, **overrides}
    payload = payload_for(directory, key, VILLAGE_ID, fields.pop("body", body), **fields)
    with pytest.raises(error, match=match):
        open_frame(raw_frame(key, payload), directory)


def test_too_many_actions_in_a_signed_body_are_refused(layout: Layout, directory: Directory) -> None:
    key = layout.keys[VILLAGE_ID]
    n = limits.MAX_ACTIONS_PER_BATCH + 1
    body = zlib.compress(encode([note(VILLAGE_ID, f"n{i}") for i in range(n)]))
    payload = payload_for(directory, key, VILLAGE_ID, body, count=n, encoding=ENC_ZLIB)
    with pytest.raises(FrameError):
        open_frame(raw_frame(key, payload), directory)


# --- zlib bombs ---------------------------------------------------------------------------------


def _deflate_zeros(total: int) -> bytes:
    packer = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    out = []
    for _ in range(total // len(chunk)):
        out.append(packer.compress(chunk))
    out.append(packer.compress(bytes(total % len(chunk))))
    out.append(packer.flush())
    return b"".join(out)


@pytest.mark.parametrize("expanded", [limits.MAX_BODY_BYTES + 1, 16 * limits.MAX_BODY_BYTES])
def test_zlib_bomb_is_refused(layout: Layout, directory: Directory, expanded: int) -> None:
    key = layout.keys[VILLAGE_ID]
    body = _deflate_zeros(expanded)
    assert len(body) < limits.MAX_FRAME_BYTES // 2
    payload = payload_for(directory, key, VILLAGE_ID, body, count=1, encoding=ENC_ZLIB)
    frame = raw_frame(key, payload)
    assert len(frame) <= limits.MAX_FRAME_BYTES
    with pytest.raises(FrameTooLarge, match="expands"):
        open_frame(frame, directory)


def test_body_of_exactly_the_limit_is_not_a_bomb(layout: Layout, directory: Directory) -> None:
    # A msgpack array of one Note whose text pads the body to exactly MAX_BODY_BYTES.
    key = layout.keys[VILLAGE_ID]
    short = encode([note(VILLAGE_ID, "n1", text="")])
    pad = limits.MAX_BODY_BYTES - len(short) - 4  # str8 -> str32 header grows by 4 bytes
    body = encode([note(VILLAGE_ID, "n1", text="x" * pad)])
    assert len(body) == limits.MAX_BODY_BYTES
    payload = payload_for(directory, key, VILLAGE_ID, zlib.compress(body), count=1, encoding=ENC_ZLIB)
    batch = open_frame(raw_frame(key, payload), directory)
    assert len(batch.actions[0].text) == pad


# --- routes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "audience",
    [
        (COUNTY_ID,),  # the township is left out
        (TOWN_ID, COUNTY_ID),  # right nodes, wrong order
        (COUNTY_ID, TOWN_ID, SISTER_VILLAGE),  # a node off the path
        (COUNTY_ID, TOWN_ID, VILLAGE_ID),  # the origin itself
        (),
    ],
)
def test_audience_must_be_the_path_of_the_scope(layout: Layout, directory: Directory, audience) -> None:
    frame = seal_for(layout, VILLAGE_ID, happy_path(escalate=False)[:1], audience=audience)
    with pytest.raises(RouteError, match="audience"):
        open_frame(frame, directory)


def test_origin_off_the_path_of_the_scope_is_refused(layout: Layout, directory: Directory) -> None:
    frame = seal_for(
        layout, OTHER_TOWN, happy_path(escalate=False)[:1], scope=VILLAGE_ID, audience=(COUNTY_ID, TOWN_ID)
    )
    with pytest.raises(RouteError, match="not on the path"):
        open_frame(frame, directory)
    frame = seal_for(layout, VILLAGE_ID, happy_path(escalate=False)[:1], scope=FAR_VILLAGE, audience=())
    with pytest.raises(RouteError):
        open_frame(frame, directory)


def test_unknown_scope_is_a_route_error(layout: Layout, directory: Directory) -> None:
    frame = seal_for(layout, VILLAGE_ID, happy_path(escalate=False)[:1], scope="T09V09", audience=(COUNTY_ID,))
    with pytest.raises(RouteError):
        open_frame(frame, directory)


def test_errors_carry_a_code_a_hint_and_retryability() -> None:
    error = FrameTooLarge("too big")
    assert isinstance(error, FrameError)
    assert error.as_dict() == {
        "error": "batch_too_large",
        "message": "too big",
        "hint": FrameTooLarge.default_hint,
        "retryable": False,
    }
    assert SignatureError("x", hint="h", retryable=True).as_dict()["retryable"] is True


def test_audience_helper_matches_the_wire(directory: Directory) -> None:
    assert directory.audience(VILLAGE_ID, VILLAGE_ID) == (COUNTY_ID, TOWN_ID)
    assert directory.audience(COUNTY_ID, VILLAGE_ID) == (TOWN_ID, VILLAGE_ID)
