"""Footprint: what a node costs the machine it runs on — memory, start-up, idle CPU, an idle exchange, its store.

Run: ``python -m bench.footprint [--quick] [--out bench/results/footprint.json] [--seed 1] [--keep]``

Real node processes on loopback (``sanji {county,town,village} serve``, ``Cluster.prepare(..., proxies=True)``):
C, T01 and T01V01, at the demo's sync interval, the village's link through a ``FaultProxy`` that counts its
requests and bytes (it shapes nothing here). Each figure has a baseline measured in the same run:

1. start-up: seconds from spawning a node until ``/healthz`` answers, first start (creates and migrates its
   store) and a restart; also the CPU seconds the process used until then, which load on the machine
   hardly moves. Baseline: a bare interpreter (``python -c pass``) run to its end.
2. idle: resident memory (VmRSS of the node's process and any children, from /proc) and CPU (utime + stime
   per second of wall time) of each node idling, exchanges going on at the interval. Baseline: a bare
   interpreter sleeping.
3. idle exchange: requests and bytes each way per exchange on the village's link while nothing changes
   (the proxy's counters ÷ the village's ``sanji_sync_sessions`` count). Baseline: one ``GET /healthz`` to the
   township through a proxy of its own — the cost of the smallest HTTP request on such a link.
4. syncing: each node's peak resident memory while errands are registered and submitted at the village
   and travel up until the township holds them all. Baseline: the same node idle.
5. store: the village's SQLite file after three years of a busy village (600 errands a year, each a whole
   life with two scans attached by reference), built by ``bench.corpus`` (real stores, ``ErrandService``,
   ``sync_once``). Baseline: the signed frames it holds (what the store cannot avoid keeping). ``--quick``
   builds a tenth and scales what the errands added to an empty store linearly, and says so.

One JSON object goes to stdout and to ``--out``; progress goes to stderr. See bench/README.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import harness
from bench.corpus import build_corpus
from bench.figures import figure, rounded
from bench.links import wait_for
from devtools.faultproxy import FaultProxy
from sanji.client import NodeClient
from sanji.demo.cluster import Cluster, NodeProcess, free_port
from sanji.demo.staff import Desk, Tally, register_errands
from sanji.layout import county_layout
from sanji.store import Store, open_database

DEMO_INTERVAL = 0.5  # `sanji demo --interval` default: the interval the idle figures are taken at
MAX_BACKOFF = 3.0
ERRANDS_PER_YEAR = 600
YEARS = 3
SCANS_PER_ERRAND = 2
MB = 1024 * 1024
NODES = ("C", "T01", "T01V01")
VILLAGE, TOWN = "T01V01", "T01"
TARGETS = {
    "village_idle_rss_mb": 80.0,
    "village_syncing_rss_mb": 150.0,
    "startup_s": 2.0,
    "store_three_years_mb": 200.0,
    "idle_exchange_requests": 1.0,
    "idle_exchange_bytes_each_way": 600.0,
}


@dataclass(frozen=True)
class Plan:
    idle_s: float  # the idle window memory, CPU and exchanges are measured over
    restarts: int
    sync_errands: int
    store_errands: int  # built for the store figure; scaled to YEARS * ERRANDS_PER_YEAR when fewer


FULL = Plan(idle_s=60.0, restarts=3, sync_errands=300, store_errands=YEARS * ERRANDS_PER_YEAR)
QUICK = Plan(idle_s=15.0, restarts=1, sync_errands=60, store_errands=YEARS * ERRANDS_PER_YEAR // 10)


def log(message: str) -> None:
    print(f"[bench.footprint] {message}", file=sys.stderr, flush=True)


# -- /proc ------------------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a node may start helpers; they count against its footprint)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss_bytes(pid: int) -> int:
    total = 0
    for member in _tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


def pid_of(node: NodeProcess) -> int:
    assert node.proc is not None and node.proc.poll() is None, f"{node.id} is not running"
    return node.proc.pid


# -- baselines ------------------------------------------------------------------------------------------


def bare_interpreter(idle_s: float) -> dict[str, float]:
    """A bare interpreter: its start-to-exit time, its resident memory and CPU while it sleeps."""
    starts, cpus = [], []
    for _ in range(3):
        began, used = time.perf_counter(), os.times()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        starts.append(time.perf_counter() - began)
        done = os.times()
        cpus.append(done.children_user + done.children_system - used.children_user - used.children_system)
    sleeper = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({idle_s + 5})"])
    try:
        time.sleep(1.0)
        cpu0, wall0 = cpu_seconds(sleeper.pid), time.monotonic()
        time.sleep(min(idle_s, 5.0))
        cpu = (cpu_seconds(sleeper.pid) - cpu0) / (time.monotonic() - wall0)
        rss = rss_bytes(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    return {
        "start_s": statistics.median(starts),
        "start_cpu_s": statistics.median(cpus),
        "rss_mb": rss / MB,
        "cpu_fraction": cpu,
    }


# -- 1. start-up --------------------------------------------------------------------------------------------


def healthz_after_spawn(cluster: Cluster, node_id: str, limit: float = 120.0) -> tuple[float, float]:
    """Spawn ``node_id``; the seconds until its ``/healthz`` answers 200, and the CPU seconds it used meanwhile
    (which other work on the machine hardly moves, unlike the wall time)."""
    node = cluster.nodes[node_id]
    began = time.perf_counter()
    cluster.start(node_id, wait=False)
    while time.perf_counter() - began < limit:
        if node.proc is not None and node.proc.poll() is not None:
            raise RuntimeError(f"{node_id} exited with {node.proc.returncode}; see {node.log}")
        try:
            if httpx.get(node.url + "/healthz", timeout=1.0).status_code == 200:
                return time.perf_counter() - began, cpu_seconds(pid_of(node))
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{node_id} did not answer /healthz within {limit:.0f} s")


def measure_startup(cluster: Cluster, restarts: int) -> dict[str, Any]:
    first: dict[str, tuple[float, float]] = {}
    for node_id in NODES:  # parents first, one at a time
        first[node_id] = healthz_after_spawn(cluster, node_id)
        log(f"{node_id} first start: {first[node_id][0]:.2f} s ({first[node_id][1]:.2f} CPU-s)")
    again: dict[str, list[tuple[float, float]]] = {n: [] for n in NODES}
    for _ in range(restarts):
        for node_id in NODES:
            cluster.stop(node_id)
            again[node_id].append(healthz_after_spawn(cluster, node_id))
    log("restarts: " + ", ".join(f"{n} {statistics.median(w for w, _ in v):.2f} s" for n, v in again.items()))
    return {
        "first_start_s": {n: rounded(w) for n, (w, _) in first.items()},
        "first_start_cpu_s": {n: rounded(c) for n, (_, c) in first.items()},
        "restart_s": {n: rounded(statistics.median(w for w, _ in v)) for n, v in again.items()},
        "restart_cpu_s": {n: rounded(statistics.median(c for _, c in v)) for n, v in again.items()},
        "restart_samples_s": {n: [rounded(w) for w, _ in v] for n, v in again.items()},
    }


# -- 2 and 3. idle -----------------------------------------------------------------------------------------------


async def sessions(client: httpx.AsyncClient, url: str) -> float:
    text = (await client.get(url + "/metrics")).text
    for family in text_string_to_metric_families(text):
        if family.name == "sanji_sync_sessions":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    return 0.0


async def measure_idle(cluster: Cluster, idle_s: float, seed: int) -> dict[str, Any]:
    link = cluster.link(VILLAGE)
    village_url = cluster.nodes[VILLAGE].url
    async with httpx.AsyncClient(timeout=10.0) as client:
        # Settle: the first exchanges carry the catalogue, calendar and trust documents down.
        await asyncio.sleep(max(3.0, 6 * DEMO_INTERVAL))
        pids = {n: pid_of(cluster.nodes[n]) for n in NODES}
        cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
        stats0, sessions0, wall0 = link.stats.snapshot(), await sessions(client, village_url), time.monotonic()
        samples: dict[str, list[int]] = {n: [] for n in NODES}
        while time.monotonic() - wall0 < idle_s:
            for node_id, pid in pids.items():
                samples[node_id].append(rss_bytes(pid))
            await asyncio.sleep(1.0)
        stats1, sessions1, wall = link.stats.snapshot(), await sessions(client, village_url), time.monotonic() - wall0
        cpu = {n: (cpu_seconds(p) - cpu0[n]) / wall for n, p in pids.items()}
        # Baseline: the smallest request on such a link, one GET /healthz to the township through a proxy of
        # its own (the village's proxy carries its exchanges meanwhile, which would be counted in).
        assert cluster.proxy_thread is not None
        probe = await asyncio.to_thread(
            cluster.proxy_thread.add,
            FaultProxy(target_port=cluster.nodes[TOWN].port, port=free_port(), seed=seed, name="healthz-baseline"),
        )
        before = probe.stats.snapshot()
        async with httpx.AsyncClient(timeout=10.0) as fresh:
            assert (await fresh.get(probe.url + "/healthz")).status_code == 200
        after = probe.stats.snapshot()
    exchanges = sessions1 - sessions0
    per = max(exchanges, 1.0)
    return {
        "window_s": rounded(wall),
        "rss_mb": {n: rounded(statistics.median(v) / MB) for n, v in samples.items()},
        "rss_max_mb": {n: rounded(max(v) / MB) for n, v in samples.items()},
        "cpu_fraction_of_one_core": {n: rounded(v) for n, v in cpu.items()},
        "exchange": {
            "exchanges": exchanges,
            "interval_s": DEMO_INTERVAL,
            "requests_per_exchange": rounded((stats1["requests"] - stats0["requests"]) / per),
            "bytes_up_per_exchange": rounded((stats1["bytes_up"] - stats0["bytes_up"]) / per),
            "bytes_down_per_exchange": rounded((stats1["bytes_down"] - stats0["bytes_down"]) / per),
            "connections": stats1["connections"] - stats0["connections"],
        },
        "baseline_healthz_request": {
            "requests": after["requests"] - before["requests"],
            "bytes_up": after["bytes_up"] - before["bytes_up"],
            "bytes_down": after["bytes_down"] - before["bytes_down"],
        },
    }


# -- 4. syncing --------------------------------------------------------------------------------------------------


async def measure_syncing(cluster: Cluster, errands: int, seed: int) -> dict[str, Any]:
    pids = {n: pid_of(cluster.nodes[n]) for n in NODES}
    peak = {n: rss_bytes(p) for n, p in pids.items()}
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            for node_id, pid in pids.items():
                peak[node_id] = max(peak[node_id], rss_bytes(pid))
            await asyncio.sleep(0.1)

    village = NodeClient(cluster.nodes[VILLAGE].url, timeout=60.0)
    town = NodeClient(cluster.nodes[TOWN].url, timeout=60.0)
    sampler = asyncio.create_task(sample())
    began = time.monotonic()
    try:
        ids = await register_errands([Desk(VILLAGE, "village", village)], errands, random.Random(seed), Tally())
        for errand_id in ids:
            await village.act(errand_id, kind="submit", actor="代办员")

        async def arrived() -> bool:
            held = await town.digests()
            return all(i in held for i in ids) and (await village.node())["queue_length"] == 0

        took = await wait_for(arrived, within=600.0, every=0.2)
        if took is None:
            raise RuntimeError(f"{errands} errands did not reach {TOWN} within 600 s")
    finally:
        stop.set()
        await sampler
        await village.close()
        await town.close()
    return {
        "errands": errands,
        "seconds": rounded(time.monotonic() - began),
        "peak_rss_mb": {n: rounded(v / MB) for n, v in peak.items()},
    }


# -- 5. store ----------------------------------------------------------------------------------------------------


def file_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


async def empty_store_bytes(workdir: Path) -> int:
    """A village's store as its first start leaves it: migrated, started, holding nothing."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    layout = county_layout(1, 1)
    db = await open_database(f"sqlite:///{workdir / VILLAGE}.db")
    try:
        await Store(db, node_id=VILLAGE, key=layout.keys[VILLAGE], directory=layout.directory).start()
    finally:
        await db.dispose()
    return file_bytes(workdir / f"{VILLAGE}.db")


