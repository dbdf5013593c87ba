"""Copies of a node's store taken while it runs, kept for N days, and putting one back.

SQLite is copied with its online backup API: the copy is one consistent snapshot even while
the node keeps writing (WAL readers never block the writer). PostgreSQL is copied with
``pg_dump --format=custom`` (one transaction, so also consistent) and put back in one transaction that first
drops every table, view, sequence, type and function of the store's schema (``alembic_version`` too, but not
what an extension owns) and then runs what ``pg_restore`` makes of the dump: the database is then exactly the
dump's, even when a later migration added tables the dump lacks (the node migrates it again at start), and a
restore that fails anywhere leaves the database as it was. A restored node rejoins by the sync core's restore
rules: it takes back its own batches from its parent before numbering anything new (docs/architecture.md). Every
SQLite copy carries the restored mark (``protocol.ledger.RESTORED_MARK``), however it is put back, so the node it
becomes waits for its parent's word before numbering a batch in any stream.

A restored store keeps its catalogue floor (``meta`` ``catalogue_versions_floor``) and records what it may have
lost (``catalogue_versions_lost``, ``RECORD_LOST``): the copy holds every version it kept from its floor up to its
newest, so one it lacks there was never published and is still refused; the county may have published versions
after the copy was taken, which the copy cannot know, so the versions from its newest + 1 up to the next one it
keeps cannot be checked (无法核对, ``Documents.put_document`` closes the range). A copy from before migrations
0026/0027 records the range too, from its ``documents`` row, and gets its floor when it is migrated.

Backups are named ``<node>-<UTC time>-<why>.db`` (SQLite) or ``.dump`` (PostgreSQL), so the
newest sorts last and pruning by age needs nothing but the name and the file time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from protocol.errors import SanjiError
from protocol.ledger import RESTORED_MARK

SUFFIXES = (".db", ".dump")
# The catalogue versions a restored copy may have lost: from its newest + 1 up, an open range appended to
# ``meta`` ``catalogue_versions_lost`` (``sanji.store.documents.LOST``, whose form this writes: "a-b,c-"), unless the
# copy holds no catalogue or already ends with an open range (it kept no version since it was last restored). The
# newest is read from ``documents`` (kept with ``document_versions``), which a copy from before migration 0026 has
# too. SQL both SQLite and PostgreSQL run, without the node's runtime.
RECORD_LOST = (
    "INSERT INTO meta (key, value) "
    "SELECT 'catalogue_versions_lost', "
    "COALESCE(NULLIF((SELECT value FROM meta WHERE key = 'catalogue_versions_lost'), '') || ',', '') "
    "|| CAST(MAX(version) + 1 AS VARCHAR(32)) || '-' "
    "FROM documents WHERE kind = 'catalogue' "
    "HAVING MAX(version) IS NOT NULL "
    "AND COALESCE((SELECT value FROM meta WHERE key = 'catalogue_versions_lost'), '') NOT LIKE '%-' "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
# How long the restore waits for a table another process still uses (a second hub process left running, a psql
# session): it then fails, as it was, rather than wait for ever.
PG_LOCK_TIMEOUT_S = 60
# Run first in the restore's transaction: the store's schema emptied, so the dump's tables alone are there after
# (``pg_restore --clean`` drops only the dump's own objects, and a table a later migration added stayed behind to
# fail that migration at the next start). What an extension owns is left to it; CASCADE takes indexes, foreign keys,
# owned sequences and row types with their table, and IF EXISTS what an earlier CASCADE took.
PG_EMPTY_SCHEMA = r"""
SET client_min_messages = warning;
SET lock_timeout = '{lock_timeout_s}s';
DO $sanji$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                              WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS what, c.relname AS name
        FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('DROP %s IF EXISTS %I.%I CASCADE', r.what, current_schema(), r.name);
    END LOOP;
    FOR r IN
        SELECT t.typname AS name FROM pg_type t
        WHERE t.typnamespace = current_schema()::regnamespace
          AND (t.typtype IN ('e', 'd', 'r')
               OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I.%I CASCADE', current_schema(), r.name);
    END LOOP;
    FOR r IN
        SELECT p.oid::regprocedure::text AS name FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind IN ('f', 'p')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE 'DROP ROUTINE IF EXISTS ' || r.name || ' CASCADE';
    END LOOP;
END
$sanji$;
"""
# Run last, in the same transaction: the dump's script set an empty search_path, so the store's is put back first.
PG_RECORD_LOST = f"""
RESET search_path;
DO $sanji$
BEGIN
    IF to_regclass('meta') IS NOT NULL AND to_regclass('documents') IS NOT NULL THEN
        EXECUTE $q${RECORD_LOST}$q$;
    END IF;
END
$sanji$;
"""


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

    SQLite: the current file is kept beside it as ``<name>.before-restore-<time>`` and returned. PostgreSQL: the
    database becomes the dump's in one transaction (``_pg_restore``), or stays as it was.
    """
    if not source.is_file():
        raise BackupError(f"backup {source} does not exist")
    target = sqlite_path(url)
    if target is None:
        if url.startswith("sqlite"):
            raise BackupError("an in-memory store cannot be restored")
        if source.suffix != ".dump":
            raise BackupError(f"{source} is not a PostgreSQL dump (.dump); this node's store is PostgreSQL")
        _pg_restore(libpq_url(url), source)
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
    _record_lost(staged)
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


def _record_lost(path: Path) -> None:
    """The copy about to be put back records the catalogue versions it may have lost (``RECORD_LOST``), before it
    is in place."""
    conn = sqlite3.connect(path)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if {"meta", "documents"} <= tables:
            with conn:
                conn.execute(RECORD_LOST)
    except sqlite3.Error as exc:
        raise BackupError(f"could not record the catalogue versions {path} may lack: {exc}") from None
    finally:
        conn.close()


def _pg_restore(dbname: str, source: Path) -> None:
    """Put the dump ``source`` in place of the database ``dbname`` in one transaction (``PG_EMPTY_SCHEMA``, the
    dump, ``PG_RECORD_LOST``). psql is sent COMMIT only once pg_restore has written the whole dump: if either
    fails, psql ends with the transaction open and the server rolls it back."""
    for tool in ("pg_restore", "psql"):
        if shutil.which(tool) is None:
            raise BackupError(
                f"{tool} is not installed", hint="Install the PostgreSQL client tools (postgresql-client)"
            )
    toc = subprocess.run(
        ["pg_restore", "--list", str(source)], capture_output=True, text=True, timeout=600, check=False
    )
    if toc.returncode != 0:  # not a dump, or a damaged one: refused before anything is dropped
        raise BackupError(f"{source} is not a readable PostgreSQL dump: {toc.stderr.strip()[-500:]}")
    if any(" BLOB" in line for line in toc.stdout.splitlines() if not line.startswith(";")):
        # pg_restore writes large objects in transactions of their own, which would commit the restore half done;
        # a Sanji store has none
        raise BackupError(f"{source} holds large objects, which no Sanji store has: not restored")
    with tempfile.TemporaryFile() as psql_err, tempfile.TemporaryFile() as dump_err:
        psql = subprocess.Popen(
            ["psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", f"--dbname={dbname}"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err,
        )  # fmt: skip
        dump = subprocess.Popen(
            ["pg_restore", "--clean", "--if-exists", "--no-owner", "--file=-", str(source)],
            stdout=subprocess.PIPE, stderr=dump_err,
        )  # fmt: skip
        assert psql.stdin is not None and dump.stdout is not None
        dumped = False
        try:
            empty = PG_EMPTY_SCHEMA.replace("{lock_timeout_s}", str(PG_LOCK_TIMEOUT_S))
            psql.stdin.write(b"BEGIN;\n" + empty.encode())
            shutil.copyfileobj(dump.stdout, psql.stdin, 1 << 20)
            dumped = dump.wait(timeout=3600) == 0
            if dumped:
                psql.stdin.write(PG_RECORD_LOST.encode() + b"COMMIT;\n")
            psql.stdin.close()
        except BrokenPipeError:  # psql stopped at an error (ON_ERROR_STOP) before COMMIT: nothing was committed
            dumped = False
        finally:
            dump.stdout.close()  # pg_restore, if psql stopped reading, stops writing
            dump.wait(timeout=3600)
            with contextlib.suppress(BrokenPipeError):
                psql.stdin.close()
            restored = psql.wait(timeout=3600) == 0
        if not (dumped and restored):
            said = " / ".join(s for s in (_tail(f) for f in (psql_err, dump_err)) if s)
            raise BackupError(
                f"could not restore {source}; the database is as it was: {said}",
                hint=(
                    "another process still uses this database (a hub process of this node, a psql session): "
                    "stop it, then restore again"
                    if "lock timeout" in said
                    else ""
                ),
            )


def _tail(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode(errors="replace").strip()[-500:]


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
