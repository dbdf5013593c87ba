"""Every node stores whatever ``judge`` accepts: values at the bounds of ``protocol.bounds``, on SQLite and
PostgreSQL.

SQLite ignores a varchar's length; PostgreSQL enforces it. A frame the rule accepts but a column is too
narrow for was stored by a SQLite township and refused by a PostgreSQL county ("value too long for type
character varying(128)") on every push that carried it: the push rolled back, the stream stalled there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert, select
from test_store_sqlite import VILLAGE, _schema_diffs, at, chain, counts, expected_digests, statuses

from protocol.actions import Accept, Action, Applicant, Assign, HandOff, Note, Receive, Register
from protocol.bounds import MAX_NAME, action_problem, day_problem
from protocol.errand import judge, project
from protocol.limits import MAX_TEXT
from sanji.auth import events as ev
from sanji.auth.book import AuthBook
from sanji.layout import Layout
from sanji.store import Store, open_database
from sanji.store import schema as t
from sanji.store.revisions import alembic_config

TOWN, COUNTY = "T01", "C"

# One value at its bound for each kind of field, each distinct so a clipped or swapped value shows.
ERRAND = ("E-" + "0123456789abcdef" * 13)[:MAX_NAME]
MATTER = ("M" + "最低生活保障" * 40)[:MAX_NAME]
APPLICANT = ("张" + "三" * MAX_NAME)[:MAX_NAME]
RECEIPT = ("R" + "7" * MAX_NAME)[:MAX_NAME]
DEPARTMENT = ("县民政局" + "社会救助股" * 40)[:MAX_NAME]
WINDOW = ("窗口" + "W" * MAX_NAME)[:MAX_NAME]
HANDLER = ("王" + "H" * MAX_NAME)[:MAX_NAME]
DUE = "2027-01-15"  # a day: the rule bounds its form (protocol.bounds.DAY_FIELDS), so its width with it
STAGE_DUE = "2027-01-05"
TEXT = ("情况说明：" + "申请人家庭收入低于当地最低生活保障标准。\n" * 200)[:MAX_TEXT]
ACTOR = ("李" + "代办" * MAX_NAME)[:MAX_NAME]
ROLE = ("代办员" + "R" * MAX_NAME)[:MAX_NAME]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'node.db'}"


def action_id(n: int) -> str:
    return (f"{n:03d}-" + "f" * MAX_NAME)[:MAX_NAME]


def common(n: int, node: str) -> dict[str, object]:
    return dict(id=action_id(n), errand=ERRAND, scope=VILLAGE, node=node, actor=ACTOR, role=ROLE, at=at(n))


def village_batches() -> list[list[Action]]:
    register = Register(
        **common(1, VILLAGE),  # type: ignore[arg-type]
        matter=MATTER,
        applicant=Applicant(name=APPLICANT),
        materials=tuple((f"{n:02d}" + "户口簿" * MAX_NAME)[:MAX_NAME] for n in range(3)),
        summary=TEXT,
        receipt=RECEIPT,
    )
    submit = HandOff(**common(2, VILLAGE), base=1, to=TOWN, purpose="submit", note=TEXT)  # type: ignore[arg-type]
    note = Note(**common(3, VILLAGE), text=TEXT)  # type: ignore[arg-type]
    return [[register], [submit, note]]


def town_batches() -> list[list[Action]]:
    receive = Receive(**common(10, TOWN), base=2, stage_due=STAGE_DUE)  # type: ignore[arg-type]
    accept = Accept(**common(11, TOWN), base=3, due=DUE, window=WINDOW, note=TEXT)  # type: ignore[arg-type]
    assign = Assign(**common(12, TOWN), base=4, window=WINDOW, handler=HANDLER, referred_by=ACTOR)  # type: ignore[arg-type]
    escalate = HandOff(
        **common(13, TOWN),  # type: ignore[arg-type]
        base=5,
        to=COUNTY,
        purpose="escalate",
        department=DEPARTMENT,
        note=TEXT,
    )
    return [[receive, accept], [assign, escalate]]


def test_the_values_are_at_their_bounds_and_the_rule_accepts_every_action(layout: Layout) -> None:
    actions = [a for batch in village_batches() + town_batches() for a in batch]
    for value in (ERRAND, MATTER, APPLICANT, RECEIPT, DEPARTMENT, WINDOW, HANDLER, ACTOR, ROLE):
        assert len(value) == MAX_NAME
    assert day_problem("due", DUE) is None and day_problem("stage_due", STAGE_DUE) is None  # days are all 10 long
    assert len(TEXT) == MAX_TEXT
    assert all(len(a.id) == MAX_NAME for a in actions)
    state = None
    for action in actions:
        assert action_problem(action) is None, action
        assert judge(state, action, layout.directory) is None, action
        state = project(ERRAND, actions[: actions.index(action) + 1], layout.directory).state
    assert state is not None and state.pending_to == COUNTY


async def test_a_push_of_values_at_their_bounds_is_kept_whole(db_url: str, layout: Layout) -> None:
    """The county (PostgreSQL in the field) keeps both streams' frames, every action applied, every value whole."""
    db = await open_database(db_url)
    try:
        county = Store(db, node_id=COUNTY, key=layout.keys[COUNTY], directory=layout.directory)
        await county.start()
        villages, towns = village_batches(), town_batches()
        from_village = await county.receive(chain(layout, villages), peer=TOWN)
        from_town = await county.receive(chain(layout, towns, origin=TOWN, scope=VILLAGE), peer=TOWN)

        assert statuses(from_village) == ["stored"] * len(villages)
        assert statuses(from_town) == ["stored"] * len(towns)
        c = await counts(county)
        assert (c["batches"], c["actions"], c["errands"], c["quarantine"]) == (4, 7, 1, 0)
        async with db.reader.connect() as conn:
            kept = {row.id: row.status for row in await conn.execute(select(t.actions.c.id, t.actions.c.status))}
            errand = (await conn.execute(select(t.errands).where(t.errands.c.id == ERRAND))).mappings().one()
        assert kept == {action_id(n): "applied" for n in (1, 2, 3, 10, 11, 12, 13)}
        assert {k: errand[k] for k in ("matter", "applicant_name", "receipt", "due", "stage_due")} == {
            "matter": MATTER,
            "applicant_name": APPLICANT,
            "receipt": RECEIPT,
            "due": DUE,
            "stage_due": STAGE_DUE,
        }
        assert (errand["window"], errand["handler"], errand["department"]) == (WINDOW, HANDLER, DEPARTMENT)
        assert (errand["stage"], errand["pending_to"]) == ("escalated", COUNTY)
        assert await county.digests() == expected_digests(layout, villages + towns)
    finally:
        await db.dispose()


