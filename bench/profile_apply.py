"""Profile one county apply of the recorded pushes (``Store.receive``), the step ``bench.apply_rate`` times.

Run: ``python -m bench.profile_apply [--errands 300] [--corpus /tmp/corpus.msgpack] [--out /tmp/apply.prof]``

The corpus is built once by ``bench/corpus.py`` (as ``bench.apply_rate`` builds it) and saved to
``--corpus`` (the layout's entries, the county's keys and every recorded push); a later run with the same
``--corpus`` reuses it, so the old and the new code can be profiled on the very same frames. Then a
fresh county store on a new SQLite file (``--db URL``: an empty PostgreSQL database) receives every
push under ``cProfile`` (``--no-profile``: just timed) and the top functions by cumulative and by own
time are printed to stderr. One JSON line with the wall time, the process CPU
seconds, the rates, each push's wall time (p50, p99, max) and the statements sent to the database (per
applied frame: round trips, which other load does not change) goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import io
import json
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import event

from bench.corpus import Corpus, Push, build_corpus
from protocol.topology import COUNTY, Directory, NodeEntry
from sanji import memory
from sanji.keys import NodeKey
from sanji.store import Store, intake, open_database


class Saved(msgspec.Struct):
    entries: list[NodeEntry]
    county: str
    signing: bytes
    sealing: bytes | None
    pushes: list[tuple[str, list[bytes]]]  # (town, frames) in the order the county receives them


async def build(errands: int, seed: int, *, towns: int = 2, villages_per_town: int = 3) -> Saved:
    workdir = Path(tempfile.mkdtemp(prefix="sanji-profile-"))
    try:
        corpus = await build_corpus(
            workdir / "corpus", errands, seed=seed, towns=towns, villages_per_town=villages_per_town, workers=2
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return saved_of(corpus)


def by_town(pushes: Iterable[Push]) -> list[list[Push]]:
    """Each township's pushes, in the order received: what it sends one after the other."""
    mine: dict[str, list[Push]] = {}
    for push in pushes:
        mine.setdefault(push.town, []).append(push)
    return list(mine.values())


def saved_of(corpus: Corpus) -> Saved:
    """What a county needs of ``corpus`` to receive its pushes again, elsewhere (another process, a file)."""
    key = corpus.layout.keys[corpus.county]
    assert isinstance(key, NodeKey)
    return Saved(
        entries=corpus.layout.entries,
        county=corpus.county,
        signing=key.private_bytes(),
        sealing=key.sealing.private_bytes() if key.sealing else None,
        pushes=[(p.town, list(p.frames)) for p in corpus.pushes],
    )


