"""``sanji county serve`` run as an operator runs it, in a process of its own, for the tests of a start refused.

The refusal is what the command prints after the server's traceback (``error: …`` and its hint, the last lines
of stderr) and its exit status; only a real process shows both as the operator sees them, so these tests do
not call ``sanji.cli.main.main`` in the test's own process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout under test, first on the child's path


def serve_refused(config: Path) -> list[str]:
    """The lines ``sanji county serve --config config`` wrote to stderr, once it has exited 2 (a start refused)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "sanji.cli.main", "county", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    return done.stderr.strip().splitlines()
