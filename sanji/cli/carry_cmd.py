"""``sanji export`` / ``sanji import``: move batches on a file when there is no link.

``export`` writes everything this node holds that another node on the path is owed;
``import`` verifies every batch in a file and applies what is new. Importing the
same file twice changes nothing; a damaged file is refused whole.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from protocol.carry import CarryHeader, read_carry, write_carry
from protocol.errors import SanjiError
from sanji.cli.common import node_store
from sanji.config import ConfigError, load_settings


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
        summary = asyncio.run(import_file(config, path.read_bytes()))
    except (ConfigError, SanjiError) as exc:
        print(f"error: {exc}")
        if isinstance(exc, SanjiError) and exc.hint:
            print(f"hint: {exc.hint}")
        return 2
    except FileNotFoundError:
        print(f"error: {path} does not exist")
        return 2
    print(
        f"{summary.batches} batches: {summary.stored} applied, {summary.duplicate} already held, "
        f"{summary.held} waiting for earlier batches, {summary.refused} refused"
    )
    for error in summary.errors[:20]:
        print(f"  refused: {error}")
    return 0 if summary.refused == 0 else 1


async def export_file(config: str, recipient: str) -> tuple[bytes, int]:
    settings = load_settings(config)
    async with node_store(settings) as (store, _):
        await store.seal_outbox(force=True)  # no link to ask anyone: the operator carries what is written now
        frames = await store.frames_for_node(recipient)
        header = CarryHeader(exporter=store.node_id, recipient=recipient, created=store.clock.now(), count=len(frames))
        return write_carry(header, frames), len(frames)


async def import_file(config: str, data: bytes) -> ImportSummary:
    settings = load_settings(config)
    carried = read_carry(data)
    async with node_store(settings) as (store, _):
        outcome = await store.receive(carried.frames, peer=f"file:{carried.header.exporter}")
    results = outcome.results
    return ImportSummary(
        batches=len(results),
        stored=sum(r.status == "stored" for r in results),
        duplicate=sum(r.status == "duplicate" for r in results),
        held=sum(r.status == "held" for r in results),
        refused=sum(r.status == "refused" for r in results),
        errors=[f"{r.error}: {r.message}" for r in results if r.status == "refused"],
    )
