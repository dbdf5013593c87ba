"""``sanji export`` / ``sanji import``: move batches on a file when there is no link.

``export`` writes everything this node holds that another node on the path is owed;
``import`` verifies every batch in a file and applies what is new. Importing the
same file twice changes nothing; a damaged or crafted file is refused whole. The file is
never held in memory: its size is checked before it is read, then it is read as a stream
twice (check everything, then apply), one frame at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from protocol.carry import CarryHeader, CarryScanner, write_carry
from protocol.errors import SanjiError
from protocol.session import FrameResult
from sanji.cli.common import node_store
from sanji.config import ConfigError, load_settings

READ_CHUNK = 1024 * 1024
APPLY_GROUP = 200  # batches received per call: one request's worth, memory bounded by the frame limit


@dataclass
class ImportSummary:
    batches: int
    stored: int
    duplicate: int
    held: int
    refused: int
    errors: list[str]


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    exp = sub.add_parser("export", help="write the batches another node is owed to a file (for hand carrying)")
    exp.add_argument("--config", required=True, help="this node's TOML config")
    exp.add_argument("--for", dest="recipient", required=True, help="the node that will import the file")
    exp.add_argument("--out", required=True, help="file to write, e.g. /media/usb/T01V01-to-T01.sjx")
    exp.set_defaults(func=lambda a: run_export(a.config, a.recipient, Path(a.out)))
    imp = sub.add_parser("import", help="verify and apply a file written by `sanji export`")
    imp.add_argument("--config", required=True, help="this node's TOML config")
    imp.add_argument("file", help="the transfer file")
    imp.set_defaults(func=lambda a: run_import(a.config, Path(a.file)))


def run_export(config: str, recipient: str, out: Path) -> int:
    try:
        data, count = asyncio.run(export_file(config, recipient))
    except (ConfigError, SanjiError) as exc:
        print(f"error: {exc}")
        return 2
    tmp = out.with_name(out.name + ".part")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)  # a file is either whole or absent
    print(f"wrote {count} batches for {recipient} to {out}")
    return 0


def run_import(config: str, path: Path) -> int:
    try:
        summary = asyncio.run(import_file(config, path))
    except (ConfigError, SanjiError) as exc:
        print(f"error: {exc}")
        if isinstance(exc, SanjiError) and exc.hint:
            print(f"hint: {exc.hint}")
        return 2
    except OSError as exc:
        print(f"error: {path}: {exc.strerror or exc}")
        return 2
    print(
        f"{summary.batches} batches: {summary.stored} applied, {summary.duplicate} already held, "
        f"{summary.held} waiting for earlier batches, {summary.refused} refused"
    )
    for error in summary.errors[:20]:
        print(f"  refused: {error}")
    if len(summary.errors) > 20:
        print(f"  ... and {len(summary.errors) - 20} more refused")
    return 0 if summary.refused == 0 else 1


def open_transfer_file(path: Path) -> tuple[BinaryIO, int]:
    """The file and its size, or a SanjiError that says in words what is wrong with the argument."""
    if not path.exists():
        raise SanjiError(f"{path} does not exist", hint="Give the path of the .sjx file written by `sanji export`.")
    if path.is_dir():
        raise SanjiError(f"{path} is a directory, not a transfer file", hint="Name the .sjx file inside it.")
    if not path.is_file():
        raise SanjiError(f"{path} is not a regular file")
    fh = path.open("rb")
    size = os.fstat(fh.fileno()).st_size  # of the file opened, not of whatever the name points to later
    try:
        CarryScanner(size, keep=False)  # too big or too small: refused before a byte is read
    except SanjiError:
        fh.close()
        raise
    return fh, size


def scan_transfer_file(path: Path) -> CarryHeader:
    """Check a whole file (structure, limits, checksum) reading it once in chunks; nothing is kept."""
    fh, size = open_transfer_file(path)
    with fh:
        scanner = CarryScanner(size, keep=False)
        while chunk := fh.read(READ_CHUNK):
            scanner.feed(chunk)
        return scanner.finish()


async def import_file(config: str, path: Path) -> ImportSummary:
    """Verify the whole file first (streamed), then apply its batches a group at a time (streamed again)."""
    settings = load_settings(config)
    header = await asyncio.to_thread(scan_transfer_file, path)
    results: list[FrameResult] = []
    fh, size = open_transfer_file(path)
    async with node_store(settings) as (store, _):
        with fh:
            scanner = CarryScanner(size, keep=True)
            group: list[bytes] = []
            while chunk := fh.read(READ_CHUNK):
                group.extend(scanner.feed(chunk))
                if len(group) >= APPLY_GROUP:
                    results.extend((await store.receive(group, peer=f"file:{header.exporter}")).results)
                    group = []
            if group:
                results.extend((await store.receive(group, peer=f"file:{header.exporter}")).results)
            scanner.finish()
    return ImportSummary(
        batches=len(results),
        stored=sum(r.status == "stored" for r in results),
        duplicate=sum(r.status == "duplicate" for r in results),
        held=sum(r.status == "held" for r in results),
        refused=sum(r.status == "refused" for r in results),
        errors=[f"{r.error}: {r.message}" for r in results if r.status == "refused"][:100],
    )


async def export_file(config: str, recipient: str) -> tuple[bytes, int]:
    settings = load_settings(config)
    async with node_store(settings) as (store, _):
        await store.seal_outbox(force=True)  # no link to ask anyone: the operator carries what is written now
        frames = await store.frames_for_node(recipient)
        header = CarryHeader(exporter=store.node_id, recipient=recipient, created=store.clock.now(), count=len(frames))
        return write_carry(header, frames), len(frames)
