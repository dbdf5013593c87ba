"""Backups taken while a node writes, restored on SQLite and PostgreSQL; a restored node rejoins its parent."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, text

from protocol.ledger import RESTORED_MARK
from sanji.backup import BackupError, backup, libpq_url, prune, restore, sqlite_path
from sanji.forms import ActionForm, RegisterForm
from sanji.store import Store, open_database
from sanji.store.revisions import alembic_config, code_head
from sanji.sync.driver import sync_once
from tests.conftest import NetworkFactory


async def _errands(net_service: object, n: int, tag: str) -> list[str]:
    out = []
    for i in range(n):
        form = RegisterForm(matter="MZ-001", applicant_name=f"{tag}{i}", actor="代办")
        errand = (await net_service.register(form)).errand  # type: ignore[attr-defined]
        await net_service.act(errand, ActionForm(kind="submit", actor="代办"))  # type: ignore[attr-defined]
        out.append(errand)
    return out


async def test_sqlite_backup_while_writing_restores_that_moment_and_rejoins(
    network: NetworkFactory, tmp_path: Path
) -> None:
    net = await network(1, 1)
    village = net.stores["T01V01"]
    await _errands(net.service("T01V01"), 3, "早")
    await net.sync_all(2)
    url = str(village.db.url)

    # A copy taken while the village keeps registering is one consistent snapshot.
    writing = asyncio.create_task(_errands(net.service("T01V01"), 10, "中"))
    copy = await asyncio.to_thread(backup, url, tmp_path / "backups", node="T01V01")
    await writing
    with sqlite3.connect(copy.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        registered = conn.execute("SELECT count(*) FROM errands").fetchone()[0]
        outboxed = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert 3 <= registered <= 13
    await net.sync_all(2)
    assert len(await net.stores["T01"].digests()) == 13

    # The laptop's disk dies; the copy is put back and the node rejoins.
    await village.db.dispose()
    kept = restore(url, copy.path)
    assert kept is not None and kept.exists()
    db = await open_database(url)
    try:
        restored = Store(db, node_id="T01V01", key=net.layout.keys["T01V01"], directory=net.directory)
        await restored.start()
        assert len(await restored.digests()) == registered
        assert (await restored.status())["queue_length"] >= outboxed
        assert restored.restored  # the copy says it is one, until the parent has answered
        for _ in range(3):
            await sync_once(restored, net.signed("T01V01"))
        assert await restored.digests() == await net.stores["T01"].digests()  # what the copy lacked came back
        assert not restored.restored
    finally:
        await db.dispose()
    live = sqlite_path(url)
    assert live is not None
    with sqlite3.connect(live) as conn:  # the mark cleared on disk, not only in this process
        assert conn.execute("SELECT value FROM meta WHERE key = ?", (RESTORED_MARK,)).fetchone() == ("0",)


async def test_a_restored_township_numbers_nothing_until_the_county_answers(
    network: NetworkFactory, tmp_path: Path
) -> None:
    """Simulation seed 213: the township pushed a batch towards its village up to the county and died
    before the village pulled it; restored, it must not number that stream's next batch on the village's
    word alone (a second batch under the same number would sit beside the county's)."""
    net = await network(1, 1)
    town = net.stores["T01"]
    await _errands(net.service("T01V01"), 1, "早")
    await net.sync_all(2)
    url = str(town.db.url)
    copy = await asyncio.to_thread(backup, url, tmp_path / "backups", node="T01")
    with sqlite3.connect(copy.path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = ?", (RESTORED_MARK,)).fetchone() == ("1",)
    await town.db.dispose()
    restore(url, copy.path)
    db = await open_database(url)
    try:
        restored = Store(db, node_id="T01", key=net.layout.keys["T01"], directory=net.directory)
        await restored.start()
        assert restored.restored
        assert await restored.confirm_child("T01V01", {}) == {}  # the village has spoken: nothing ahead
        await restored.confirm_positions(by_parent=False)  # a fallback's word is not the parent's
        assert restored.restored and not restored.may_seal("T01V01")
        await restored.confirm_positions(by_parent=True)
        assert not restored.restored and restored.may_seal("T01V01")
    finally:
        await db.dispose()
    # A plain restart of the live file is no restore: it keeps serving its villages at once.
    db = await open_database(url)
    try:
        again = Store(db, node_id="T01", key=net.layout.keys["T01"], directory=net.directory)
        await again.start()
        assert not again.restored
        assert await again.confirm_child("T01V01", {}) == {}
        assert again.may_seal("T01V01") and not again.may_seal("T01")
    finally:
        await db.dispose()


async def test_postgres_backup_and_restore(pg_url: str, network: NetworkFactory, tmp_path: Path) -> None:
    net = await network(1, 1, county_url=pg_url)
    await _errands(net.service("T01V01"), 4, "甲")
    await net.sync_all(2)
    county = net.stores["C"]
    before = await county.digests()
    assert len(before) == 4
    copy = await asyncio.to_thread(backup, pg_url, tmp_path / "b", node="C")
    assert copy.path.suffix == ".dump" and copy.size > 0
    await _errands(net.service("T01V01"), 2, "乙")
    await net.sync_all(2)
    assert len(await county.digests()) == 6
    await county.db.dispose()
    await asyncio.to_thread(restore, pg_url, copy.path)
    db = await open_database(pg_url)
    try:
        back = Store(db, node_id="C", key=net.layout.keys["C"], directory=net.directory)
        await back.start()
        assert await back.digests() == before
    finally:
        await db.dispose()


def _downgrade_to(rev: str):  # type: ignore[no-untyped-def]
    def run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, rev)

    return run


async def test_a_migration_takes_a_backup_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    db = await open_database(url)
    async with db.writer.begin() as conn:
        await conn.run_sync(_downgrade_to("0004"))
    await db.dispose()
    db = await open_database(url, backup_dir=tmp_path / "backups", node="T01")
    await db.dispose()
    (copy,) = list((tmp_path / "backups").iterdir())
    assert copy.name.startswith("T01-") and copy.name.endswith(f"-pre-{code_head()}.db")  # named after the target
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0004",)
    # Already at head: no second copy.
    db = await open_database(url, backup_dir=tmp_path / "backups", node="T01")
    await db.dispose()
    assert len(list((tmp_path / "backups").iterdir())) == 1


async def _pretend_newer(url: str) -> None:
    db = await open_database(url)
    async with db.writer.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        await conn.execute(text("UPDATE meta SET value = '9.1.0' WHERE key = 'sanji_release'"))
    await db.dispose()


async def test_a_store_from_a_newer_release_is_refused_naming_both(tmp_path: Path) -> None:
    from sanji.store.revisions import DatabaseNewer
    from sanji.version import release

    url = f"sqlite:///{tmp_path / 'node.db'}"
    await _pretend_newer(url)
    try:
        await open_database(url, backup_dir=tmp_path / "b")
    except DatabaseNewer as exc:
        assert "sanji 9.1.0" in exc.message and f"sanji {release()}" in exc.message and "0099" in exc.message
        assert "restore" in exc.hint and "Install sanji 9.1.0 or later" in exc.hint
        assert exc.message_zh.startswith("数据库已由 sanji 9.1.0 升级（数据库结构 0099）")
    else:
        raise AssertionError("a newer store was opened")
    assert not (tmp_path / "b").exists()  # refused before anything, a backup included, was done
    with sqlite3.connect(tmp_path / "node.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0099",)


async def test_a_store_from_a_newer_build_of_this_release_names_the_schemas_not_the_release(tmp_path: Path) -> None:
    """Both builds say the same release: "install sanji 0.4.0 or later" would name the release refusing it."""
    import io

    from sanji.cli import say
    from sanji.store.revisions import DatabaseNewer
    from sanji.version import release

    url = f"sqlite:///{tmp_path / 'node.db'}"
    db = await open_database(url)
    async with db.writer.begin() as conn:  # a build with one more migration opened it, under this release
        await conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    await db.dispose()
    try:
        await open_database(url, backup_dir=tmp_path / "b")
    except DatabaseNewer as exc:
        refused = exc
    else:
        raise AssertionError("a store of a newer build was opened")
    assert refused.message == (
        f"this store was migrated by a newer build of sanji {release()} (schema 0099); "
        f"this build knows schemas up to {code_head()}"
    )
    assert "or later" not in refused.message and "this is sanji" not in refused.message
    assert refused.hint.startswith(f"Install the build of sanji {release()} that migrated it (schema 0099)")
    assert "sanji restore" in refused.hint
    out = io.StringIO()
    say.failure(refused, file=out)
    error_line, hint_line = out.getvalue().splitlines()
    assert error_line.startswith(f"error: 数据库已由 sanji {release()} 的较新构建升级（数据库结构 0099）"), error_line
    assert error_line.endswith(refused.message)
    assert hint_line.startswith(f"hint: 请安装升级了它的那个 sanji {release()} 构建（含数据库结构 0099）"), hint_line
    assert not (tmp_path / "b").exists()


async def test_postgres_store_from_a_newer_release_is_refused(pg_url: str) -> None:
    from sanji.store.revisions import DatabaseNewer

    await _pretend_newer(pg_url)
    try:
        await open_database(pg_url)
    except DatabaseNewer as exc:
        assert "9.1.0" in exc.message
    else:
        raise AssertionError("a newer store was opened")


def test_prune_keeps_recent_copies_and_always_the_newest(tmp_path: Path) -> None:
    now = time.time()
    names = ["T01-20260101T000000000000Z-scheduled.db", "T01-20260102T000000000000Z-scheduled.db",
             "T01-20260103T000000000000Z-scheduled.db", "T02-20260101T000000000000Z-scheduled.db"]  # fmt: skip
    ages_days = [30, 20, 19, 30]
    for name, age in zip(names, ages_days, strict=True):
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, (now - age * 86400, now - age * 86400))
    gone = prune(tmp_path, node="T01", keep_days=14, now=now)
    assert [p.name for p in gone] == names[:2]  # the newest (19 days) stays: never prune the last copy
    assert sorted(p.name for p in tmp_path.iterdir()) == [names[2], names[3]]


