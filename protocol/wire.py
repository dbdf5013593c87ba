"""Bounded decoding of untrusted msgpack: nesting, counts and size are checked before msgspec runs.

msgspec decodes recursively and skips unknown fields recursively, so a few kilobytes nested
thousands deep (``[[[[...]]]]`` under an unknown key) reach Python's recursion limit and raise
``RecursionError`` — an unexpected exception, a server error. Every decoder of bytes that came
from outside goes through ``decode`` here: a linear, iterative scan refuses nesting deeper than
``max_depth`` and containers that claim more elements than bytes remain, then msgspec decodes.
Every failure is a ``FrameError`` (a 400), never anything else.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from protocol.errors import FrameError, FrameTooLarge

T = TypeVar("T")


class TooDeep(FrameError):
    """Nested deeper than any message of ours: crafted, not damaged (a reader may word it apart, as the carry file's
    does). Its error code stays ``FrameError``'s: the sync endpoints answer every undecodable body alike."""


MAX_DEPTH = 16  # the deepest legitimate message (a cursors request's reports) nests 4 levels

# Fixed-width types: first byte -> bytes that follow it.
_FIXED = {
    0xC0: 0, 0xC2: 0, 0xC3: 0,
    0xCA: 4, 0xCB: 8,
    0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,
    0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17,
}  # fmt: skip
# Length-prefixed raw bytes (bin, str, ext): first byte -> (width of the length, extra type byte).
_SIZED = {
    0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0),
    0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0),
    0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),
}  # fmt: skip
# Containers with a length field: first byte -> (width of the count, items per entry).
_CONTAINERS = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


def check_msgpack(data: bytes, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``FrameError`` unless ``data`` is one msgpack value nested at most ``max_depth`` deep.

    Linear in the number of values; raw byte strings are skipped, not read.
    """
    end = len(data)
    pos = 0
    pending = [1]  # values still to read at each open level
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        if pos >= end:
            raise FrameError("msgpack value is truncated")
        b = data[pos]
        pos += 1
        count = 0
        if b <= 0x7F or b >= 0xE0:
            continue
        if 0x80 <= b <= 0x8F:
            count = (b & 0x0F) * 2
        elif 0x90 <= b <= 0x9F:
            count = b & 0x0F
        elif 0xA0 <= b <= 0xBF:
            pos += b & 0x1F
            continue
        elif b in _FIXED:
            pos += _FIXED[b]
            continue
        elif b in _SIZED:
            width, extra = _SIZED[b]
            if pos + width > end:
                raise FrameError("msgpack value is truncated")
            pos += width + extra + int.from_bytes(data[pos : pos + width], "big")
            continue
        elif b in _CONTAINERS:
            width, per = _CONTAINERS[b]
            if pos + width > end:
                raise FrameError("msgpack value is truncated")
            count = int.from_bytes(data[pos : pos + width], "big") * per
            pos += width
        else:
            raise FrameError(f"byte 0x{b:02x} at offset {pos - 1} is not msgpack")
        if count > end - pos:  # every value takes at least one byte
            raise FrameError(f"a msgpack container claims {count} values but {end - pos} bytes remain")
        if count:
            if len(pending) >= max_depth:
                raise TooDeep(f"msgpack nested deeper than {max_depth} levels")
            pending.append(count)
    if pos != end:
        raise FrameError("trailing bytes after the msgpack value" if pos < end else "msgpack value is truncated")


def decode(data: bytes, kind: type[T], *, what: str, max_bytes: int, max_depth: int = MAX_DEPTH) -> T:
    """Decode untrusted ``data`` as ``kind``: size, then nesting, then msgspec; any fault is a FrameError."""
    if len(data) > max_bytes:
        raise FrameTooLarge(f"{what} of {len(data)} bytes exceeds {max_bytes}")
    check_msgpack(data, max_depth=max_depth)
    try:
        return msgspec.msgpack.decode(data, type=kind)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, OverflowError) as exc:
        raise FrameError(f"{what} does not decode: {exc}") from None
