"""Fuzzing what a node reads from the wire or a USB stick: ``open_frame`` and ``read_carry``.

Contract: whatever the bytes, these raise a ``SanjiError`` subclass (which the node turns into
a clear refusal) or return a result -- never any other exception, never a hang. A batch that
differs from a validly signed one in any byte is refused.

Three ways in:
- arbitrary bytes, and valid frames / transfer files mutated (bit flips, byte overwrites,
  insertions, deletions, truncation, splices);
- frames that are *validly signed* by a key in the directory but carry arbitrary payloads
  (the signature is checked first, so only a signed frame reaches the decoders behind it:
  this is what a node holding a key -- or a bug in one -- can send);
- transfer files with a correct trailing checksum but an arbitrary body (the checksum is
  checked first, so only these reach the parser behind it).

``SANJI_FUZZ_EXAMPLES=20000 pytest tests/fuzz/test_fuzz_frames.py`` hunts longer (300 by default).
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
import zlib
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocol import limits
from protocol.actions import Applicant, HandOff, Note, Register
from protocol.batch import FORMAT_VERSION, GENESIS, MAGIC, BatchPayload, open_frame, seal
from protocol.carry import CarryHeader, read_carry, write_carry
from protocol.encoding import encode
from protocol.errors import SanjiError
from sanji.layout import county_layout

LAYOUT = county_layout(1, 1)
DIRECTORY = LAYOUT.directory
VILLAGE, TOWN = "T01V01", "T01"
KEY = LAYOUT.keys[VILLAGE]
AT = 1_700_000_000_000 << 16
MSGPACK_INTS = st.integers(-(2**63), 2**64 - 1)  # what msgpack can carry at all
PER_INPUT_SECONDS = 1.0  # generous: a frame is at most 1 MB and is checked in well under 10 ms

FUZZ = settings(
    max_examples=int(os.environ.get("SANJI_FUZZ_EXAMPLES", "300")),  # raise it for a longer hunt
    deadline=None,  # timed explicitly below, so a loaded machine does not flake the run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def actions(n: int, *, text: str = "进度说明") -> list[Any]:
    register = Register(
        id="a" * 32,
        errand="T01V01-0001",
        scope=VILLAGE,
        node=VILLAGE,
        actor="代办员",
        role="代办员",
        at=AT,
        matter="MZ-001",
        applicant=Applicant(name="张三", id_number="430621195007307791", phone="13812345678"),
        receipt="T01V01-20240301-001",
    )
    out: list[Any] = [register]
    out.append(
        HandOff(
            id="b" * 32, errand=register.errand, scope=VILLAGE, node=VILLAGE, actor="代办员", role="代办员",
            at=AT + 1, base=1, to=TOWN, purpose="submit",
        )
    )  # fmt: skip
    for i in range(n - 2):
        out.append(
            Note(
                id=f"{i:032x}", errand=register.errand, scope=VILLAGE, node=VILLAGE, actor="代办员", role="代办员",
                at=AT + 2 + i, text=f"{text}{i}",
            )
        )  # fmt: skip
    return out


def frame_of(n: int, seq: int = 1) -> bytes:
    return seal(
        key=KEY,
        origin=VILLAGE,
        scope=VILLAGE,
        audience=DIRECTORY.audience(VILLAGE, VILLAGE),
        seq=seq,
        prev=GENESIS,
        created=AT,
        actions=actions(n),
    )


SMALL = frame_of(2)  # body under 256 bytes: plain msgpack
BIG = frame_of(40)  # compressed body
assert open_frame(SMALL, DIRECTORY).actions and open_frame(BIG, DIRECTORY).payload.encoding == "msgpack+zlib"
CARRY = write_carry(CarryHeader(exporter=VILLAGE, recipient=TOWN, created=AT, count=2), [SMALL, BIG])


def timed(fn: Any, data: bytes) -> Any:
    """Call ``fn(data)``; only a SanjiError may escape; returns the result or the error."""
    started = time.perf_counter()
    try:
        result = fn(data)
    except SanjiError as exc:
        result = exc
    elapsed = time.perf_counter() - started
    assert elapsed < PER_INPUT_SECONDS, f"{fn.__name__} took {elapsed:.2f}s on {len(data)} bytes"
    return result


# -- mutations -----------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            data[pos : pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"]))
        elif op == "dup":
            data += data[pos : pos + draw(st.integers(1, 64))]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=4096))
def test_open_frame_on_arbitrary_bytes_raises_only_sanji_errors(data: bytes) -> None:
    assert isinstance(timed(lambda d: open_frame(d, DIRECTORY), data), SanjiError)


@FUZZ
@given(st.binary(max_size=64).map(lambda tail: MAGIC + bytes([FORMAT_VERSION]) + tail))
def test_open_frame_past_the_magic_bytes(data: bytes) -> None:
    assert isinstance(timed(lambda d: open_frame(d, DIRECTORY), data), SanjiError)


@FUZZ
@given(st.one_of(mutated(SMALL), mutated(BIG)))
def test_any_change_to_a_valid_frame_is_refused(data: bytes) -> None:
    assume(data not in (SMALL, BIG))
    assert isinstance(timed(lambda d: open_frame(d, DIRECTORY), data), SanjiError)


@pytest.mark.parametrize("frame", [SMALL, BIG], ids=["plain", "zlib"])
@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_flipping_any_single_byte_of_a_valid_batch_is_refused(frame: bytes, mask: int) -> None:
    """Exhaustive, not sampled: every position of the frame, header to last signature byte."""
    accepted = []
    for pos in range(len(frame)):
        changed = bytearray(frame)
        changed[pos] ^= mask
        result = timed(lambda d: open_frame(d, DIRECTORY), bytes(changed))
        if not isinstance(result, SanjiError):
            accepted.append(pos)
    assert accepted == [], f"a frame with byte(s) {accepted} changed was accepted"


# -- validly signed frames with arbitrary payloads --------------------------------------------------


def signed_frame(payload: bytes, key_id: str | None = None) -> bytes:
    kid = (key_id or KEY.key_id).encode()
    signed = MAGIC + bytes([FORMAT_VERSION, len(kid)]) + kid + struct.pack(">I", len(payload)) + payload
    signature = KEY.sign(signed)
    return signed + struct.pack(">H", len(signature)) + signature


node_ids = st.sampled_from([VILLAGE, TOWN, "C", "T02", "", "X99"]) | st.text(max_size=8)
bodies = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda n: encode(actions(n)), st.integers(2, 30)),
    st.builds(lambda b: zlib.compress(b), st.binary(max_size=512)),
    st.builds(lambda n: zlib.compress(encode(actions(n))), st.integers(2, 30)),
    st.just(zlib.compress(b"\x00" * (limits.MAX_BODY_BYTES + 1000), 9)),  # a zip bomb
    st.builds(lambda v: encode(v), st.lists(MSGPACK_INTS | st.text() | st.none(), max_size=5)),
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    origin = draw(st.sampled_from([VILLAGE, VILLAGE, TOWN]) | node_ids)
    scope = draw(st.sampled_from([VILLAGE, VILLAGE, TOWN]) | node_ids)
    try:
        audience = DIRECTORY.audience(origin, scope)
    except (SanjiError, ValueError):
        audience = ()
    fields = {
        "format": draw(st.sampled_from([FORMAT_VERSION, FORMAT_VERSION, 0, 2, -1, 2**63, 2**64 - 1])),
        "origin": origin,
        "scope": scope,
        "audience": draw(st.just(list(audience)) | st.lists(node_ids, max_size=4)),
        "seq": draw(st.sampled_from([1, 2, 0, -1, 2**31, 2**63 - 1, 2**64 - 1]) | MSGPACK_INTS),
        "prev": draw(st.sampled_from([GENESIS, b""]) | st.binary(max_size=40)),
        "created": draw(st.integers(-(2**63), 2**63 - 1)),
        "key_id": draw(st.sampled_from([KEY.key_id, "other"])),
        "encoding": draw(st.sampled_from(["msgpack", "msgpack+zlib", "zstd", ""])),
        "count": draw(st.integers(-5, 40)),
        "body": draw(bodies),
    }
    drop = draw(st.sets(st.sampled_from(sorted(fields)), max_size=2))
    raw = {k: v for k, v in fields.items() if k not in drop}
    if draw(st.booleans()):
        raw[draw(st.sampled_from(["extra", "body", "seq"]))] = draw(st.text(max_size=4) | MSGPACK_INTS)
    return msgspec.msgpack.encode(raw)


@FUZZ
@given(payloads())
def test_signed_frames_with_arbitrary_payloads_raise_only_sanji_errors(payload: bytes) -> None:
    result = timed(lambda d: open_frame(d, DIRECTORY), signed_frame(payload))
    if not isinstance(result, SanjiError):  # then it really is a well-formed batch of its stream
        assert result.origin == VILLAGE and result.payload.audience == DIRECTORY.audience(VILLAGE, result.scope)
        assert 1 <= len(result.actions) <= limits.MAX_ACTIONS_PER_BATCH


@FUZZ
@given(st.binary(max_size=2048))
def test_signed_frames_with_arbitrary_payload_bytes(payload: bytes) -> None:
    assert isinstance(timed(lambda d: open_frame(d, DIRECTORY), signed_frame(payload)), SanjiError)


def test_a_signed_zip_bomb_is_refused_quickly() -> None:
    bomb = BatchPayload(
        format=FORMAT_VERSION,
        origin=VILLAGE,
        scope=VILLAGE,
        audience=DIRECTORY.audience(VILLAGE, VILLAGE),
        seq=1,
        prev=GENESIS,
        created=AT,
        key_id=KEY.key_id,
        encoding="msgpack+zlib",
        count=1,
        body=zlib.compress(b"\x91" * (64 * 1024 * 1024), 9),
    )
    result = timed(lambda d: open_frame(d, DIRECTORY), signed_frame(encode(bomb)))
    assert isinstance(result, SanjiError) and result.code == "batch_too_large"


# -- hand-carried transfer files --------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=4096))
def test_read_carry_on_arbitrary_bytes_raises_only_sanji_errors(data: bytes) -> None:
    assert isinstance(timed(read_carry, data), SanjiError)


@FUZZ
@given(mutated(CARRY))
def test_any_change_to_a_transfer_file_is_refused_whole(data: bytes) -> None:
    assume(data != CARRY)
    assert isinstance(timed(read_carry, data), SanjiError)


@st.composite
def checksummed_bodies(draw: st.DrawFn) -> bytes:
    """Bodies that pass the checksum: the parser behind it sees arbitrary structure."""
    head = draw(
        st.one_of(
            st.binary(max_size=64),
            st.builds(
                lambda c, note: msgspec.msgpack.encode(
                    {"exporter": VILLAGE, "recipient": TOWN, "created": AT, "count": c, "note": note}
                ),
                st.integers(-3, 5),
                st.text(max_size=8),
            ),
        )
    )
    head_len = draw(st.sampled_from([len(head), len(head), 0, 2**32 - 1]) | st.integers(0, 2**32 - 1))
    parts = [MAGIC if draw(st.booleans()) else b"SJX", bytes([draw(st.sampled_from([1, 1, 0, 2]))])]
    parts.append(struct.pack(">I", head_len))
    parts.append(head)
    for _ in range(draw(st.integers(0, 3))):
        frame = draw(st.sampled_from([SMALL, BIG, b""]) | st.binary(max_size=32))
        size = draw(st.sampled_from([len(frame), len(frame), len(frame) + 1, 2**32 - 1]) | st.integers(0, 2**32 - 1))
        parts.append(struct.pack(">I", size) + frame)
    if draw(st.booleans()):
        parts.append(draw(st.binary(max_size=3)))  # a torn length field
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


@FUZZ
@given(checksummed_bodies())
def test_read_carry_behind_a_valid_checksum_raises_only_sanji_errors(data: bytes) -> None:
    result = timed(read_carry, data)
    if not isinstance(result, SanjiError):  # a well-formed file: every frame inside is checked on import
        assert result.header.count == len(result.frames)
        for frame in result.frames:
            timed(lambda d: open_frame(d, DIRECTORY), frame)


def test_a_valid_transfer_file_round_trips() -> None:
    carried = read_carry(CARRY)
    assert carried.frames == (SMALL, BIG)
    assert [open_frame(f, DIRECTORY).seq for f in carried.frames] == [1, 1]
