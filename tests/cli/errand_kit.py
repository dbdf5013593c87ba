"""Running ``sanji`` in-process as a person types it: argv in, (exit code, stdout, stderr) out."""

from __future__ import annotations

import io
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from sanji.cli import accounts_cmd
from sanji.cli.main import main

PASSWORD = "kai-men-hong-7"


def sanji(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse refuses the command line itself
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def add_accounts(config: Path, accounts: Sequence[tuple[str, str]]) -> None:
    """Staff accounts (name, role) at the node of ``config``, added the way an operator adds them."""
    with redirect_stdout(io.StringIO()):
        for name, role in accounts:
            assert accounts_cmd.run_add(str(config), name, role, PASSWORD) == 0, (name, role)
