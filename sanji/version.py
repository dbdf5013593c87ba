"""Which build of Sanji this is: the release from the package metadata, plus ``git describe`` in a checkout.

Every release bumps ``version`` in pyproject.toml (and ``sanji.__version__`` with it; a test holds
them equal). Run from a git checkout, the description adds where the tree stands relative to the
last tag, so two builds between releases are told apart too.
"""

from __future__ import annotations

import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

from sanji import __version__

CHECKOUT = Path(__file__).resolve().parents[1]


def release() -> str:
    """The release this code is: the installed distribution's version, else the one written in the code."""
    try:
        return metadata.version("sanji")
    except metadata.PackageNotFoundError:
        return __version__


@cache
def git_describe() -> str:
    """``git describe`` of the checkout this code runs from; "" when it is an installed wheel."""
    if not (CHECKOUT / ".git").exists():
        return ""
    try:
        done = subprocess.run(
            ["git", "-C", str(CHECKOUT), "describe", "--tags", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def describe() -> str:
    """``0.3.0`` for a wheel; ``0.3.0 (git v0.2.0-14-gab12cd3-dirty)`` from a checkout."""
    where = git_describe()
    return f"{release()} (git {where})" if where else release()
