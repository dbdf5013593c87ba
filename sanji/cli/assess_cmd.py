"""``sanji assess``: the quarter's scores (staff and centres) with the sources of every point.

    sanji assess --config county.toml --quarter 2026Q4 [--json] [--as-of 2026-12-31]

Exit 0 on success, 2 when the quarter or the node cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date

from protocol.assessment import Assessment, AssessmentRules
from protocol.errors import SanjiError
from sanji.cli import say
from sanji.cli.common import node_store
from sanji.config import ConfigError, load_settings
from sanji.office.assess import as_json, run_assessment


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("assess", help="quarterly assessment (季度考核) of staff and centres, with sources")
    p.add_argument("--config", required=True, help="the node's TOML config (the county hub)")
    p.add_argument("--quarter", required=True, help="e.g. 2026Q4")
    p.add_argument("--as-of", default="", help="count open errands as late up to this day (default: today)")
    p.add_argument("--json", action="store_true", help="print everything, sources included, as JSON")
    p.set_defaults(func=run)


async def _run(config: str, quarter: str, as_of: date | None) -> tuple[AssessmentRules, Assessment]:
    settings = load_settings(config)
    async with node_store(settings) as (store, context):
        return await run_assessment(store, context, quarter, as_of=as_of)


def run(args: argparse.Namespace) -> int:
    try:
        as_of = date.fromisoformat(args.as_of) if args.as_of else None
        rules, result = asyncio.run(_run(args.config, args.quarter, as_of))
    except (SanjiError, ConfigError, ValueError, OSError) as exc:
        say.failure(exc, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(as_json(rules, result), ensure_ascii=False, indent=2))
        return 0
    say.info(
        f"{result.quarter} 考核（{rules.county} 考核细则第 {rules.version} 版）",
        f"{result.quarter} assessment (rules v{rules.version} of {rules.county})",
    )
    for s in result.staff:
        print(f"  {s.rank:>3} {s.name:<12} {s.centre:<6} {s.total:>6.1f} {s.grade_name}")
    for c in result.centres:
        flag = " 红旗窗口" if c.red_flag else ""
        print(f"  {c.rank:>3} {c.centre:<12} {c.total:>6.1f}{flag}")
    if result.pending_appeals:
        print(f"  {say.both('待处理的申诉', 'pending appeals')}: {', '.join(result.pending_appeals)}")
    return 0