async def measure_store(workdir: Path, errands: int, seed: int) -> dict[str, Any]:
    target = YEARS * ERRANDS_PER_YEAR
    log(f"store: building {errands} whole errand lives at one village ({SCANS_PER_ERRAND} scans each)")
    corpus = await build_corpus(
        workdir, errands, seed=seed, towns=1, villages_per_town=1, workers=1, attachments=SCANS_PER_ERRAND
    )
    db = workdir / f"{VILLAGE}.db"
    size = file_bytes(db)
    empty = await empty_store_bytes(workdir / "empty")
    with sqlite3.connect(db) as conn:
        frames = int(conn.execute("SELECT coalesce(sum(length(frame)), 0) FROM batches").fetchone()[0])
        actions = int(conn.execute("SELECT count(*) FROM actions").fetchone()[0])
        blobs = int(conn.execute("SELECT coalesce(sum(length(data)), 0) FROM blobs").fetchone()[0])
        referenced = conn.execute("SELECT count(*) FROM actions WHERE kind = 'attach'").fetchone()[0]
    scale = target / errands
    return {
        "errands_built": corpus.errands,
        "scaled_to_errands": target,
        "scale": rounded(scale),
        "actions": actions,
        "attachments_referenced": int(referenced),
        "blob_bytes_held": blobs,
        "store_bytes": size,
        "frame_bytes": frames,
        "empty_store_bytes": empty,
        # The schema's empty pages do not grow with the errands: only what the errands added is scaled.
        "store_mb_scaled": rounded((empty + (size - empty) * scale) / MB),
        "frames_mb_scaled": rounded(frames * scale / MB),
        "bytes_per_errand": rounded(size / max(corpus.errands, 1)),
        "build_seconds": rounded(corpus.seconds),
    }


