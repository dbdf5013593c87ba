"""The deterministic simulation: many seeds keep every invariant, a seed replays exactly, the checker can fail,
and the in-memory ``Replica`` agrees with the real ``Store`` on SQLite.

``SANJI_SIM_SEEDS=5000`` runs that many seeds instead of the default few hundred;
``SANJI_SIM_START`` moves the first seed. A failing seed replays with
``python -m devtools.simulation --start <seed> --seeds 1 --trace``.

The last tests are what the simulation found when disks die and nodes come back from a
backup (``--backups 1``), each kept as a small reproduction.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pytest

from devtools.replica import ChildSession, Replica, Request, run_session, serve
from devtools.simulation import Config, Faults, Result, World, check, run
from protocol.actions import Accept, Action, Applicant, Assign, Decide, Deliver, HandOff, Note, Receive, Register
from protocol.batch import Batch, seal
from protocol.errand import Projection
from protocol.errors import ActionRefused
from protocol.session import CursorsRequest, FrameResult, PullResponse
from protocol.stream import StreamKey, Verdict, classify
from protocol.topology import Directory
from sanji.store import Store, open_database

SEEDS = int(os.environ.get("SANJI_SIM_SEEDS", "300"))
START = int(os.environ.get("SANJI_SIM_START", "0"))
CHUNKS = 6
# Short runs on small trees keep a few hundred seeds well under a minute.
SUITE = Config(duration_ms=10_000, grace_ms=5_000)
ROOT = Path(__file__).resolve().parents[2]


def failures(results: Sequence[Result]) -> str:
    lines = []
    for r in results:
        if not r.ok:
            lines.append(f"seed {r.seed}: " + "; ".join(r.problems[:5]))
    return "\n".join(lines)


# -- many seeds ----------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_seeds_keep_every_invariant(chunk: int) -> None:
    seeds = range(START + chunk, START + SEEDS, CHUNKS)
    results = [run(seed, SUITE) for seed in seeds]
    assert not failures(results), failures(results)
    # The faults really happened: a run where nothing goes wrong proves little.
    # Late pull pages are still taken (``stray_pages_taken``); since an idle child skips the pull when its
    # parent says it holds nothing new, a late page rarely carries a frame not yet stored another way.
    kinds = ("crashes", "request_lost", "response_lost", "pushed_held", "fallback_sessions", "stray_pages_taken")
    total = {k: sum(r.stat(k) for r in results) for k in kinds}
    assert len(results) < 30 or all(total.values()), total
    assert sum(r.stat("actions") for r in results) > 20 * len(results)


def test_seeds_with_heavy_faults() -> None:
    faults = Faults(
        drop_request=0.2,
        drop_response=0.2,
        duplicate=0.2,
        delay=0.15,
        shuffle=0.3,
        crash_mid_apply=0.1,
        partitions=6,
        crashes=6,
        stale=0.2,
    )
    results = [run(seed, replace(SUITE, faults=faults, budgets=(300, 900))) for seed in range(START, START + 24)]
    assert not failures(results), failures(results)


def test_seeds_with_no_fallback() -> None:
    """Villages that never go round their township."""
    results = [run(seed, replace(SUITE, fallbacks=False)) for seed in range(START, START + 30)]
    assert not failures(results), failures(results)
    assert sum(r.stat("fallback_sessions") for r in results) == 0


def test_without_faults_everything_settles_during_the_run() -> None:
    for seed in range(START, START + 10):
        result = run(seed, replace(SUITE, faults=Faults.none()))
        assert result.ok, result.problems
        assert result.stat("settle_rounds") == 1  # the timers had already brought every node in step
        assert result.stat("sessions_failed") == 0


# -- replay --------------------------------------------------------------------------------------


def test_a_seed_replays_exactly() -> None:
    config = replace(SUITE, keep_trace=True)
    first, second = run(11, config), run(11, config)
    assert first == second
    assert len(first.trace) > 100
    assert run(12, config).trace_digest != first.trace_digest


def test_a_seed_replays_exactly_in_another_process() -> None:
    """Nothing depends on the per-process string hash (set order) or on the real clock."""
    code = (
        "from devtools.simulation import Config, run; "
        "r = run(7, Config(duration_ms=10_000, grace_ms=5_000)); print(r.trace_digest, r.state_digest, r.ok)"
    )
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=120
        )
        outputs.add(done.stdout.strip())
    here = run(7, SUITE)
    assert outputs == {f"{here.trace_digest} {here.state_digest} True"}


def test_the_command_line_names_failing_seeds() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devtools.simulation", "--seeds", "2", "--start", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 seeds from 3: 0 failed" in done.stdout


# -- the checker can fail ------------------------------------------------------------------------


class DropsABatch(Replica):
    """A broken node: once, it takes a batch from another node, moves its cursor, and keeps no action."""

    dropped: set[str] = set()

    def _apply(self, batch: Batch) -> None:
        if self.node_id == "T01" and batch.origin != self.node_id and "T01" not in DropsABatch.dropped:
            DropsABatch.dropped.add("T01")
            key = StreamKey(batch.origin, batch.scope)
            self._store_batch(key, batch.seq, batch.hash, batch.frame)
            self._streams[key] = (batch.seq, batch.hash)
            return
        super()._apply(batch)


class AppliesDuplicatesAgain(Replica):
    """A broken node: a batch it already holds is applied again (its actions inserted once more)."""

    def _receive_one(self, batch: Batch, peer: str) -> FrameResult:
        key = StreamKey(batch.origin, batch.scope)
        cursor, last_hash = self.cursor(key)
        held = self._batches[key][batch.seq - 1][0] if batch.seq <= cursor else None
        verdict = classify(
            seq=batch.seq, prev=batch.prev, digest=batch.hash, cursor=cursor, last_hash=last_hash, held_hash=held
        )
        if verdict is Verdict.DUPLICATE:
            self.applied.append((key, batch.seq))
            self.inserted.extend(a.id for a in batch.actions)
        return super()._receive_one(batch, peer)


class ForgetsItsOutbox(Replica):
    """A broken node: a crash loses what it recorded but had not sealed yet (an uncommitted outbox)."""

    def snapshot(self) -> bytes:
        saved = self._outbox
        self._outbox = []
        try:
            return super().snapshot()
        finally:
            self._outbox = saved


def test_the_checker_reports_a_silently_dropped_batch() -> None:
    DropsABatch.dropped.clear()
    result = run(5, SUITE, replica_class=DropsABatch)
    assert DropsABatch.dropped == {"T01"}
    assert not result.ok
    assert any(p.startswith("loss: T01 lacks") for p in result.problems), result.problems
    assert any(p.startswith("divergence:") and "at T01" in p for p in result.problems), result.problems


def test_the_checker_reports_an_action_applied_twice() -> None:
    results = [run(seed, SUITE, replica_class=AppliesDuplicatesAgain) for seed in range(3)]
    assert all(not r.ok for r in results)
    for r in results:
        assert any(p.startswith("double application:") for p in r.problems), r.problems
        assert any(p.startswith("replay:") for p in r.problems), r.problems


def test_the_checker_reports_actions_lost_in_a_crash() -> None:
    config = replace(SUITE, faults=replace(SUITE.faults, crashes=8))
    results = [run(seed, config, replica_class=ForgetsItsOutbox) for seed in range(6)]
    assert any(any(p.startswith("loss:") for p in r.problems) for r in results)
    assert any(any("held nowhere" in p or "lacks" in p for p in r.problems) for r in results)


def test_the_checker_reports_a_leak_and_a_quarantine() -> None:
    world = World(2, SUITE)
    world.run()
    assert world.problems == []
    village = next(n for n in world.nodes if world.directory.role(n) == "village")
    other = next(n for n in world.nodes if world.directory.role(n) == "village" and n[:3] != village[:3])
    stranger = world.replicas[other]
    errand = next(e for e, p in world.replicas[village].projections().items() if p.state and p.state.scope == village)
    actions = [a for a in world.replicas[village].actions().values() if a.errand == errand]
    stranger._insert_actions(actions, origin=village, scope=village)  # a relay leaked them
    stranger._recompute([errand])
    forged = _fork_of_first_batch(world, village)
    world.replicas[village[:3]].receive([forged], peer="attacker")
    world.collect()
    problems = check(world)
    assert any(p.startswith(f"leak: {other} holds") for p in problems), problems
    assert any("quarantined" in p for p in problems), problems


def _relayed_then_authored(world: World) -> list[bytes]:
    """A note by the county carried first in T01's stream (a foreign copy, relabelled on the way: another
    errand, another time), then in the county's own, which replaces it whole on the store and the replica."""
    note = Note(id="relayed", errand="T01V01-E1", scope="T01V01", node="C", actor="x", role="x", at=2, text="转交")
    forged = msgspec.structs.replace(note, errand="T01V01-E2", at=1)
    frames = []
    for origin, carried in (("T01", forged), ("C", note)):
        seq, last = world.replicas[origin].cursor(StreamKey(origin, "T01V01"))
        frames.append(
            seal(
                key=world.keys[origin],
                origin=origin,
                scope="T01V01",
                audience=world.directory.audience(origin, "T01V01"),
                seq=seq + 1,
                prev=last,
                created=3,
                actions=[carried],
            )
        )
    return frames


