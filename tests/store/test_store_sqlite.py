"""Store behaviour on SQLite files. ``test_store_postgres`` re-runs these very tests on PostgreSQL.

The tests open stores through ``open_store`` (tests/conftest.py), which puts them on
``db_url``: by default an SQLite file in ``tmp_path``; ``test_store_postgres`` overrides
``db_url`` with a fresh PostgreSQL database, so both backends meet the same expectations.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.actions import Accept, Action, Applicant, CallBack, Decide, Deliver, HandOff, Note, Receive, Register
from protocol.batch import GENESIS, frame_hash, open_frame, seal
from protocol.encoding import encode
from protocol.errand import ErrandState, Projection, project
from protocol.errors import ActionRefused, SanjiError
from protocol.hlc import pack, wall_ms
from protocol.session import NodeReport
from protocol.signing import SigningKey
from protocol.stream import StreamKey
from protocol.topology import Directory, NodeEntry
from sanji.forms import ActionForm, RegisterForm
from sanji.keys import NodeKey
from sanji.layout import Layout
from sanji.service import ErrandService
from sanji.store import Store, intake, open_database, projections, report_inputs
from sanji.store import repo as repo_module
from sanji.store import schema as t
from sanji.store.engine import MIGRATIONS
from sanji.store.intake import Intake
from sanji.store.repo import ReceiveOutcome

StoreOpener = Callable[..., Awaitable[Store]]
VILLAGE, TOWN = "T01V01", "T01"


# -- hand-sealed batches: the tests control every byte ------------------------------------------

_T0 = int(time.time() * 1000)


def at(i: int) -> int:
    return pack(_T0, i)


def register(errand: str, i: int, node: str = VILLAGE) -> Register:
    return Register(
        id=f"a{i:04d}-{errand}",
        errand=errand,
        scope=node,
        node=node,
        actor="李代办",
        role="代办员",
        at=at(i),
        matter="低保",
        applicant=Applicant(name=f"张三{i}"),
    )


def submit(errand: str, i: int, node: str = VILLAGE, to: str = TOWN) -> HandOff:
    return HandOff(
        id=f"a{i:04d}-{errand}", errand=errand, scope=node, node=node, actor="李代办", role="代办员", at=at(i),
        base=1, to=to, purpose="submit",
    )  # fmt: skip


def note(errand: str, i: int, text: str, node: str = VILLAGE) -> Note:
    return Note(
        id=f"a{i:04d}-{errand}",
        errand=errand,
        scope=node,
        node=node,
        actor="李代办",
        role="代办员",
        at=at(i),
        text=text,
    )


def chain(
    layout: Layout,
    batches: Sequence[Sequence[Action]],
    *,
    origin: str = VILLAGE,
    scope: str = VILLAGE,
    key: SigningKey | None = None,
    start: int = 1,
    prev: bytes = GENESIS,
) -> list[bytes]:
    """Seal ``batches`` as consecutive, hash-chained frames of the stream origin->scope."""
    frames = []
    for n, acts in enumerate(batches):
        frame = seal(
            key=key or layout.keys[origin],
            origin=origin,
            scope=scope,
            audience=layout.directory.audience(origin, scope),
            seq=start + n,
            prev=prev,
            created=at(900 + n),
            actions=list(acts),
        )
        frames.append(frame)
        prev = frame_hash(frame)
    return frames


def standard_batches() -> list[list[Action]]:
    """Three batches about two errands of the village."""
    return [
        [register("E1", 1), submit("E1", 2)],
        [register("E2", 3)],
        [submit("E2", 4), note("E1", 5, "材料已补齐")],
    ]


def expected_projections(batches: Sequence[Sequence[Action]], directory: Directory) -> dict[str, Projection]:
    by_errand: dict[str, list[Action]] = {}
    for acts in batches:
        for a in acts:
            by_errand.setdefault(a.errand, []).append(a)
    return {e: project(e, acts, directory) for e, acts in by_errand.items()}


def expected_digests(layout: Layout, batches: Sequence[Sequence[Action]]) -> dict[str, str]:
    return {e: p.digest for e, p in expected_projections(batches, layout.directory).items()}


def expected_bases(layout: Layout, batches: Sequence[Sequence[Action]]) -> dict[str, str]:
    """Each errand's basis, as a full projection under ``layout``'s directory gives it."""
    directory = layout.directory
    return {
        e: projections.basis_of_projection(p, directory) for e, p in expected_projections(batches, directory).items()
    }


async def counts(store: Store) -> dict[str, int]:
    out: dict[str, int] = {}
    async with store.db.reader.connect() as conn:
        for table in t.metadata.sorted_tables:
            out[table.name] = int(await conn.scalar(select(func.count()).select_from(table)) or 0)
    return out


def statuses(outcome: ReceiveOutcome) -> list[str]:
    return [r.status for r in outcome.results]


# -- schema ----------------------------------------------------------------------------------


def _schema_diffs(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), t.metadata))


def _current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def test_migrations_build_exactly_the_declared_schema(db_url: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    for _ in range(2):  # the second open finds the schema at head and must change nothing
        db = await open_database(db_url)
        try:
            async with db.writer.connect() as conn:
                assert await conn.run_sync(_current_revision) == head
                assert await conn.run_sync(_schema_diffs) == []
                tables = set(await conn.run_sync(lambda c: c.dialect.get_table_names(c)))
        finally:
            await db.dispose()
        assert {tb.name for tb in t.metadata.sorted_tables} <= tables


# -- receiving ---------------------------------------------------------------------------------


async def test_receive_is_idempotent(open_store: StoreOpener, layout: Layout) -> None:
    town = await open_store(TOWN)
    batches = standard_batches()
    frames = chain(layout, batches)

    first = await town.receive(frames, peer=VILLAGE)
    assert statuses(first) == ["stored"] * 3
    assert (first.applied_batches, first.applied_actions) == (3, 5)
    before = await counts(town)
    assert before["batches"] == 3 and before["actions"] == 5 and before["errands"] == 2
    digests = await town.digests()
    assert digests == expected_digests(layout, batches)

    for again in (frames, list(reversed(frames)), frames[1:2]):
        second = await town.receive(again, peer=VILLAGE)
        assert statuses(second) == ["duplicate"] * len(again)
        assert (second.applied_batches, second.applied_actions) == (0, 0)
        assert await counts(town) == before
        assert await town.digests() == digests
    assert (await town.cursors_where()) == {StreamKey(VILLAGE, VILLAGE): 3}


async def test_errands_are_found_by_receipt_id_matter_or_name_newest_first(
    open_store: StoreOpener, layout: Layout
) -> None:
    """全部办件's search (``Store.errands(text=)``): any case, ``%`` and ``_`` typed, never wildcards."""
    town = await open_store(TOWN)
    await town.receive(chain(layout, standard_batches()), peer=VILLAGE)

    async def found(text: str, matters: Sequence[str] = ()) -> list[str]:
        rows, total = await town.errands(text=text, text_matters=matters, newest_first=True)
        assert total == len(rows)
        return [r["id"] for r in rows]

    assert await found("张三3") == ["E2"] and await found("张三") == ["E2", "E1"]  # the applicant's name, newest first
    assert await found("e1") == ["E1"]  # the errand id, any case
    assert await found("低保") == ["E2", "E1"] and await found("x", ["低保"]) == ["E2", "E1"]  # the matter
    assert await found("%") == [] and await found("_") == [] and await found("张_3") == []
    # what shows as nothing is dropped (``protocol.names.visible_text``): PostgreSQL refuses a NUL outright
    assert await found("张三\x003") == ["E2"] and await found("\x00") == ["E2", "E1"]
    rows, total = await town.errands(newest_first=True, limit=1, offset=1)
    assert [r["id"] for r in rows] == ["E1"] and total == 2


