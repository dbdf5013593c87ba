"""``sanji export`` / ``sanji import``: move batches on a file when there is no link.

``export`` writes everything this node holds that another node on the path is owed;
``import`` verifies every batch in a file and applies what is new. Both are ``sanji.carry``'s,
the same code the sync panel's 导出带送文件 / 导入带来的文件 run. Importing the same file twice
changes nothing; a damaged or crafted file, or one written for another node, is refused whole.
The file is never held in memory: its size is checked before it is read, then it is read as a
stream twice (check everything, then apply), one frame at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import BinaryIO

from protocol.carry import MAGIC, CarryScanner
from protocol.errors import SanjiError
from sanji.carry import FILE_ERRORS, CarryExport, ImportSummary, export_for, import_carried, refused_file_words
from sanji.cli import say
from sanji.cli.args import node_id_arg
from sanji.cli.common import node_store, write_out
from sanji.config import ConfigError, load_settings


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    exp = sub.add_parser("export", help="write the batches another node is owed to a file (for hand carrying)")
    exp.add_argument("--config", required=True, help="this node's TOML config")
    exp.add_argument("--for", dest="recipient", required=True, type=node_id_arg, help="the node to import it")
    exp.add_argument("--out", required=True, help="file to write, e.g. /media/usb/T01V01-to-T01.sjx")
    exp.set_defaults(func=lambda a: run_export(a.config, a.recipient, Path(a.out)))
    imp = sub.add_parser("import", help="verify and apply a file written by `sanji export`")
    imp.add_argument("--config", required=True, help="this node's TOML config")
    imp.add_argument("file", help="the transfer file")
    imp.set_defaults(func=lambda a: run_import(a.config, Path(a.file)))


def run_export(config: str, recipient: str, out: Path) -> int:
    try:
        written = asyncio.run(export_file(config, recipient))
    except (ConfigError, SanjiError) as exc:
        say.failure(exc)
        return 2
    if not write_out(out, written.data, usb=True, stdout=True):  # a file is either whole or absent
        return 2
    say.info(
        f"已为 {recipient} 写出 {written.batches} 批（{written.errands} 件办件）到 {out}",
        f"wrote {written.batches} batches ({written.errands} errands) for {recipient} to {out}",
    )
    return 0


def run_import(config: str, path: Path) -> int:
    try:
        summary = asyncio.run(import_file(config, path))
    except (ConfigError, NotATransferFile) as exc:
        say.failure(exc)
        return 2
    except FILE_ERRORS as exc:  # the file as a whole, worded as the sync panel words it
        zh, en = refused_file_words(exc, _head(path))[1]
        say.error(zh, en)
        say.hint(exc.hint)
        return 2
    except SanjiError as exc:  # the node's own (its key, its database): the file is not at fault
        say.failure(exc)
        return 2
    except OSError as exc:  # the file, or the node's own (its key file): name the one that failed
        where = exc.filename or path
        say.error(f"无法读取 {where}", f"{where}: {exc.strerror or exc}")
        return 2
    signed = "、".join(summary.signers) or "无已验证的批次"
    signed_en = ", ".join(summary.signers) or "no verified batch"
    claim = "" if summary.exporter in summary.signers else f"；文件头（未签名）写的是 {summary.exporter}"
    claim_en = "" if summary.exporter in summary.signers else f"; the unsigned header names {summary.exporter}"
    say.info(f"签名节点：{signed}{claim}", f"signed by {signed_en}{claim_en}")
    say.info(
        f"共 {summary.batches} 批：已应用 {summary.stored}，本节点已有 {summary.duplicate}，"
        f"等待更早的批次 {summary.held}，拒收 {summary.refused}",
        f"{summary.batches} batches: {summary.stored} applied, {summary.duplicate} already held, "
        f"{summary.held} waiting for earlier batches, {summary.refused} refused",
    )
    for refused, error in zip(summary.refusals[:20], summary.errors[:20], strict=False):
        where = f"数据流 {refused.origin}->{refused.scope} 第 {refused.seq} 批，" if refused.origin else ""
        print(f"  拒收：{where}{say.ERRORS_ZH.get(refused.error, '数据包未能应用')}")
        print(f"    refused: {error}")
    if summary.refused > 20:
        print(f"  ……另有 {summary.refused - 20} 批拒收 ... and {summary.refused - 20} more refused")
    return 0 if summary.refused == 0 else 1


def _head(path: Path) -> bytes:
    """The file's first bytes (enough to tell a transfer file from another kind), or none if it cannot be read."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(MAGIC))
    except OSError:
        return b""


class NotATransferFile(SanjiError):
    """The argument names no transfer file; ``message_zh`` says so in Chinese, first on the command line."""

    code = "not_a_transfer_file"

    def __init__(self, message: str, *, zh: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.message_zh = zh


def open_transfer_file(path: Path) -> tuple[BinaryIO, int]:
    """The file and its size, or a SanjiError that says in words what is wrong with the argument."""
    if not path.exists():
        raise NotATransferFile(
            f"{path} does not exist",
            zh=f"传输文件不存在：{path}",
            hint="Give the path of the .sjx file written by `sanji export`.",
        )
    if path.is_dir():
        raise NotATransferFile(
            f"{path} is a directory, not a transfer file",
            zh=f"这是文件夹，不是传输文件：{path}",
            hint="Name the .sjx file inside it.",
        )
    if not path.is_file():
        raise NotATransferFile(f"{path} is not a regular file", zh=f"不是普通文件：{path}")
    fh = path.open("rb")
    size = os.fstat(fh.fileno()).st_size  # of the file opened, not of whatever the name points to later
    try:
        CarryScanner(size, keep=False)  # too big or too small: refused before a byte is read
    except SanjiError:
        fh.close()
        raise
    return fh, size


async def import_file(config: str, path: Path) -> ImportSummary:
    """Verify the whole file first (streamed), then apply its batches a group at a time (streamed again)."""
    settings = load_settings(config)
    fh, size = open_transfer_file(path)
    with fh:
        async with node_store(settings) as (store, _):
            return await import_carried(store, fh, size)


async def export_file(config: str, recipient: str) -> CarryExport:
    settings = load_settings(config)
    async with node_store(settings) as (store, _):
        return await export_for(store, recipient)
