"""What keeps a store's cost from growing with what it holds (issue 15): the SQLite page memory each tier's
connections open with (``sanji.store.engine.sqlite_pages``), and the worklist read by index.

A county or township hub's one writer keeps a larger page cache; no connection maps the file (a read error
through a mapping would kill the node); a village keeps SQLite's defaults (its laptop idles under 80 MB,
issue 16), as does a store opened with no role (the short CLI commands, the doctor). Checked on real files,
on the connections the node uses.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select, func, select, text

from protocol.actions import Rate
from protocol.encoding import decode_action, encode
from sanji.store import open_database
from sanji.store import schema as t
from sanji.store.engine import SQLITE_DEFAULT_PAGES, SQLITE_PAGES, sqlite_pages
from sanji.store.revisions import MIGRATIONS
from sanji.store.schema import ANNOTATION_KINDS
from sanji.store.views import annotations_query, errands_query, worklist_query


async def pragmas(url: str, role: str) -> dict[str, int]:
    db = await open_database(url, role=role)
    try:
        async with db.write() as conn:
            writer_cache = int((await conn.execute(text("PRAGMA cache_size"))).scalar_one())
            writer_mmap = int((await conn.execute(text("PRAGMA mmap_size"))).scalar_one())
            checkpoint = int((await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one())
        async with db.reader.connect() as conn:
            reader_cache = int((await conn.execute(text("PRAGMA cache_size"))).scalar_one())
            reader_mmap = int((await conn.execute(text("PRAGMA mmap_size"))).scalar_one())
            synchronous = int((await conn.execute(text("PRAGMA synchronous"))).scalar_one())
    finally:
        await db.dispose()
    return {
        "writer_cache": writer_cache,
        "writer_mmap": writer_mmap,
        "reader_cache": reader_cache,
        "reader_mmap": reader_mmap,
        "synchronous": synchronous,
        "wal_autocheckpoint": checkpoint,
    }


@pytest.mark.parametrize("role", ["county", "town"])
async def test_a_hub_writer_keeps_a_larger_cache_and_maps_nothing(tmp_path: Path, role: str) -> None:
    pages = sqlite_pages(role)
    assert pages.writer_cache_kib > SQLITE_DEFAULT_PAGES.writer_cache_kib
    got = await pragmas(f"sqlite:///{tmp_path / 'node.db'}", role)
    assert got == {
        "writer_cache": -pages.writer_cache_kib,  # negative: KiB
        "writer_mmap": 0,
        "reader_cache": -SQLITE_DEFAULT_PAGES.writer_cache_kib,  # readers keep the default cache
        "reader_mmap": 0,
        "synchronous": 2,  # FULL, whatever the tier
        "wal_autocheckpoint": pages.wal_autocheckpoint,
    }


@pytest.mark.parametrize("role", ["village", ""])
async def test_a_village_and_a_store_opened_without_a_role_keep_sqlite_defaults(tmp_path: Path, role: str) -> None:
    got = await pragmas(f"sqlite:///{tmp_path / 'node.db'}", role)
    assert got == {
        "writer_cache": -2000,
        "writer_mmap": 0,
        "reader_cache": -2000,
        "reader_mmap": 0,
        "synchronous": 2,
        "wal_autocheckpoint": 1000,
    }


def test_every_role_is_listed_and_a_village_is_not_raised() -> None:
    from protocol.topology import ROLES

    assert set(SQLITE_PAGES) == set(ROLES)
    assert SQLITE_PAGES["village"] == SQLITE_DEFAULT_PAGES
    assert SQLITE_PAGES["county"].writer_cache_kib >= SQLITE_PAGES["town"].writer_cache_kib
    assert SQLITE_PAGES["county"].wal_autocheckpoint == 4000  # measured on a million errands (bench/README.md)


@pytest.mark.postgres
async def test_postgresql_takes_the_role_and_sets_nothing_of_its_own(pg_url: str) -> None:
    """On PostgreSQL the server's own settings hold (deploy/README.md): the role changes no session setting."""
    shown: dict[str, list[str]] = {}
    for role in ("county", ""):
        db = await open_database(pg_url, role=role)
        try:
            async with db.write() as conn:
                shown[role] = [
                    str((await conn.execute(text(f"SHOW {name}"))).scalar_one())
                    for name in ("work_mem", "synchronous_commit", "temp_buffers")
                ]
        finally:
            await db.dispose()
    assert shown["county"] == shown[""]