async def test_out_of_order_batches_are_held_then_applied(open_store: StoreOpener, layout: Layout) -> None:
    town = await open_store(TOWN)
    batches = standard_batches()
    f1, f2, f3 = chain(layout, batches)

    held = await town.receive([f3, f2], peer=VILLAGE)
    assert statuses(held) == ["held", "held"]
    assert {r.error for r in held.results} == {"chain_gap"}
    assert [r.seq for r in held.results] == [3, 2]
    c = await counts(town)
    assert (c["held_batches"], c["batches"], c["actions"], c["errands"], c["streams"]) == (2, 0, 0, 0, 0)
    assert (await town.status())["held_batches"] == 2

    assert statuses(await town.receive([f3], peer=VILLAGE)) == ["held"]  # held again: kept once
    assert (await counts(town))["held_batches"] == 2

    done = await town.receive([f1], peer=VILLAGE)
    assert statuses(done) == ["stored"]
    assert (done.applied_batches, done.applied_actions) == (3, 5)
    c = await counts(town)
    assert (c["held_batches"], c["batches"], c["actions"], c["errands"]) == (0, 3, 5, 2)
    assert await town.cursors_where() == {StreamKey(VILLAGE, VILLAGE): 3}
    assert await town.digests() == expected_digests(layout, batches)
    e1 = await town.errand("E1")
    assert e1 is not None and e1["stage"] == "submitted" and e1["pending_to"] == TOWN


async def test_forked_batch_is_quarantined_and_never_applied(open_store: StoreOpener, layout: Layout) -> None:
    town = await open_store(TOWN)
    f1, f2 = chain(layout, standard_batches()[:2])
    assert statuses(await town.receive([f1, f2], peer=VILLAGE)) == ["stored", "stored"]
    before = await counts(town)
    digests = await town.digests()

    # Same number, other content, correctly signed by the village's key (a restored backup, say).
    (fork1,) = chain(layout, [[register("E9", 9)]])
    # Next number, but chained to something other than the batch held.
    (fork3,) = chain(layout, [[register("E8", 8)]], start=3, prev=frame_hash(b"not batch 2"))
    for fork, seq in ((fork1, 1), (fork3, 3)):
        outcome = await town.receive([fork], peer=VILLAGE)
        (result,) = outcome.results
        assert (result.status, result.error, result.seq) == ("refused", "chain_fork", seq)
        assert outcome.applied_batches == 0

    after = await counts(town)
    assert after["quarantine"] == before["quarantine"] + 2
    assert {k: v for k, v in after.items() if k not in ("quarantine", "events")} == {
        k: v for k, v in before.items() if k not in ("quarantine", "events")
    }
    assert await town.digests() == digests
    assert await town.errand("E9") is None and await town.errand("E8") is None
    assert await town.cursors_where() == {StreamKey(VILLAGE, VILLAGE): 2}
    async with town.db.reader.connect() as conn:
        rows = (await conn.execute(select(t.quarantine).order_by(t.quarantine.c.id))).mappings().all()
        kinds = (await conn.execute(select(t.events.c.kind))).scalars().all()
        held_hash = await conn.scalar(select(t.batches.c.hash).where(t.batches.c.seq == 1))
    assert [(r["seq"], r["hash"], r["frame"], r["peer"]) for r in rows] == [
        (1, frame_hash(fork1), fork1, VILLAGE),
        (3, frame_hash(fork3), fork3, VILLAGE),
    ]
    assert all(r["reason"] for r in rows)
    assert kinds.count("fork") == 2
    assert held_hash == frame_hash(f1)  # the original is kept
    assert (await town.status())["quarantined_batches"] == 2
    assert statuses(await town.receive([f1, f2], peer=VILLAGE)) == ["duplicate", "duplicate"]