def _fork_of_first_batch(world: World, origin: str) -> bytes:
    """Batch 1 of ``origin``'s own stream again, with other content: what a cloned node would send."""
    audience = world.directory.audience(origin, origin)
    note = Note(id="forged", errand=f"{origin}-E1", scope=origin, node=origin, actor="x", role="x", at=1, text="x")
    return seal(
        key=world.keys[origin],
        origin=origin,
        scope=origin,
        audience=audience,
        seq=1,
        prev=bytes(32),
        created=1,
        actions=[note],
    )


# -- the sans-IO session ---------------------------------------------------------------------------


def test_a_session_is_a_sequence_of_messages() -> None:
    world = World(4, replace(SUITE, faults=Faults.none()))
    world.run()
    village = "T01V01"
    replica, parent = world.replicas[village], world.replicas["T01"]
    session = ChildSession(replica, budget=300)
    first = session.start()
    assert isinstance(first, CursorsRequest)
    with pytest.raises(ValueError):
        session.step(PullResponse(node="T01", at=0, frames=(), more=False))
    request: Request | None = first
    steps = 0
    while request is not None:
        request = session.step(serve(parent, request))
        steps += 1
    assert session.done and steps == session.report.requests
    assert run_session(replica, parent).pushed == 0  # nothing left to send


