"""Cost as work grows: a county's ingest rate when its store already holds 10 thousand to a million errands.

Run: ``python -m bench.store_growth [--sizes 0,10000,100000] [--corpus FILE] [--errands 1000] [--db postgresql]``

0. corpus: built by ``bench/corpus.py`` (``bench.profile_apply``'s saved form), or loaded from
   ``--corpus`` when that file exists (a ``profile_apply --corpus`` file), else saved there.
1. for each size N, ascending, 0 (the baseline) first: a fresh county store on SQLite or PostgreSQL
   (real migrations, ``Store.start()``), prefilled with N errands by ``bench/prefill.py`` (copies of the
   rows the size-0 ingest wrote, ids remapped; ``bench/prefill_pg.py`` on PostgreSQL) and checked; then
   - the recorded pushes, one ``Store.receive`` each, timed: actions/s, push latency p50/p99;
   - the bulk-insert limit: the same rows (fresh ids) by the driver's executemany in one transaction;
   - on a copy of the prefilled store, the same frames re-cut into pushes of about 200 actions: p99.
2. the open_frame limit (Ed25519, zlib, msgpack: ``protocol.batch.open_frame`` alone), once.

One JSON object goes to stdout and to ``--out``; progress goes to stderr. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from bench import harness, prefill, prefill_pg
from bench.figures import figure, percentile, rounded
from bench.machine import load_average
from bench.prefill import Reference
from bench.profile_apply import Saved, build
from devtools import throwaway_pg
from protocol.batch import open_frame
from protocol.topology import COUNTY, Directory
from sanji.keys import NodeKey
from sanji.store import Store, open_database
from sanji.store.revisions import carried

DEFAULT_SIZES = (0, 10_000, 100_000)
PUSH_ACTIONS = 200  # issue 15: "p99 apply of one 200-action push <= 50 ms"
TARGET_P99_MS = 50.0
TARGET_SLOWDOWN = 0.2  # no more than 20 % slower than the empty store (the issue asks it at a million)

# The role whose SQLite page memory the county's store opens with (``sanji.store.engine.sqlite_pages``):
# a county's, unless ``--pages`` says otherwise (``village``: SQLite's defaults, as before issue 15's change).
PAGES_OF = [COUNTY]

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


async def fresh_store(url: str, saved: Saved, directory: Directory) -> None:
    """A county store in a new database: the schema from the real migrations, the meta rows from ``start``."""
    db = await open_database(url, role=PAGES_OF[0])  # the county's page memory (sanji.store.engine)
    try:
        await Store(db, node_id=saved.county, key=county_key(saved), directory=directory).start()
    finally:
        await db.dispose()


async def opened_counts(url: str, saved: Saved, directory: Directory) -> int:
    """Open the prefilled store as a node does (migration check, ``start``); the errands its status counts."""
    db = await open_database(url, role=PAGES_OF[0])  # the county's page memory (sanji.store.engine)
    try:
        store = Store(db, node_id=saved.county, key=county_key(saved), directory=directory)
        await store.start()
        status = await store.status()
    finally:
        await db.dispose()
    return sum(status["errands_by_stage"].values())


async def ingest(url: str, saved: Saved, directory: Directory, pushes: Pushes) -> dict[str, Any]:
    """Every push, one ``Store.receive`` each, in order, into the store at ``url``; each one timed."""
    db = await open_database(url, role=PAGES_OF[0])  # the county's page memory (sanji.store.engine)
    try:
        store = Store(db, node_id=saved.county, key=county_key(saved), directory=directory)
        await store.start()
        latencies: list[float] = []
        cpu_ms: list[float] = []  # process CPU (all threads) per push: what other load hardly stretches
        per_push: list[int] = []
        stored = frames = actions = 0
        started = time.perf_counter()
        cpu_started = time.process_time()
        written = storage_writes()
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
        written = storage_writes() - written
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
        # Bytes this process sent to storage (SQLite's WAL and file; a PostgreSQL server writes its own).
        "storage_write_bytes": written,
        "push_latency_ms": spread(latencies),
        "push_cpu_ms": spread(cpu_ms),
        "actions_per_push": {
            "mean": rounded(actions / len(pushes)),
            "min": min(per_push),
            "max": max(per_push),
        },
    }


def storage_writes() -> int:
    """``write_bytes`` of /proc/self/io: what this process caused to be written to storage (0 off Linux)."""
    try:
        for line in Path("/proc/self/io").read_text(encoding="ascii").splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def spread(ms: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles: with fewer than 100 pushes the p99 is the slowest push."""
    return {f"p{p}": rounded(percentile(ms, p)) for p in (50, 95, 99)} | {"max": rounded(max(ms))}