def _flip(frame: bytes, pos: int) -> bytes:
    return frame[:pos] + bytes([frame[pos] ^ 0x01]) + frame[pos + 1 :]


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        ("flip_payload_byte", "bad_signature"),
        ("flip_signature_byte", "bad_signature"),
        ("truncated", "malformed_batch"),
        ("bad_magic", "malformed_batch"),
        ("signed_by_other_node", "bad_signature"),
        ("unknown_key", "bad_signature"),
        ("not_for_this_node", "wrong_route"),
    ],
)
async def test_tampered_frame_is_refused_and_only_logged(
    open_store: StoreOpener, layout: Layout, damage: str, error: str
) -> None:
    town = await open_store(TOWN)
    (good,) = chain(layout, standard_batches()[:1])
    frame = {
        "flip_payload_byte": lambda: _flip(good, len(good) // 2),
        "flip_signature_byte": lambda: _flip(good, len(good) - 3),
        "truncated": lambda: good[:-10],
        "bad_magic": lambda: b"XXX" + good[3:],
        "signed_by_other_node": lambda: chain(layout, standard_batches()[:1], key=layout.keys["T02V01"])[0],
        "unknown_key": lambda: chain(layout, standard_batches()[:1], key=SigningKey.generate())[0],
        "not_for_this_node": lambda: chain(
            layout, [[register("X1", 1, node="T02V01")]], origin="T02V01", scope="T02V01"
        )[0],
    }[damage]()
    before = await counts(town)

    outcome = await town.receive([frame], peer=VILLAGE)
    (result,) = outcome.results
    assert (result.status, result.error) == ("refused", error)
    assert result.message
    after = await counts(town)
    assert after == {**before, "events": before["events"] + 1}
    async with town.db.reader.connect() as conn:
        event = (await conn.execute(select(t.events))).mappings().one()
    assert (event["kind"], event["peer"]) == ("refused", VILLAGE)
    assert error in event["detail"]

    # The genuine frame still goes in afterwards.
    assert statuses(await town.receive([good], peer=VILLAGE)) == ["stored"]


async def test_forwarding_pages_respect_the_budget_across_streams(open_store: StoreOpener, layout: Layout) -> None:
    town = await open_store(TOWN)
    batches = standard_batches()
    village_frames = chain(layout, batches)
    await town.receive(village_frames, peer=VILLAGE)
    assert await town.confirm_child(VILLAGE, {}) == {}  # the village said it holds nothing of the town's
    for errand in ("E1", "E2"):  # the town's own stream about the village's errands
        await ErrandService(town).act(errand, ActionForm(kind="receive", actor="王"))
        await town.seal_outbox()
    everything, more = await town.frames_for_parent({}, 10**6)
    assert not more and len(everything) == 5 and set(village_frames) <= set(everything)

    smallest = min(len(f) for f in everything)
    for budget in (1, smallest, smallest + 10, 2 * max(len(f) for f in everything)):
        parent_has: dict[StreamKey, int] = {}
        got: list[bytes] = []
        for _ in range(10):
            page, more = await town.frames_for_parent(parent_has, budget)
            assert page, "a page always carries at least one frame"
            assert len(page) == 1 or sum(map(len, page)) <= budget, (budget, [len(f) for f in page])
            got += page
            for frame in page:
                payload = open_frame(frame, layout.directory).payload
                key = StreamKey(payload.origin, payload.scope)
                assert payload.seq == parent_has.get(key, 0) + 1  # in order within each stream
                parent_has[key] = payload.seq
            if not more:
                break
        assert sorted(got) == sorted(everything)


async def test_apply_is_atomic(open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    town = await open_store(TOWN)
    batches = standard_batches()
    f1, f2, f3 = chain(layout, batches)
    empty = await counts(town)
    original = Store._recompute
    calls = {"n": 0, "fail_at": 1}

    async def crash_in_projection(self: Store, conn, errand_ids, **kw):  # type: ignore[no-untyped-def]
        out = await original(self, conn, errand_ids, **kw)
        calls["n"] += 1
        if calls["n"] == calls["fail_at"]:
            raise RuntimeError("power cut in the middle of applying a batch")
        return out

    monkeypatch.setattr(Store, "_recompute", crash_in_projection)
    with pytest.raises(RuntimeError, match="power cut"):
        await town.receive([f1], peer=VILLAGE)
    assert await counts(town) == empty
    assert await town.cursors_where() == {}
    assert await town.errand("E1") is None

    # A held successor applied in the same transaction rolls back together with its predecessor.
    assert statuses(await town.receive([f2], peer=VILLAGE)) == ["held"]
    calls.update(n=0, fail_at=2)  # batch 1 applies fine, batch 2 (from the held table) fails
    with pytest.raises(RuntimeError, match="power cut"):
        await town.receive([f1], peer=VILLAGE)
    c = await counts(town)
    assert (c["batches"], c["streams"], c["actions"], c["errands"], c["held_batches"]) == (0, 0, 0, 0, 1)

    monkeypatch.undo()
    retry = await town.receive([f1, f3], peer=VILLAGE)
    assert statuses(retry) == ["stored", "stored"]
    assert retry.applied_batches == 3
    assert await town.digests() == expected_digests(layout, batches)
    assert (await counts(town))["held_batches"] == 0


async def test_a_crash_after_a_push_is_written_leaves_nothing(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push's batch, action, cursor and errand rows are written together at its end
    (``sanji.store.intake``): a crash after they are written, before the commit, keeps none of them."""
    town = await open_store(TOWN)
    batches = standard_batches()
    frames = chain(layout, batches)
    empty = await counts(town)
    original = Intake.flush

    async def crash_after_writing(self: Intake, conn: AsyncConnection) -> None:
        await original(self, conn)
        # Inside the transaction the batches, actions, cursors and errands are all written by now.
        for table in (t.batches, t.actions, t.streams, t.errands):
            assert await conn.scalar(select(func.count()).select_from(table)) > 0
        raise RuntimeError("power cut after writing a push")

    monkeypatch.setattr(Intake, "flush", crash_after_writing)
    with pytest.raises(RuntimeError, match="power cut"):
        await town.receive(frames, peer=VILLAGE)
    assert await counts(town) == empty
    assert await town.cursors_where() == {}

    monkeypatch.undo()
    retry = await town.receive(frames, peer=VILLAGE)
    assert statuses(retry) == ["stored"] * len(frames)
    assert await town.digests() == expected_digests(layout, batches)


async def test_local_action_refused_by_rules_writes_nothing(open_store: StoreOpener) -> None:
    village = await open_store(VILLAGE)
    service = ErrandService(village)
    proj = await service.register(RegisterForm(matter="低保", applicant_name="张三", actor="李代办"))
    errand = proj.errand
    before = await counts(village)
    row_before = await village.errand(errand)
    assert before["outbox"] == 1 and before["actions"] == 1

    refused = [
        ActionForm(kind="accept", actor="李代办"),  # accepting is the township's job
        ActionForm(kind="deliver", actor="李代办", confirmed_by="张三"),  # nothing decided yet
        ActionForm(kind="receive", actor="李代办"),  # nothing is being handed over
        ActionForm(kind="decide", actor="李代办", outcome="approved"),
        ActionForm(kind="submit", actor="李代办", expected_version=7),  # stale screen
    ]
    for form in refused:
        with pytest.raises(ActionRefused) as info:
            await service.act(errand, form)
        assert info.value.code == "action_refused" and info.value.message
    with pytest.raises(ActionRefused):
        await service.act("T01V01-unknown", ActionForm(kind="submit", actor="李代办"))

    def forged(before_proj, now):  # type: ignore[no-untyped-def]
        return note(errand, 77, "written in someone else's name", node=TOWN)

    with pytest.raises(ActionRefused):
        await village.act(errand, forged)

    assert await counts(village) == before
    assert await village.errand(errand) == row_before
    assert await village.seal_outbox(force=True) == 1  # only the registration goes out

    # and a valid action is still accepted afterwards
    ok = await service.act(errand, ActionForm(kind="submit", actor="李代办", expected_version=1))
    assert ok.state is not None and ok.state.stage == "submitted"


async def test_database_of_another_node_refuses_to_start(open_store: StoreOpener) -> None:
    town = await open_store(TOWN)
    assert town.instance_id
    with pytest.raises(SanjiError, match="belongs to node T01, not C"):
        await open_store("C")
    again = await open_store(TOWN)  # its own node reopens fine, same instance
    assert again.instance_id == town.instance_id


async def test_streams_towards_a_child_wait_until_the_child_says_what_it_holds(
    open_store: StoreOpener, layout: Layout
) -> None:
    """A township restored from a backup may have sent its village batches it no longer holds: it numbers
    nothing new towards that village before the village reported, and asks for its own batches back."""
    town = await open_store(TOWN)
    await town.receive(chain(layout, standard_batches()), peer=VILLAGE)
    await ErrandService(town).act("E1", ActionForm(kind="receive", actor="王"))
    assert await town.seal_outbox() == 0 and await town.outbox_size() == 1  # the village has not spoken
    mine = StreamKey(TOWN, VILLAGE)
    assert await town.confirm_child(VILLAGE, {mine: 3}) == {mine: 0}  # it holds 3 the town lost
    assert await town.seal_outbox() == 0
    assert await town.confirm_child(VILLAGE, {}) == {}
    assert await town.seal_outbox() == 1 and await town.outbox_size() == 0
    assert await town.seal_outbox(force=True) == 0  # nothing left; force seals regardless (hand-carried files)


# -- kept projections (issue 15) -------------------------------------------------------------


async def projected_rows(store: Store) -> tuple[list[dict[str, object]], list[tuple[str, str, str]]]:
    """Every errand row and every action's (id, status, reason): what a projection writes."""
    async with store.db.reader.connect() as conn:
        errands = [dict(r._mapping) for r in await conn.execute(select(t.errands).order_by(t.errands.c.id))]
        acts = [
            (r.id, r.status, r.reason)
            for r in await conn.execute(
                select(t.actions.c.id, t.actions.c.status, t.actions.c.reason).order_by(t.actions.c.id)
            )
        ]
    return errands, acts


def spy_on_folds(monkeypatch: pytest.MonkeyPatch) -> Callable[[], set[str]]:
    """``folded()``: the errands folded since the last call, onto their kept rows or onto what this process
    projected before (the real ``fold_kept`` / ``fold_projected`` run; this only records)."""
    folded: set[str] = set()
    kept, projected = projections.fold_kept, projections.fold_projected

    def from_row(errand_id, row, held, fresh, directory):  # type: ignore[no-untyped-def]
        out = kept(errand_id, row, held, fresh, directory)
        if out is not None:
            folded.add(errand_id)
        return out

    def from_memory(before, held, fresh, directory, *, line):  # type: ignore[no-untyped-def]
        out = projected(before, held, fresh, directory, line=line)
        if out is not None:
            folded.add(before.errand)
        return out

    def since() -> set[str]:
        out = set(folded)
        folded.clear()
        return out

    monkeypatch.setattr(projections, "fold_kept", from_row)
    monkeypatch.setattr(projections, "fold_projected", from_memory)
    return since


async def test_batches_in_order_are_folded_onto_the_kept_rows_which_equal_a_full_projection(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    town = await open_store(TOWN)
    rival = msgspec.structs.replace(submit("E2", 7), id="a0000-E2", to=VILLAGE)  # sorts first, refused
    batches: list[list[Action]] = [
        [register("E1", 1)],
        [submit("E1", 2)],
        [register("E2", 3), rival],
        [submit("E2", 4), note("E1", 5, "材料已补齐")],
        [note("E2", 6, "已电话告知申请人")],
    ]
    folded = spy_on_folds(monkeypatch)
    per_batch = []
    for frame in chain(layout, batches):
        assert statuses(await town.receive([frame], peer=VILLAGE)) == ["stored"]
        per_batch.append(folded())
    # E1's registration and submission continue it in order; so does E2's registration with a rival
    # refused beside it. Then the submission the rival competed with (a held action at the frontier: fold
    # leaves weighing rivals to project) is projected from everything; a note is folded on, the notes held
    # judged again over the main line's own state kept beside the projection.
    assert per_batch == [{"E1"}, {"E1"}, {"E2"}, {"E1"}, {"E2"}]
    assert await town.digests() == expected_digests(layout, batches)
    kept = await projected_rows(town)
    assert {row["id"]: row["basis"] for row in kept[0]} == expected_bases(layout, batches)
    async with town.transaction() as conn:
        await town._recompute(conn, ["E1", "E2"])  # every action projected again, nothing kept
    assert await projected_rows(town) == kept


def _step(cls: type[Action], errand: str, i: int, node: str, base: int, **fields: object) -> Action:
    return cls(
        id=f"a{i:04d}-{errand}", errand=errand, scope=VILLAGE, node=node, actor="王", role="受理员", at=at(i),
        base=base, **fields,
    )  # fmt: skip


@pytest.mark.parametrize("searched", [32, 0], ids=["ids-searched", "id-sets"])
async def test_an_errand_holding_notes_is_folded_push_by_push_and_its_notes_judged_again(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch, searched: int
) -> None:
    """The county continues an errand holding notes from memory at every push: a note that changed the state
    (acting for an A post), a call-back refused as too early and allowed once the errand is delivered (its
    stored status changes though no new action names it). Every row is what projecting everything gives,
    whether the fold's verdicts are read by searching the projection's ids (a short history) or from sets
    (a long one, ``repo._SEARCHED``)."""
    monkeypatch.setattr(repo_module, "_SEARCHED", searched)
    county = await open_store("C")
    remark = msgspec.structs.replace(note("E1", 2, "材料已补齐"), acting_for="A岗")
    early = _step(CallBack, "E1", 5, TOWN, 0, reached=True, satisfied="满意")
    village_batches: list[list[Action]] = [
        [register("E1", 1), remark],
        [msgspec.structs.replace(submit("E1", 3), base=1)],
        [_step(Receive, "E1", 9, VILLAGE, 6), _step(Deliver, "E1", 10, VILLAGE, 7, confirmed_by="张三1")],
    ]
    town_batches: list[list[Action]] = [
        [received("E1", 4, base=2), early],
        [
            _step(Accept, "E1", 6, TOWN, 3),
            _step(Decide, "E1", 7, TOWN, 4, outcome="refused", document="不符合条件告知书"),
            _step(HandOff, "E1", 8, TOWN, 5, to=VILLAGE, purpose="result"),
        ],
        [msgspec.structs.replace(note("E1", 11, "已回访", node=TOWN), scope=VILLAGE)],
    ]
    village, town = chain(layout, village_batches), chain(layout, town_batches, origin=TOWN)
    folded = spy_on_folds(monkeypatch)
    held: list[Action] = []
    for frame, batch in [
        (village[0], village_batches[0]),
        (village[1], village_batches[1]),
        (town[0], town_batches[0]),
        (town[1], town_batches[1]),
        (village[2], village_batches[2]),
        (town[2], town_batches[2]),
    ]:
        assert statuses(await county.receive([frame], peer=TOWN)) == ["stored"]
        held += batch
        assert folded() == {"E1"}
        await check_rows_are_a_full_projection(county, held)
    assert (await county.errand("E1") or {})["stage"] == "delivered"
    kept = await projected_rows(county)
    assert (early.id, "applied", "") in kept[1]
    async with county.transaction() as conn:
        await county._recompute(conn, ["E1"])  # every action projected again, nothing kept
    assert await projected_rows(county) == kept


async def test_a_kept_row_read_back_is_folded_past_refused_notes_not_past_applied_ones(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that did not write the row has no main line's state of its own to judge the notes from
    (``protocol.errand.Replayed``): it folds onto the row while no note was applied (refused ones are judged
    again from the row's state, which is then the main line's), and projects everything once one was."""
    early = _step(CallBack, "E1", 3, VILLAGE, 0, reached=True)  # refused: nothing delivered yet
    batches: list[list[Action]] = [
        [register("E1", 1), early],
        [msgspec.structs.replace(submit("E1", 2), base=1)],
        [note("E1", 4, "材料已补齐")],
        [msgspec.structs.replace(note("E1", 5, "已电话告知"), acting_for="A岗")],
    ]
    frames = chain(layout, batches)
    folded = spy_on_folds(monkeypatch)
    held: list[Action] = []
    expected = [{"E1"}, {"E1"}, {"E1"}, set()]
    for frame, batch, want in zip(frames, batches, expected, strict=True):
        county = await open_store("C")  # a process that did not write the row: it is read back
        assert statuses(await county.receive([frame], peer=TOWN)) == ["stored"]
        held += batch
        assert folded() == want
        await check_rows_are_a_full_projection(county, held)


async def test_a_kept_row_that_cannot_be_trusted_is_projected_again(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    town = await open_store(TOWN)
    batches: list[list[Action]] = [[register("E1", 1)], [submit("E1", 2)], [register("E2", 3)], [submit("E2", 4)]]
    f1, f2, f3, f4 = chain(layout, batches)
    folded = spy_on_folds(monkeypatch)
    await town.receive([f1], peer=VILLAGE)
    assert folded() == {"E1"}
    async with town.transaction() as conn:  # a row from before migration 0017 (or another tree)
        await conn.execute(t.errands.update().values(basis=""))
    await town.receive([f2], peer=VILLAGE)  # not what this process wrote either: read back, not continued
    assert folded() == set()
    await town.receive([f3], peer=VILLAGE)
    assert folded() == {"E2"}
    state = (await town.errand("E2") or {})["stage"]
    async with town.transaction() as conn:  # a row whose state is not what its actions give
        raw = await conn.scalar(select(t.errands.c.state).where(t.errands.c.id == "E2"))
        bent = encode(msgspec.structs.replace(msgspec.msgpack.decode(raw, type=ErrandState), holder=TOWN))
        await conn.execute(t.errands.update().where(t.errands.c.id == "E2").values(state=bent))
    town = await open_store(TOWN)  # a process that did not write the row (one that did continues its own)
    await town.receive([f4], peer=VILLAGE)
    assert folded() == set()
    assert state == "registered"
    assert await town.digests() == expected_digests(layout, batches)
    kept = await projected_rows(town)
    assert {row["id"]: row["basis"] for row in kept[0]} == expected_bases(layout, batches)
    async with town.transaction() as conn:
        await town._recompute(conn, ["E1", "E2"])
    assert await projected_rows(town) == kept


class _Reads:
    """The reads of actions by errand ``store`` sends from now on, through SQLAlchemy or past it."""

    def __init__(self, store: Store) -> None:
        self.seen: list[str] = []
        self.past = intake.driver_reads(store.db.writer.sync_engine)  # ``Intake._read``'s, by name
        self.past_before = self.past["actions"]

    def record(self, _c: object, _cur: object, statement: str, *_: object) -> None:
        if "FROM actions" in statement and "actions.errand IN" in statement:
            self.seen.append(statement)

    def __len__(self) -> int:
        return len(self.seen) + self.past["actions"] - self.past_before


def reads_of_actions_by_errand(store: Store) -> _Reads:
    """Every statement ``store`` sends that reads the actions of errands (the rows ``Intake`` reads back)."""
    reads = _Reads(store)
    event.listen(store.db.writer.sync_engine, "before_cursor_execute", reads.record)
    return reads


async def test_a_push_continues_what_this_process_wrote_without_reading_it_back(
    open_store: StoreOpener, layout: Layout
) -> None:
    town = await open_store(TOWN)
    batches: list[list[Action]] = [[register("E1", 1), register("E2", 2)], [submit("E1", 3)], [submit("E2", 4)]]
    f1, f2, f3 = chain(layout, batches)
    await town.receive([f1], peer=VILLAGE)
    reads = reads_of_actions_by_errand(town)
    await town.receive([f2], peer=VILLAGE)
    await town.receive([f3], peer=VILLAGE)
    assert len(reads) == 0  # both errands were continued from what this process wrote
    assert await town.digests() == expected_digests(layout, batches)
    kept = await projected_rows(town)
    async with town.transaction() as conn:
        await town._recompute(conn, ["E1", "E2"])
    assert await projected_rows(town) == kept


async def test_a_push_that_fails_part_way_leaves_memory_as_what_was_committed(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame failing in the middle of a push rolls the call back and takes the frames before it again: what
    the rolled-back attempt did to the rows it took from memory must not stay there."""
    town = await open_store(TOWN)
    later = msgspec.structs.replace(submit("E1", 2), base=2)  # waits for version 1
    batches: list[list[Action]] = [
        [register("E1", 1), later],
        [register("E2", 3)],
        [submit("E1", 4)],  # takes version 1: what waited is decided, a change to a row taken from memory
        [submit("E2", 5)],
    ]
    f1, f2, f3, f4 = chain(layout, batches)
    await town.receive([f1], peer=VILLAGE)
    original = Store._recompute
    calls = {"n": 0}

    async def third_frame_fails(self: Store, conn, errand_ids, **kw):  # type: ignore[no-untyped-def]
        out = await original(self, conn, errand_ids, **kw)
        calls["n"] += 1
        if calls["n"] == 2:  # the push's second frame, after it decided E1's waiting action
            raise RuntimeError("a disk error in the middle of a push")
        return out

    monkeypatch.setattr(Store, "_recompute", third_frame_fails)
    with pytest.raises(RuntimeError, match="disk error"):
        await town.receive([f2, f3], peer=VILLAGE)
    monkeypatch.undo()
    for push in ([f3], [f4]):
        await town.receive(push, peer=VILLAGE)
        kept = await projected_rows(town)
        async with town.transaction() as conn:
            await town._recompute(conn, ["E1", "E2"])
        assert await projected_rows(town) == kept
    assert await town.digests() == expected_digests(layout, batches)


async def test_an_errand_another_process_wrote_since_is_read_back_not_continued(
    open_store: StoreOpener, layout: Layout
) -> None:
    """Two processes on one database (hub workers): what one remembers of an errand the other has written
    since is stale; the row's digest and waiting count say so, and the errand is read back."""
    first, second = await open_store(TOWN), await open_store(TOWN)
    batches: list[list[Action]] = [[register("E1", 1)], [submit("E1", 2)], [note("E1", 3, "材料已补齐")]]
    f1, f2, f3 = chain(layout, batches)
    await first.receive([f1], peer=VILLAGE)  # `first` remembers E1 registered
    await second.receive([f2], peer=VILLAGE)  # `second` submits it
    reads = reads_of_actions_by_errand(first)
    await first.receive([f3], peer=VILLAGE)
    assert len(reads) == 1  # E1 read back: the submission `first` never saw is in the projection
    assert await first.digests() == expected_digests(layout, batches)
    assert (await first.errand("E1") or {})["stage"] == "submitted"


@pytest.mark.parametrize("seed", range(12))
async def test_actions_in_any_order_and_any_batches_leave_what_projecting_everything_leaves(
    open_store: StoreOpener, layout: Layout, seed: int
) -> None:
    """Whatever the order the actions come in (past gaps that wait, rivals, notes, repeats across batches)
    and however they are cut into batches and pushes, the rows the store keeps — folded, continued from
    memory or projected in full — are those a full projection of everything writes."""
    rng = random.Random(seed)
    actions: list[Action] = []
    for n in range(4):
        e = f"E{n}"
        story: list[Action] = [register(e, 10 * n + 1), submit(e, 10 * n + 2)]
        if rng.random() < 0.5:
            story.append(msgspec.structs.replace(submit(e, 10 * n + 3), id=f"a00{n}-rival", to=VILLAGE))
        if rng.random() < 0.5:
            story.append(note(e, 10 * n + 4, "进度说明"))
        if rng.random() < 0.3:  # a later step that waits until its version is taken
            story.append(msgspec.structs.replace(submit(e, 10 * n + 5), base=2))
        actions += story
    rng.shuffle(actions)
    cuts = sorted(rng.sample(range(1, len(actions)), k=min(len(actions) - 1, rng.randint(1, 6))))
    batches = [actions[a:b] for a, b in zip([0, *cuts], [*cuts, len(actions)], strict=True)]
    frames = chain(layout, batches)
    town = await open_store(TOWN)
    pushes = sorted(rng.sample(range(1, len(frames)), k=rng.randint(0, len(frames) - 1))) if len(frames) > 1 else []
    for a, b in zip([0, *pushes], [*pushes, len(frames)], strict=True):
        assert set(statuses(await town.receive(frames[a:b], peer=VILLAGE))) == {"stored"}
        kept = await projected_rows(town)  # after every push, not only the last: a row may be right by the end
        async with town.transaction() as conn:
            await town._recompute(conn, [str(row["id"]) for row in kept[0]])  # every action projected again
        assert await projected_rows(town) == kept
    assert await town.digests() == expected_digests(layout, batches)


async def test_an_action_out_of_bounds_stays_refused_when_its_errand_is_projected_again(
    open_store: StoreOpener, layout: Layout
) -> None:
    """Applied actions are not walked for bounds again; a refused one is, and is refused again."""
    town = await open_store(TOWN)
    loud = note("E1", 2, "已电话告知")
    loud = msgspec.structs.replace(loud, actor="李\x07代办")
    batches: list[list[Action]] = [[register("E1", 1), loud], [note("E1", 3, "材料已补齐")], [submit("E1", 4)]]
    reason = "actor contains a character not allowed in a name (U+0007)"
    for frame in chain(layout, batches):
        assert statuses(await town.receive([frame], peer=VILLAGE)) == ["stored"]
        _, acts = await projected_rows(town)
        assert (loud.id, "rejected", reason) in acts
    assert await town.digests() == expected_digests(layout, batches)
    assert {status for aid, status, _ in (await projected_rows(town))[1] if aid != loud.id} == {"applied"}


# -- the basis a kept row is continued under: an enrollment is not a reason to project again ------------

SISTER = "T01V02"  # a village of T01 that the fixture's layout lacks: enrolled by the tests below


def enrolled(layout: Layout, node: str = SISTER, parent: str = TOWN) -> Layout:
    """``layout`` with one more village, ``node`` under ``parent``, with keys of its own."""
    key = NodeKey.generate_pair()
    entry = NodeEntry(id=node, role="village", parent=parent, name="新村代办点", keys=key.records(node))
    return Layout(entries=[*layout.entries, entry], keys={**layout.keys, node: key})


def received(errand: str, i: int, base: int, node: str = TOWN, scope: str = VILLAGE) -> Receive:
    return Receive(
        id=f"a{i:04d}-{errand}", errand=errand, scope=scope, node=node, actor="王", role="受理员", at=at(i), base=base
    )


async def check_rows_are_a_full_projection(store: Store, actions: Sequence[Action]) -> None:
    """Every errand row, its actions' statuses and its basis are what projecting everything held under the
    store's current directory gives."""
    directory = store.directory
    want = expected_projections([actions], directory)
    errands, acts = await projected_rows(store)
    assert {r["id"]: r["digest"] for r in errands} == {e: p.digest for e, p in want.items()}
    assert {r["id"]: r["basis"] for r in errands} == {
        e: projections.basis_of_projection(p, directory) for e, p in want.items()
    }
    status = {}
    for p in want.values():
        status |= {aid: ("applied", "") for aid in (*p.main, *p.notes)}
        status |= {aid: ("waiting", "") for aid in p.waiting}
        status |= {aid: ("rejected", reason) for aid, reason in p.rejected.items()}
    assert {aid: (st, reason) for aid, st, reason in acts} == status


async def test_an_enrollment_leaves_kept_rows_to_be_continued(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A village enrolled anywhere changes nothing any errand's actions were judged by: the next batch of an
    errand whose every action was allowed is folded onto its kept row, whose basis stays as it was."""
    county = await open_store("C")
    mine = [[register("E1", 1), submit("E1", 2)], [register("E2", 3)]]
    await county.receive(chain(layout, mine), peer=TOWN)
    before = {r["id"]: r["basis"] for r in (await projected_rows(county))[0]}
    folded = spy_on_folds(monkeypatch)
    county.use_directory(enrolled(layout).directory)
    county.use_directory(enrolled(enrolled(layout), "T02V02", "T02").directory)  # and one under the other town
    town = [[received("E1", 4, base=2)]]
    assert statuses(await county.receive(chain(layout, town, origin=TOWN), peer=TOWN)) == ["stored"]
    assert folded() == {"E1"}
    assert {r["id"]: r["basis"] for r in (await projected_rows(county))[0]} == before
    await check_rows_are_a_full_projection(county, [*mine[0], *mine[1], *town[0]])
    assert (await county.errand("E1") or {})["stage"] == "received"


async def test_a_registration_refused_for_a_node_not_enrolled_is_judged_again_once_it_is(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two registrations of one errand id: the village not in the directory (dropped from it, say, and
    enrolled again later) loses version 0 to the other. Once it is enrolled its registration is allowed and
    wins (its id sorts first), so the kept row, which holds a refusal, is projected from everything, not
    continued: every action ends as projecting everything under the new directory gives."""
    bigger = enrolled(layout)
    county = await open_store("C")
    county.use_directory(bigger.directory)
    first = register("E9", 0, node=SISTER)  # sorts before ``theirs``
    theirs = [[register("E9", 1)], [submit("E9", 2)]]
    await county.receive(chain(bigger, [[first]], origin=SISTER, scope=SISTER), peer=TOWN)
    village = chain(layout, theirs)
    await county.receive(village[:1], peer=TOWN)
    county.use_directory(layout.directory)  # the sister village is gone from the directory
    folded = spy_on_folds(monkeypatch)
    await county.receive(village[1:], peer=TOWN)
    assert folded() == set()  # another tree: projected in full, the sister's registration refused
    held = [first, *theirs[0], *theirs[1]]
    await check_rows_are_a_full_projection(county, held)
    _, acts = await projected_rows(county)
    assert (first.id, "rejected", f"node {SISTER} is not in the directory") in acts
    assert (await county.errand("E9") or {})["scope"] == VILLAGE

    county.use_directory(bigger.directory)  # enrolled again
    town = [[received("E9", 3, base=2)]]
    assert statuses(await county.receive(chain(layout, town, origin=TOWN), peer=TOWN)) == ["stored"]
    assert folded() == set()
    await check_rows_are_a_full_projection(county, [*held, *town[0]])
    row = await county.errand("E9") or {}
    assert (row["scope"], row["stage"]) == (SISTER, "registered")


@pytest.mark.parametrize("change", ["role", "parent"])
async def test_a_node_on_the_path_changed_makes_its_errands_be_projected_again(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """The village's role or parent changed: its submission, allowed before, is refused now (a village alone
    submits, to its parent), so the township's receipt that would continue the kept row is refused too."""
    bigger = enrolled(layout)
    county = await open_store("C")
    county.use_directory(bigger.directory)
    mine = [[register("E1", 1)], [submit("E1", 2)]]
    await county.receive(chain(layout, mine), peer=TOWN)
    entries = {e.id: e for e in bigger.entries}
    moved = (
        msgspec.structs.replace(entries[VILLAGE], role="town")
        if change == "role"
        else msgspec.structs.replace(entries[VILLAGE], parent=SISTER)  # the path is C, T01, T01V02, T01V01
    )
    changed = Layout(entries=[*(e for e in bigger.entries if e.id != VILLAGE), moved], keys=bigger.keys)
    county.use_directory(changed.directory)
    folded = spy_on_folds(monkeypatch)
    town = [[received("E1", 3, base=2)]]
    assert statuses(await county.receive(chain(changed, town, origin=TOWN), peer=TOWN)) == ["stored"]
    assert folded() == set()
    await check_rows_are_a_full_projection(county, [*mine[0], *mine[1], *town[0]])
    row = await county.errand("E1") or {}
    assert (row["stage"], row["holder"], row["pending_to"]) == ("registered", VILLAGE, None)


# -- a relay's forged copy of another node's action ------------------------------------------------


@pytest.mark.parametrize("forgery", ["errand", "kind"])
@pytest.mark.parametrize("pushes", ["author_later", "one_push", "frame_by_frame"])
async def test_the_authors_copy_replaces_a_forged_foreign_copy_whole(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch, pushes: str, forgery: str
) -> None:
    """A village relays the county's note relabelled (another errand, another time; or as a hand-off with a
    base): once the county's own copy arrives the note is where its author put it, the errand the forgery
    named is as if it never came, and the village's later frames about that errand apply."""
    by_county = msgspec.structs.replace(note("E1", 20, "县里的意见", node="C"), scope=VILLAGE)
    forged: Action = msgspec.structs.replace(by_county, errand="E2", at=at(21))
    if forgery == "kind":
        forged = msgspec.structs.replace(submit("E2", 21, node="C"), id=by_county.id, scope=VILLAGE)
    mine = [[register("E1", 1), submit("E1", 2)], [register("E2", 3)]]
    village = chain(layout, [*mine, [forged]])
    county = chain(layout, [[by_county]], origin="C", scope=VILLAGE)
    later = chain(layout, [[submit("E2", 30)]], start=4, prev=frame_hash(village[-1]))
    town = await open_store(TOWN)
    if pushes == "frame_by_frame":  # the end-of-push writes failed: every frame writes its own rows
        monkeypatch.setattr(Intake, "flush", failing_once(Intake.flush))
    if pushes == "author_later":  # the forged copy is stored by an earlier push
        assert statuses(await town.receive(village, peer=VILLAGE)) == ["stored"] * 3
        assert statuses(await town.receive(county, peer=VILLAGE)) == ["stored"]
    else:
        assert statuses(await town.receive([*village, *county], peer=VILLAGE)) == ["stored"] * 4
    assert statuses(await town.receive(later, peer=VILLAGE)) == ["stored"]

    # What a node that never saw the forgery holds.
    never = [*mine, [by_county], [submit("E2", 30)]]
    assert await town.digests() == expected_digests(layout, never)
    columns = (t.actions.c.errand, t.actions.c.scope, t.actions.c.node, t.actions.c.kind, t.actions.c.base)
    async with town.db.reader.connect() as conn:
        row = (
            await conn.execute(
                select(*columns, t.actions.c.at, t.actions.c.status, t.actions.c.body).where(
                    t.actions.c.id == by_county.id
                )
            )
        ).one()
    assert tuple(row[:5]) == ("E1", VILLAGE, "C", "note", 0)
    assert (row.at, row.status, bytes(row.body)) == (by_county.at, "applied", encode(by_county))
    shown = {e: [(h["id"], h["status"]) for h in (await town.errand(e) or {}).get("history", [])] for e in ("E1", "E2")}
    assert (by_county.id, "applied") in shown["E1"]
    assert by_county.id not in {aid for aid, _ in shown["E2"]}


def failing_once(flush: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    failed: list[bool] = []

    async def flush_or_fail(self: Intake, conn: AsyncConnection) -> None:
        if self.defer and not failed:
            failed.append(True)
            raise RuntimeError("the end-of-push writes failed")
        await flush(self, conn)

    return flush_or_fail


async def test_a_restarted_store_never_issues_a_time_before_one_it_used(
    open_store: StoreOpener, layout: Layout, db_url: str
) -> None:
    """The clock's high-water mark is kept with the writes, so a start reads no action to find it."""
    ahead = pack(int(time.time() * 1000) + 60_000, 0)  # a peer a minute fast: followed, within the skew
    fast = register("E1", 1)
    fast = msgspec.structs.replace(fast, at=ahead)
    town = await open_store(TOWN)
    assert (await town.receive(chain(layout, [[fast]]), peer=VILLAGE)).applied_actions == 1
    assert town.clock.last >= ahead

    statements: list[str] = []
    again = await open_store(TOWN)  # a new Database object: nothing shared with the first but the file

    def seen(conn: Connection, cursor: object, sql: str, *args: object) -> None:
        statements.append(sql)

    restarted = await open_store(TOWN)
    assert restarted.clock.now() > ahead
    assert again.clock.now() > ahead
    event.listen(restarted.db.writer.sync_engine, "before_cursor_execute", seen)
    try:
        await restarted.start()
    finally:
        event.remove(restarted.db.writer.sync_engine, "before_cursor_execute", seen)
    assert statements and not [s for s in statements if "actions" in s], statements

    # A local action moves the mark too: a clock ahead of the wall clock, then one registration.
    further = pack(int(time.time() * 1000) + 120_000, 0)
    restarted.clock.observe(further)
    made = await ErrandService(restarted).register(RegisterForm(matter="低保", applicant_name="张三", actor="窗口"))
    assert made.state is not None
    reopened = await open_store(TOWN)
    assert reopened.clock.now() > further

    # A store from before the mark was kept finds it the old way, by reading every action's time, once.
    async with town.db.write() as conn:
        await conn.execute(delete(t.meta).where(t.meta.c.key == "clock_mark"))
    old = await open_store(TOWN)
    assert old.clock.now() > further and wall_ms(old.clock.last) >= wall_ms(further)
    async with old.db.reader.connect() as conn:
        kept = await conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "clock_mark"))
    assert kept is not None and int(kept) >= further


async def test_an_upsert_to_a_table_a_report_reads_is_counted_for_the_report_memo(open_store: StoreOpener) -> None:
    """The report memo builds the reports again only after a write to a table they read; an upsert hands its
    SQL to the driver, which the write listener cannot name, so it must count itself (the day's traffic: no)."""
    town = await open_store(TOWN)
    before = report_inputs.epoch(town.db)
    await town.add_traffic("sent", 100, day="2026-12-01")
    assert report_inputs.epoch(town.db) == before
    await town.record_reports([NodeReport(node=VILLAGE, at=1, catalogue_version=3)], via=VILLAGE)
    assert report_inputs.epoch(town.db) > before


async def test_a_received_push_is_counted_for_the_report_memo(open_store: StoreOpener, layout: Layout) -> None:
    """A push's rows are written at its end in bulk (SQL handed to the driver): they count as a write to the
    tables a report reads, or the node's report would say nothing of them until its next heartbeat."""
    town = await open_store(TOWN)
    before = report_inputs.epoch(town.db)
    (frame,) = chain(layout, [[register("E1", 1)]])
    await town.receive([frame], peer=VILLAGE)
    assert report_inputs.epoch(town.db) > before


async def test_the_clock_mark_keeps_the_greatest_of_every_process_on_one_database(open_store: StoreOpener) -> None:
    """Hub processes sharing a database each keep the mark with their writes: one whose clock is behind never
    moves it back, or the one ahead could issue, after a restart, a time it already used."""
    ahead, behind = await open_store(TOWN), await open_store(TOWN)
    ahead.clock.observe(pack(int(time.time() * 1000) + 600_000, 0))  # followed a peer ten minutes fast

    async def mark() -> int:
        async with ahead.db.reader.connect() as conn:
            return int(await conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "clock_mark")) or 0)

    await ErrandService(ahead).register(RegisterForm(matter="低保", applicant_name="张三", actor="窗口"))
    assert await mark() == ahead.clock.last
    await ErrandService(behind).register(RegisterForm(matter="低保", applicant_name="李四", actor="窗口"))
    assert behind.clock.last < ahead.clock.last and await mark() == ahead.clock.last
