"""Hand-carried files (sneakernet): batches on a USB stick between nodes with no link.

Layout (the head, magic and format, is ``protocol.envelope.check_head``'s; what follows is this file's own)::

    b"SJX" | version:u8 | header_len:u32 | header (msgpack CarryHeader)
          | for each frame: frame_len:u32 | frame
          | sha256 of every byte before it (32 bytes)

The whole file is checked (size before any byte is read, then structure, limits and the
trailing checksum, streamed) before anything is applied, so a damaged or crafted file is
refused whole and nothing partial is applied. Each frame inside is still a signed
batch, verified on import like any other: the file adds no trust of its own.

The header is not signed (the trailing checksum is plain SHA-256: anyone can recompute it), so what it
says is bounded and checked like any received node id (``check_header``) and never shown as the file's
origin: an importer names the nodes that signed the batches it verified. Each way a file fails has its
own ``CarryFileError.problem``, so a reader can tell a damaged copy from a crafted or foreign file.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Literal

import msgspec

from protocol.bounds import node_id_problem
from protocol.envelope import check_head
from protocol.errors import FrameError, FrameTooLarge, RouteError
from protocol.limits import MAX_FRAME_BYTES
from protocol.names import invisible
from protocol.wire import TooDeep, decode

MAGIC = b"SJX"
FORMAT_VERSION = 1
MAX_CARRY_BYTES = 2 * 1024 * 1024 * 1024
MAX_CARRY_FRAMES = 100_000  # months of a busy village's batches; a file claiming more is not an export
MAX_HEADER_BYTES = 64 * 1024
MIN_FRAME_BYTES = 5 + 4 + 2 + 64  # magic, version, key id length, payload length, signature length, Ed25519
MAX_NOTE = 200

CarryProblem = Literal["unreadable", "too_deep", "bad_header", "damaged", "structure"]


class CarryFileError(FrameError):
    """The file as a whole is refused; ``problem`` says how: its header does not decode (``unreadable``), nests
    deeper than any header (``too_deep``), names no node (``bad_header``), the checksum does not match
    (``damaged``), or the batches do not fit what the header announced (``structure``)."""

    code = "bad_transfer_file"

    def __init__(self, problem: CarryProblem, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problem: CarryProblem = problem


class CarryToItself(RouteError):
    """A file would be written for the node writing it: nothing it holds is owed to itself, and no other node
    imports a file addressed to this one. ``message_zh`` is the Chinese a command or screen says first."""

    code = "carry_to_itself"
    default_hint = "Name the node that will import the file: the parent, or a node below."

    def __init__(self, node: str) -> None:
        super().__init__(f"a transfer file cannot be written for {node}, the node writing it; nothing was written")
        self.node = node
        self.message_zh = f"不能为本节点（{node}）自己写带送文件：文件要带给另一个节点导入，未写出任何内容"


def check_recipient(exporter: str, recipient: str) -> None:
    """Raise ``CarryToItself`` when ``recipient`` is ``exporter``: a file is carried to another node. (Whether the
    recipient is in the tree at all is the directory's to say.)"""
    if recipient == exporter:
        raise CarryToItself(exporter)


class CarryHeader(msgspec.Struct, frozen=True, kw_only=True):
    exporter: str
    recipient: str
    created: int  # exporter's hybrid clock
    count: int
    note: str = ""


class CarryFile(msgspec.Struct, frozen=True, kw_only=True):
    header: CarryHeader
    frames: tuple[bytes, ...]


def check_header(header: CarryHeader) -> None:
    """Raise ``CarryFileError("bad_header")`` unless the header's node ids are node ids and its note is short text."""
    for name in ("exporter", "recipient"):
        if problem := node_id_problem(getattr(header, name), field=f"the file's {name}"):
            raise CarryFileError("bad_header", problem, hint="The file was not written by a Sanji node; do not use it.")
    if len(header.note) > MAX_NOTE or any(invisible(c) for c in header.note):
        raise CarryFileError("bad_header", f"the file's note is over {MAX_NOTE} characters or holds control characters")
    if header.created < 0:
        raise CarryFileError("bad_header", f"the file's creation time {header.created} is negative")


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


class CarryScanner:
    """Reads a transfer file fed in chunks of any size (sans-IO: the caller reads the file).

    ``total`` is the file's size, known before a byte is read (``os.stat``): a file over
    ``MAX_CARRY_BYTES`` is refused at once, and the trailing checksum is found by position. The
    scanner keeps at most one frame in memory, refuses a frame shorter than any signed batch or
    longer than ``MAX_FRAME_BYTES``, and more frames than the header announced or than
    ``MAX_CARRY_FRAMES``. ``feed`` returns the frames completed by the chunk (only with
    ``keep=True``); ``finish`` checks the count and the checksum. So an importer scans a file once
    to check it (``keep=False``) and applies nothing unless the whole file is sound, then reads it
    again to apply it frame by frame.
    """

    def __init__(self, total: int, *, keep: bool) -> None:
        if total > MAX_CARRY_BYTES:
            raise FrameTooLarge(
                f"file of {total} bytes is larger than {MAX_CARRY_BYTES}",
                hint="Export in several files (a few days at a time), or carry a smaller export.",
            )
        if total < 8 + 32:
            raise FrameError("not a Sanji transfer file (too short)", hint="Check that the right file was chosen.")
        self.keep = keep
        self.body_end = total - 32
        self.header: CarryHeader | None = None
        self.frames = 0
        self._pos = 0  # bytes consumed so far
        self._buf = bytearray()
        self._trailer = bytearray()
        self._hash = hashlib.sha256()
        self._need_head = -1  # header length, once read

    def feed(self, chunk: bytes) -> list[bytes]:
        room = self.body_end - self._pos - len(self._buf)
        body, tail = (chunk[:room], chunk[room:]) if room < len(chunk) else (chunk, b"")
        self._hash.update(body)
        self._buf += body
        self._trailer += tail
        if len(self._trailer) > 32:
            raise FrameError("the transfer file is longer than it was when its size was read")
        return self._parse()

    def _take(self, n: int) -> bytes | None:
        if len(self._buf) < n:
            return None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self._pos += n
        return out

    def _parse(self) -> list[bytes]:
        out: list[bytes] = []
        while True:
            if self._pos == 0:
                start = self._take(4)
                if start is None:
                    return out
                check_head(
                    start,
                    magic=MAGIC,
                    version=FORMAT_VERSION,
                    what="transfer file",
                    hint="Check that the right file was chosen.",
                )
            if self.header is None:
                if self._need_head < 0:
                    raw = self._take(4)
                    if raw is None:
                        return out
                    (self._need_head,) = struct.unpack(">I", raw)
                    if self._need_head > MAX_HEADER_BYTES:
                        raise CarryFileError(
                            "unreadable", f"transfer file header of {self._need_head} bytes is implausibly large"
                        )
                head = self._take(self._need_head)
                if head is None:
                    return out
                try:
                    header = decode(head, CarryHeader, what="transfer file header", max_bytes=MAX_HEADER_BYTES)
                except TooDeep as exc:
                    raise CarryFileError("too_deep", f"the transfer file's header: {exc}") from None
                except FrameError as exc:
                    raise CarryFileError("unreadable", f"the transfer file's header cannot be read: {exc}") from None
                check_header(header)
                self.header = header
                if not 0 <= self.header.count <= MAX_CARRY_FRAMES:
                    raise CarryFileError(
                        "structure",
                        f"transfer file announces {self.header.count} batches; at most {MAX_CARRY_FRAMES} are read",
                        hint="Export in several files.",
                    )
            if len(self._buf) < 4:
                return out
            (size,) = struct.unpack(">I", self._buf[:4])
            index = self.frames + 1
            if size > MAX_FRAME_BYTES:
                raise FrameTooLarge(
                    f"batch {index} in the transfer file is {size} bytes; the limit is {MAX_FRAME_BYTES}"
                )
            if size < MIN_FRAME_BYTES:
                raise FrameError(f"batch {index} in the transfer file is {size} bytes, too short to be a signed batch")
            if self.frames >= self.header.count:
                raise FrameError(f"transfer file holds more batches than the {self.header.count} it announces")
            if len(self._buf) < 4 + size:
                return out
            frame = self._take(4 + size)
            assert frame is not None
            self.frames += 1
            if self.keep:
                out.append(frame[4:])

    def finish(self) -> CarryHeader:
        """The header, once the whole file was fed and found sound; raises FrameError otherwise."""
        if self._pos + len(self._buf) < self.body_end or len(self._trailer) < 32:
            raise FrameError("the transfer file is shorter than its size said (it changed while being read)")
        if self._hash.digest() != bytes(self._trailer):
            raise CarryFileError(
                "damaged",
                "the transfer file is damaged (checksum mismatch); nothing was imported",
                hint="Copy the file again from the exporting node, or export it anew.",
            )
        if self.header is None or self._buf:
            raise FrameError("transfer file is truncated inside a batch")
        if self.frames != self.header.count:
            raise FrameError(f"transfer file says {self.header.count} batches but holds {self.frames}")
        return self.header


def read_carry(data: bytes) -> CarryFile:
    """A whole transfer file held in memory (tests, small files); importers stream with ``CarryScanner``."""
    scanner = CarryScanner(len(data), keep=False)
    scanner.feed(data)
    scanner.finish()  # checksum and structure first: nothing is returned from a damaged file
    reader = CarryScanner(len(data), keep=True)
    frames = reader.feed(data)
    return CarryFile(header=reader.finish(), frames=tuple(frames))
