"""``sanji ledger export``: the node's ledger (台账) for a period as XLSX or CSV, Chinese headers.

    sanji ledger export --config NODE.toml --from 2026-10-01 --to 2026-12-31 --format xlsx --out L.xlsx

Filters as on the screen (``--township``, ``--matter``, ``--kind`` …). XLSX holds the ledger,
statistics by township, matter and month (at a city: by county first), and the definitions; CSV holds
the ledger (``--stats``: the statistics instead). Exit 0 on success, 2 when the request or the node cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from protocol.errors import SanjiError
from protocol.topology import regional
from sanji.cli import say
from sanji.cli.common import node_store, write_out
from sanji.config import ConfigError, load_settings
from sanji.office.export import ledger_csv, stats_csv, workbook_bytes
from sanji.office.ledger import LedgerFilter
from sanji.office.query import FILTER_FIELDS, build_filter, parse_day
from sanji.office.source import ledger
from sanji.office.stats import group, natural_groups, total


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ledger", help="ledgers (台账) and statistics of this node, as files")
    inner = p.add_subparsers(dest="ledger_command", required=True, metavar="LEDGER_COMMAND")
    exp = inner.add_parser("export", help="write the ledger of a period as XLSX or CSV")
    exp.add_argument("--config", required=True, help="the node's TOML config")
    exp.add_argument("--from", dest="date_from", required=True, help="first registration day, e.g. 2026-10-01")
    exp.add_argument("--to", dest="date_to", required=True, help="last registration day, e.g. 2026-12-31")
    exp.add_argument("--format", choices=("xlsx", "csv"), default="xlsx")
    exp.add_argument("--out", required=True, help="the file to write")
    exp.add_argument("--stats", action="store_true", help="CSV: write the statistics instead of the ledger")
    for name in FILTER_FIELDS:
        exp.add_argument(f"--{name}", default="", help=f"only errands with this {name}")
    exp.set_defaults(func=run_export)


async def _rows(config: str, flt: LedgerFilter, fmt: str, stats_only: bool) -> tuple[bytes, int]:
    settings = load_settings(config)
    async with node_store(settings) as (store, context):
        rows = await ledger(store, context, flt)
        above = store.node_id in store.directory and regional(store.directory.role(store.node_id))
    groups = {by: [*group(rows, by), total(rows)] for by in natural_groups(above)}
    if fmt == "xlsx":
        return workbook_bytes(rows, groups), len(rows)
    return (stats_csv(groups) if stats_only else ledger_csv(rows)), len(rows)


def run_export(args: argparse.Namespace) -> int:
    try:
        start, end = parse_day(args.date_from, "--from"), parse_day(args.date_to, "--to")
        values = {name: getattr(args, name) for name in FILTER_FIELDS}
        values.update({"from": start.isoformat(), "to": end.isoformat()})
        flt = build_filter(values, default_from=start, default_to=end)
        data, count = asyncio.run(_rows(args.config, flt, args.format, args.stats))
    except (SanjiError, ConfigError, ValueError, OSError) as exc:
        say.failure(exc, file=sys.stderr)
        return 2
    out = Path(args.out)
    if not write_out(out, data):
        return 2
    say.info(
        f"{flt.date_from} 至 {flt.date_to} 登记的 {count} 件办件 -> {out}（{len(data)} 字节，{args.format}）",
        f"{count} errands registered {flt.date_from} .. {flt.date_to} -> {out} ({len(data)} bytes, {args.format})",
    )
    return 0
