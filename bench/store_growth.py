"""Cost as work grows: a county's ingest rate when its store already holds 10 thousand to a million errands.

Run: ``python -m bench.store_growth [--sizes 0,10000,100000] [--corpus /tmp/corpus.msgpack] [--errands 1000]``

0. corpus: built by ``bench/corpus.py`` (``bench.profile_apply``'s saved form), or loaded from
   ``--corpus`` when that file exists (a ``profile_apply --corpus`` file), else saved there.
1. for each size N, ascending, 0 (the baseline) first: a fresh county store on SQLite (real migrations,
   ``Store.start()``), prefilled with N errands by ``bench/prefill.py`` (copies of the rows the size-0
   ingest wrote, ids remapped) and checked sane; then
   - the recorded pushes, one ``Store.receive`` each, timed: actions/s, push latency p50/p99;
   - the bulk-insert limit: the same rows (fresh ids) by ``sqlite3.executemany`` in one transaction;
   - on a copy of the prefilled file, the same frames re-cut into pushes of about 200 actions: p99.
2. the open_frame limit (Ed25519, zlib, msgpack: ``protocol.batch.open_frame`` alone), once.

One JSON object goes to stdout and to ``--out``; progress goes to stderr. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from bench import prefill
from bench.apply_rate import load_average, percentile, rounded
from bench.links import figure, machine_info
from bench.output import publish
from bench.profile_apply import Saved, build
from protocol.batch import open_frame
from protocol.topology import Directory
from sanji.keys import NodeKey
from sanji.store import Store, open_database

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "store_growth.json"
DEFAULT_SIZES = (0, 10_000, 100_000)
PUSH_ACTIONS = 200  # issue 15: "p99 apply of one 200-action push <= 50 ms"
TARGET_P99_MS = 50.0
TARGET_SLOWDOWN = 0.2  # no more than 20 % slower than the empty store (the issue asks it at a million)

Pushes = list[tuple[str, list[bytes]]]  # (town, frames), in the order the county receives them


def log(message: str) -> None:
    print(f"[bench.store_growth] {message}", file=sys.stderr, flush=True)


def load_corpus(path: Path | None, errands: int, seed: int) -> Saved:
    if path is not None and path.exists():
        log(f"reusing the corpus saved in {path}")
        return msgspec.msgpack.decode(path.read_bytes(), type=Saved)
    log(f"building the corpus: {errands} errands (bench/corpus.py)")
    saved = asyncio.run(build(errands, seed))
    if path is not None:
        path.write_bytes(msgspec.msgpack.encode(saved))
        log(f"saved the corpus to {path}")
    return saved


def open_frame_limit(saved: Saved, directory: Directory, repeats: int = 3) -> dict[str, Any]:
    """Verify and decode every frame with ``open_frame`` alone, median of ``repeats``: the floor of any store."""
    frames = [f for _, fs in saved.pushes for f in fs]
    timings = []
    actions = 0
    for _ in range(repeats):
        started = time.perf_counter()
        actions = sum(len(open_frame(f, directory).actions) for f in frames)
        timings.append(time.perf_counter() - started)
    seconds = sorted(timings)[len(timings) // 2]
    return {
        "what": "protocol.batch.open_frame on every frame (size checks, Ed25519 verify, zlib + msgpack decode)",
        "actions": actions,
        "seconds": rounded(seconds),
        "actions_per_s": rounded(actions / seconds),
        "repeats": repeats,
    }


def rechunk(saved: Saved, directory: Directory, target: int = PUSH_ACTIONS) -> Pushes:
    """The recorded frames cut into pushes of about ``target`` actions, each township's in its own order.

    Each township's frames, in the order it pushed them, are cut into pushes: a frame joins the push
    being made while that brings its total nearer ``target`` (a frame holds at most 200 actions,
    ``limits.DEFAULT_BATCH_ACTIONS``, so none is split). The townships' pushes then take turns, as their
    requests would. The county's streams for one township never touch another's (``bench/corpus.py``),
    so only the order within a township matters, and it is kept."""
    by_town: dict[str, Pushes] = {}
    totals: dict[str, int] = {}  # actions in each township's last push so far
    for town, recorded in saved.pushes:
        cut = by_town.setdefault(town, [])
        for frame in recorded:
            n = len(open_frame(frame, directory).actions)
            total = totals.get(town, 0)
            if not cut or abs(total + n - target) >= abs(total - target):
                cut.append((town, []))
                total = 0
            cut[-1][1].append(frame)
            totals[town] = total + n
    out: Pushes = []
    for turn in range(max((len(c) for c in by_town.values()), default=0)):
        out.extend(c[turn] for c in by_town.values() if turn < len(c))
    return out


def county_key(saved: Saved) -> NodeKey:
    return NodeKey.from_raw(saved.signing, saved.sealing)


async def fresh_store(db_path: Path, saved: Saved, directory: Directory) -> None:
    """A county store on a new file: the schema from the real migrations, the meta rows from ``start``."""
    db = await open_database(f"sqlite:///{db_path}")
    try:
        await Store(db, node_id=saved.county, key=county_key(saved), directory=directory).start()
    finally:
        await db.dispose()


async def opened_counts(db_path: Path, saved: Saved, directory: Directory) -> int:
    """Open the prefilled store as a node does (migration check, ``start``); the errands its status counts."""
    db = await open_database(f"sqlite:///{db_path}")
    try:
        store = Store(db, node_id=saved.county, key=county_key(saved), directory=directory)
        await store.start()
        status = await store.status()
    finally:
        await db.dispose()
    return sum(status["errands_by_stage"].values())


async def ingest(db_path: Path, saved: Saved, directory: Directory, pushes: Pushes) -> dict[str, Any]:
    """Every push, one ``Store.receive`` each, in order, into the store at ``db_path``; each one timed."""
    db = await open_database(f"sqlite:///{db_path}")
    try:
        store = Store(db, node_id=saved.county, key=county_key(saved), directory=directory)
        await store.start()
        latencies: list[float] = []
        cpu_ms: list[float] = []  # process CPU (all threads) per push: what other load hardly stretches
        per_push: list[int] = []
        stored = frames = actions = 0
        started = time.perf_counter()
        cpu_started = time.process_time()
        for town, push in pushes:
            t0, c0 = time.perf_counter(), time.process_time()
            outcome = await store.receive(push, peer=town)
            latencies.append((time.perf_counter() - t0) * 1000)
            cpu_ms.append((time.process_time() - c0) * 1000)
            per_push.append(outcome.applied_actions)
            actions += outcome.applied_actions
            stored += sum(1 for r in outcome.results if r.status == "stored")
            frames += len(push)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        await db.dispose()
    if stored != frames:
        raise RuntimeError(f"{stored} of {frames} frames were stored: a prefilled row collided or a frame was refused")
    return {
        "pushes": len(pushes),
        "frames": frames,
        "actions": actions,
        "seconds": rounded(seconds),
        "cpu_seconds": rounded(cpu),  # this process, all threads: less hit by other load than wall time
        "actions_per_s": rounded(actions / seconds),
        "push_latency_ms": spread(latencies),
        "push_cpu_ms": spread(cpu_ms),
        "actions_per_push": {
            "mean": rounded(actions / len(pushes)),
            "min": min(per_push),
            "max": max(per_push),
        },
    }


def spread(ms: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles: with fewer than 100 pushes the p99 is the slowest push."""
    return {f"p{p}": rounded(percentile(ms, p)) for p in (50, 95, 99)} | {"max": rounded(max(ms))}


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def measure_size(
    size: int, saved: Saved, directory: Directory, pushes200: Pushes, workdir: Path, ref: prefill.Reference | None
) -> tuple[dict[str, Any], prefill.Reference]:
    """Prefill a store with ``size`` errands, check it, and measure the three figures on it."""
    db_path, db200 = workdir / f"county-{size}.db", workdir / f"county-{size}-p200.db"
    recorded: Pushes = [(town, frames) for town, frames in saved.pushes]
    asyncio.run(fresh_store(db_path, saved, directory))
    out: dict[str, Any] = {"errands_requested": size}
    try:
        if size:
            assert ref is not None, "size 0 is measured first: its ingest is the reference"
            copies = prefill.copies_for(size, ref)
            log(f"{size}: prefilling {copies} copies of the reference ({copies * ref.errands} errands)")
            out["prefill"] = prefill.prefill(db_path, ref, copies)
            mark = time.perf_counter()
            got, want = prefill.counts(db_path), prefill.expected_counts(ref, copies)
            opened = asyncio.run(opened_counts(db_path, saved, directory))
            checked = prefill.check_projections(db_path, list(prefill.sample_errands(ref, copies)), directory)
            if got != want or opened != want["errands"]:
                raise AssertionError(f"prefilled store: counts {got}, Store.status {opened} errands, expected {want}")
            out["check"] = {
                "counts": got,
                "store_status_errands": opened,
                "errands_projected_to_their_digest": checked,
                "seconds": rounded(time.perf_counter() - mark),
            }
        out["errands_held"] = prefill.counts(db_path)["errands"]
        shutil.copyfile(db_path, db200)  # checkpointed and closed: the file is the whole store
        log(f"{size}: ingesting the recorded pushes")
        out["ingest"] = asyncio.run(ingest(db_path, saved, directory, recorded))
        if ref is None:
            ref = prefill.read_reference(db_path, directory)
        log(f"{size}: the bulk-insert limit")
        limit = prefill.bulk_insert_limit(db_path, ref)
        out["bulk_insert_limit"] = {**limit, "seconds": rounded(limit["seconds"])}
        out["bulk_insert_limit"]["actions_per_s"] = rounded(limit["actions_per_s"])
        log(f"{size}: ingesting the same frames in pushes of about {PUSH_ACTIONS} actions")
        out["push_200"] = asyncio.run(ingest(db200, saved, directory, pushes200))
        out["database_bytes_after"] = db_path.stat().st_size
    finally:
        remove_db(db_path)
        remove_db(db200)
    return out, ref