class Sqlite:
    """The stores as SQLite files in ``workdir`` (``bench.prefill``); with ``cache``, a prefilled store is
    kept there (``--prefill-cache``) and a later run with the same corpus, copies and migrations copies it
    instead of filling it again (the million's fill takes ≈ 12 minutes; the copy, a minute)."""

    name = "sqlite"

    def __init__(self, workdir: Path, cache: Path | None = None, corpus_key: str = "") -> None:
        self.workdir = workdir
        self.cache = cache
        self.corpus_key = corpus_key

    def cached(self, copies: int) -> Path | None:
        if self.cache is None:
            return None
        schema = hashlib.sha256(repr(sorted(carried().items())).encode()).hexdigest()[:12]
        return self.cache / f"county-{copies}copies-{prefill.IDS}-{self.corpus_key}-{schema}.db"

    def path(self, name: str) -> Path:
        return self.workdir / f"{name}.db"

    def url(self, name: str) -> str:
        return f"sqlite:///{self.path(name)}"

    async def create(self, name: str) -> None:
        pass  # open_database makes the file

    async def clone(self, source: str, name: str) -> None:
        shutil.copyfile(self.path(source), self.path(name))  # checkpointed and closed: the file is the store

    async def remove(self, name: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            self.path(name).with_name(self.path(name).name + suffix).unlink(missing_ok=True)

    async def prefill(self, name: str, ref: Reference, copies: int) -> dict[str, Any]:
        kept = self.cached(copies)
        if kept is not None and kept.exists():
            started = time.perf_counter()
            shutil.copyfile(kept, self.path(name))
            log(f"copied the prefilled store kept in {kept}")
            return {
                "copies": copies,
                "errands": copies * ref.errands,
                "actions": copies * ref.actions,
                "cached_from": str(kept),
                "seconds": rounded(time.perf_counter() - started),
                "database_bytes": self.path(name).stat().st_size,
            }
        out = prefill.prefill(self.path(name), ref, copies)
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path(name), kept.with_suffix(".part"))  # checkpointed and closed
            kept.with_suffix(".part").rename(kept)
            log(f"kept the prefilled store in {kept}")
        return out

    async def counts(self, name: str) -> dict[str, int]:
        return prefill.counts(self.path(name))

    async def check_projections(self, name: str, errand_ids: list[str], directory: Directory) -> int:
        return prefill.check_projections(self.path(name), errand_ids, directory)

    async def read_reference(self, name: str, directory: Directory) -> Reference:
        return prefill.read_reference(self.path(name), directory)

    async def bulk_insert_limit(self, name: str, ref: Reference) -> dict[str, Any]:
        return prefill.bulk_insert_limit(self.path(name), ref)

    async def size_bytes(self, name: str) -> int:
        return self.path(name).stat().st_size


class Postgres:
    """The stores as throwaway databases (``devtools.throwaway_pg``), filled by ``bench.prefill_pg``."""

    name = "postgresql"

    def __init__(self) -> None:
        self.prefix = f"sanji_growth_{secrets.token_hex(4)}"

    def db(self, name: str) -> str:
        return f"{self.prefix}_{name.replace('-', '_')}"

    def url(self, name: str) -> str:
        return throwaway_pg.url_of(self.db(name))

    async def create(self, name: str) -> None:
        await throwaway_pg.create_database(self.db(name))

    async def clone(self, source: str, name: str) -> None:
        await throwaway_pg.create_database(self.db(name), template=self.db(source))

    async def remove(self, name: str) -> None:
        await throwaway_pg.drop_database(self.db(name))

    async def prefill(self, name: str, ref: Reference, copies: int) -> dict[str, Any]:
        return await prefill_pg.prefill_copies(self.db(name), ref, copies)

    async def counts(self, name: str) -> dict[str, int]:
        return await prefill_pg.counts(self.db(name))

    async def check_projections(self, name: str, errand_ids: list[str], directory: Directory) -> int:
        return await prefill_pg.check_projections(self.db(name), errand_ids, directory)

    async def read_reference(self, name: str, directory: Directory) -> Reference:
        return await prefill_pg.read_reference(self.db(name), directory)

    async def bulk_insert_limit(self, name: str, ref: Reference) -> dict[str, Any]:
        return await prefill_pg.bulk_insert_limit(self.db(name), ref)

    async def size_bytes(self, name: str) -> int:
        return await prefill_pg.size_bytes(self.db(name))


Backend = Sqlite | Postgres


