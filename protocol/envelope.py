"""The one signed-document envelope, and the one magic-and-version head every Sanji file starts with.

Every blob Sanji writes begins with three magic bytes naming what it is and a format byte
(``check_head``). Five of them — batch frames (``SJB``), catalogues (``SJC``), working-day
calendars (``SJW``), assessment rules (``SJA``) and business reports (``SJR``) — are then one
signed envelope (all integers big-endian)::

    magic:3 | version:u8 | key_id_len:u8 | key_id | payload_len:u32 | payload | sig_len:u16 | sig

The signature covers every byte before ``sig_len``. ``seal`` writes it and ``open_envelope``
checks its framing — size first, then magic, format, lengths — without trusting a byte of it;
the caller finds the key, verifies ``signed`` against ``signature`` and only then decodes
``payload``. What differs between documents stays a parameter: the magic, the size limit, the
noun the messages name (``what``) and, for two older documents, which error an oversized blob
raises (their codes are part of what a client sees). The batch frame's extra header fields
(origin, scope, sequence, audience, ...) live inside its payload (``protocol.batch.BatchPayload``),
not in the envelope, so the frame is this envelope under its own magic.

Transfer files (``protocol.carry``), sealed details (``protocol.sealing``) and trust documents
(``protocol.trust``) share only the head: after it come a length-prefixed header and frames, or a
msgpack envelope of their own; each raises its own error type, passed to ``check_head``.

Pure: ``protocol.signing`` and the standard library. The bytes are the wire format of release
0.3.0 and are pinned by ``tests/protocol/test_golden.py`` and ``tests/compat``.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from protocol.errors import FrameError, FrameTooLarge, SanjiError, UnsupportedFormat
from protocol.signing import SigningKey

HEAD_BYTES = 4  # magic:3 | version:u8
# What each Sanji magic starts, so a blob handed to the wrong reader says what it is instead.
KNOWN: dict[bytes, str] = {
    b"SJA": "signed assessment rules",
    b"SJB": "a batch frame",
    b"SJC": "a signed catalogue",
    b"SJR": "a signed business report",
    b"SJS": "sealed details",
    b"SJT": "a trust document",
    b"SJW": "a signed working-day calendar",
    b"SJX": "a transfer file",
}
_LENGTH = struct.Struct(">I")
_SIG_LENGTH = struct.Struct(">H")


class Opened(NamedTuple):
    """A signed envelope's parts, framing checked, nothing verified yet."""

    key_id: str
    signed: bytes  # every byte the signature covers
    signature: bytes
    payload: bytes


def seal(magic: bytes, payload: bytes, key: SigningKey, *, version: int = 1) -> bytes:
    """The envelope around ``payload``, signed by ``key``."""
    key_id = key.key_id.encode("ascii")
    signed = magic + bytes([version, len(key_id)]) + key_id + _LENGTH.pack(len(payload)) + payload
    signature = key.sign(signed)
    return signed + _SIG_LENGTH.pack(len(signature)) + signature


def check_head(
    blob: bytes,
    *,
    magic: bytes,
    version: int,
    what: str,
    error: type[SanjiError] = FrameError,
    unsupported: type[SanjiError] = UnsupportedFormat,
    hint: str | None = None,
    upgrade_hint: str | None = None,
    at_least: int = HEAD_BYTES,
) -> None:
    """Raise unless ``blob`` starts with ``magic`` and format ``version``.

    ``what`` names the document in the messages ("transfer file"); ``error`` is raised for a wrong
    magic (with ``hint``) or a blob shorter than ``at_least``, ``unsupported`` for another format
    (with ``upgrade_hint``).
    """
    if len(blob) < at_least or blob[:3] != magic:
        other = KNOWN.get(bytes(blob[:3])) if blob[:3] != magic else None
        if other is not None:
            raise error(f"{other}, not a Sanji {what} (bad magic bytes: {bytes(blob[:3])!r})", hint=hint)
        raise error(f"not a Sanji {what} (bad magic bytes)", hint=hint)
    if blob[3] != version:
        raise unsupported(f"{what} format {blob[3]} is not supported (this node reads {version})", hint=upgrade_hint)


def open_envelope(
    blob: bytes,
    *,
    magic: bytes,
    max_bytes: int,
    what: str,
    version: int = 1,
    too_large: type[FrameError] = FrameTooLarge,
) -> Opened:
    """The parts of a signed envelope, or FrameError (or a subclass) naming the fault.

    ``what`` names the document in the messages ("batch", "signed catalogue"); ``too_large`` is the
    error for a blob over ``max_bytes`` (FrameTooLarge; FrameError where a document always said so).
    """
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise FrameError(f"a {what} is bytes, not {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) > max_bytes:
        raise too_large(f"{what} is {len(blob)} bytes; the limit is {max_bytes}")
    check_head(blob, magic=magic, version=version, what=what, at_least=HEAD_BYTES + 1)
    pos = HEAD_BYTES + 1 + blob[HEAD_BYTES]
    if len(blob) < pos + _LENGTH.size:
        raise FrameError(f"{what} is truncated inside its header")
    try:
        key_id = blob[HEAD_BYTES + 1 : pos].decode("ascii")
    except UnicodeDecodeError:
        raise FrameError(f"{what} key id is not ASCII") from None
    (payload_len,) = _LENGTH.unpack_from(blob, pos)
    start = pos + _LENGTH.size
    end = start + payload_len
    if len(blob) < end + _SIG_LENGTH.size:
        raise FrameError(f"{what} is truncated inside its payload")
    (sig_len,) = _SIG_LENGTH.unpack_from(blob, end)
    if len(blob) != end + _SIG_LENGTH.size + sig_len:
        raise FrameError(f"{what} length {len(blob)} does not match its header ({end + _SIG_LENGTH.size + sig_len})")
    return Opened(key_id=key_id, signed=blob[:end], signature=blob[end + _SIG_LENGTH.size :], payload=blob[start:end])
