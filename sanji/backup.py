"""Copies of a node's store taken while it runs, kept for N days, and putting one back.

SQLite is copied with its online backup API: the copy is one consistent snapshot even while
the node keeps writing (WAL readers never block the writer). PostgreSQL is copied with
``pg_dump --format=custom`` (one transaction, so also consistent) and put back with
``pg_restore --clean``. A restored node rejoins by the sync core's restore rules: it takes back
its own batches from its parent before numbering anything new (docs/architecture.md). Every SQLite
copy carries the restored mark (``protocol.ledger.RESTORED_MARK``), however it is put back, so the
node it becomes waits for its parent's word before numbering a batch in any stream.

A restored store forgets its catalogue floor (``meta`` ``catalogue_versions_floor``, set to ""): the copy lacks
any catalogue the county published after it was taken, so "every version from the floor up is held" no longer
holds, and a county would refuse errands honestly bound to a lost version as bound to one never published. The
next version the node keeps becomes its floor (``Documents.put_document``); those below it that it lacks cannot be
checked (无法核对), and the versions the copy holds are checked as before.

Backups are named ``<node>-<UTC time>-<why>.db`` (SQLite) or ``.dump`` (PostgreSQL), so the
newest sorts last and pruning by age needs nothing but the name and the file time.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from protocol.errors import SanjiError
from protocol.ledger import RESTORED_MARK

SUFFIXES = (".db", ".dump")
# ``sanji.context.CATALOGUE_FLOOR``, written here without importing the node's runtime; "" is no floor.
FORGET_FLOOR = (
    "INSERT INTO meta (key, value) VALUES ('catalogue_versions_floor', '') ON CONFLICT (key) DO UPDATE SET value = ''"
)


class BackupError(SanjiError):
    pass


@dataclass(frozen=True)
class BackupFile:
    path: Path
    size: int


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (any driver), or None for PostgreSQL or an in-memory store."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as pg_dump and psql take it (no ``+asyncpg``)."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


def backup_name(node: str, why: str, now: datetime | None = None, *, postgres: bool = False) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{node}-{stamp}-{why}{'.dump' if postgres else '.db'}"


def backup(url: str, out_dir: Path, *, node: str, why: str = "manual") -> BackupFile:
    """Copy the store at ``url`` into ``out_dir``; safe while the node runs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source = sqlite_path(url)
    if source is None and url.startswith("sqlite"):
        raise BackupError("an in-memory store cannot be backed up")
    target = out_dir / backup_name(node, why, postgres=source is None)
    partial = target.with_name(target.name + ".partial")  # a crash never leaves a half copy under a real name
    if source is not None:
        _sqlite_copy(source, partial)
        _mark_restored(partial)
    else:
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={partial}", f"--dbname={libpq_url(url)}"])
    os.replace(partial, target)
    return BackupFile(target, target.stat().st_size)


def restore(url: str, source: Path) -> Path | None:
    """Put the backup ``source`` in place of the store at ``url``. The node must be stopped.

    SQLite: the current file is kept beside it as ``<name>.before-restore-<time>`` and returned.
    """
    if not source.is_file():
        raise BackupError(f"backup {source} does not exist")
    target = sqlite_path(url)
    if target is None:
        if url.startswith("sqlite"):
            raise BackupError("an in-memory store cannot be restored")
        if source.suffix != ".dump":
            raise BackupError(f"{source} is not a PostgreSQL dump (.dump); this node's store is PostgreSQL")
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
              f"--dbname={libpq_url(url)}", str(source)])  # fmt: skip
        try:
            _run(["psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", f"--dbname={libpq_url(url)}",
                  "--command", FORGET_FLOOR])  # fmt: skip
        except BackupError as exc:
            raise BackupError(
                f"restored {source}, but could not forget its catalogue floor: {exc.message}",
                hint="run this in psql before starting the node: " + FORGET_FLOOR,
            ) from None
        return None
    if source.suffix != ".db":
        raise BackupError(f"{source} is not a SQLite backup (.db); this node's store is SQLite")
    _check_sqlite(source)
    kept = None
    if target.exists():
        kept = target.with_name(f"{target.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        _sqlite_copy(target, kept)
    staged = target.with_name(target.name + ".restoring")
    shutil.copyfile(source, staged)
    _forget_floor(staged)
    for side in ("-wal", "-shm"):  # the old log must not be replayed over the restored file
        Path(str(target) + side).unlink(missing_ok=True)
    os.replace(staged, target)
    return kept


def prune(out_dir: Path, *, node: str, keep_days: float, now: float | None = None) -> list[Path]:
    """Delete this node's backups older than ``keep_days``; the newest one is always kept."""
    if not out_dir.is_dir():
        return []
    mine = sorted(p for p in out_dir.iterdir() if p.name.startswith(f"{node}-") and p.suffix in SUFFIXES)
    cutoff = (now if now is not None else time.time()) - keep_days * 86400
    gone = []
    for path in mine[:-1]:
        if path.stat().st_mtime < cutoff:
            path.unlink()
            gone.append(path)
    return gone


def listing(out_dir: Path, *, node: str) -> list[BackupFile]:
    if not out_dir.is_dir():
        return []
    return [
        BackupFile(p, p.stat().st_size)
        for p in sorted(out_dir.iterdir())
        if p.name.startswith(f"{node}-") and p.suffix in SUFFIXES
    ]


def _sqlite_copy(source: Path, target: Path) -> None:
    if not source.exists():
        raise BackupError(f"the store {source} does not exist")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        src.backup(dst, pages=256)  # steps, so a busy writer is never held up for the whole copy
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    except sqlite3.Error as exc:
        raise BackupError(f"could not copy {source}: {exc}") from None
    finally:
        dst.close()
        src.close()


def _mark_restored(path: Path) -> None:
    """Whoever starts a node on this copy starts one that may have lost batches it sent: say so in it.
    The root (PostgreSQL) has no parent to ask, so its dumps need no mark."""
    conn = sqlite3.connect(path)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
            with conn:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE SET value = '1'",
                    (RESTORED_MARK,),
                )
    except sqlite3.Error as exc:
        raise BackupError(f"could not mark the copy {path}: {exc}") from None
    finally:
        conn.close()


def _forget_floor(path: Path) -> None:
    """The copy about to be put back forgets its catalogue floor (``FORGET_FLOOR``), before it is in place."""
    conn = sqlite3.connect(path)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
            with conn:
                conn.execute(FORGET_FLOOR)
    except sqlite3.Error as exc:
        raise BackupError(f"could not forget the catalogue floor of {path}: {exc}") from None
    finally:
        conn.close()


def _check_sqlite(path: Path) -> None:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            ok = conn.execute("PRAGMA quick_check").fetchone()
            has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from None
    if not ok or ok[0] != "ok":
        raise BackupError(f"{path} fails SQLite's integrity check: {ok[0] if ok else '?'}")
    if not has_meta:
        raise BackupError(f"{path} is not a Sanji store (no alembic_version table)")


def _run(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        raise BackupError(f"{argv[0]} is not installed", hint="Install the PostgreSQL client tools (postgresql-client)")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise BackupError(f"{argv[0]} failed: {done.stderr.strip()[-500:]}")
