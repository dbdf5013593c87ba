"""One receive call reads the rows its frames touch once and writes them once (sanji.store.intake):
the same rows as frame by frame, and a frame that fails still loses nothing else."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import ResourceClosedError
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.encoding import decode_action
from sanji.layout import Layout
from sanji.store import Store, bulk, intake
from sanji.store import schema as t
from sanji.store.rows import _compiled as compiled_statements
from sanji.store.rows import compiled_once
from tests.conftest import StoreOpener
from tests.store.test_store_sqlite import (
    TOWN,
    VILLAGE,
    chain,
    expected_digests,
    failing_once,
    note,
    register,
    standard_batches,
    statuses,
    submit,
)


async def rows(store: Store) -> tuple[list[Any], list[Any], list[Any]]:
    """What a receive writes: errand rows, action statuses, stream cursors."""
    async with store.db.reader.connect() as conn:
        errands = (await conn.execute(select(t.errands).order_by(t.errands.c.id))).all()
        actions = (
            await conn.execute(select(t.actions.c.id, t.actions.c.status, t.actions.c.reason).order_by(t.actions.c.id))
        ).all()
        streams = (await conn.execute(select(t.streams).order_by(t.streams.c.origin))).all()
    return [tuple(r) for r in errands], [tuple(r) for r in actions], [tuple(r) for r in streams]


def more_batches() -> list[list[Any]]:
    return [
        *standard_batches(),
        [register("E3", 6), note("E2", 7, "电话已回访")],
        [submit("E3", 8), note("E3", 9, "材料齐")],
    ]


def crash_in_third_frame(only: Store | None = None) -> Any:
    """A ``Store._recompute`` (of ``only``, or of any store) that fails after its third call: a power cut in
    the middle of a push's third frame."""
    original = Store._recompute
    calls = {"n": 0}

    async def crash_on_third(self: Store, conn, errand_ids, **kw):  # type: ignore[no-untyped-def]
        out = await original(self, conn, errand_ids, **kw)
        if only is None or self is only:
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("power cut in the middle of the third frame")
        return out

    return crash_on_third


@pytest.mark.parametrize("order", ["one_call", "reversed_in_one_call", "pairs"])
async def test_one_call_writes_what_frame_by_frame_writes(open_store: StoreOpener, layout: Layout, order: str) -> None:
    batches = more_batches()
    frames = chain(layout, batches)
    one = await open_store(TOWN, url=None)
    for frame in frames:
        await one.receive([frame], peer=VILLAGE)
    expected = await rows(one)
    assert await one.digests() == expected_digests(layout, batches)

    other = await open_store(TOWN, url=f"sqlite:///{one.db.url.split(':///')[1]}-{order}")
    if order == "one_call":
        outcome = await other.receive(frames, peer=VILLAGE)
        assert statuses(outcome) == ["stored"] * len(frames)
    elif order == "reversed_in_one_call":  # every frame held, then drained by the first
        outcome = await other.receive(list(reversed(frames)), peer=VILLAGE)
        assert outcome.applied_batches == len(frames)
    else:
        for i in range(0, len(frames), 2):
            await other.receive(frames[i : i + 2], peer=VILLAGE)
    got = await rows(other)
    assert got[0] == expected[0] and got[1] == expected[1]
    assert [r[:3] for r in got[2]] == [r[:3] for r in expected[2]]