async def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    """What ``sql`` reads from the store at ``url`` as it is, not migrated (``open_database(migrate=False)``)."""
    db = await open_database(url, migrate=False)
    try:
        async with db.reader.connect() as conn:
            return [tuple(row) for row in (await conn.execute(text(sql))).all()]
    finally:
        await db.dispose()


async def _execute(url: str, *sql: str) -> None:
    db = await open_database(url, migrate=False)
    try:
        async with db.writer.begin() as conn:
            for statement in sql:
                await conn.execute(text(statement))
    finally:
        await db.dispose()


async def _rolled_back_copy(url: str, out: Path) -> Path:
    """A store migrated to head, taken back to 0025 (before ``document_versions``) with a catalogue v1 and a mark
    in it, copied; then migrated to head again and given what the copy lacks (a v2, another mark)."""
    db = await open_database(url)
    async with db.writer.begin() as conn:
        await conn.run_sync(_downgrade_to("0025"))
        await conn.execute(text("INSERT INTO meta (key, value) VALUES ('probe', 'in the copy')"))
        await conn.execute(
            text(
                "INSERT INTO documents (kind, version, blob, digest, received_at) VALUES ('catalogue', 1, :b, 'd1', 0)"
            ),
            {"b": os.urandom(600_000)},  # bytes no compression shrinks: most of the copy, so one can damage them
        )
    await db.dispose()
    copy = await asyncio.to_thread(backup, url, out, node="C")
    db = await open_database(url)  # head again: 0026 and later tables made, v1 copied into document_versions
    async with db.writer.begin() as conn:
        await conn.execute(text("UPDATE meta SET value = 'after the copy' WHERE key = 'probe'"))
        await conn.execute(text("INSERT INTO meta (key, value) VALUES ('later', 'x')"))
        await conn.execute(
            text(
                "INSERT INTO document_versions (kind, version, blob, digest, received_at) "
                "VALUES ('catalogue', 2, :b, 'd2', 0)"
            ),
            {"b": b"v2"},
        )
    await db.dispose()
    return copy.path


