"""Hand-carried files, as ``sanji export`` / ``sanji import`` and the sync panel (``/carry``) both run them.

One export and one import, whatever asks: the command line opens a path, the screen an uploaded
file, and both call ``export_for`` and ``import_carried`` with the node's store. An import checks
the whole file first (structure, limits, checksum: ``protocol.carry.CarryScanner``), refuses a
file written for another node, then reads it again and applies its batches a group at a time;
each batch is still verified like any received batch, so the file adds no trust of its own, and
importing the same file twice changes nothing. The file's header is not signed: what an import records
and shows as the file's origin is the nodes that signed the batches it verified (``ImportSummary.signers``);
the header's exporter, a node id of the directory or the file is refused, is kept beside them as claimed.

The screen prepares a file once and serves exactly those bytes (``PreparedFiles``): 准备文件 writes it under
the node's data directory with an unguessable name bound to the account that prepared it, the page shows
what that file holds, and 下载文件 sends that file, never a new export, so the count read on the screen is the
count carried. A prepared file is kept ``PREPARED_TTL_S`` and replaced by the same account's next one for the
same node; expired ones are removed whenever the panel prepares or serves one.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import msgspec

from protocol.batch import open_frame
from protocol.carry import MAGIC, CarryFileError, CarryHeader, CarryScanner, check_recipient, write_carry
from protocol.deadlines import CHINA_STANDARD_TIME
from protocol.errors import (
    ChainError,
    FrameError,
    FrameTooLarge,
    RouteError,
    SanjiError,
    SignatureError,
    UnsupportedFormat,
)
from protocol.hlc import wall_seconds
from protocol.session import FrameResult
from protocol.trust import TrustError
from sanji.store import Store

READ_CHUNK = 1024 * 1024
APPLY_GROUP = 200  # batches received per call: one request's worth, memory bounded by the frame limit
SHOWN_RESULTS = 100  # refused batches kept to show or print; the counts cover every batch
EXPORTED, IMPORTED = "carry_export", "carry_import"  # the node's event log: each file written or read
PREPARED_DIR = "carry"  # under the node's data directory: files the sync panel prepared, waiting to be downloaded
# Long enough to plug in a USB stick and press 下载; short enough that personal data does not linger in a second copy.
PREPARED_TTL_S = 3600.0
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")


class NotForThisNode(RouteError):
    """The file names another node as its recipient."""

    code = "carry_not_for_this_node"
    default_hint = "Import the file at the node it was exported for, or export a new one for this node."

    def __init__(self, header: CarryHeader, here: str) -> None:
        super().__init__(f"the file was exported by {header.exporter} for {header.recipient}, not for {here}")
        self.exporter, self.recipient, self.here = header.exporter, header.recipient, here


@dataclass(frozen=True)
class CarryExport:
    """A transfer file written for ``header.recipient``: its bytes and what it holds."""

    header: CarryHeader
    data: bytes
    errands: int  # distinct errands the batches touch

    @property
    def batches(self) -> int:
        return self.header.count

    @property
    def file_name(self) -> str:
        """``T01V01-to-T01-20261205.sjx``: from whom, for whom, the day written (Beijing time)."""
        day = datetime.fromtimestamp(wall_seconds(self.header.created), CHINA_STANDARD_TIME).strftime("%Y%m%d")
        return f"{self.header.exporter}-to-{self.header.recipient}-{day}.sjx"


@dataclass
class ImportSummary:
    """What an import did, batch by batch (``errors`` and ``refusals``: the first ``SHOWN_RESULTS`` refused)."""

    exporter: str  # as the unsigned header claims it (a node id of the directory, nothing more is known)
    signers: tuple[str, ...]  # the nodes that signed the batches verified here: who the file's content is from
    batches: int
    stored: int
    duplicate: int
    held: int
    refused: int
    errors: list[str]
    refusals: list[FrameResult] = field(default_factory=list)


async def export_for(store: Store, recipient: str) -> CarryExport:
    """Seal what is waiting and write every batch ``recipient`` is owed (``RouteError`` for a node not in the tree,
    ``CarryToItself`` for this node itself: refused before anything is sealed or logged)."""
    check_recipient(store.node_id, recipient)
    await store.seal_outbox(force=True)  # no link to ask anyone: the operator carries what is written now
    frames = await store.frames_for_node(recipient)
    header = CarryHeader(exporter=store.node_id, recipient=recipient, created=store.clock.now(), count=len(frames))
    written = CarryExport(header=header, data=write_carry(header, frames), errands=_errands_in(frames, store))
    detail = {"batches": written.batches, "errands": written.errands, "bytes": len(written.data)}
    await store.log_event(EXPORTED, recipient, detail)
    return written


def _errands_in(frames: list[bytes], store: Store) -> int:
    """How many errands the batches touch (a batch whose key was revoked since it was taken is not counted)."""
    errands: set[str] = set()
    for frame in frames:
        try:
            errands.update(a.errand for a in open_frame(frame, store.directory).actions)
        except SanjiError:
            continue
    return len(errands)


def check_carried(fh: BinaryIO, size: int) -> CarryHeader:
    """Check a whole file (structure, limits, checksum) from its start, reading it once in chunks; nothing is kept.

    ``size`` is the file's length, known before a byte is read: a file over the format's limit or too
    short is refused at once. Raises ``FrameError`` (a ``SanjiError``) for anything wrong.
    """
    scanner = CarryScanner(size, keep=False)
    fh.seek(0)
    while chunk := fh.read(READ_CHUNK):
        scanner.feed(chunk)
    return scanner.finish()


# What a transfer file itself can be refused for (its bytes, signatures, chain, route or signers): worded as the
# file's fault by ``refused_file_words``. Anything else (the node's key, its database newer or read-only) is the
# node's, and is said as itself: telling the operator to copy the file again would not help.
FILE_ERRORS: tuple[type[SanjiError], ...] = (FrameError, SignatureError, ChainError, RouteError, TrustError)


def refused_file_words(exc: SanjiError, head: bytes) -> tuple[int, tuple[str, str]]:
    """A refused file's HTTP status and its wording, Chinese and English (the sync panel's and ``sanji import``'s):
    not a transfer file, too large, not for this node, or damaged. ``head`` is the file's first bytes."""
    if isinstance(exc, NotForThisNode):
        return 422, (
            f"此文件是 {exc.exporter} 带给 {exc.recipient} 的，不是给本节点 {exc.here} 的，未导入任何内容",
            f"This file was written by {exc.exporter} for {exc.recipient}, not for {exc.here}; nothing was imported.",
        )
    # Before the head: a file refused by its size alone was never opened (its first bytes say nothing).
    if isinstance(exc, FrameTooLarge):
        return 413, (
            "文件超过带送文件格式的上限，未导入任何内容；请分几次导出",
            f"The file is larger than a transfer file may be; nothing was imported. Export in several files. ({exc})",
        )
    if not head.startswith(MAGIC):
        return 422, (
            "这不是三级联办的带送文件（.sjx），未导入任何内容",
            "This is not a Sanji transfer file (.sjx); nothing was imported.",
        )
    if isinstance(exc, UnsupportedFormat):
        return 422, (
            "文件由较新版本的系统导出，请先升级本节点再导入；未导入任何内容",
            f"The file was written by a newer release: upgrade this node, then import it. ({exc})",
        )
    if isinstance(exc, CarryFileError) and exc.problem != "damaged":
        return 422, {
            "unreadable": (
                "文件头无法读取（不是本系统写出的文件头），未导入任何内容；请从导出节点重新导出",
                f"The file's header cannot be read; nothing was imported. Export it anew. ({exc})",
            ),
            "too_deep": (
                "文件头嵌套过深，不是本系统写出的文件，未导入任何内容",
                f"The file's header nests deeper than any Sanji header; nothing was imported. ({exc})",
            ),
            "bad_header": (
                "文件头标明的节点编号不合规或本节点不认识，未导入任何内容；只导入本县节点导出的文件",
                f"The file's header names no node of this tree; nothing was imported. ({exc})",
            ),
            "structure": (
                "文件中的批次与文件头所说不符，未导入任何内容；请从导出节点重新导出",
                f"The file's batches do not match what its header announces; nothing was imported. ({exc})",
            ),
        }[exc.problem]
    return 422, (
        "文件已损坏或被改动（校验不符），未导入任何内容；请从导出节点重新拷贝或重新导出",
        f"The file is damaged or was changed; nothing was imported. Copy it again or export it anew. ({exc})",
    )


