"""What a result says about the machine it was measured on: a number means little without the hardware,
the versions, the commit and how busy the machine was (other work on it skews every rate)."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The packages whose versions a result names: those its numbers depend on. A store's ingest and audit
# (``apply_rate``, ``audit_verify``) depend on decoding and the database drivers; the benchmarks of running
# nodes, on the HTTP stack as well.
STORE_PACKAGES = ("msgspec", "sqlalchemy", "aiosqlite", "asyncpg", "litestar", "uvicorn")
NODE_PACKAGES = ("httpx", "uvicorn", "litestar", "sqlalchemy", "aiosqlite")


def load_average() -> float | None:
    """The 1-minute load average (None where the platform has none): read before and after a run."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def _git() -> tuple[str, bool]:
    """The commit measured, and whether tracked files differ from it (then the code is not exactly that commit)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=5
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "", False
    return commit, bool(status.stdout.strip())


def machine_info(packages: tuple[str, ...] = NODE_PACKAGES, **extra: Any) -> dict[str, Any]:
    """CPUs, Python, platform, SQLite, the versions of ``packages`` (those the benchmark's numbers depend on),
    the commit, then ``extra`` (e.g. where the temp files lived)."""
    commit, dirty = _git()
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {p: _version(p) for p in packages},
        "git_commit": commit,
        "git_tracked_files_modified": dirty,
        **extra,
    }
