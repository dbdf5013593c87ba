"""Signed, numbered, hash-chained batches of errand actions.

A stream is everything one *origin* node writes about the errands of one
*scope*; its audience is the scope's path minus the origin. Batch ``n`` of a
stream carries the hash of batch ``n-1``, so a relay can neither drop, reorder,
nor alter a batch without the receiver noticing.

Frame layout (all integers big-endian)::

    b"SJB" | version:u8 | key_id_len:u8 | key_id | payload_len:u32 | payload | sig_len:u16 | sig

The signature covers every byte before ``sig_len``. The receiver checks sizes,
finds the key, verifies the signature and only then decodes ``payload``
(msgpack ``BatchPayload``) — the bytes signed are the bytes sent and stored.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence

import msgspec

from protocol import limits
from protocol.actions import Action
from protocol.encoding import decode_actions, encode
from protocol.errors import FrameError, FrameTooLarge, RevokedKey, RouteError, SignatureError, UnsupportedFormat
from protocol.signing import SigningKey, verify
from protocol.topology import Directory

MAGIC = b"SJB"
FORMAT_VERSION = 1
GENESIS = bytes(32)
ENC_PLAIN = "msgpack"
ENC_ZLIB = "msgpack+zlib"


class BatchPayload(msgspec.Struct, frozen=True, kw_only=True):
    format: int
    origin: str
    scope: str
    audience: tuple[str, ...]
    seq: int
    prev: bytes
    created: int
    key_id: str
    encoding: str
    count: int
    body: bytes


class Batch(msgspec.Struct, frozen=True, kw_only=True):
    """A verified batch: the exact frame received plus what it says."""

    frame: bytes
    hash: bytes
    payload: BatchPayload
    actions: tuple[Action, ...]

    @property
    def origin(self) -> str:
        return self.payload.origin

    @property
    def scope(self) -> str:
        return self.payload.scope

    @property
    def seq(self) -> int:
        return self.payload.seq

    @property
    def prev(self) -> bytes:
        return self.payload.prev


_payload_decoder = msgspec.msgpack.Decoder(BatchPayload)


def frame_hash(frame: bytes) -> bytes:
    return hashlib.sha256(frame).digest()


def _compress(body: bytes) -> tuple[str, bytes]:
    if len(body) < 256:
        return ENC_PLAIN, body
    packed = zlib.compress(body, 6)
    if len(packed) < len(body) * 0.9:
        return ENC_ZLIB, packed
    return ENC_PLAIN, body


def seal(
    *,
    key: SigningKey,
    origin: str,
    scope: str,
    audience: Sequence[str],
    seq: int,
    prev: bytes,
    created: int,
    actions: Sequence[Action],
) -> bytes:
    """Build and sign the frame for one batch."""
    if seq < 1:
        raise ValueError("batch numbers start at 1")
    if len(prev) != 32:
        raise ValueError("prev must be a 32-byte hash")
    if not actions or len(actions) > limits.MAX_ACTIONS_PER_BATCH:
        raise ValueError(f"a batch holds 1..{limits.MAX_ACTIONS_PER_BATCH} actions")
    encoding, body = _compress(encode(list(actions)))
    payload = encode(
        BatchPayload(
            format=FORMAT_VERSION,
            origin=origin,
            scope=scope,
            audience=tuple(audience),
            seq=seq,
            prev=prev,
            created=created,
            key_id=key.key_id,
            encoding=encoding,
            count=len(actions),
            body=body,
        )
    )
    key_id = key.key_id.encode()
    signed = MAGIC + bytes([FORMAT_VERSION, len(key_id)]) + key_id + struct.pack(">I", len(payload)) + payload
    signature = key.sign(signed)
    frame = signed + struct.pack(">H", len(signature)) + signature
    if len(frame) > limits.MAX_FRAME_BYTES:
        raise ValueError(f"batch of {len(actions)} actions is {len(frame)} bytes; use fewer actions per batch")
    return frame


def split_frame(frame: bytes) -> tuple[str, bytes, bytes]:
    """Return (key_id, signed part, signature) without trusting anything yet."""
    if len(frame) > limits.MAX_FRAME_BYTES:
        raise FrameTooLarge(f"batch is {len(frame)} bytes; the limit is {limits.MAX_FRAME_BYTES}")
    if len(frame) < 5 or frame[:3] != MAGIC:
        raise FrameError("not a Sanji batch (bad magic bytes)")
    if frame[3] != FORMAT_VERSION:
        raise UnsupportedFormat(f"batch format {frame[3]} is not supported (this node reads {FORMAT_VERSION})")
    kid_len = frame[4]
    pos = 5 + kid_len
    if len(frame) < pos + 4:
        raise FrameError("batch is truncated inside its header")
    try:
        key_id = frame[5:pos].decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("batch key id is not ASCII") from None
    (payload_len,) = struct.unpack(">I", frame[pos : pos + 4])
    end = pos + 4 + payload_len
    if len(frame) < end + 2:
        raise FrameError("batch is truncated inside its payload")
    (sig_len,) = struct.unpack(">H", frame[end : end + 2])
    if len(frame) != end + 2 + sig_len:
        raise FrameError(f"batch length {len(frame)} does not match its header ({end + 2 + sig_len})")
    return key_id, frame[:end], frame[end + 2 :]


def open_frame(frame: bytes, directory: Directory) -> Batch:
    """Verify a frame's signature, then decode it. Raises a SanjiError subclass on any fault."""
    key_id, signed, signature = split_frame(frame)
    record = directory.key(key_id)
    if record is None:
        raise SignatureError(f"batch is signed by unknown key {key_id}")
    verify(record, signed, signature)
    payload_start = 5 + len(key_id) + 4
    try:
        payload = _payload_decoder.decode(signed[payload_start:])
    except (msgspec.DecodeError, RecursionError) as exc:  # nested past the recursion limit: still just bad bytes
        raise FrameError(f"signed batch payload does not decode: {exc}") from None
    if payload.format != FORMAT_VERSION:
        raise UnsupportedFormat(f"batch payload format {payload.format} differs from its frame's {FORMAT_VERSION}")
    if payload.key_id != key_id:
        raise SignatureError("batch payload names a different key than its frame")
    if payload.origin != record.node:
        raise SignatureError(f"batch claims origin {payload.origin} but is signed by {record.node}'s key")
    if record.revoked:
        raise SignatureError(f"key {key_id} of {record.node} is revoked")
    limit = directory.retired_after(key_id, payload.origin, payload.scope)
    if limit is not None and payload.seq > limit:
        raise RevokedKey(
            f"batch {payload.seq} of stream {payload.origin}->{payload.scope} is signed with key {key_id}, "
            f"retired after batch {limit} of that stream",
            origin=payload.origin,
            scope=payload.scope,
            seq=payload.seq,
        )
    if payload.seq < 1 or len(payload.prev) != 32:
        raise FrameError("batch number or previous-hash field out of range")
    try:
        expected = directory.audience(payload.origin, payload.scope)
    except (RouteError, ValueError) as exc:
        raise RouteError(f"batch stream {payload.origin}->{payload.scope}: {exc}") from None
    if tuple(payload.audience) != expected:
        raise RouteError(
            f"batch audience {list(payload.audience)} differs from the path of {payload.scope} {list(expected)}"
        )
    actions = _decode_body(payload)
    return Batch(frame=frame, hash=frame_hash(frame), payload=payload, actions=tuple(actions))


def _decode_body(payload: BatchPayload) -> list[Action]:
    body = payload.body
    if payload.encoding == ENC_ZLIB:
        inflater = zlib.decompressobj()
        try:
            body = inflater.decompress(body, limits.MAX_BODY_BYTES + 1)
        except zlib.error as exc:
            raise FrameError(f"batch body does not decompress: {exc}") from None
        if len(body) > limits.MAX_BODY_BYTES or inflater.unconsumed_tail:
            raise FrameTooLarge(f"batch body expands beyond {limits.MAX_BODY_BYTES} bytes")
    elif payload.encoding != ENC_PLAIN:
        raise UnsupportedFormat(f"batch body encoding {payload.encoding!r} is not supported")
    try:
        actions = decode_actions(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise FrameError(f"batch actions do not decode: {exc}") from None
    if len(actions) != payload.count or not actions or len(actions) > limits.MAX_ACTIONS_PER_BATCH:
        raise FrameError(f"batch says {payload.count} actions but holds {len(actions)}")
    return actions
