"""Entry point for the ``sanji`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sanji.cli import (
    accounts_cmd,
    archive_cmd,
    assess_cmd,
    backup_cmd,
    calendar_cmd,
    carry_cmd,
    catalogue_cmd,
    demo,
    directory_cmd,
    doctor_cmd,
    keys_init,
    ledger_cmd,
    platform_cmd,
    rules_cmd,
    serve,
    trust_cmd,
    verify_cmd,
)
from sanji.private_files import private_umask
from sanji.version import describe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sanji", description="三级联办 Sanji: county, township and village service centres in sync."
    )
    parser.add_argument("--version", action="version", version=f"sanji {describe()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for role in ("county", "town", "village"):
        serve.add_parser(sub, role)
    keys_init.add_parser(sub)
    directory_cmd.add_parser(sub)
    catalogue_cmd.add_parser(sub)
    calendar_cmd.add_parser(sub)
    carry_cmd.add_parsers(sub)
    accounts_cmd.add_parser(sub)
    verify_cmd.add_parser(sub)
    ledger_cmd.add_parser(sub)
    assess_cmd.add_parser(sub)
    rules_cmd.add_parser(sub)
    platform_cmd.add_parsers(sub)
    trust_cmd.add_parsers(sub)
    demo.add_parser(sub)
    backup_cmd.add_parsers(sub)
    archive_cmd.add_parser(sub)
    doctor_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    private_umask()  # databases, keys, logs and exports: 0600 files in 0700 directories
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
