"""``sanji doctor --config ...``: one line per check with what to fix; exit 0 all well, 1 warnings, 2 failures."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from sanji.doctor import diagnose


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("doctor", help="check this node's config, keys, store, certificates, clock, parent, disk ...")
    p.add_argument("--config", required=True)
    p.add_argument("--db", help="database URL overriding the config")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the parent to answer")
    p.add_argument("--json", action="store_true", help="one JSON object per finding, one per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    doctor = asyncio.run(diagnose(Path(args.config), db=args.db, wait_s=args.timeout))
    for finding in doctor.findings:
        print(json.dumps(finding.as_json(), ensure_ascii=False) if args.json else finding.line())
    return doctor.exit_status