async def test_a_failing_frame_in_a_push_loses_nothing_else(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = more_batches()
    frames = chain(layout, batches)
    town = await open_store(TOWN)
    monkeypatch.setattr(Store, "_recompute", crash_in_third_frame(only=town))
    with pytest.raises(RuntimeError, match="power cut"):
        await town.receive(frames, peer=VILLAGE)
    monkeypatch.undo()
    # The two frames before it stand, with their errand rows and statuses; nothing of the third.
    assert list((await town.cursors_where()).values()) == [2]
    assert await town.digests() == expected_digests(layout, batches[:2])
    alone = await open_store(TOWN, url=f"sqlite:///{town.db.url.split(':///')[1]}-alone")
    await alone.receive(frames[:2], peer=VILLAGE)
    assert await rows(town) == await rows(alone)

    retry = await town.receive(frames[2:], peer=VILLAGE)
    assert statuses(retry) == ["stored"] * 3
    assert await town.digests() == expected_digests(layout, batches)


async def test_a_failing_frame_in_a_push_loses_nothing_else_postgresql(
    open_store: StoreOpener, layout: Layout, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a push is first taken without a savepoint: one that fails part way is rolled back whole
    and taken again under savepoints, the frames before the failing one stored and its error still raised,
    even though the frame would not fail again."""
    batches = more_batches()
    frames = chain(layout, batches)
    town = await open_store(TOWN, url=pg_url)
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        sent.append(sql.lstrip().split()[0].upper())

    event.listen(town.db.writer.sync_engine, "before_cursor_execute", seen)
    monkeypatch.setattr(Store, "_recompute", crash_in_third_frame(only=town))
    with pytest.raises(RuntimeError, match="power cut"):
        await town.receive(frames, peer=VILLAGE)
    monkeypatch.undo()
    assert sent.count("SAVEPOINT") == 1, sent  # the retake's, not the first try's
    assert list((await town.cursors_where()).values()) == [2]
    assert await town.digests() == expected_digests(layout, batches[:2])

    sent.clear()
    retry = await town.receive(frames[2:], peer=VILLAGE)
    assert statuses(retry) == ["stored"] * 3
    assert "SAVEPOINT" not in sent and "RELEASE" not in sent, sent
    assert await town.digests() == expected_digests(layout, batches)


async def test_another_hub_process_taking_the_frames_between_the_tries_doubles_nothing(
    open_store: StoreOpener, layout: Layout, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try on PostgreSQL rolled back, another hub process takes the same frames before the retake
    begins: the retake finds them held, the failing frame's error is still raised, and every batch, action
    and errand is there once."""
    batches = more_batches()
    frames = chain(layout, batches)
    town = await open_store(TOWN, url=pg_url)
    other = await open_store(TOWN, url=pg_url)  # another process's Store: its own memory, the same database
    real_write = town._write
    tries = {"n": 0}
    taken_meanwhile: list[str] = []

    @asynccontextmanager
    async def write() -> AsyncIterator[AsyncConnection]:
        tries["n"] += 1
        # The first try took the locks of what it touches (``Database.write_touching``); the retake, under
        # the writer lock, is the first to come here: between the rolled-back first try and the retake.
        if tries["n"] == 1:
            taken_meanwhile.extend(statuses(await other.receive(frames, peer=VILLAGE)))
        async with real_write() as conn:
            yield conn

    monkeypatch.setattr(Store, "_recompute", crash_in_third_frame(only=town))
    monkeypatch.setattr(town, "_write", write)
    with pytest.raises(RuntimeError, match="power cut"):
        await town.receive(frames, peer=VILLAGE)
    monkeypatch.undo()
    assert taken_meanwhile == ["stored"] * len(frames)
    assert await town.digests() == expected_digests(layout, batches)
    async with town.db.reader.connect() as conn:
        held = (await conn.execute(select(func.count()).select_from(t.batches))).scalar_one()
        ids = (await conn.execute(select(t.actions.c.id))).scalars().all()
    assert held == len(frames) and len(ids) == len(set(ids)) == sum(len(b) for b in batches)
    again = await town.receive(frames, peer=VILLAGE)
    assert "stored" not in statuses(again)  # all held already: nothing applied twice
    assert await town.digests() == expected_digests(layout, batches)


async def test_a_push_reads_its_rows_once(open_store: StoreOpener, layout: Layout) -> None:
    """Statements per push: the reads and the writes are per call, not per frame (issue 15)."""
    frames = chain(layout, more_batches())
    town = await open_store(TOWN)
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        sent.append(sql.lstrip().split()[0].upper())

    event.listen(town.db.writer.sync_engine, "before_cursor_execute", seen)
    driver_reads = intake.driver_reads(town.db.writer.sync_engine)
    before = driver_reads.total()
    await town.receive(frames, peer=VILLAGE)
    past_sqlalchemy = driver_reads.total() - before  # sent to the driver directly (``Intake._read``)
    assert past_sqlalchemy >= 3  # cursors, held streams, errands at least: in the transaction, so sent so
    reads = sent.count("SELECT") + past_sqlalchemy
    assert reads <= 5, sent  # cursors, held streams, errands, actions by errand, actions by id
    # Per call, however many frames: BEGIN, one savepoint and its release, the reads, and one write each
    # for batches, actions, cursors, statuses and errands.
    assert len(sent) + past_sqlalchemy <= 1 + 2 + reads + 5, sent


async def test_long_lists_are_asked_in_parts(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A carried file's frames all come in one call: the ids are bound in parts, not in one IN list."""
    monkeypatch.setattr(intake, "CHUNK", 2)
    batches = more_batches()
    town = await open_store(TOWN)
    outcome = await town.receive(chain(layout, batches), peer=VILLAGE)
    assert statuses(outcome) == ["stored"] * len(batches)
    assert await town.digests() == expected_digests(layout, batches)


async def test_what_a_push_asks_of_its_own_rows_before_they_are_written(
    open_store: StoreOpener, layout: Layout
) -> None:
    """The frames' batch and action rows are written at the end of the call: a frame sent twice in one push
    is a duplicate, and a foreign copy is replaced by its author's later in the same push, as frame by frame."""
    batches = standard_batches()
    by_county = msgspec.structs.replace(note("E1", 6, "县里转来的意见", node="C"), scope=VILLAGE)
    # Carried by the village (a foreign copy), here altered on the way: the author's copy replaces it whole.
    relayed = msgspec.structs.replace(by_county, text="改过的意见")
    village = chain(layout, [*batches, [relayed]])
    county = chain(layout, [[by_county]], origin="C", scope=VILLAGE)
    frames = [village[0], village[0], *village[1:], county[0], village[1]]
    one = await open_store(TOWN, url=None)
    for frame in frames:
        await one.receive([frame], peer=VILLAGE)
    expected = await rows(one)
    assert ("a0006-E1", "applied", "") in expected[1]  # the author's copy took the foreign copy's place

    other = await open_store(TOWN, url=f"sqlite:///{one.db.url.split(':///')[1]}-one-call")
    outcome = await other.receive(frames, peer=VILLAGE)
    assert statuses(outcome) == ["stored", "duplicate", "stored", "stored", "stored", "stored", "duplicate"]
    got = await rows(other)
    assert got[0] == expected[0] and got[1] == expected[1]
    assert [r[:3] for r in got[2]] == [r[:3] for r in expected[2]]
    async with other.db.reader.connect() as conn:
        bodies = dict((await conn.execute(select(t.actions.c.id, t.actions.c.body))).all())
    assert decode_action(bodies["a0006-E1"]) == by_county


async def test_end_of_push_writes_that_fail_are_logged_before_the_frames_are_taken_again(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Taken again frame by frame the push succeeds; why its end's writes failed is not lost."""
    batches = more_batches()
    town = await open_store(TOWN)
    monkeypatch.setattr(intake.Intake, "flush", failing_once(intake.Intake.flush))
    with caplog.at_level("WARNING", logger="sanji.store"):
        outcome = await town.receive(chain(layout, batches), peer=VILLAGE)
    assert statuses(outcome) == ["stored"] * len(batches)
    assert await town.digests() == expected_digests(layout, batches)
    [record] = [r for r in caplog.records if r.name == "sanji.store"]
    assert record.levelname == "WARNING"
    assert "RuntimeError: the end-of-push writes failed" in record.getMessage()


def test_bulk_statements_are_compiled_per_dialect_driver_and_paramstyle() -> None:
    """The compiled SQL is written in the driver's paramstyle: one dialect name, two drivers or paramstyles,
    two statements."""
    from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

    def conn(dialect: Any) -> AsyncConnection:
        return cast(AsyncConnection, SimpleNamespace(dialect=dialect))

    columns = ("origin", "scope", "seq", "last_hash")
    qmark, _ = bulk._prepared(conn(SQLiteDialect_pysqlite()), t.streams, "insert", columns, ())
    numeric, _ = bulk._prepared(conn(SQLiteDialect_pysqlite(paramstyle="numeric")), t.streams, "insert", columns, ())
    other_driver, _ = bulk._prepared(
        conn(SQLiteDialect_aiosqlite(paramstyle="numeric")), t.streams, "insert", columns, ()
    )
    assert "?" in qmark and ":1" in numeric and ":1" in other_driver
    keys = [k for k in compiled_statements if k[0] == "sqlite" and k[3:6] == ("insert", "streams", columns)]
    assert {k[1:3] for k in keys} >= {("pysqlite", "qmark"), ("pysqlite", "numeric"), ("aiosqlite", "numeric")}


_REFUSE_THIRD_SQLITE = """
CREATE TRIGGER refuse_third BEFORE INSERT ON actions WHEN NEW.id = 'a0004-E2'
BEGIN SELECT RAISE(ABORT, 'the disk refused this row'); END
"""
_REFUSE_THIRD_PG = [
    """CREATE FUNCTION refuse_third() RETURNS trigger AS $$
    BEGIN
        IF NEW.id = 'a0004-E2' THEN RAISE EXCEPTION 'the disk refused this row'; END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql""",
    "CREATE TRIGGER refuse_third BEFORE INSERT ON actions FOR EACH ROW EXECUTE FUNCTION refuse_third()",
]


async def test_a_row_sqlite_refuses_at_the_end_of_a_push_loses_nothing_else(
    open_store: StoreOpener, layout: Layout, caplog: pytest.LogCaptureFixture
) -> None:
    await _a_refused_row_loses_nothing_else(open_store, layout, caplog, "sqlite", None)


async def test_a_row_postgresql_refuses_at_the_end_of_a_push_loses_nothing_else(
    open_store: StoreOpener, layout: Layout, caplog: pytest.LogCaptureFixture, pg_url: str
) -> None:
    await _a_refused_row_loses_nothing_else(open_store, layout, caplog, "postgresql", pg_url)


async def _a_refused_row_loses_nothing_else(
    open_store: StoreOpener, layout: Layout, caplog: pytest.LogCaptureFixture, database: str, url: str | None
) -> None:
    """The database itself refuses one frame's action row (a trigger: as a full disk or a constraint would).
    The end-of-push insert of every frame's rows fails; the push is taken again frame by frame, so the
    frames before the refused one are kept whole, the refused frame and those after it leave nothing, and
    the refused frame's error is what the caller sees. Once the database takes the row, they all apply."""
    batches = more_batches()
    frames = chain(layout, batches)
    town = await open_store(TOWN, url=url)
    async with town.db.writer.begin() as conn:
        for sql in _REFUSE_THIRD_PG if database == "postgresql" else [_REFUSE_THIRD_SQLITE]:
            await conn.exec_driver_sql(sql)
    with caplog.at_level("WARNING", logger="sanji.store"), pytest.raises(Exception, match="the disk refused"):
        await town.receive(frames, peer=VILLAGE)
    [record] = [r for r in caplog.records if r.name == "sanji.store"]
    assert "end-of-push writes of 5 frame(s)" in record.getMessage()
    assert list((await town.cursors_where()).values()) == [2]
    assert await town.digests() == expected_digests(layout, batches[:2])
    async with town.db.reader.connect() as conn:
        held = set((await conn.execute(select(t.actions.c.id))).scalars())
        batch_rows = (await conn.execute(select(t.batches.c.seq).order_by(t.batches.c.seq))).scalars().all()
    assert held == {a.id for acts in batches[:2] for a in acts}
    assert batch_rows == [1, 2]

    async with town.db.writer.begin() as conn:
        await conn.exec_driver_sql("DROP TRIGGER refuse_third" + (" ON actions" if database == "postgresql" else ""))
    retry = await town.receive(frames, peer=VILLAGE)
    assert statuses(retry) == ["duplicate", "duplicate", "stored", "stored", "stored"]
    assert await town.digests() == expected_digests(layout, batches)


async def test_reads_sent_to_the_driver_sqlite_are_sqlalchemy_s(open_store: StoreOpener, layout: Layout) -> None:
    await _reads_sent_to_the_driver_are_sqlalchemy_s(open_store, layout, None)


async def test_reads_sent_to_the_driver_postgresql_are_sqlalchemy_s(
    open_store: StoreOpener, layout: Layout, pg_url: str
) -> None:
    await _reads_sent_to_the_driver_are_sqlalchemy_s(open_store, layout, pg_url)


async def _reads_sent_to_the_driver_are_sqlalchemy_s(open_store: StoreOpener, layout: Layout, url: str | None) -> None:
    """``Intake._read`` sends its reads past SQLAlchemy only inside the transaction: the same rows, of the
    same types, as through SQLAlchemy, and through SQLAlchemy while the driver has not begun one."""
    batches = more_batches()
    town = await open_store(TOWN, url=url)
    frames = chain(layout, batches)
    await town.receive([*frames[:-2], frames[-1]], peer=VILLAGE)  # the last held, waiting for the one before
    errands = sorted({a.errand for acts in batches for a in acts})
    action_ids = [*sorted({a.id for acts in batches for a in acts}), "not-held"]
    values = {
        "streams": [VILLAGE, "nobody"],
        "held": [VILLAGE],
        "kept": [*errands, "E-none"],
        "actions": errands,
        "statuses": action_ids,
    }
    async with town.db.writer.begin() as conn:
        reader = intake.Intake()
        driver_reads = intake.driver_reads(town.db.writer.sync_engine)
        sent = Counter(driver_reads)
        if url is not None:  # asyncpg begins when SQLAlchemy first sends something: until then, not past it
            assert await reader._read(conn, "kept", errands)
            assert driver_reads == sent
            await conn.exec_driver_sql("SELECT 1")
        for name, listed in values.items():
            through = sorted(tuple(r) for r in (await conn.execute(intake._EXPANDING[name], {"ids": listed})))
            past = sorted(tuple(r) for r in await reader._read(conn, name, listed))
            assert past == through and past, name
            assert [[type(v) for v in r] for r in past] == [[type(v) for v in r] for r in through], name
        assert driver_reads - sent == Counter(dict.fromkeys(values, 1))


async def test_a_read_run_again_and_again_is_planned_for_its_values_postgresql(
    open_store: StoreOpener, layout: Layout, pg_url: str
) -> None:
    """Every push sends the same reads of ``col = ANY($1)``: PostgreSQL must not settle on a generic plan for
    them (one made while a table is small scans all of it for each id, ever slower as the table grows)."""
    batches = more_batches()
    town = await open_store(TOWN, url=pg_url)
    await town.receive(chain(layout, batches), peer=VILLAGE)
    ids = [*sorted({a.id for acts in batches for a in acts}), *(f"not-held-{n}" for n in range(20))]
    async with town.db.writer.begin() as conn:
        await conn.exec_driver_sql("SELECT 1")  # begun: the reads go to the driver, prepared and kept
        for _ in range(12):
            assert await intake.Intake()._read(conn, "statuses", ids)
        read, _ = compiled_once(conn, ("intake", "statuses"), intake._driver_read, "statuses", "postgresql")
        plans = (
            await conn.exec_driver_sql(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1", (read,)
            )
        ).all()
    assert len(plans) == 1 and plans[0][0] == 0 and plans[0][1] >= 12, plans  # the push before ran it too


async def test_a_read_the_driver_fails_is_asked_through_sqlalchemy(open_store: StoreOpener, layout: Layout) -> None:
    """What the driver raises on a read sent past SQLAlchemy is not what callers tell apart (a DBAPIError,
    a lost connection invalidated): the read is asked again through SQLAlchemy, which answers or raises so."""
    batches = more_batches()
    town = await open_store(TOWN)
    await town.receive(chain(layout, batches), peer=VILLAGE)
    errands = sorted({a.errand for acts in batches for a in acts})

    class Failing:
        in_transaction = True

        async def execute_fetchall(self, *_: Any) -> list[Any]:
            raise ConnectionResetError("the driver's own error")

    async with town.db.writer.begin() as conn:
        expected = [tuple(r) for r in await intake.Intake()._read(conn, "kept", errands)]
        reader = intake.Intake()
        reader._driver = (conn, Failing())
        assert [tuple(r) for r in await reader._read(conn, "kept", errands)] == expected
        await conn.close()  # now SQLAlchemy fails too, and says so its own way
        with pytest.raises(ResourceClosedError):
            await reader._read(conn, "kept", errands)


_ODD_IDS = ["n\x00z", "中文😀", 'q"\\u0000', "plain"]


async def test_ids_with_odd_characters_are_found_by_every_read(open_store: StoreOpener) -> None:
    """Ids arrive from frames before judge refuses any: one holding U+0000 (which JSON writes as ``\\u0000``
    and SQLite's ``json_each`` gives back as another string), or outside ASCII, is found as stored."""
    store = await open_store(TOWN)
    common = {"scope": TOWN, "node": TOWN, "kind": "note", "base": 0, "at": 1, "body": b"", "reason": ""}
    async with store.db.write() as conn:
        for i in _ODD_IDS:
            await conn.execute(t.actions.insert().values(id=i, errand=i, status="foreign", **common))
            await conn.execute(t.held.insert().values(origin=i, scope=i, seq=1, hash=b"", frame=b"", received_at=0.0))
    async with store.db.write() as conn:
        reader = intake.Intake()
        for name, column in (("statuses", 0), ("actions", 1), ("held", 0)):
            for odd in _ODD_IDS:
                found = {r[column] for r in await reader._read(conn, name, [odd, "other"])}
                assert found == {odd}, (name, odd)


async def test_an_action_whose_id_holds_nul_sent_twice_is_a_duplicate(open_store: StoreOpener, layout: Layout) -> None:
    """An action refused by the bounds is still kept (with its verdict); sent again in the next batch it is
    found held, not inserted twice, and the stream goes on."""
    town = await open_store(TOWN)
    odd = msgspec.structs.replace(note("E1", 2, "x"), id="n\x00z")
    frames = chain(layout, [[register("E1", 1), odd], [odd], [note("E1", 3, "y")]])
    await town.receive(frames[:1], peer=VILLAGE)
    await town.receive(frames[1:], peer=VILLAGE)
    assert list((await town.cursors_where()).values()) == [3]
    async with town.db.reader.connect() as conn:
        held = dict((await conn.execute(select(t.actions.c.id, t.actions.c.status))).all())
    assert held["n\x00z"] == "rejected"