async def _is_the_copy_migrated(url: str) -> None:
    db = await open_database(url)  # migrates the restored copy from 0025 to head (DuplicateTableError before)
    await db.dispose()
    assert await _rows(url, "SELECT version_num FROM alembic_version") == [(code_head(),)]
    assert await _rows(url, "SELECT key, value FROM meta WHERE key IN ('probe', 'later')") == [("probe", "in the copy")]
    # 0026 copied the copy's v1 in again; v2, kept after the copy, is gone with its table
    assert await _rows(url, "SELECT version FROM document_versions") == [(1,)]
    assert await _rows(url, "SELECT value FROM meta WHERE key = 'catalogue_versions_floor'") == [("1",)]
    # v2 and up may have been published after the copy was taken: unchecked once the next version kept ends the range
    assert await _rows(url, "SELECT value FROM meta WHERE key = 'catalogue_versions_lost'") == [("2-",)]


async def test_postgres_restore_of_a_dump_from_before_a_migration_is_that_dump_and_migrates(
    pg_url: str, tmp_path: Path
) -> None:
    """A dump taken at 0025 restored into the database migrated past it: the tables the later migrations added go
    too (``pg_restore --clean`` dropped only the dump's own, and the next start failed with DuplicateTableError),
    so the database is the dump's, at 0025, and the node's start migrates it to head."""
    dump = await _rolled_back_copy(pg_url, tmp_path / "b")
    await asyncio.to_thread(restore, pg_url, dump)
    assert await _rows(pg_url, "SELECT version_num FROM alembic_version") == [("0025",)]
    assert await _rows(pg_url, "SELECT to_regclass('document_versions') IS NULL") == [(True,)]
    await _is_the_copy_migrated(pg_url)


