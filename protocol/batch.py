"""Signed, numbered, hash-chained batches of errand actions.

A stream is everything one *origin* node writes about the errands of one
*scope*; its audience is the scope's path minus the origin. Batch ``n`` of a
stream carries the hash of batch ``n-1``, so a relay can neither drop, reorder,
nor alter a batch without the receiver noticing.

Frame layout: the signed envelope (``protocol.envelope``) under the magic ``SJB``::

    b"SJB" | version:u8 | key_id_len:u8 | key_id | payload_len:u32 | payload | sig_len:u16 | sig

The signature covers every byte before ``sig_len``. The receiver checks sizes,
finds the key, verifies the signature and only then decodes ``payload``
(msgpack ``BatchPayload``) — the bytes signed are the bytes sent and stored.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence

import msgspec

from protocol import envelope, limits
from protocol.actions import Action
from protocol.bounds import node_fields_problem, node_id_problem
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
    frame = envelope.seal(MAGIC, payload, key, version=FORMAT_VERSION)
    if len(frame) > limits.MAX_FRAME_BYTES:
        raise ValueError(f"batch of {len(actions)} actions is {len(frame)} bytes; use fewer actions per batch")
    return frame


def split_frame(frame: bytes) -> tuple[str, bytes, bytes]:
    """Return (key_id, signed part, signature) without trusting anything yet."""
    opened = envelope.open_envelope(
        frame, magic=MAGIC, version=FORMAT_VERSION, max_bytes=limits.MAX_FRAME_BYTES, what="batch"
    )
    return opened.key_id, opened.signed, opened.signature


def open_frame(frame: bytes, directory: Directory) -> Batch:
    """Verify a frame's signature, then decode it. Raises a SanjiError subclass on any fault."""
    key_id, signed, signature, body = envelope.open_envelope(
        frame, magic=MAGIC, version=FORMAT_VERSION, max_bytes=limits.MAX_FRAME_BYTES, what="batch"
    )
    record = directory.key(key_id)
    if record is None:
        raise SignatureError(f"batch is signed by unknown key {key_id}")
    verify(record, signed, signature)
    try:
        payload = _payload_decoder.decode(body)
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
    if problem := node_id_problem(payload.scope, field="batch scope"):  # before anything quarantines it by stream
        raise RouteError(f"batch stream of {payload.origin}: {problem}")
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
    for action in actions:  # every action is stored by the nodes it names, even one kept only as foreign
        if problem := node_fields_problem(action):
            raise FrameError(f"batch {payload.seq} of stream {payload.origin}->{payload.scope}: {problem}")
    return Batch(frame=frame, hash=frame_hash(frame), payload=payload, actions=tuple(actions))


def stored_actions(frame: bytes) -> list[Action]:
    """The actions of a frame this node verified (or sealed) and stored, decoded without verifying it again: for
    reading its own ledger (which batch carries an action), never for taking a frame from a peer (``open_frame``)."""
    _, _, _, body = envelope.open_envelope(
        frame, magic=MAGIC, version=FORMAT_VERSION, max_bytes=limits.MAX_FRAME_BYTES, what="batch"
    )
    try:
        payload = _payload_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise FrameError(f"stored batch payload does not decode: {exc}") from None
    return _decode_body(payload)


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
