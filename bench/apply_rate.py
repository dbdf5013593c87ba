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

import argparse
import asyncio
import math
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench import peer as pouchdb_peer
from bench import prefill
from bench.corpus import Corpus, build_corpus
from bench.output import publish
from devtools.throwaway_pg import PG_HOST, PG_PORT, PostgresUnavailable, server_version, throwaway_database
from protocol.batch import open_frame
from protocol.encoding import encode
from protocol.session import DEFAULT_BUDGET_BYTES
from protocol.topology import COUNTY
from sanji.demo.cluster import free_port
from sanji.keys import write_directory, write_key
from sanji.store import Store, open_database
from sanji.store import schema as t
from sanji.sync.driver import SessionReport, sync_once
from sanji.sync.transport import HttpTransport

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "apply_rate.json"
TOWNS = 2
VILLAGES_PER_TOWN = 3
TINY_BUDGET = 2 * 1024
PLAIN_BASELINE = "bytes/action, each action msgpack-encoded alone (no batch, no compression, no signature)"


def log(message: str) -> None:
    print(f"[bench.apply_rate] {message}", file=sys.stderr, flush=True)


def rounded(value: float) -> float:
    """Four significant digits: enough to compare runs, short enough to read."""
    return float(f"{value:.4g}")


def quantity(
    value: float, unit: str, baseline: float | None = None, baseline_unit: str = "", **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"value": rounded(value), "unit": unit}
    if baseline is not None:
        out["baseline"] = rounded(baseline)
        out["baseline_unit"] = baseline_unit or unit
    out.update(extra)
    return out


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


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


async def apply_to_fresh_county(corpus: Corpus, url: str, baseline: dict[str, Any]) -> dict[str, Any]:
    """Replay every recorded push into a brand-new county store, timing each ``Store.receive``."""
    db = await open_database(url, role=COUNTY)
    try:
        store = Store(db, node_id=corpus.county, key=corpus.layout.keys[corpus.county], directory=corpus.directory)
        await store.start()
        latencies: list[float] = []
        applied_actions = applied_batches = 0
        statuses: Counter[str] = Counter()
        started = time.perf_counter()
        for push in corpus.pushes:
            t0 = time.perf_counter()
            outcome = await store.receive(push.frames, peer=push.town)
            latencies.append(time.perf_counter() - t0)
            applied_actions += outcome.applied_actions
            applied_batches += outcome.applied_batches
            statuses.update(r.status for r in outcome.results)
        seconds = time.perf_counter() - started
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


async def postgres_apply(corpus: Corpus, baseline: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The same replay on a throwaway PostgreSQL database; ``{"skipped": ...}`` if no server answers."""
    try:
        async with throwaway_database("sanji_bench") as url:
            version = await server_version()
            return await apply_to_fresh_county(corpus, url, baseline), version
    except PostgresUnavailable as exc:  # raised before the replay began: the rest of the run goes on without it
        return {"skipped": str(exc)}, ""


def sqlite_limits(corpus: Corpus, db_path: Path, result: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """How close the SQLite apply rate is to the limits of its bottlenecks: ``open_frame`` alone (the
    baseline above) and the database's own bulk insert of the rows the apply wrote (``bench.prefill``:
    the same rows, fresh ids, ``sqlite3.executemany`` in one transaction into the same store)."""
    rate = result["apply_rate"]["value"]
    limit = prefill.bulk_insert_limit(db_path, prefill.read_reference(db_path, corpus.directory))
    return {
        "open_frame": quantity(baseline["actions_per_s"]["value"], "actions/s"),
        "open_frame_share": rounded(rate / baseline["actions_per_s"]["value"]),
        "bulk_insert": quantity(limit["actions_per_s"], "actions/s", what=limit["what"]),
        "bulk_insert_share": rounded(rate / limit["actions_per_s"]),
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


async def start_county_process(corpus: Corpus, workdir: Path) -> tuple[asyncio.subprocess.Process, str, Path]:
    """Write a county's config, key and directory file and start ``sanji county serve`` on a free port."""
    node_dir = workdir / "county"
    node_dir.mkdir(parents=True)
    write_directory(workdir / "directory.json", corpus.layout.entries)
    write_key(node_dir / "node.key", corpus.layout.keys[corpus.county])
    port = free_port()
    config = node_dir / "node.toml"
    lines = [
        "[node]",
        f'id = "{corpus.county}"',
        f'role = "{COUNTY}"',
        'host = "127.0.0.1"',
        f"port = {port}",
        'key_file = "node.key"',
        'directory = "../directory.json"',
        'data_dir = "."',
        "",
    ]
    config.write_text("\n".join(lines), encoding="utf-8")
    log_path = node_dir / "node.log"
    with log_path.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sanji.cli.main",
            COUNTY,
            "serve",
            "--config",
            str(config),
            "--log-level",
            "warning",
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
            start_new_session=True,
        )
    return proc, f"http://127.0.0.1:{port}", log_path


