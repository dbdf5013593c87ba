"""``sanji platform``: the provincial platform's national tables, out and in.

    sanji platform export --config county.toml --since 2026-11-01 --out DIR [--batch B] [--source 001]
    sanji platform import-catalogue LIST.json --out catalogue.json --codes codes.json --county C --version 2

``export`` writes one JSON file per table (accept, process, result, special, material, rating) and a
``manifest.json`` (batch, since, counts), each written whole then renamed, for errands changed since
the date (00:00 China Standard Time), a full ISO time, or ``last``: when the previous export
(from this command or the county's 省平台交换 screen) began. ``import-catalogue`` turns the national
implementation list into a Sanji catalogue file (check and sign it with ``sanji catalogue``) and the
map of national codes the export uses (``--codes`` of export).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import date
from pathlib import Path

import msgspec

from protocol.errors import SanjiError
from sanji.cli import say
from sanji.cli.common import node_store
from sanji.config import ConfigError, load_settings
from sanji.office.platform import (
    ImportProblem,
    NationalCodes,
    export_files,
    read_implementation_list,
    remember_export,
    since_of,
)
from sanji.private_files import write_whole


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("platform", help="exchange with the provincial platform (national table shapes)")
    inner = p.add_subparsers(dest="platform_command", required=True, metavar="PLATFORM_COMMAND")
    exp = inner.add_parser("export", help="write the errands changed since a date as national-table files")
    exp.add_argument("--config", required=True)
    exp.add_argument(
        "--since",
        required=True,
        help="a date (00:00 CST), an ISO time with offset, or last (when the last export began)",
    )
    exp.add_argument("--out", required=True, help="directory to write")
    exp.add_argument("--batch", default="", help="batch number (default: a timestamp)")
    exp.add_argument("--source", default="001", help="3-digit data source code")
    exp.add_argument("--codes", default="", help="national codes map written by import-catalogue")
    exp.set_defaults(func=run_export)
    imp = inner.add_parser("import-catalogue", help="national implementation list (JSON) -> Sanji catalogue")
    imp.add_argument("file")
    imp.add_argument("--out", required=True)
    imp.add_argument("--codes", required=True)
    imp.add_argument("--county", required=True)
    imp.add_argument("--version", type=int, required=True)
    imp.add_argument("--published-at", default=date.today().isoformat())
    imp.set_defaults(func=run_import)


def _write_all(out: Path, files: dict[str, bytes]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        write_whole(out / name, content)


def load_codes(path: str) -> dict[str, NationalCodes]:
    if not path:
        return {}
    return msgspec.json.decode(Path(path).read_bytes(), type=dict[str, NationalCodes])


async def _export(
    config: str, since: str, batch: str, source: str, codes: dict[str, NationalCodes], out: Path
) -> dict[str, bytes]:
    async with node_store(load_settings(config)) as (store, context):
        moment, arrived = await since_of(store, since)
        files = await export_files(
            store,
            context.catalogue,
            since=moment,
            data_source=source,
            batch_no=batch,
            codes=codes,
            arrived_since=arrived,
        )
        await asyncio.to_thread(_write_all, out, files)
        await remember_export(store, files)  # only once every file is written
        return files


def run_export(args: argparse.Namespace) -> int:
    try:
        out = Path(args.out)
        files = asyncio.run(_export(args.config, args.since, args.batch, args.source, load_codes(args.codes), out))
    except (SanjiError, ConfigError) as exc:
        say.failure(exc, file=sys.stderr)
        return 2
    except (ValueError, OSError, msgspec.DecodeError) as exc:
        if isinstance(exc, ValueError):
            say.error("导出起点（--since）或来源（--source）有误", f"--since/--source: {exc}", file=sys.stderr)
        else:
            say.failure(exc, file=sys.stderr)
        return 2
    manifest = json.loads(files["manifest.json"])
    counts = manifest["counts"]
    listed = ", ".join(f"{k} {v}" for k, v in counts.items())
    say.info(f"批次 {manifest['batch_no']}：{listed} -> {out}", f"batch {manifest['batch_no']}: {listed} -> {out}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        say.failure(exc, file=sys.stderr)
        return 2
    try:
        catalogue, codes = read_implementation_list(
            raw, county=args.county, version=args.version, published_at=args.published_at
        )
    except ImportProblem as exc:
        count = len(exc.problems)
        say.error(
            f"无法导入事项实施清单 {args.file}：{count} 处问题，请逐条改正",
            f"cannot import the implementation list {args.file}: {count} problem(s)",
            file=sys.stderr,
        )
        for (
            problem
        ) in exc.problems:  # each "中文 / English" (``ImportProblem``): the Chinese line, the English under it
            zh, _, en = problem.partition(" / ")
            print(f"  {zh}", file=sys.stderr)
            if en:
                print(f"    {en}", file=sys.stderr)
        return 2
    out, codes_out = Path(args.out), Path(args.codes)
    if out.resolve() == codes_out.resolve():  # the codes map would silently take the catalogue's place
        say.error(
            f"目录与国家编码对照（--out 与 --codes）是同一个文件 {out}，请给两个不同的文件名，未写出任何文件",
            f"--out and --codes name the same file {out}: give two names; nothing was written",
            file=sys.stderr,
        )
        return 2
    pair = {
        out: json.dumps(msgspec.to_builtins(catalogue), ensure_ascii=False, indent=1).encode(),
        codes_out: json.dumps(msgspec.to_builtins(codes), ensure_ascii=False, indent=1).encode(),
    }
    staged: list[Path] = []
    placed: list[Path] = []
    try:  # both files staged (synced) first, then both put in place: a failure before the renames writes neither
        for path, content in pair.items():
            tmp = path.with_name(path.name + ".part")
            staged.append(tmp)
            with tmp.open("wb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
        for path in pair:
            os.replace(path.with_name(path.name + ".part"), path)
            placed.append(path)
    except OSError as exc:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
        where = exc.filename or args.out
        done_zh = f"已写出 {placed[0]}，另一个文件未写出" if placed else "未写出任何文件"
        done_en = f"; {placed[0]} was written, the other was not" if placed else "; nothing was written"
        say.error(
            f"无法写出文件 {where}，{done_zh}",
            f"cannot write {where}: {exc.strerror or exc}{done_en}",
            file=sys.stderr,
        )
        return 2
    say.info(
        f"{len(catalogue.matters)} 个事项 -> {args.out}；国家编码对照 -> {args.codes}",
        f"{len(catalogue.matters)} matters -> {args.out}; national codes -> {args.codes}",
    )
    return 0