# -- the replica and the real store agree ------------------------------------------------------------


def _results(results: Sequence[object]) -> list[tuple[str, str, str, str, int]]:
    return [(r.status, r.error, r.origin, r.scope, r.seq) for r in results]  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("node", ["T01", "T01V01", "C"])
async def test_replica_and_store_take_the_same_frames_the_same_way(tmp_path: Path, seed: int, node: str) -> None:
    world = World(seed, SUITE)
    assert world.run().ok
    frames = sorted({f for n in world.nodes for f in world.replicas[n].frames()})
    rng = random.Random(seed)
    feed = frames + rng.sample(frames, len(frames) // 3)  # some twice
    rng.shuffle(feed)  # gaps: held, then drained
    tampered = bytearray(frames[len(frames) // 2])
    tampered[len(tampered) // 2] ^= 0x01
    feed.insert(len(feed) // 3, bytes(tampered))
    feed.insert(len(feed) // 2, _fork_of_first_batch(world, "T01V01"))
    feed.insert(len(feed) // 4, b"SJB not a frame")
    feed += _relayed_then_authored(world)  # a relay's foreign copy first, then the author's own
    # T01V01's key retired after its first batch: every later batch of its own stream is quarantined.
    retired_key = world.keys["T01V01"].key_id
    directory = Directory(world.directory.nodes(), revoked_after={retired_key: {("T01V01", "T01V01"): 1}})

    db = await open_database(f"sqlite:///{tmp_path / 'node.db'}")
    try:
        store = Store(db, node_id=node, key=world.keys[node], directory=directory)
        await store.start()
        replica = Replica(node, world.keys[node], directory)
        for start in range(0, len(feed), 7):
            chunk = feed[start : start + 7]
            outcome = await store.receive(chunk, peer="sim")
            assert _results(outcome.results) == _results(replica.receive(chunk, peer="sim"))
        assert await store.digests() == replica.digests()
        assert await store.cursors_where() == replica.streams()
        # The author's copy took the foreign copy's place on both; the retired key's frames are evidence.
        assert "relayed" in replica.actions() and "relayed" not in replica.foreign()
        history = await store.errand("T01V01-E1")
        assert history is not None
        assert [h["status"] for h in history["history"] if h["id"] == "relayed"] not in ([], ["foreign"])
        named = await store.errand("T01V01-E2")  # the errand the relabelled copy named keeps nothing of it
        assert named is None or "relayed" not in [h["id"] for h in named["history"]]
        assert [q for q in replica.quarantine if q.origin == "T01V01" and "retired" in q.reason]
        status = await store.status()
        assert status["held_batches"] == replica.held_count()
        assert status["quarantined_batches"] == len(replica.quarantine)
        assert await store.pull_cursors() == replica.pull_cursors()
        for child in world.directory.children(node):
            assert await store.cursors_for_child(child) == replica.cursors_for_child(child)
            for budget in (300, 5_000, 1 << 30):
                assert await store.frames_for_child(child, {}, budget) == replica.frames_for_child(child, {}, budget)
        if world.directory.parent(node) is not None:
            for budget in (300, 5_000):
                assert await store.frames_for_parent({}, budget) == replica.frames_for_parent({}, budget)
        # The restore rules of a session: what a child reports, what a parent asks back, what it may seal.
        assert await store.ancestor_cursors() == replica.ancestor_cursors()
        for child in world.directory.children(node):
            own = await store.cursors_where(origin_in=[node])
            ahead = {k: seq + 2 for k, seq in own.items() if k.scope in world.directory.subtree(child)}
            assert await store.confirm_child(child, ahead) == replica.confirm_child(child, ahead)
            assert await store.confirm_child(child, {}) == replica.confirm_child(child, {}) == {}
            assert store.confirmed_children == replica.confirmed_children
        for scope in sorted(world.directory.subtree(node)):
            assert store.may_seal(scope) == replica.may_seal(scope), scope
        for errand, proj in replica.projections().items():
            row = await store.errand(errand)
            assert row is not None and row["digest"] == proj.digest
            if proj.state is not None:
                assert (row["stage"], row["holder"], row["version"]) == (
                    proj.state.stage,
                    proj.state.holder,
                    proj.state.version,
                )
    finally:
        await db.dispose()


async def test_replica_and_store_judge_local_actions_alike(tmp_path: Path) -> None:
    world = World(3, replace(SUITE, duration_ms=1))
    directory, keys, town = world.directory, world.keys, "T01"
    db = await open_database(f"sqlite:///{tmp_path / 'town.db'}")
    try:
        store = Store(db, node_id=town, key=keys[town], directory=directory)
        await store.start()
        replica = Replica(town, keys[town], directory)
        common = {"errand": "T01-E1", "scope": town, "node": town, "actor": "王", "role": "window"}
        at = 1_735_689_600_000 << 16
        steps: list[tuple[str, int, type[Action], dict[str, object]]] = [
            ("a1", 0, Register, {"matter": "低保", "applicant": Applicant(name="张三")}),
            ("a2", 1, Decide, {"outcome": "approved"}),  # not accepted yet: refused
            ("a3", 1, Accept, {"errand_kind": "承诺件", "due": "2025-03-01"}),
            ("a4", 2, Assign, {"window": "W1", "handler": "李"}),
            ("a5", 2, Assign, {"window": "W2", "handler": "赵"}),  # a stale base: recorded, then rejected
            ("a6", 2, Note, {"text": "已核实"}),
            ("a7", 3, Decide, {"outcome": "approved"}),
            ("a8", 4, Deliver, {"confirmed_by": "张三"}),
            ("a9", 4, Deliver, {"confirmed_by": ""}),  # refused: no confirmation
        ]
        for i, (aid, base, cls, fields) in enumerate(steps):
            action = cls(id=aid, base=base, at=at + i, **common, **fields)  # type: ignore[arg-type]

            def build(_: Projection, __: int, action: Action = action) -> Action:
                return action

            try:
                in_store = (await store.act("T01-E1", build)).digest
            except ActionRefused as exc:
                in_store = f"refused: {exc.message}"
            try:
                in_replica = replica.act("T01-E1", build).digest
            except ActionRefused as exc:
                in_replica = f"refused: {exc.message}"
            assert in_store == in_replica, aid
        assert await store.digests() == replica.digests()
        projection = replica.projection("T01-E1")
        assert projection is not None and "a5" in projection.rejected and projection.state is not None
        assert projection.state.stage == "delivered"
        await store.confirm_positions()  # as if its parent had answered: its own stream may be numbered
        replica.parent_confirmed = True
        assert await store.seal_outbox(3) == replica.seal_outbox(3) == 3
        assert await store.cursors_where() == replica.streams()
        # The county takes the store's frames and the replica's frames to the same errand.
        county = Replica("C", keys["C"], directory)
        county.receive(replica.frames())
        other = Replica("C", keys["C"], directory)
        frames, more = await store.frames_for_parent({}, 1 << 30)
        assert not more
        other.receive(frames)
        assert county.digests() == other.digests() == replica.digests()
    finally:
        await db.dispose()


# -- what the simulation found: restored nodes ---------------------------------------------------------

_C: dict[str, Any] = {"errand": "E", "scope": "T01V01", "actor": "x", "role": "x"}
_T: dict[str, Any] = {"errand": "E", "scope": "T01", "actor": "x", "role": "x"}


def _fixed(action: Action) -> Callable[[Projection, int], Action]:
    return lambda _p, _t: action


def _three() -> tuple[World, Replica, Replica, Replica]:
    world = World(1, replace(SUITE, faults=Faults.none(), duration_ms=1))
    d, k = world.directory, world.keys
    county, town, village = (Replica(n, k[n], d) for n in ("C", "T01", "T01V01"))
    reg = Register(id="1", node="T01V01", at=1, matter="m", applicant=Applicant(name="n"), **_C)
    village.act("E", lambda _p, _t: reg)
    village.act("E", lambda _p, _t: HandOff(id="2", node="T01V01", at=2, base=1, to="T01", purpose="submit", **_C))
    run_session(village, town)
    run_session(town, county)
    return world, county, town, village


def _handle(town: Replica, suffix: str = "") -> None:
    town.act("E", lambda _p, _t: Receive(id="3" + suffix, node="T01", at=3, base=2, **_C))
    town.act("E", lambda _p, _t: Accept(id="4" + suffix, node="T01", at=4, base=3, errand_kind="即办件", **_C))
    town.act("E", lambda _p, _t: Decide(id="5" + suffix, node="T01", at=5, base=4, outcome="approved", **_C))
    result = HandOff(id="6" + suffix, node="T01", at=6, base=5, to="T01V01", purpose="result", **_C)
    town.act("E", lambda _p, _t: result)


def test_a_restarted_township_cut_off_from_the_county_still_serves_its_villages() -> None:
    world, _county, town, village = _three()
    town = Replica.restore(town.snapshot(), world.keys["T01"], world.directory)  # restart
    _handle(town)
    run_session(village, town)  # the county link stays down
    projection = village.projection("E")
    assert projection is not None and projection.state is not None
    assert projection.state.stage == "result_down"


def test_a_township_restored_from_a_backup_after_sending_results_down_converges() -> None:
    """The village gives the township its lost batches back before the township numbers anything new."""
    world, county, town, village = _three()
    backup = town.snapshot()
    town.act("E", lambda _p, _t: Receive(id="3", node="T01", at=3, base=2, **_C))
    run_session(village, town)  # sealed while serving the pull, sent down, never pushed up
    town = Replica.restore(backup, world.keys["T01"], world.directory)  # the disk died
    _handle(town, "b")
    for _ in range(3):
        run_session(town, county)
        run_session(village, town)
    assert village.digests() == town.digests() == county.digests()


def test_a_forked_stream_does_not_make_the_pull_loop_spin() -> None:
    world = World(1, replace(SUITE, faults=Faults.none(), duration_ms=1))
    d, k = world.directory, world.keys
    town = Replica("T01", k["T01"], d)
    county, clone = Replica("C", k["C"], d), Replica("C", k["C"], d)  # the county and a restored copy of it
    town.act("E", lambda _p, _t: Register(id="1", node="T01", at=1, matter="m", applicant=Applicant(name="n"), **_T))
    run_session(town, county)
    run_session(town, clone)
    county.act("E", lambda _p, _t: Note(id="c1", node="C", at=2, base=1, text="甲", **_T))
    run_session(town, county)  # the town holds batch 1 of C->T01 from the county
    for i in range(6):  # the copy writes another lineage of the same stream
        clone.act("E", _fixed(Note(id=f"k{i}", node="C", at=3 + i, base=1, text="乙", **_T)))
        clone.seal_outbox()
    sizes = [len(f) for f in clone.frames_for_child("T01", {}, 1 << 30)[0]]
    report = run_session(town, clone, budget=sizes[1] + sizes[2] + sizes[3] // 2, max_requests=50)
    assert report.refused >= 1 and len(town.quarantine) == 1


def test_a_village_goes_round_its_dark_township_and_the_township_catches_up() -> None:
    _world, county, town, village = _three()
    village.act("E", _fixed(Note(id="n1", node="T01V01", at=9, base=2, text="材料已补", **_C)))
    run_session(village, county)  # the township is dark: the village syncs with the county instead
    assert "n1" in county.actions() and "n1" not in town.actions()
    county.act("E", _fixed(Note(id="n2", node="C", at=10, base=2, text="请加快", **_C)))
    run_session(village, county)
    assert "n2" in village.actions()
    run_session(town, county)  # the township comes back and takes what went round it
    assert {"n1", "n2"} <= set(town.actions())
    run_session(village, town)
    assert village.digests() == town.digests() == county.digests()
    assert not (village.quarantine or town.quarantine or county.quarantine)


# Seeds of ``python -m devtools.simulation --seeds 300 --backups 1`` that once failed, each run as found.
BACKUPS = replace(Config(), faults=replace(Faults(), backup_restores=1))


# 130 and 461 failed with a village restored from a backup whose newest batch reached only the county
# (docs/architecture.md, "Not closed yet"); since an idle child skips the pull and pushes its
# ancestors' batches only to a parent that reports them, their traces no longer reach that state, and
# 1,600 seeds with backups pass. They stay as seeds whose disk dies; 218's no longer does (305's does).
@pytest.mark.parametrize("seed", [19, 102, 187, 213, 303, 305, 593, 130, 461])
def test_seeds_that_failed_with_backups(seed: int) -> None:
    """213, 218, 19, 102: a township restored from a backup numbered a batch towards a village that had
    spoken, while the county held the lost batch under that number. 187: a village restored from a copy
    that predates its first batch sealed through the county while that batch sat only at its township.
    303, 593 (also 305 and 532, whose disk no longer dies in the same trace): a county batch a village
    took from the county past its dark township stayed only at the village, so the restored county
    neither got it back nor saw it before numbering anew (a child now pushes its ancestors' batches up
    too). An earlier form of 130 let a page pushed by a dead disk
    land after its restored node had numbered the same batch anew (a disk is now replaced slower than
    any message travels: ``World._in_flight_bound``)."""
    result = run(seed, BACKUPS)
    assert result.ok, result.problems
    assert result.stat("disks_died") == 1


def test_a_restored_township_waits_for_the_county_before_numbering_towards_a_village() -> None:
    """Seed 213, reduced: the batches towards the village went up to the county, never down."""
    world, county, town, village = _three()
    backup = town.snapshot(backup=True)
    _handle(town)
    run_session(town, county)  # T01->T01V01 goes up; the village has not pulled it
    assert county.streams()[StreamKey("T01", "T01V01")] >= 1
    town = Replica.restore(backup, world.keys["T01"], world.directory)  # the disk died
    town.act("E", _fixed(Note(id="n9", node="T01", at=9, base=2, text="重新登记", **_C)))
    run_session(village, town)  # the county is dark; the village has spoken, the county has not
    assert town.streams().get(StreamKey("T01", "T01V01"), 0) == 0 and town.outbox_size() == 1
    for _ in range(3):
        run_session(town, county)
        run_session(village, town)
    assert village.digests() == town.digests() == county.digests()
    assert {"3", "6", "n9"} <= set(village.actions())
    assert not (village.quarantine or town.quarantine or county.quarantine)


def test_a_village_restored_from_before_its_first_batch_does_not_seal_through_the_county() -> None:
    """Seed 187, reduced: its batch 1 sits only at the dark township; the county cannot vouch for it."""
    world = World(1, replace(SUITE, faults=Faults.none(), duration_ms=1))
    d, k = world.directory, world.keys
    county, town, village = (Replica(n, k[n], d) for n in ("C", "T01", "T01V01"))
    village.act("E", _fixed(Register(id="1", node="T01V01", at=1, matter="m", applicant=Applicant(name="n"), **_C)))
    village.act("E", _fixed(HandOff(id="2", node="T01V01", at=2, base=1, to="T01", purpose="submit", **_C)))
    run_session(village, town)  # batch 1 goes to the township, which goes dark before it syncs
    fresh = Replica("T01V01", k["T01V01"], d).snapshot(backup=True)
    village = Replica.restore(fresh, k["T01V01"], d)  # the disk died before any backup held a batch
    reg = Register(id="r2", node="T01V01", at=20, matter="m", applicant=Applicant(name="n"), **{**_C, "errand": "F"})
    village.act("F", _fixed(reg))
    run_session(village, county)  # the county answers; it cannot know of batch 1
    assert village.streams().get(StreamKey("T01V01", "T01V01"), 0) == 0 and village.outbox_size() == 1
    for _ in range(3):
        run_session(village, town)
        run_session(town, county)
    assert village.digests() == town.digests() == county.digests()
    assert {"1", "2", "r2"} <= set(county.actions())
    assert not (village.quarantine or town.quarantine or county.quarantine)


def test_a_restored_county_gets_back_what_went_round_a_township() -> None:
    """Seed 303, reduced: the county's note reached the village on a fallback link and nowhere else."""
    world, county, town, village = _three()
    backup = county.snapshot(backup=True)
    county.act("E", _fixed(Note(id="c1", node="C", at=9, base=2, text="请加快", **_C)))
    run_session(village, county)  # the township is dark; the county seals its note and sends it down
    assert "c1" in village.actions() and "c1" not in town.actions()
    county = Replica.restore(backup, world.keys["C"], world.directory)  # the county's disk died
    for _ in range(3):  # links heal; everyone syncs with their own parent only
        run_session(village, town)
        run_session(town, county)
    assert "c1" in town.actions() and "c1" in county.actions()
    assert village.digests() == town.digests() == county.digests()
    assert not (village.quarantine or town.quarantine or county.quarantine)