async def measure_size(
    size: int, saved: Saved, directory: Directory, pushes200: Pushes, backend: Backend, ref: Reference | None
) -> tuple[dict[str, Any], Reference]:
    """Prefill a store with ``size`` errands, check it, and measure the three figures on it."""
    name, name200 = f"county-{size}", f"county-{size}-p200"
    recorded: Pushes = [(town, frames) for town, frames in saved.pushes]
    out: dict[str, Any] = {"errands_requested": size}
    try:
        await backend.create(name)
        await fresh_store(backend.url(name), saved, directory)
        if size:
            assert ref is not None, "size 0 is measured first: its ingest is the reference"
            copies = prefill.copies_for(size, ref)
            log(f"{size}: prefilling {copies} copies of the reference ({copies * ref.errands} errands)")
            out["prefill"] = await backend.prefill(name, ref, copies)
            mark = time.perf_counter()
            got, want = await backend.counts(name), prefill.expected_counts(ref, copies)
            opened = await opened_counts(backend.url(name), saved, directory)
            sample = list(prefill.sample_errands(ref, copies))
            checked = await backend.check_projections(name, sample, directory)
            if got != want or opened != want["errands"]:
                raise AssertionError(f"prefilled store: counts {got}, Store.status {opened} errands, expected {want}")
            out["check"] = {
                "counts": got,
                "store_status_errands": opened,
                "errands_projected_to_their_digest": checked,
                "seconds": rounded(time.perf_counter() - mark),
            }
        out["errands_held"] = (await backend.counts(name))["errands"]
        await backend.clone(name, name200)
        log(f"{size}: ingesting the recorded pushes")
        out["ingest"] = await ingest(backend.url(name), saved, directory, recorded)
        if ref is None:
            ref = await backend.read_reference(name, directory)
        log(f"{size}: the bulk-insert limit")
        limit = await backend.bulk_insert_limit(name, ref)
        out["bulk_insert_limit"] = limit | {k: rounded(limit[k]) for k in ("seconds", "actions_per_s")}
        log(f"{size}: ingesting the same frames in pushes of about {PUSH_ACTIONS} actions")
        out["push_200"] = await ingest(backend.url(name200), saved, directory, pushes200)
        out["database_bytes_after"] = await backend.size_bytes(name)
    finally:
        await backend.remove(name)
        await backend.remove(name200)
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


async def run(saved: Saved, sizes: list[int], backend: Backend) -> dict[str, Any]:
    directory = Directory(saved.entries)
    log("the open_frame limit")
    frame_limit = open_frame_limit(saved, directory)
    pushes200 = rechunk(saved, directory)
    results: dict[int, dict[str, Any]] = {}
    ref: Reference | None = None
    for size in sizes:
        started = time.perf_counter()
        results[size], ref = await measure_size(size, saved, directory, pushes200, backend, ref)
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
        "database": backend.name,
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
    parser = harness.arguments(
        "store_growth", __doc__, seed=2024, seed_help="seed of a corpus built now (default 2024)", keep=None
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(DEFAULT_SIZES),
        help="errands already held, comma-separated (default 0,10000,100000; 0 is always measured)",
    )
    parser.add_argument("--corpus", type=Path, default=None, help="reuse this saved corpus, or save it here")
    parser.add_argument("--errands", type=int, default=1000, help="errands in a corpus built now (default 1000)")
    parser.add_argument("--workdir", type=Path, default=None, help="where SQLite files go (default: a temp dir)")
    parser.add_argument(
        "--pages",
        choices=("county", "town", "village"),
        default=COUNTY,
        help="SQLite: open the county's store with this tier's page memory (village: SQLite's defaults)",
    )
    parser.add_argument(
        "--prefill-cache",
        type=Path,
        default=None,
        help="SQLite: keep each prefilled store in this directory, and copy it from there in a later run",
    )
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the county's database: SQLite files, or throwaway databases on the SANJI_PG_* server",
    )
    args = parser.parse_args(argv)
    PAGES_OF[0] = args.pages
    this_run = harness.Run("store_growth")
    saved = load_corpus(args.corpus, args.errands, args.seed)
    with this_run.scratch("sanji-growth-", parent=args.workdir) as workdir:
        corpus_key = hashlib.sha256(msgspec.msgpack.encode(saved)).hexdigest()[:12]
        backend: Backend = Postgres() if args.db == "postgresql" else Sqlite(workdir, args.prefill_cache, corpus_key)
        body = asyncio.run(run(saved, args.sizes, backend))
        pg_version = asyncio.run(throwaway_pg.server_version()) if args.db == "postgresql" else None
    body = {"sizes_requested": args.sizes, "sqlite_pages_of": args.pages if args.db == "sqlite" else None, **body}
    return this_run.publish(body, args.out, tmpdir=str(workdir.parent), postgres=pg_version)


if __name__ == "__main__":
    sys.exit(main())