# -- the whole run -------------------------------------------------------------------------------------------------


async def run(plan: Plan, seed: int, workdir: Path) -> dict[str, Any]:
    log("baseline: a bare interpreter")
    bare = await asyncio.to_thread(bare_interpreter, plan.idle_s)
    cluster = Cluster.prepare(
        workdir / "county",
        towns=1,
        villages_per_town=1,
        interval=DEMO_INTERVAL,
        max_backoff=MAX_BACKOFF,
        proxies=True,
        proxy_seed=seed,
        open_demo=True,
    )
    cluster.start_proxies()
    try:
        startup = await asyncio.to_thread(measure_startup, cluster, plan.restarts)
        log(f"idle: {plan.idle_s:.0f} s at the demo interval ({DEMO_INTERVAL} s)")
        idle = await measure_idle(cluster, plan.idle_s, seed)
        log(f"syncing: {plan.sync_errands} errands registered and submitted at {VILLAGE}")
        syncing = await measure_syncing(cluster, plan.sync_errands, seed)
    finally:
        await asyncio.to_thread(cluster.stop)
    store = await measure_store(workdir / "store", plan.store_errands, seed)
    exchange = idle["exchange"]
    healthz = idle["baseline_healthz_request"]
    figures = [
        {
            "figure": f"{tier}_idle_rss_mb",
            **figure(idle["rss_mb"][n], "MB", target=t, baseline=bare["rss_mb"]),
        }
        for tier, n, t in (
            ("village", VILLAGE, TARGETS["village_idle_rss_mb"]),
            ("township", TOWN, None),
            ("county", "C", None),
        )
    ]
    figures += [
        {
            "figure": "village_syncing_rss_mb",
            **figure(
                syncing["peak_rss_mb"][VILLAGE],
                "MB",
                target=TARGETS["village_syncing_rss_mb"],
                baseline=idle["rss_mb"][VILLAGE],
            ),
        },
        *(
            {
                "figure": f"{tier}_restart_s",
                **figure(startup["restart_s"][n], "s", target=TARGETS["startup_s"], baseline=bare["start_s"]),
            }
            for tier, n in (("village", VILLAGE), ("township", TOWN), ("county", "C"))
        ),
        *(
            {
                "figure": f"{tier}_restart_cpu_s",
                **figure(
                    startup["restart_cpu_s"][n], "CPU-s", target=TARGETS["startup_s"], baseline=bare["start_cpu_s"]
                ),
            }
            for tier, n in (("village", VILLAGE), ("township", TOWN), ("county", "C"))
        ),
        {
            "figure": "village_first_start_s",
            **figure(startup["first_start_s"][VILLAGE], "s", target=TARGETS["startup_s"], baseline=bare["start_s"]),
        },
        *(
            {
                "figure": f"{tier}_idle_cpu_fraction",
                **figure(
                    idle["cpu_fraction_of_one_core"][n], "of one core", target=None, baseline=bare["cpu_fraction"]
                ),
            }
            for tier, n in (("village", VILLAGE), ("township", TOWN), ("county", "C"))
        ),
        {
            "figure": "idle_exchange_requests",
            **figure(
                exchange["requests_per_exchange"],
                "requests",
                target=TARGETS["idle_exchange_requests"],
                baseline=healthz["requests"],
            ),
        },
        {
            "figure": "idle_exchange_bytes_up",
            **figure(
                exchange["bytes_up_per_exchange"],
                "bytes",
                target=TARGETS["idle_exchange_bytes_each_way"],
                baseline=healthz["bytes_up"],
            ),
        },
        {
            "figure": "idle_exchange_bytes_down",
            **figure(
                exchange["bytes_down_per_exchange"],
                "bytes",
                target=TARGETS["idle_exchange_bytes_each_way"],
                baseline=healthz["bytes_down"],
            ),
        },
        {
            "figure": "village_store_three_years_mb",
            **figure(
                store["store_mb_scaled"],
                "MB",
                target=TARGETS["store_three_years_mb"],
                baseline=store["frames_mb_scaled"],
            ),
        },
    ]
    return {
        "figures": figures,
        "measurements": {
            "bare_interpreter": {k: rounded(v) for k, v in bare.items()},
            "startup": startup,
            "idle": idle,
            "syncing": syncing,
            "store": store,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(
        "footprint",
        __doc__,
        quick="shorter idle window, fewer errands: a few minutes",
        seed=1,
        seed_help="seed for applicants and matters",
    )
    parser.add_argument(
        "--store-errands", type=int, default=0, help="errands built for the store figure (scaled to three years)"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.store_errands > 0:
        plan = dataclasses.replace(plan, store_errands=args.store_errands)
    this_run = harness.Run("footprint")
    with this_run.scratch("sanji-footprint-", keep=args.keep) as workdir:
        body = asyncio.run(run(plan, args.seed, workdir))
    settings = {"plan": plan.__dict__, "demo_interval_s": DEMO_INTERVAL, "targets": TARGETS}
    return this_run.publish(body, args.out, head={"quick": args.quick, "seed": args.seed, "settings": settings})


if __name__ == "__main__":
    raise SystemExit(main())