async def test_a_store_at_0019_is_widened_with_its_rows_kept(db_url: str) -> None:
    """0020 on a store holding rows: nothing is lost (SQLite copies the tables), and wide values then fit."""
    from alembic import command

    db = await open_database(db_url, migrate=False)
    try:
        async with db.writer.begin() as conn:

            def to_0019(sync: object) -> None:
                cfg = alembic_config()
                cfg.attributes["connection"] = sync
                command.upgrade(cfg, "0019")

            await conn.run_sync(to_0019)
            await conn.execute(
                insert(t.actions).values(
                    id="a1", errand="E1", scope=VILLAGE, node=VILLAGE, kind="note", base=0, at=1, body=b"x",
                    status="applied",
                )
            )  # fmt: skip
            await conn.execute(insert(t.outbox).values(action_id="a1", scope=VILLAGE))
    finally:
        await db.dispose()

    db = await open_database(db_url)  # migrates to head
    try:
        async with db.writer.begin() as conn:
            await conn.execute(
                insert(t.actions).values(
                    id=action_id(2), errand=ERRAND, scope=VILLAGE, node=VILLAGE, kind="note", base=0, at=2, body=b"y",
                    status="applied",
                )
            )  # fmt: skip
        async with db.reader.connect() as conn:
            ids = set((await conn.execute(select(t.actions.c.id))).scalars())
            outbox = (await conn.execute(select(t.outbox.c.action_id))).scalars().all()
            assert await conn.run_sync(_schema_diffs) == []  # indexes and keys came through the copy
        assert ids == {"a1", action_id(2)}
        assert outbox == ["a1"]
    finally:
        await db.dispose()


async def test_an_errands_audit_events_are_found_by_its_whole_id(db_url: str) -> None:
    """The audit log's index columns were clipped to the old widths: an errand id over 96 found nothing."""
    db = await open_database(db_url)
    try:
        book = AuthBook(db)
        event = ev.PersonalDataRead(
            at=1.0, node=VILLAGE, actor=ACTOR, role=ROLE, acting_for=HANDLER, errand=ERRAND, what="reveal"
        )
        await book.record(event)
        assert await book.events(errand=ERRAND) == [event]
        assert await book.events(actor=ACTOR) == [event]
        assert await book.verify_chain() == []
    finally:
        await db.dispose()
