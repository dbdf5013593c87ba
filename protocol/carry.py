"""Hand-carried files (sneakernet): batches on a USB stick between nodes with no link.

Layout::

    b"SJX" | version:u8 | header_len:u32 | header (msgpack CarryHeader)
          | for each frame: frame_len:u32 | frame
          | sha256 of every byte before it (32 bytes)

The trailing checksum is checked before anything is read, so a damaged file is
refused whole and nothing partial is applied. Each frame inside is still a signed
batch, verified on import like any other: the file adds no trust of its own.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import msgspec

from protocol.errors import FrameError, FrameTooLarge, UnsupportedFormat
from protocol.limits import MAX_FRAME_BYTES

MAGIC = b"SJX"
FORMAT_VERSION = 1
MAX_CARRY_BYTES = 2 * 1024 * 1024 * 1024


class CarryHeader(msgspec.Struct, frozen=True, kw_only=True):
    exporter: str
    recipient: str
    created: int  # exporter's hybrid clock
    count: int
    note: str = ""


class CarryFile(msgspec.Struct, frozen=True, kw_only=True):
    header: CarryHeader
    frames: tuple[bytes, ...]


def write_carry(header: CarryHeader, frames: Sequence[bytes]) -> bytes:
    if header.count != len(frames):
        raise ValueError("header count must equal the number of frames")
    head = msgspec.msgpack.encode(header)
    parts = [MAGIC, bytes([FORMAT_VERSION]), struct.pack(">I", len(head)), head]
    for frame in frames:
        parts.append(struct.pack(">I", len(frame)))
        parts.append(frame)
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def read_carry(data: bytes) -> CarryFile:
    if len(data) > MAX_CARRY_BYTES:
        raise FrameTooLarge(f"file of {len(data)} bytes is larger than {MAX_CARRY_BYTES}")
    if len(data) < 4 + 4 + 32 or data[:3] != MAGIC:
        raise FrameError("not a Sanji transfer file (bad magic bytes)", hint="Check that the right file was chosen.")
    if data[3] != FORMAT_VERSION:
        raise UnsupportedFormat(f"transfer file format {data[3]} is not supported (this node reads {FORMAT_VERSION})")
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise FrameError(
            "the transfer file is damaged (checksum mismatch); nothing was imported",
            hint="Copy the file again from the exporting node, or export it anew.",
        )
    (head_len,) = struct.unpack(">I", body[4:8])
    pos = 8 + head_len
    try:
        header = msgspec.msgpack.decode(body[8:pos], type=CarryHeader)
    except msgspec.DecodeError as exc:
        raise FrameError(f"transfer file header does not decode: {exc}") from None
    frames: list[bytes] = []
    while pos < len(body):
        if pos + 4 > len(body):
            raise FrameError("transfer file is truncated inside a frame length")
        (size,) = struct.unpack(">I", body[pos : pos + 4])
        if size > MAX_FRAME_BYTES:
            raise FrameTooLarge(f"a frame of {size} bytes in the transfer file exceeds {MAX_FRAME_BYTES}")
        frames.append(body[pos + 4 : pos + 4 + size])
        pos += 4 + size
        if len(frames[-1]) != size:
            raise FrameError("transfer file is truncated inside a frame")
    if len(frames) != header.count:
        raise FrameError(f"transfer file says {header.count} batches but holds {len(frames)}")
    return CarryFile(header=header, frames=tuple(frames))