async def import_carried(store: Store, fh: BinaryIO, size: int) -> ImportSummary:
    """Verify the whole file first, then apply its batches a group at a time (reading it again from the start)."""
    header = await asyncio.to_thread(check_carried, fh, size)
    if header.recipient != store.node_id:
        raise NotForThisNode(header, store.node_id)
    if header.exporter not in store.directory:
        raise CarryFileError(
            "bad_header",
            f"the file claims to come from {header.exporter}, a node this node does not know; nothing was imported",
            hint="Import only files exported by a node of this county's tree.",
        )
    peer = f"file:{header.exporter}"
    results: list[FrameResult] = []
    scanner = CarryScanner(size, keep=True)
    group: list[bytes] = []
    fh.seek(0)
    while chunk := await asyncio.to_thread(fh.read, READ_CHUNK):
        group.extend(scanner.feed(chunk))
        if len(group) >= APPLY_GROUP:
            results.extend((await store.receive(group, peer=peer)).results)
            group = []
    if group:
        results.extend((await store.receive(group, peer=peer)).results)
    scanner.finish()
    refused = [r for r in results if r.status == "refused"]
    signers = sorted({r.origin for r in results if r.status != "refused" and r.origin in store.directory})
    summary = ImportSummary(
        exporter=header.exporter,
        signers=tuple(signers),
        batches=len(results),
        stored=sum(r.status == "stored" for r in results),
        duplicate=sum(r.status == "duplicate" for r in results),
        held=sum(r.status == "held" for r in results),
        refused=len(refused),
        errors=[f"{r.error}: {r.message}" for r in refused][:SHOWN_RESULTS],
        refusals=refused[:SHOWN_RESULTS],
    )
    counts = ("batches", "stored", "duplicate", "held", "refused")
    detail: dict[str, object] = {name: getattr(summary, name) for name in counts}
    await store.log_event(IMPORTED, header.exporter, detail | {"signers": signers})
    return summary


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    """A file the sync panel prepared: who prepared it, for whom, what it holds, until when it is kept."""

    token: str
    account: str  # the account that prepared it ("" in open demo mode): only it downloads the file
    recipient: str
    file_name: str
    batches: int
    errands: int
    size: int
    expires: float  # wall-clock seconds