def figures(sizes: dict[int, dict[str, Any]], frame_limit: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline figures: per size, the ingest (wall and CPU) against the empty store's, the p99 of
    a 200-action push (wall and CPU) against its target, and the ingest as a share of each limit."""
    base = sizes[0]
    base_rate, base_cpu = base["ingest"]["actions_per_s"], base["ingest"]["cpu_seconds"]
    base_bulk = base["bulk_insert_limit"]["actions_per_s"]
    out: list[dict[str, Any]] = []

    def add(name: str, value: float, unit: str, *, target: float | None, baseline: float | None) -> None:
        out.append({"figure": name, **figure(value, unit, target=target, baseline=baseline)})

    for size, row in sizes.items():
        ingest_row, p200 = row["ingest"], row["push_200"]
        rate, bulk = ingest_row["actions_per_s"], row["bulk_insert_limit"]["actions_per_s"]
        add(f"ingest_rate_{size}", rate, "actions/s", target=None, baseline=base_rate)
        if size:
            slower = "fraction slower than the empty store"
            add(f"ingest_slowdown_{size}", 1 - rate / base_rate, slower, target=TARGET_SLOWDOWN, baseline=0.0)
            cpu_slower = 1 - base_cpu / ingest_row["cpu_seconds"]
            add(f"ingest_cpu_slowdown_{size}", cpu_slower, f"{slower}, in CPU-s", target=TARGET_SLOWDOWN, baseline=0.0)
        base_p99 = base["push_200"]["push_latency_ms"]["p99"]
        add(f"push_200_p99_ms_{size}", p200["push_latency_ms"]["p99"], "ms", target=TARGET_P99_MS, baseline=base_p99)
        base_cpu99 = base["push_200"]["push_cpu_ms"]["p99"]
        cpu99 = p200["push_cpu_ms"]["p99"]
        add(f"push_200_p99_cpu_ms_{size}", cpu99, "CPU ms", target=TARGET_P99_MS, baseline=base_cpu99)
        add(f"bulk_insert_rate_{size}", bulk, "actions/s", target=None, baseline=base_bulk)
        add(f"ingest_share_of_bulk_insert_{size}", rate / bulk, "ingest ÷ bulk insert", target=None, baseline=1.0)
        share = rate / frame_limit["actions_per_s"]
        add(f"ingest_share_of_open_frame_{size}", share, "ingest ÷ open_frame", target=None, baseline=1.0)
    return out


def run(saved: Saved, sizes: list[int], workdir: Path) -> dict[str, Any]:
    directory = Directory(saved.entries)
    log("the open_frame limit")
    frame_limit = open_frame_limit(saved, directory)
    pushes200 = rechunk(saved, directory)
    results: dict[int, dict[str, Any]] = {}
    ref: prefill.Reference | None = None
    for size in sizes:
        started = time.perf_counter()
        results[size], ref = measure_size(size, saved, directory, pushes200, workdir, ref)
        results[size]["load_average_1m_after"] = load_average()
        results[size]["seconds"] = rounded(time.perf_counter() - started)
        ing = results[size]["ingest"]
        log(
            f"{size}: {ing['actions_per_s']} actions/s, p50 {ing['push_latency_ms']['p50']} ms, "
            f"200-action p99 {results[size]['push_200']['push_latency_ms']['p99']} ms "
            f"({results[size]['seconds']} s, load {results[size]['load_average_1m_after']})"
        )
    assert ref is not None
    frames = [f for _, fs in saved.pushes for f in fs]
    base_rate = results[0]["ingest"]["actions_per_s"]
    for row in results.values():
        rate = row["ingest"]["actions_per_s"]
        row["slowdown_vs_empty"] = rounded(1 - rate / base_rate)
        row["limits"] = {
            "bulk_insert_share": rounded(rate / row["bulk_insert_limit"]["actions_per_s"]),
            "open_frame_share": rounded(rate / frame_limit["actions_per_s"]),
        }
    return {
        "corpus": {
            "pushes": len(saved.pushes),
            "frames": len(frames),
            "actions": frame_limit["actions"],
            "frame_bytes": sum(len(f) for f in frames),
            "pushes_of_about_200_actions": len(pushes200),
            "reference": {t: ref.count(t) for t in prefill.TABLES},
        },
        "limits": {"open_frame": frame_limit},
        "figures": figures(results, frame_limit),
        "sizes": {str(k): v for k, v in results.items()},
    }


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(x) for x in text.split(",") if x.strip()} | {0})  # the empty store is the baseline
    if any(s < 0 for s in sizes):
        raise argparse.ArgumentTypeError("sizes are errand counts, 0 or more")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_growth", description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(DEFAULT_SIZES),
        help="errands already held, comma-separated (default 0,10000,100000; 0 is always measured)",
    )
    parser.add_argument("--corpus", type=Path, default=None, help="reuse this saved corpus, or save it here")
    parser.add_argument("--errands", type=int, default=1000, help="errands in a corpus built now (default 1000)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of a corpus built now (default 2024)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON result")
    parser.add_argument("--workdir", type=Path, default=None, help="where the databases go (default: a temp dir)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load_before = load_average()
    saved = load_corpus(args.corpus, args.errands, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="sanji-growth-", dir=args.workdir))
    try:
        body = run(saved, args.sizes, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "benchmark": "store_growth",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            **machine_info(),
            "tmpdir": str(workdir.parent),
            # Other work on the machine skews every number: a load well above zero marks a noisy run.
            "load_average_1m": {"before": load_before, "after": load_average()},
        },
        "sizes_requested": args.sizes,
        **body,
        "seconds": rounded(time.perf_counter() - started),
    }
    publish(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