async def test_sqlite_restore_of_a_copy_from_before_a_migration_migrates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    copy = await _rolled_back_copy(url, tmp_path / "b")
    await asyncio.to_thread(restore, url, copy)
    assert await _rows(url, "SELECT version_num FROM alembic_version") == [("0025",)]
    await _is_the_copy_migrated(url)


async def test_a_postgres_restore_that_fails_leaves_the_database_as_it_was(pg_url: str, tmp_path: Path) -> None:
    """A damaged dump (pg_restore fails after the old tables were dropped) and one psql cannot run to the end (a
    schema it drops holds a table it lacks) are both rolled back: the database is still the one restored over."""
    dump = await _rolled_back_copy(pg_url, tmp_path / "b")
    whole = dump.read_bytes()
    cut = tmp_path / "damaged.dump"  # its list of contents reads; its data does not, once the old tables are gone
    cut.write_bytes(whole[: len(whole) * 2 // 3] + bytes(200) + whole[len(whole) * 2 // 3 + 200 :])

    async def as_it_was() -> None:
        assert await _rows(pg_url, "SELECT version_num FROM alembic_version") == [(code_head(),)]
        assert await _rows(pg_url, "SELECT value FROM meta WHERE key = 'probe'") == [("after the copy",)]
        assert await _rows(pg_url, "SELECT version FROM document_versions ORDER BY version") == [(1,), (2,)]

    try:
        await asyncio.to_thread(restore, pg_url, cut)
    except BackupError as exc:
        assert "as it was" in exc.message
    else:
        raise AssertionError("a damaged dump was restored")
    await as_it_was()

    # a dump of this database with a schema "other" and a mark of its own, restored once "other" holds a table the
    # dump lacks: the dump's DROP SCHEMA other fails, after the public tables were dropped and restored
    withschema = tmp_path / "withschema.dump"
    await _execute(pg_url, "CREATE SCHEMA other", "CREATE TABLE other.dumped (n integer)",
                   "UPDATE meta SET value = 'in the other dump' WHERE key = 'probe'")  # fmt: skip
    await asyncio.to_thread(
        subprocess.run,
        ["pg_dump", "--format=custom", "--no-owner", f"--file={withschema}", f"--dbname={libpq_url(pg_url)}"],
        check=True,
    )
    await _execute(pg_url, "CREATE TABLE other.kept (n integer)",
                   "UPDATE meta SET value = 'after the copy' WHERE key = 'probe'")  # fmt: skip
    try:
        await asyncio.to_thread(restore, pg_url, withschema)
    except BackupError as exc:
        assert "as it was" in exc.message
    else:
        raise AssertionError("a restore psql could not run was committed")
    await as_it_was()


async def test_a_postgres_restore_does_not_wait_for_ever_on_a_process_still_using_the_database(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process in a transaction on the store's tables (a second hub process left running): the restore
    gives up after ``PG_LOCK_TIMEOUT_S``, says why, and the database is as it was."""
    import sanji.backup

    dump = await _rolled_back_copy(pg_url, tmp_path / "b")
    monkeypatch.setattr(sanji.backup, "PG_LOCK_TIMEOUT_S", 1)
    db = await open_database(pg_url, migrate=False)
    try:
        async with db.reader.connect() as conn, conn.begin():
            await conn.execute(text("SELECT count(*) FROM meta"))  # holds its lock until the transaction ends
            try:
                await asyncio.to_thread(restore, pg_url, dump)
            except BackupError as exc:
                assert "lock timeout" in exc.message and "another process" in exc.hint
            else:
                raise AssertionError("restored while another process used the database")
    finally:
        await db.dispose()
    assert await _rows(pg_url, "SELECT value FROM meta WHERE key = 'probe'") == [("after the copy",)]
    assert await _rows(pg_url, "SELECT version_num FROM alembic_version") == [(code_head(),)]
