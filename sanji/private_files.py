"""A node's data is private: every file it writes is 0600, every directory 0700.

Databases, key files, logs and exports hold personal data or secrets; a node shares its
machine with other accounts (a village laptop, a county server). ``private_umask`` makes
everything the process creates from then on private (the CLI sets it before any command runs);
``tighten`` repairs what an older version or another tool left readable, at every start.
``write_whole`` is the one way a node writes a file it hands to someone (an export, a key): the
file under its name is either the old one or the whole new one, never a torn half, even across a
power cut (a village laptop's battery, a USB stick pulled).
"""

from __future__ import annotations

import errno
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


def write_whole(path: Path, data: bytes, *, mode: int = 0o666) -> None:
    """Write ``data`` as ``path``, all or nothing: a temporary file beside it, fsync, rename, fsync the directory.

    ``mode`` is the new file's mode before the process umask (0o600 for key files). The parent directory must
    exist. A failure leaves ``path`` as it was and removes the temporary file.
    """
    # A visible ``.part`` of a fixed name, not a hidden unique one: after a power cut or a pulled stick the half file
    # (personal data) is one an operator sees, and the next write of the same file takes it away first.
    tmp = path.with_name(f"{path.name}.part")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # born with ``mode``, never an old file's
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable. Some file systems cannot fsync a directory; the file is whole regardless."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