def tail(path: Path, size: int = 3000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-size:]


async def wait_ready(proc: asyncio.subprocess.Process, url: str, log_path: Path, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"the county process exited with {proc.returncode}; its log:\n{tail(log_path)}")
            try:
                # 401: logins are on (a first start creates the administrator), as sanji.demo.cluster accepts.
                if (await client.get(url + "/api/node")).status_code in (200, 401):
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the county process did not answer within {within}s; its log:\n{tail(log_path)}")


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def http_sync(corpus: Corpus, url: str, budget: int, actions: int) -> dict[str, Any]:
    """Every township runs one ``sync_once`` against a fresh county process; count requests and bytes."""
    reports: list[SessionReport] = []
    requests = 0
    started = time.perf_counter()
    for town in corpus.towns:
        store, db = await corpus.open_store(town)
        transport = HttpTransport(url, timeout=300.0)
        try:
            reports.append(await sync_once(store, transport, budget=budget))
            requests += transport.requests
        finally:
            await transport.close()
            await db.dispose()
    seconds = time.perf_counter() - started
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
        "seconds": rounded(seconds),
        "actions_per_s": rounded(actions / seconds),
    }


async def http_measurements(corpus: Corpus, workdir: Path, actions: int) -> dict[str, dict[str, Any]]:
    runs = {"default": DEFAULT_BUDGET_BYTES, "tiny": TINY_BUDGET}
    procs: dict[str, tuple[asyncio.subprocess.Process, str, Path]] = {}
    try:
        for name in runs:
            procs[name] = await start_county_process(corpus, workdir / f"http-{name}")
        for proc, url, log_path in procs.values():
            await wait_ready(proc, url, log_path)
        return {name: await http_sync(corpus, procs[name][1], budget, actions) for name, budget in runs.items()}
    finally:
        for proc, _, _ in procs.values():
            await stop_process(proc)


# -- the whole run ----------------------------------------------------------------------------------


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info(workdir: Path) -> dict[str, Any]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return ""

    try:
        git = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=5
        )
        commit = git.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {p: version(p) for p in ("msgspec", "sqlalchemy", "aiosqlite", "asyncpg", "litestar", "uvicorn")},
        "git_commit": commit,
        "tmpdir": str(workdir.parent),  # where the SQLite files lived
    }


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
    sqlite_result = await apply_to_fresh_county(corpus, f"sqlite:///{workdir / 'fresh-county.db'}", baseline)
    sqlite_result["limits"] = sqlite_limits(corpus, workdir / "fresh-county.db", sqlite_result, baseline)
    phase("apply_sqlite")
    pg_version = ""
    if postgres:
        log(f"applying every push to a fresh county on PostgreSQL at {PG_HOST}:{PG_PORT}")
        pg_result, pg_version = await postgres_apply(corpus, baseline)
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
            ),
            "peer": peer_result,
        },
        "phase_seconds": phases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.apply_rate", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--errands", type=int, default=1000, help="errands in the corpus (default 1000)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON result")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL measurement")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the synthetic corpus (default 2024)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, node logs)")
    parser.add_argument("--no-peer", action="store_true", help="skip the PouchDB peer (bench/peer)")
    args = parser.parse_args(argv)
    if args.errands < 1:
        parser.error("--errands must be at least 1")
    started = time.perf_counter()
    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="sanji-bench-"))
    try:
        body = asyncio.run(
            run(args.errands, postgres=not args.no_postgres, seed=args.seed, workdir=workdir, peer=not args.no_peer)
        )
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "benchmark": "apply_rate",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            **machine_info(workdir),
            "postgres": body.pop("postgres_version") or None,
            # Other work on the machine skews every number: a load well above zero marks a noisy run.
            "load_average_1m": {"before": load_before, "after": load_average()},
        },
        **body,
        "seconds": rounded(time.perf_counter() - started),
    }
    publish(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
