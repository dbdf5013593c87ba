"""How fast a county applies what its townships push, and what that costs on the wire.

Run: ``python -m bench.apply_rate [--errands 1000] [--out bench/results/apply_rate.json] [--no-postgres]``

0. corpus (bench/corpus.py): a county really run in-process, every node a ``Store`` on a
   SQLite file, staff moving each errand through its whole life with ``ErrandService``,
   ``sync_once`` over ``LocalTransport`` between every child and its parent. Every push a
   township made to the county is recorded verbatim: those signed frames are measured here.
1. county apply rate: a fresh county store receives those pushes, one ``Store.receive``
   per recorded push, on SQLite and on PostgreSQL. Baseline: ``open_frame`` alone.
2. bytes on the wire per action: frame bytes and HTTP request body bytes per action.
   Baseline: the same actions msgpack-encoded one by one, unbatched and uncompressed.
3. HTTP requests per batch: a real county process on loopback, each township's store
   running ``sync_once`` over ``HttpTransport``. Baseline: the same with a 2 KB budget.

One JSON object goes to stdout and to ``--out``; progress goes to stderr. See bench/README.md.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench import harness, hub_processes, nodes, prefill, write_floor
from bench import peer as pouchdb_peer
from bench.corpus import Corpus, Push, build_corpus
from bench.figures import percentile, quantity, rounded
from bench.machine import STORE_PACKAGES
from bench.profile_apply import by_town, saved_of
from devtools.throwaway_pg import PG_HOST, PG_PORT, PostgresUnavailable, server_version, throwaway_database
from protocol.batch import open_frame
from protocol.encoding import encode
from protocol.session import DEFAULT_BUDGET_BYTES
from protocol.topology import COUNTY
from sanji import memory
from sanji.store import Store, open_database
from sanji.store import schema as t
from sanji.store.engine import Database, sqlite_pages
from sanji.sync.driver import SessionReport, sync_once
from sanji.sync.transport import HttpTransport

TOWNS = 2
VILLAGES_PER_TOWN = 3
TINY_BUDGET = 2 * 1024
PLAIN_BASELINE = "bytes/action, each action msgpack-encoded alone (no batch, no compression, no signature)"


def log(message: str) -> None:
    print(f"[bench.apply_rate] {message}", file=sys.stderr, flush=True)


def count_actions(corpus: Corpus) -> int:
    return sum(len(open_frame(frame, corpus.directory).actions) for frame in corpus.frames)


# -- 1. county apply rate -------------------------------------------------------------------------


def open_frame_baseline(corpus: Corpus, repeats: int = 3) -> dict[str, Any]:
    """Verify and decode every county-bound frame with ``open_frame`` alone: the floor under any store."""
    frames = corpus.frames
    timings = []
    actions = 0
    for _ in range(repeats):
        started = time.perf_counter()
        actions = sum(len(open_frame(frame, corpus.directory).actions) for frame in frames)
        timings.append(time.perf_counter() - started)
    seconds = sorted(timings)[len(timings) // 2]
    return {
        "what": "protocol.batch.open_frame on every frame (size checks, Ed25519 verify, zlib + msgpack decode)",
        "frames_per_s": quantity(len(frames) / seconds, "frames/s"),
        "actions_per_s": quantity(actions / seconds, "actions/s"),
        "seconds": rounded(seconds),
        "repeats": repeats,
    }


async def fresh_county(corpus: Corpus, url: str) -> tuple[Database, Store]:
    """A county store at ``url``, migrated and started, holding nothing yet."""
    db = await open_database(url, role=COUNTY)
    store = Store(db, node_id=corpus.county, key=corpus.layout.keys[corpus.county], directory=corpus.directory)
    try:
        await store.start()
    except BaseException:
        await db.dispose()
        raise
    return db, store


async def apply_to_fresh_county(
    corpus: Corpus,
    url: str,
    baseline: dict[str, Any],
    writes: write_floor.WriteLog | None = None,
    *,
    towns_at_once: bool = False,
) -> dict[str, Any]:
    """Replay every recorded push into a brand-new county store, timing each ``Store.receive``;
    ``writes``: record the write statements of each push there (``bench.write_floor``); ``towns_at_once``:
    each township sends its own pushes in order, all townships at the same time (as they do over HTTP)."""
    db, store = await fresh_county(corpus, url)
    try:
        if writes is not None:
            writes.attach(db.writer.sync_engine)
        latencies: list[float] = []
        applied_actions = applied_batches = 0
        statuses: Counter[str] = Counter()
        memory.settle_heap()  # as `sanji county serve` does once started (sanji/cli/serve.py)
        started = time.perf_counter()

        async def push_in_turn(pushes: list[Push]) -> None:
            nonlocal applied_actions, applied_batches
            for push in pushes:
                if writes is not None:
                    writes.next_push()
                t0 = time.perf_counter()
                outcome = await store.receive(push.frames, peer=push.town)
                latencies.append(time.perf_counter() - t0)
                applied_actions += outcome.applied_actions
                applied_batches += outcome.applied_batches
                statuses.update(r.status for r in outcome.results)

        if towns_at_once:
            await asyncio.gather(*(push_in_turn(pushes) for pushes in by_town(corpus.pushes)))
        else:
            await push_in_turn(list(corpus.pushes))
        seconds = time.perf_counter() - started
        if writes is not None:
            writes.detach(db.writer.sync_engine)
        status = await store.status()
        async with db.reader.connect() as conn:
            by_status = (
                await conn.execute(select(t.actions.c.status, func.count()).group_by(t.actions.c.status))
            ).all()
        digests = await store.digests()
    finally:
        await db.dispose()
    if statuses.get("stored", 0) != len(corpus.frames):
        raise RuntimeError(f"{url.split('@')[-1]}: not every frame was stored: {dict(statuses)}")
    rate = applied_actions / seconds
    base_rate = baseline["actions_per_s"]["value"]
    ms = [x * 1000 for x in latencies]
    return {
        "apply_rate": quantity(
            rate, "actions/s", base_rate, "actions/s through open_frame alone", store_overhead=rounded(base_rate / rate)
        ),
        "frames_per_s": quantity(
            applied_batches / seconds,
            "frames/s",
            baseline["frames_per_s"]["value"],
            "frames/s through open_frame alone",
        ),
        "push_latency": {
            "p50": quantity(percentile(ms, 50), "ms"),
            "p95": quantity(percentile(ms, 95), "ms"),
            "max": quantity(max(ms), "ms"),
            "pushes": len(ms),
            "frames_per_push": rounded(len(corpus.frames) / len(ms)),
            "actions_per_push": rounded(applied_actions / len(ms)),
        },
        "seconds": rounded(seconds),
        "frames_stored": applied_batches,
        "actions_received": applied_actions,
        "action_status": {str(k): int(v) for k, v in by_status},
        "errands_by_stage": status["errands_by_stage"],
        "errands_identical_to_live_county": sum(1 for k, v in digests.items() if corpus.county_digests.get(k) == v),
        "held_batches": status["held_batches"],
        "quarantined_batches": status["quarantined_batches"],
    }


async def postgres_apply(corpus: Corpus, baseline: dict[str, Any], workdir: Path) -> tuple[dict[str, Any], str]:
    """The same replay on a throwaway PostgreSQL database, then each township's pushes taken by a hub
    process of its own on another (``bench.hub_processes``); ``{"skipped": ...}`` if no server answers."""
    try:
        async with throwaway_database("sanji_bench") as url:
            version = await server_version()
            result = await apply_to_fresh_county(corpus, url, baseline), version
    except PostgresUnavailable as exc:  # raised before the replay began: the rest of the run goes on without it
        return {"skipped": str(exc)}, ""
    log("the same pushes, each township's taken by a hub process of its own on one PostgreSQL database")
    async with throwaway_database("sanji_bench") as url:
        processes = await hub_processes.measure(saved_of(corpus), url, workdir)
    digests = processes.pop("digests")
    processes["errands_identical_to_live_county"] = sum(
        1 for k, v in digests.items() if corpus.county_digests.get(k) == v
    )
    processes["actions_per_s"] = quantity(
        processes["actions_per_s"], "actions/s", result[0]["apply_rate"]["value"], "actions/s, one process"
    )
    result[0]["hub_processes"] = processes
    return result


async def sqlite_limits(
    corpus: Corpus,
    db_path: Path,
    result: dict[str, Any],
    baseline: dict[str, Any],
    writes: write_floor.WriteLog,
    floor_path: Path,
) -> dict[str, Any]:
    """How close the SQLite apply rate is to the limits of its bottlenecks: ``open_frame`` alone (the
    baseline above), the database's own bulk insert of the rows the apply wrote (``bench.prefill``: the
    same rows, fresh ids, ``sqlite3.executemany`` in one transaction into the same store), and the very
    writes of the apply replayed push by push, one durable commit each (``bench.write_floor``)."""
    rate = result["apply_rate"]["value"]
    limit = prefill.bulk_insert_limit(db_path, prefill.read_reference(db_path, corpus.directory))
    db, _ = await fresh_county(corpus, f"sqlite:///{floor_path}")  # the schema and start the apply met
    await db.dispose()
    replayed = write_floor.replay(floor_path, writes, sqlite_pages(COUNTY))
    floor_rate = result["actions_received"] / replayed
    return {
        "open_frame": quantity(baseline["actions_per_s"]["value"], "actions/s"),
        "open_frame_share": rounded(rate / baseline["actions_per_s"]["value"]),
        "bulk_insert": quantity(limit["actions_per_s"], "actions/s", what=limit["what"]),
        "bulk_insert_share": rounded(rate / limit["actions_per_s"]),
        "push_writes": quantity(
            floor_rate,
            "actions/s",
            what="the apply's own write statements replayed through sqlite3, one durable commit per push",
            statements=writes.statements,
            pushes=len(writes.pushes),
            seconds=rounded(replayed),
        ),
        "push_writes_share": rounded(rate / floor_rate),
    }


# -- 2. bytes on the wire ---------------------------------------------------------------------------


def frame_bytes(corpus: Corpus) -> dict[str, Any]:
    frames = corpus.frames
    actions = [a for frame in frames for a in open_frame(frame, corpus.directory).actions]
    framed = sum(len(f) for f in frames)
    plain = sum(len(encode(a)) for a in actions)
    return {
        "per_action": quantity(
            framed / len(actions),
            "bytes/action",
            plain / len(actions),
            PLAIN_BASELINE,
            ratio_to_baseline=rounded(framed / plain),
            per_errand=rounded(framed / corpus.errands),
        ),
        "frame_bytes": framed,
        "plain_bytes": plain,
        "frames": len(frames),
        "actions": len(actions),
    }


# -- 4. the peer, in the same run ----------------------------------------------------------------------


def peer_measurements(
    corpus: Corpus,
    workdir: Path,
    sqlite_result: dict[str, Any],
    pg_result: dict[str, Any],
    http_default: dict[str, Any],
    actions: int,
) -> dict[str, Any]:
    """PouchDB → express-pouchdb on the same actions (bench/peer.py), and Sanji's figures divided by the peer's.

    `throughput_ratio` is Sanji's durable county ingest (SQLite; PostgreSQL beside it) over the peer's
    documents per second; `bytes_ratio` and `requests_ratio` compare what crosses the link upward per
    action (request bodies; requests), Sanji's from the default-budget HTTP sync above.
    """
    decoded = [a for frame in corpus.frames for a in open_frame(frame, corpus.directory).actions]
    result = pouchdb_peer.measure(decoded, workdir)
    if "skipped" in result:
        return result
    shared = {
        "sanji_bytes_per_action": http_default["request_body_bytes_per_action"],
        "sanji_requests": http_default["requests"],
        "sanji_actions": actions,
    }
    result["ratios_sqlite"] = pouchdb_peer.ratios(result, sanji_rate=sqlite_result["apply_rate"]["value"], **shared)
    if "apply_rate" in pg_result:
        result["ratios_postgresql"] = pouchdb_peer.ratios(result, sanji_rate=pg_result["apply_rate"]["value"], **shared)
    # The headline figures the issue asks for: durable Sanji (SQLite) against the faster peer (in memory).
    headline = result["ratios_sqlite"].get("memory") or result["ratios_sqlite"].get("leveldb") or {}
    for name, value in headline.items():
        result[name] = rounded(value)
    result["goals"] = {"throughput_ratio": ">= 4", "bytes_ratio": "<= 0.25", "requests_ratio": "<= 0.2"}
    return result


# -- 3. a real county process over HTTP -------------------------------------------------------------


async def http_sync(corpus: Corpus, url: str, budget: int, actions: int, *, at_once: bool = False) -> dict[str, Any]:
    """Every township runs one ``sync_once`` against a fresh county process; count requests and bytes.

    In turn (one township's session after the other's), or ``at_once``: every township's session at the same
    time, as a county's townships exchange with it, so a township reads and sends while the county applies
    another's push. The townships' stores are opened before the clock starts: opening one is not a sync.
    """
    opened = [await corpus.open_store(town) for town in corpus.towns]
    transports = [HttpTransport(url, timeout=300.0) for _ in opened]
    started = time.perf_counter()
    try:
        pairs = [(store, transport) for (store, _), transport in zip(opened, transports, strict=True)]
        if at_once:
            reports: list[SessionReport] = list(
                await asyncio.gather(*(sync_once(store, transport, budget=budget) for store, transport in pairs))
            )
        else:
            reports = [await sync_once(store, transport, budget=budget) for store, transport in pairs]
        seconds = time.perf_counter() - started
    finally:
        for transport in transports:
            await transport.close()
        for _, db in opened:
            await db.dispose()
    requests = sum(transport.requests for transport in transports)
    pushed = sum(r.pushed for r in reports)
    refused = sum(r.refused for r in reports)
    # A fresh county lost its own batches: each township gives them back in its push (``frames_given_back``),
    # so more than the corpus's frames may move; fewer, or any refusal, is a failure.
    if pushed < len(corpus.frames) or refused:
        raise RuntimeError(f"HTTP sync moved {pushed} of {len(corpus.frames)} batches ({refused} refused)")
    sent = sum(r.bytes_sent for r in reports)
    return {
        "budget_bytes": budget,
        "requests": requests,
        "batches": pushed,
        "given_back": pushed - len(corpus.frames),
        "requests_per_batch": rounded(requests / pushed),
        "sessions": len(reports),
        "request_body_bytes": sent,
        "response_body_bytes": sum(r.bytes_received for r in reports),
        "request_body_bytes_per_action": rounded(sent / actions),
        "towns_at_once": at_once,
        "seconds": rounded(seconds),
        "actions_per_s": rounded(actions / seconds),
    }


async def http_measurements(corpus: Corpus, workdir: Path, actions: int) -> dict[str, dict[str, Any]]:
    """The default budget and the tiny one, townships in turn; the default budget again, townships at once.
    A fresh county process each."""
    runs: dict[str, tuple[int, bool]] = {
        "default": (DEFAULT_BUDGET_BYTES, False),
        "tiny": (TINY_BUDGET, False),
        "default_at_once": (DEFAULT_BUDGET_BYTES, True),
    }
    county = nodes.Node(corpus.county, COUNTY, corpus.layout.keys[corpus.county], corpus.layout.entries, "county")
    procs: dict[str, nodes.Served] = {}
    try:
        for name in runs:  # all started before any is waited for: their start-ups overlap
            procs[name] = await nodes.spawn(workdir / f"http-{name}", county)
        for served in procs.values():
            await nodes.wait_ready(served)
        return {
            name: await http_sync(corpus, procs[name].url, budget, actions, at_once=at_once)
            for name, (budget, at_once) in runs.items()
        }
    finally:
        for served in procs.values():
            await nodes.stop(served)


# -- the whole run ----------------------------------------------------------------------------------


async def run(errands: int, *, postgres: bool, seed: int, workdir: Path, peer: bool = True) -> dict[str, Any]:
    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = rounded(now - mark)
        mark = now

    workers = min(TOWNS, os.cpu_count() or 1)
    log(f"building the corpus: {errands} errands, {TOWNS} townships x {VILLAGES_PER_TOWN} villages, {workers} workers")
    corpus = await build_corpus(
        workdir / "corpus", errands, seed=seed, towns=TOWNS, villages_per_town=VILLAGES_PER_TOWN, workers=workers
    )
    phase("build_corpus")
    frames = corpus.frames
    actions = count_actions(corpus)
    log(f"corpus ready: {len(frames)} county-bound frames, {actions} actions, {len(corpus.pushes)} pushes")
    baseline = open_frame_baseline(corpus)
    wire = frame_bytes(corpus)
    phase("open_frame_baseline")
    log("applying every push to a fresh county on SQLite")
    writes = write_floor.WriteLog()
    sqlite_result = await apply_to_fresh_county(corpus, f"sqlite:///{workdir / 'fresh-county.db'}", baseline, writes)
    sqlite_result["limits"] = await sqlite_limits(
        corpus, workdir / "fresh-county.db", sqlite_result, baseline, writes, workdir / "write-floor.db"
    )
    log("the same pushes, the townships pushing at the same time")
    at_once = await apply_to_fresh_county(
        corpus, f"sqlite:///{workdir / 'at-once-county.db'}", baseline, towns_at_once=True
    )
    sqlite_result["towns_at_once"] = {
        "what": "each township's pushes in order, every township at the same time (one writer takes them in turn)",
        "apply_rate": at_once["apply_rate"],
        "push_latency": at_once["push_latency"],
        "errands_identical_to_live_county": at_once["errands_identical_to_live_county"],
    }
    phase("apply_sqlite")
    pg_version = ""
    if postgres:
        log(f"applying every push to a fresh county on PostgreSQL at {PG_HOST}:{PG_PORT}")
        pg_result, pg_version = await postgres_apply(corpus, baseline, workdir)
        phase("apply_postgresql")
    else:
        pg_result = {"skipped": "--no-postgres was given"}
    log("each township syncs with a county process over HTTP (default budget, then 2 KB)")
    http = await http_measurements(corpus, workdir, actions)
    phase("http")
    default, tiny = http["default"], http["tiny"]
    if peer:
        log("the peer: PouchDB replicating the same actions, one document each, to express-pouchdb")
        peer_result = peer_measurements(corpus, workdir, sqlite_result, pg_result, default, actions)
        phase("peer")
    else:
        peer_result = {"skipped": "--no-peer was given"}
    return {
        "postgres_version": pg_version,
        "corpus": {
            "errands": corpus.errands,
            "escalated_to_county": corpus.escalated,
            "decided_at_township": corpus.errands - corpus.escalated,
            "layout": {"towns": TOWNS, "villages_per_town": VILLAGES_PER_TOWN},
            "actions_written": sum(corpus.actions_by_role.values()),
            "actions_written_by_role": dict(corpus.actions_by_role),
            "sync_rounds": corpus.rounds,
            "county_bound": {
                "pushes": len(corpus.pushes),
                "frames": len(frames),
                "actions": actions,
                "bytes": wire["frame_bytes"],
            },
            "seed": seed,
            "build_workers": corpus.workers,
        },
        "measurements": {
            "county_apply_rate": {
                "baseline_open_frame": baseline,
                "sqlite": sqlite_result,
                "postgresql": pg_result,
            },
            "wire_bytes_per_action": {
                "frames": wire["per_action"],
                "http_request_body": quantity(
                    default["request_body_bytes_per_action"],
                    "bytes/action",
                    wire["per_action"]["baseline"],
                    PLAIN_BASELINE,
                    what="every request body of the default-budget HTTP sync, divided by the county-bound actions",
                ),
            },
            "http_requests_per_batch": quantity(
                default["requests_per_batch"],
                "requests/batch",
                tiny["requests_per_batch"],
                f"requests/batch with budget_bytes={TINY_BUDGET}",
                default_budget=default,
                tiny_budget=tiny,
                default_budget_towns_at_once=http["default_at_once"],
            ),
            "peer": peer_result,
        },
        "phase_seconds": phases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(
        "apply_rate", __doc__, seed=2024, seed_help="seed of the synthetic corpus (default 2024)"
    )
    parser.add_argument("--errands", type=int, default=1000, help="errands in the corpus (default 1000)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL measurement")
    parser.add_argument("--no-peer", action="store_true", help="skip the PouchDB peer (bench/peer)")
    args = parser.parse_args(argv)
    if args.errands < 1:
        parser.error("--errands must be at least 1")
    this_run = harness.Run("apply_rate")
    with this_run.scratch("sanji-bench-", keep=args.keep) as workdir:
        body = asyncio.run(
            run(args.errands, postgres=not args.no_postgres, seed=args.seed, workdir=workdir, peer=not args.no_peer)
        )
    return this_run.publish(
        body,
        args.out,
        packages=STORE_PACKAGES,
        tmpdir=str(workdir.parent),  # where the SQLite files lived
        postgres=body.pop("postgres_version") or None,
    )


if __name__ == "__main__":
    sys.exit(main())
