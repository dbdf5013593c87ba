"""A node's data is private: every file it writes is 0600, every directory 0700.

Databases, key files, logs and exports hold personal data or secrets; a node shares its
machine with other accounts (a village laptop, a county server). ``private_umask`` makes
everything the process creates from then on private (the CLI sets it before any command runs);
``tighten`` repairs what an older version or another tool left readable, at every start.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def private_umask() -> int:
    """Make every file and directory this process creates private; returns the previous mask."""
    return os.umask(PRIVATE_UMASK)


def _narrow(path: Path, mode: int) -> bool:
    current = stat.S_IMODE(path.lstat().st_mode)
    if current & ~mode:
        path.chmod(current & mode)
        return True
    return False


def tighten(directory: Path, *files: Path) -> list[Path]:
    """Take group and other access away from ``directory``, the files directly in it, and ``files``.

    Returns what was changed. Symbolic links and missing paths are left alone.
    """
    changed: list[Path] = []
    targets: list[tuple[Path, int]] = []
    if directory.is_dir() and not directory.is_symlink():
        targets.append((directory, DIR_MODE))
        targets += [(p, FILE_MODE) for p in directory.iterdir() if p.is_file() and not p.is_symlink()]
    targets += [(p, FILE_MODE) for p in files if p.is_file() and not p.is_symlink()]
    for path, mode in targets:
        try:
            if _narrow(path, mode):
                changed.append(path)
        except OSError:
            continue  # not ours to change (another owner): the start goes on, the check in tests says so
    return changed
