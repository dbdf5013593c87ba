"""``sanji platform``: the provincial platform's national tables, out and in.

    sanji platform export --config county.toml --since 2026-11-01 --out DIR [--batch B] [--source 001]
    sanji platform import-catalogue LIST.json --out catalogue.json --codes codes.json --county C --version 2

``export`` writes one JSON file per table (accept, process, result, special, material, rating) and a
``manifest.json`` (batch, since, counts), each written whole then renamed, for errands changed since
the date (00:00 China Standard Time) or a full ISO time. ``import-catalogue`` turns the national
implementation list into a Sanji catalogue file (check and sign it with ``sanji catalogue``) and the
map of national codes the export uses (``--codes`` of export).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import msgspec

from protocol.deadlines import CHINA_STANDARD_TIME
from protocol.errors import SanjiError
from sanji.cli.common import node_store
from sanji.config import ConfigError, load_settings
from sanji.office.platform import TABLES, ImportProblem, NationalCodes, export_tables, import_implementation_list


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("platform", help="exchange with the provincial platform (national table shapes)")
    inner = p.add_subparsers(dest="platform_command", required=True, metavar="PLATFORM_COMMAND")
    exp = inner.add_parser("export", help="write the errands changed since a date as national-table files")
    exp.add_argument("--config", required=True)
    exp.add_argument("--since", required=True, help="a date (00:00 CST) or an ISO time with offset")
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


def parse_since(text: str) -> datetime:
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time.min, tzinfo=CHINA_STANDARD_TIME)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since must be a date like 2026-11-01 or an ISO time, not {text[:40]!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA_STANDARD_TIME)


def _write(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def load_codes(path: str) -> dict[str, NationalCodes]:
    if not path:
        return {}
    return msgspec.json.decode(Path(path).read_bytes(), type=dict[str, NationalCodes])


async def _export(
    config: str, since: datetime, batch: str, source: str, codes: dict[str, NationalCodes]
) -> dict[str, list[dict[str, Any]]]:
    async with node_store(load_settings(config)) as (store, context):
        return await export_tables(
            store, context.catalogue, since=since, batch_no=batch, data_source=source, codes=codes
        )


def run_export(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since)
        if not (len(args.source) == 3 and args.source.isdigit()):
            raise ValueError("--source is a 3-digit code")
        batch = args.batch or datetime.now(CHINA_STANDARD_TIME).strftime("%Y%m%d%H%M%S")
        tables = asyncio.run(_export(args.config, since, batch, args.source, load_codes(args.codes)))
    except SanjiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except (ConfigError, ValueError, OSError, msgspec.DecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        _write(out / f"{name}.json", tables[name])
    counts = {name: len(tables[name]) for name in TABLES}
    _write(
        out / "manifest.json",
        {"batch_no": batch, "since": since.isoformat(), "data_source": args.source, "counts": counts},
    )
    print(f"batch {batch}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" -> {out}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    try:
        data = json.loads(Path(args.file).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ImportProblem("the implementation list is a JSON object with a 'tasks' list")
        catalogue, codes = import_implementation_list(
            data, county=args.county, version=args.version, published_at=args.published_at
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _write(Path(args.out), msgspec.to_builtins(catalogue))
    _write(Path(args.codes), msgspec.to_builtins(codes))
    print(f"{len(catalogue.matters)} matters -> {args.out}; national codes -> {args.codes}")
    return 0