async def test_the_worklist_is_found_by_index_not_by_reading_every_errand(tmp_path: Path) -> None:
    """``Store.worklist`` (read by the duties after every push) searches the ``holder`` index and the partial
    ``pending_to`` index (migration 0021) on SQLite."""
    db = await open_database(f"sqlite:///{tmp_path / 'node.db'}", role="county")
    try:
        async with db.reader.connect() as conn:
            compiled = worklist_query("C").compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            plan = [str(r[-1]) for r in (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")).all()]
            other = "SELECT id FROM errands WHERE errand_kind = 'joint' AND stage IN ('a', 'b') AND pending_to IS NULL"
            nulls = [str(r[-1]) for r in (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {other}")).all()]
    finally:
        await db.dispose()
    assert "SEARCH errands USING INDEX ix_errands_holder (holder=?)" in plan, plan
    assert "SEARCH errands USING INDEX ix_errands_pending_to (pending_to=?)" in plan, plan
    assert not any(step.startswith("SCAN errands") for step in plan), plan
    assert not any("ix_errands_pending_to" in step for step in nulls), nulls  # IS NULL: not the partial index


@pytest.mark.postgres
async def test_postgresql_holds_the_worklist_partial_index(pg_url: str) -> None:
    pg = await open_database(pg_url)
    try:
        async with pg.reader.connect() as conn:
            definition = (
                await conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_errands_pending_to'"))
            ).scalar_one()
    finally:
        await pg.dispose()
    assert definition.endswith("(pending_to) WHERE (pending_to IS NOT NULL)"), definition


async def test_annotations_of_a_kind_are_found_by_index_not_by_reading_every_action(tmp_path: Path) -> None:
    """``Store.annotations`` (urgings, complaints, extensions the duties read on every run) searches the
    ``(kind, at, id)`` index (migrations 0022, 0024) newest first, ties by id, with no sort."""
    db = await open_database(f"sqlite:///{tmp_path / 'node.db'}", role="county")
    try:
        async with db.reader.connect() as conn:
            compiled = annotations_query("extend", 500).compile(
                dialect=conn.dialect, compile_kwargs={"literal_binds": True}
            )
            plan = [str(r[-1]) for r in (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")).all()]
    finally:
        await db.dispose()
    assert plan == ["SEARCH actions USING INDEX ix_actions_kind_at_id (kind=?)"], plan


def errand_pages() -> dict[str, Select[Any]]:
    """全部办件's page, newest first, with no search and with one (``Views.errands``' queries, as it orders them)."""
    newest = (t.errands.c.registered_at.desc(), t.errands.c.id.desc())
    return {
        "all": errands_query().order_by(*newest).limit(20).offset(40),
        "searched": errands_query(text="张三", text_matters=["mz-003"]).order_by(*newest).limit(20),
    }


async def test_a_page_of_all_errands_walks_the_registration_index_never_sorting_the_table(tmp_path: Path) -> None:
    """The home page's 全部办件 (migration 0031): a page walks ``(registered_at, id)`` from its newest end and
    stops; it never sorts the table, never reads the ``state`` blobs to do so; the count reads an index only."""
    db = await open_database(f"sqlite:///{tmp_path / 'node.db'}", role="county")
    try:
        async with db.reader.connect() as conn:
            plans = {}
            for name, query in errand_pages().items():
                compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
                plans[name] = [str(r[-1]) for r in (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))]
                assert "state" not in str(compiled).split(" FROM ")[0], compiled
            counted = select(func.count()).select_from(errands_query().with_only_columns(t.errands.c.id).subquery())
            compiled = counted.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            count_plan = [str(r[-1]) for r in (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))]
    finally:
        await db.dispose()
    for name, plan in plans.items():
        assert plan == ["SCAN errands USING INDEX ix_errands_registered_at_id"], (name, plan)
    assert len(count_plan) == 1 and "COVERING INDEX" in count_plan[0], count_plan


@pytest.mark.postgres
async def test_postgresql_walks_the_registration_index_for_a_page_of_all_errands(pg_url: str) -> None:
    pg = await open_database(pg_url)
    try:
        async with pg.reader.connect() as conn:
            await conn.execute(text("SET enable_seqscan = off"))  # an empty table: a scan would cost nothing
            query = errand_pages()["all"].compile(dialect=conn.dialect)
            params = tuple(query.params[name] for name in query.positiontup or ())
            plan = [str(r[0]) for r in await conn.exec_driver_sql(f"EXPLAIN {query.string}", params)]
    finally:
        await pg.dispose()
    assert any("Index Scan Backward using ix_errands_registered_at_id" in step for step in plan), plan
    assert not any("Sort" in step for step in plan), plan


def test_the_annotations_query_orders_ties_by_id() -> None:
    """The order is the query's, not only the walk of an index that holds the id (a planner may walk another)."""
    compiled = str(annotations_query("rate", 10))
    assert "ORDER BY actions.at DESC, actions.id DESC" in compiled, compiled


STORED_IN = [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]]


@pytest.mark.parametrize("inserted", STORED_IN)
async def test_ratings_at_the_same_time_fall_at_a_window_s_edge_the_same_way_whatever_their_order(
    tmp_path: Path, inserted: list[int]
) -> None:
    """A window of the newest ratings (电子监察) ends at the same rating however the rows were stored: of two
    at the same time, the greater id is the newer."""
    assert await rating_windows(f"sqlite:///{tmp_path / 'node.db'}", inserted) == NEWEST_FIRST


@pytest.mark.postgres
async def test_ratings_at_the_same_time_fall_the_same_way_on_postgresql(pg_url: str) -> None:
    for inserted in STORED_IN:  # one database, the ratings stored again in each order
        assert await rating_windows(pg_url, inserted) == NEWEST_FIRST, inserted


NEWEST_FIRST = {2: ["R-4", "R-3"], 3: ["R-4", "R-3", "R-2"], 5: ["R-4", "R-3", "R-2", "R-1", "R-0"]}


async def rating_windows(url: str, inserted: list[int]) -> dict[int, list[str]]:
    """Five ratings stored in the order ``inserted``, three of them at one time; the windows of 2, 3 and 5."""
    ids = [f"R-{n}" for n in range(5)]
    ats = [100, 200, 200, 200, 300]  # three at the same time: a window of 2 or 3 cuts among them
    db = await open_database(url, role="county")
    try:
        async with db.write() as conn:
            await conn.execute(t.actions.delete().where(t.actions.c.errand == "E1"))
            for n in inserted:
                rate = Rate(
                    id=ids[n], errand="E1", scope="T01V01", node="T01", actor="王", role="窗口", at=ats[n], level="满意"
                )
                await conn.execute(
                    t.actions.insert().values(
                        id=rate.id,
                        errand="E1",
                        scope="T01V01",
                        node="T01",
                        kind="rate",
                        base=0,
                        at=rate.at,
                        body=encode(rate),
                        status="applied",
                        reason="",
                    )
                )
        async with db.reader.connect() as conn:
            windows = {
                k: [decode_action(b).id for b in (await conn.execute(annotations_query("rate", k))).scalars()]
                for k in (2, 3, 5)
            }
    finally:
        await db.dispose()
    return windows


async def test_the_kind_index_serves_its_kinds_and_leaves_an_errand_s_actions_to_the_errand_index(
    tmp_path: Path,
) -> None:
    """The partial ``(kind, at, id)`` index (migrations 0023, 0024) serves the archive's attachments as the
    annotations; an errand's registration or accepts are found by the errand index, not by walking every action
    of the kind."""
    a = t.actions.c
    served = {
        "attaches": select(a.errand, a.body).where(a.kind == "attach", t.IN_KIND_INDEX),
        "counted": select(func.count()).select_from(t.actions).where(a.kind == "attach", t.IN_KIND_INDEX),
    }
    by_errand = {
        "registration": select(a.body).where(a.errand == "E1", a.kind == "register", a.status == "applied"),
        "accepts": select(a.errand, a.at).where(a.errand.in_(["E1", "E2"]), a.kind == "accept"),
    }
    db = await open_database(f"sqlite:///{tmp_path / 'node.db'}", role="county")
    try:
        async with db.reader.connect() as conn:
            plans = {}
            for name, query in {**served, **by_errand}.items():
                compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
                plans[name] = [str(r[-1]) for r in (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))]
    finally:
        await db.dispose()
    for name in served:
        assert any("INDEX ix_actions_kind_at_id (kind=?)" in step for step in plans[name]), plans
    for name in by_errand:
        assert plans[name] == ["SEARCH actions USING INDEX ix_actions_errand (errand=?)"], plans


def test_the_migration_makes_the_index_the_schema_describes() -> None:
    spec = importlib.util.spec_from_file_location(
        "m0024", MIGRATIONS / "versions" / "0024_annotations_newest_by_time_then_id.py"
    )
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.ANNOTATED == t.ANNOTATED


@pytest.mark.postgres
async def test_postgresql_holds_the_annotations_index_and_the_query_takes_it(pg_url: str) -> None:
    """Partial (migration 0023): the annotation kinds only; the query, its kind bound, proves it may take it."""
    pg = await open_database(pg_url)
    try:
        async with pg.reader.connect() as conn:
            definition = (
                await conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_actions_kind_at_id'"))
            ).scalar_one()
            await conn.execute(text("SET enable_seqscan = off"))  # an empty table: a scan would cost nothing
            await conn.execute(text("SET plan_cache_mode = force_generic_plan"))  # the kind bound, not known
            query = annotations_query("extend", 500).compile(dialect=conn.dialect)
            params = tuple(query.params[name] for name in query.positiontup or ())
            plan = [str(r[0]) for r in await conn.exec_driver_sql(f"EXPLAIN {query.string}", params)]
    finally:
        await pg.dispose()
    assert "(kind, at, id) WHERE" in definition, definition
    assert all(f"'{kind}'" in definition for kind in ANNOTATION_KINDS), definition
    assert "'register'" not in definition, definition
    assert any("Index Scan Backward using ix_actions_kind_at_id" in step for step in plan), plan