async def apply(
    saved: Saved,
    db_path: Path,
    profiler: cProfile.Profile | None,
    url: str | None = None,
    *,
    settle: bool = True,
    at_once: bool = False,
) -> dict[str, Any]:
    directory = Directory(saved.entries)
    assert directory.role(saved.county) == COUNTY
    db = await open_database(url or f"sqlite:///{db_path}", role=COUNTY)
    statements = {"n": 0}

    def count(*_: Any) -> None:
        statements["n"] += 1  # every statement sent to the database: round trips, whatever the load

    event.listen(db.writer.sync_engine, "before_cursor_execute", count)
    try:
        store = Store(db, node_id=saved.county, key=NodeKey.from_raw(saved.signing, saved.sealing), directory=directory)
        await store.start()
        pushes = [Push(round=0, town=town, frames=tuple(frames)) for town, frames in saved.pushes]
        actions = frames = 0
        if settle:  # before the clocks start, as bench.apply_rate does
            memory.settle_heap()  # as `sanji county serve` does once started (sanji/cli/serve.py)
        started, cpu_started, loop_started = time.perf_counter(), time.process_time(), time.thread_time()
        statements["n"] = 0
        driver_reads = intake.driver_reads(db.writer.sync_engine).total()
        if profiler:
            profiler.enable()
        latencies: list[float] = []
        collected = _GcTimer()
        gc.callbacks.append(collected)

        async def push_all(pushes: list[Push]) -> None:
            nonlocal actions, frames
            for push in pushes:
                pushed = time.perf_counter()
                outcome = await store.receive(push.frames, peer=push.town)
                latencies.append(time.perf_counter() - pushed)
                actions += outcome.applied_actions
                frames += outcome.applied_batches

        if at_once:  # each township its own pushes in order, the townships at the same time
            await asyncio.gather(*(push_all(mine) for mine in by_town(pushes)))
        else:
            await push_all(pushes)
        gc.callbacks.remove(collected)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        loop_seconds = time.thread_time() - loop_started
        warm = store._warm
        sent = statements["n"] + intake.driver_reads(db.writer.sync_engine).total() - driver_reads  # and past it
        digests = await store.digests()
    finally:
        await db.dispose()
    digest_of_all = msgspec.msgpack.encode(sorted(digests.items()))
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),  # this process, all threads: less hit by other load than wall time
        "loop_cpu_seconds": round(loop_seconds, 3),  # the event loop's thread alone (not the SQLite worker's)
        "warm_errands": {"taken": warm.taken, "read": warm.missed},  # continued from memory / read back
        "towns_at_once": at_once,
        "frames": frames,
        "actions": actions,
        "actions_per_s": round(actions / seconds, 1),
        "actions_per_cpu_s": round(actions / cpu_seconds, 1),  # the figure other load moves least
        "push_ms": _quantiles(latencies),  # wall: one receive (commit included), moved by other load
        "actions_per_push": round(actions / max(1, len(latencies)), 1),
        "gc": collected.summary(),  # the cyclic collector's pauses during the apply, by generation
        "statements": sent,  # including BEGIN/SAVEPOINT/RELEASE (COMMIT is not a statement here)
        "statements_per_frame": round(sent / max(1, frames), 2),
        "database": "sqlite" if url is None else "postgresql",
        "errands": len(digests),
        "digests_sha256": hashlib.sha256(digest_of_all).hexdigest()[:16],  # compare across code versions
    }


class _GcTimer:
    """A ``gc.callbacks`` entry timing each collection: how much of an apply the cyclic collector takes."""

    def __init__(self) -> None:
        self.started = 0.0
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        self.seconds[info["generation"]] += time.perf_counter() - self.started
        self.count[info["generation"]] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": round(sum(self.seconds), 3),
            "by_generation": [
                {"collections": n, "seconds": round(s, 3)} for n, s in zip(self.count, self.seconds, strict=True)
            ],
        }


def _quantiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(1000 * ordered[-1], 1)} if ordered else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_apply", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--errands", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--corpus", type=Path, default=None, help="save the corpus here, or reuse it if it exists")
    parser.add_argument("--out", type=Path, default=None, help="write the raw cProfile stats here")
    parser.add_argument("--no-profile", action="store_true", help="only time the apply")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--no-settle", action="store_true", help="leave start-up's objects to the collector (no gc.freeze)"
    )
    parser.add_argument("--at-once", action="store_true", help="the townships push at the same time")
    parser.add_argument("--db", default=None, help="apply into this database (an empty PostgreSQL one) instead")
    args = parser.parse_args(argv)
    if args.corpus is not None and args.corpus.exists():
        saved = msgspec.msgpack.decode(args.corpus.read_bytes(), type=Saved)
        print(f"[profile_apply] reusing {args.corpus}", file=sys.stderr)
    else:
        path = args.corpus or Path(tempfile.mkstemp(suffix=".msgpack")[1])
        print(f"[profile_apply] building the corpus ({args.errands} errands) into {path}", file=sys.stderr)
        saved = asyncio.run(build(args.errands, args.seed))
        path.write_bytes(msgspec.msgpack.encode(saved))
    profiler = None if args.no_profile else cProfile.Profile()
    tmp = Path(tempfile.mkdtemp(prefix="sanji-profile-apply-"))
    try:
        result = asyncio.run(
            apply(saved, tmp / "county.db", profiler, args.db, settle=not args.no_settle, at_once=args.at_once)
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if profiler is not None:
        if args.out:
            profiler.dump_stats(str(args.out))
        for order in ("cumulative", "tottime"):
            buf = io.StringIO()
            pstats.Stats(profiler, stream=buf).sort_stats(order).print_stats(args.top)
            print(buf.getvalue(), file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