class PreparedFiles:
    """Prepared transfer files under ``root``: ``<token>.sjx`` and ``<token>.json`` (its ``Prepared``).

    Each is written whole and renamed into place, the description before the bytes; a file left without its
    description, or a part left by a crash, is swept once it is older than the time a file is kept.
    """

    def __init__(self, root: Path, *, ttl_s: float = PREPARED_TTL_S, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.ttl_s = ttl_s
        self.clock = clock

    async def keep(self, written: CarryExport, account: str) -> Prepared:
        """Keep ``written`` for ``account``, replacing what it prepared before for the same node."""
        return await asyncio.to_thread(self._keep, written, account)

    async def find(self, token: str, account: str) -> tuple[Prepared, bytes] | None:
        """The file ``token`` names if ``account`` prepared it and it has not expired; ``None`` otherwise."""
        return await asyncio.to_thread(self._find, token, account)

    def _keep(self, written: CarryExport, account: str) -> Prepared:
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep(replacing=(account, written.header.recipient))
        token = secrets.token_urlsafe(24)  # 32 characters of [A-Za-z0-9_-]
        prepared = Prepared(
            token=token,
            account=account,
            recipient=written.header.recipient,
            file_name=written.file_name,
            batches=written.batches,
            errands=written.errands,
            size=len(written.data),
            expires=self.clock() + self.ttl_s,
        )
        # The description first, then the bytes by a rename: a sweep never meets a whole file with no description.
        partial = _write(self.root / f"{token}.sjx.part", written.data)
        os.replace(_write(self.root / f"{token}.json.part", msgspec.json.encode(prepared)), self.root / f"{token}.json")
        os.replace(partial, self.root / f"{token}.sjx")
        return prepared

    def _find(self, token: str, account: str) -> tuple[Prepared, bytes] | None:
        if not _TOKEN.fullmatch(token) or not self.root.is_dir():
            return None
        self._sweep()
        prepared = self._read(self.root / f"{token}.json")
        if prepared is None or prepared.account != account:
            return None
        try:  # read whole now: a sweep may remove the file once it expires, even while it is being sent
            data = (self.root / f"{token}.sjx").read_bytes()
        except FileNotFoundError:
            return None
        return prepared, data

    def _read(self, path: Path) -> Prepared | None:
        try:
            return msgspec.json.decode(path.read_bytes(), type=Prepared)
        except (OSError, msgspec.DecodeError):
            return None

    def _sweep(self, replacing: tuple[str, str] | None = None) -> None:
        """Remove expired files, leftovers, and ``replacing``'s (account, recipient) earlier file."""
        now = self.clock()
        for path in self.root.iterdir():
            if path.suffix == ".json":
                prepared = self._read(path)
                if prepared is None or prepared.expires <= now or (prepared.account, prepared.recipient) == replacing:
                    path.unlink(missing_ok=True)  # the description first: the bytes are then never served
                    path.with_suffix(".sjx").unlink(missing_ok=True)
            elif not path.with_name(path.name.split(".")[0] + ".json").exists():
                try:
                    if path.stat().st_mtime <= now - self.ttl_s:
                        path.unlink(missing_ok=True)
                except FileNotFoundError:
                    continue


def _write(path: Path, data: bytes) -> Path:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return path
