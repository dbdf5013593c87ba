"""Entry point for the ``sanji`` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sanji.private_files import private_umask
from sanji.version import describe

# httpx imports its own command-line client (rich, pygments) whenever rich and click are installed; no
# Sanji process runs that client. A None entry makes that optional import fail the way httpx expects
# (it then defines a stub ``httpx.main``), keeping ≈ 4 MB out of every node (issue 16's footprint).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

SERVE_ROLES = ("county", "town", "village", "city", "province")
# Each subcommand's module, the function that adds its parser and the commands it adds, in the order
# ``sanji --help`` lists them. A command line names one command and only its module is imported: a
# node's ``serve`` never loads the demo launcher, the evidence checker or the platform export.
COMMANDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("keys_init", "add_parser", ("keys",)),
    ("directory_cmd", "add_parser", ("directory",)),
    ("catalogue_cmd", "add_parser", ("catalogue",)),
    ("calendar_cmd", "add_parser", ("calendar",)),
    ("carry_cmd", "add_parsers", ("export", "import")),
    ("accounts_cmd", "add_parser", ("accounts",)),
    ("errand_cmd", "add_parser", ("errand",)),
    ("verify_cmd", "add_parser", ("verify", "audit")),
    ("ledger_cmd", "add_parser", ("ledger",)),
    ("assess_cmd", "add_parser", ("assess",)),
    ("rules_cmd", "add_parser", ("rules",)),
    ("platform_cmd", "add_parsers", ("platform",)),
    ("trust_cmd", "add_parsers", ("trust", "enroll")),
    ("demo", "add_parser", ("demo",)),
    ("backup_cmd", "add_parsers", ("backup", "restore")),
    ("archive_cmd", "add_parser", ("archive",)),
    ("doctor_cmd", "add_parser", ("doctor",)),
)
KNOWN = frozenset(SERVE_ROLES) | {name for _, _, names in COMMANDS for name in names}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (``command``) one that knows only that command's module."""
    parser = argparse.ArgumentParser(
        prog="sanji", description="三级联办 Sanji: county, township and village service centres in sync."
    )
    parser.add_argument("--version", action="version", version=f"sanji {describe()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command is None or command in SERVE_ROLES:
        from sanji.cli import serve

        for role in SERVE_ROLES:
            if command in (None, role):
                serve.add_parser(sub, role)
    for module, adder, names in COMMANDS:
        if command is None or command in names:
            getattr(importlib.import_module(f"sanji.cli.{module}"), adder)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    private_umask()  # databases, keys, logs and exports: 0600 files in 0700 directories
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in KNOWN else None  # anything else (--help, a typo): every command
    args = build_parser(command).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
