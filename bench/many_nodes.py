"""Many children against one hub: a recovery burst, then idle exchanges every interval (issue 15).

A real county process (`sanji county serve`, SQLite or PostgreSQL) serves N simulated townships. Each
child is a real `Store` on its own SQLite file (copied from one migrated template, so setting up
thousands costs seconds) running the real `sync_once` over `HttpTransport` with signed requests:

1. **Burst**: every child makes its first exchange at once (at most `--burst` in flight), as after a
   county-wide outage. Every one must complete without an error.
2. **Idle rounds**: each child exchanges once per `--interval` at a random moment within it, with nothing
   to send or receive. Latency of each exchange (client side, p50/p95/p99), requests and body bytes per
   exchange each way, and the hub process's CPU (utime + stime from /proc) over the rounds.

The baseline, in the same run, is the same idle exchange by one child alone (no other load). The children
run in this process, so their CPU competes with the hub's on a small machine: the hub's share is reported
separately. `python -m bench.many_nodes --children 5000 --interval 60` is issue 15's scale (targets: p99 ≤
200 ms at ≤ 50 % of two cores; the burst from 500 nodes completes without an error); `--quick` is small.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.apply_rate import load_average, percentile, rounded, stop_process, wait_ready
from bench.links import figure, machine_info
from bench.output import publish
from protocol.topology import COUNTY
from sanji.context import NodeContext
from sanji.demo.cluster import free_port
from sanji.keys import write_directory, write_key
from sanji.layout import Layout, county_layout
from sanji.store import Store, open_database
from sanji.sync.driver import sync_once
from sanji.sync.transport import HttpTransport

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "many_nodes.json"


def log(message: str) -> None:
    print(f"[bench.many_nodes] {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_hub(layout: Layout, workdir: Path, db_url: str | None) -> tuple[asyncio.subprocess.Process, str]:
    node_dir = workdir / "county"
    node_dir.mkdir(parents=True)
    write_directory(workdir / "directory.json", layout.entries)
    write_key(node_dir / "node.key", layout.keys["C"])
    port = free_port()
    lines = [
        "[node]",
        'id = "C"',
        f'role = "{COUNTY}"',
        'host = "127.0.0.1"',
        f"port = {port}",
        'key_file = "node.key"',
        'directory = "../directory.json"',
        'data_dir = "."',
        f'db = "{db_url}"' if db_url else "",
        "",
        # Staff logins are beside the point here (sync requests are signed by their node either way); open,
        # the bench can read the hub's /metrics without an account.
        "[auth]",
        "required = false",
        "",
    ]
    (node_dir / "node.toml").write_text("\n".join(line for line in lines if line is not None) + "\n", encoding="utf-8")
    log_path = node_dir / "node.log"
    with log_path.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sanji.cli.main",
            COUNTY,
            "serve",
            "--config",
            str(node_dir / "node.toml"),
            "--log-level",
            "warning",
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(ROOT),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    await wait_ready(proc, url, log_path, within=120.0)
    return proc, url


class Children:
    """N townships, each a Store on its own SQLite file, opened only for the length of one exchange."""

    def __init__(self, layout: Layout, workdir: Path, hub_url: str) -> None:
        self.layout = layout
        self.directory = layout.directory
        self.workdir = workdir
        self.hub_url = hub_url
        self.ids = layout.ids("town")

    async def prepare(self) -> None:
        template = self.workdir / "template.db"
        db = await open_database(f"sqlite:///{template}")
        await db.dispose()
        for child in self.ids:
            shutil.copyfile(template, self.workdir / f"{child}.db")

    async def exchange(self, child: str) -> dict[str, Any]:
        db = await open_database(f"sqlite:///{self.workdir / f'{child}.db'}", migrate=False)
        transport = HttpTransport(self.hub_url, timeout=60.0)
        try:
            store = Store(db, node_id=child, key=self.layout.keys[child], directory=self.directory)
            await store.start()
            context = NodeContext(store, None)  # as a node's driver does: what it holds is not asked for again
            await context.load()
            started = time.perf_counter()
            report = await sync_once(store, transport, context=context)
            seconds = time.perf_counter() - started
            return {
                "seconds": seconds,
                "requests": transport.requests,
                "sent": report.bytes_sent,
                "received": report.bytes_received,
                "moved": report.pushed + report.pulled,
            }
        finally:
            await transport.close()
            await db.dispose()


async def served_buckets(hub_url: str) -> dict[float, float]:
    """The hub's own ``sanji_sync_served_seconds`` buckets for the cursors endpoint (cumulative counts)."""
    async with httpx.AsyncClient(timeout=30.0) as client:
        text = (await client.get(hub_url + "/metrics")).text
    out: dict[float, float] = {}
    pattern = r'^sanji_sync_served_seconds_bucket\{endpoint="cursors",le="([^"]+)"\} (\S+)$'
    for le, count in re.findall(pattern, text, re.MULTILINE):
        out[math.inf if le == "+Inf" else float(le)] = float(count)
    return out


def served_percentile(before: dict[float, float], after: dict[float, float], pct: float) -> float | None:
    """Upper bound (seconds) of the bucket holding the pct-th percentile of what was served in between."""
    deltas = sorted((le, after.get(le, 0.0) - before.get(le, 0.0)) for le in after)
    total = deltas[-1][1] if deltas else 0.0
    if total <= 0:
        return None
    for le, count in deltas:
        if count >= pct / 100 * total:
            return le
    return None


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ms = [s["seconds"] * 1000 for s in samples]
    return {
        "exchanges": len(samples),
        "latency_ms": {
            "p50": rounded(percentile(ms, 50)),
            "p95": rounded(percentile(ms, 95)),
            "p99": rounded(percentile(ms, 99)),
            "max": rounded(max(ms)),
        },
        "requests_per_exchange": rounded(sum(s["requests"] for s in samples) / len(samples)),
        "request_body_bytes_per_exchange": rounded(sum(s["sent"] for s in samples) / len(samples)),
        "response_body_bytes_per_exchange": rounded(sum(s["received"] for s in samples) / len(samples)),
        "exchanges_that_moved_batches": sum(1 for s in samples if s["moved"]),
    }


async def burst(children: Children, width: int) -> dict[str, Any]:
    gate = asyncio.Semaphore(width)
    errors: list[str] = []
    samples: list[dict[str, Any]] = []

    async def one(child: str) -> None:
        async with gate:
            try:
                samples.append(await children.exchange(child))
            except Exception as exc:
                errors.append(f"{child}: {type(exc).__name__}: {exc}")

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in children.ids))
    seconds = time.perf_counter() - started
    out = summary(samples) if samples else {}
    return {
        **out,
        "children": len(children.ids),
        "in_flight": width,
        "seconds": rounded(seconds),
        "errors": errors[:20],
        "error_count": len(errors),
    }


async def idle_rounds(
    children: Children, interval: float, rounds: int, hub_pid: int, rng: random.Random
) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    errors: list[str] = []

    async def one(child: str, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            samples.append(await children.exchange(child))
        except Exception as exc:
            errors.append(f"{child}: {type(exc).__name__}: {exc}")

    buckets0 = await served_buckets(children.hub_url)
    cpu0, wall0 = cpu_seconds(hub_pid), time.perf_counter()
    for round_no in range(rounds):
        log(f"idle round {round_no + 1}/{rounds}: {len(children.ids)} exchanges spread over {interval:g} s")
        await asyncio.gather(*(one(c, rng.uniform(0, interval)) for c in children.ids))
    cpu, wall = cpu_seconds(hub_pid) - cpu0, time.perf_counter() - wall0
    buckets1 = await served_buckets(children.hub_url)
    p99 = served_percentile(buckets0, buckets1, 99)
    cores = os.cpu_count() or 1
    return {
        **summary(samples),
        "rounds": rounds,
        "interval_s": interval,
        "hub_cpu_share_of_machine": rounded(cpu / wall / cores),
        "hub_cpu_cores": rounded(cpu / wall),
        # The hub's own time per idle exchange, free of the simulated children's share of the CPU: the upper
        # bound of the /metrics histogram bucket that holds the 99th percentile.
        "hub_served_p99_ms_at_most": None if p99 is None else (rounded(p99 * 1000) if p99 != math.inf else "over 10 s"),
        "errors": errors[:20],
        "error_count": len(errors),
    }


async def run(
    n: int, interval: float, rounds: int, width: int, workdir: Path, db_url: str | None, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    log(f"making {n} children's keys and the hub")
    layout = county_layout(towns=n, villages_per_town=0, sealing=False)
    proc, url = await start_hub(layout, workdir, db_url)
    try:
        children = Children(layout, workdir / "children", url)
        children.workdir.mkdir()
        await children.prepare()
        log(f"burst: {n} first exchanges, {width} in flight")
        first = await burst(children, width)
        log("baseline: one child's idle exchange alone, 20 times")
        alone = [await children.exchange(children.ids[0]) for _ in range(20)]
        idle = await idle_rounds(children, interval, rounds, proc.pid or 0, rng)
    finally:
        await stop_process(proc)
    base = summary(alone)
    targets = {"idle_p99_ms": 200, "hub_cpu_share_of_machine": 0.5, "idle_requests": 1, "idle_bytes_each_way": 600}
    figures = [
        {
            "figure": "idle_p99_ms",
            **figure(
                idle["latency_ms"]["p99"], "ms", target=targets["idle_p99_ms"], baseline=base["latency_ms"]["p99"]
            ),
        },
        {
            "figure": "hub_cpu_share_of_machine",
            # No baseline: the hub's CPU is read over the idle rounds only, not while one child runs alone.
            **figure(
                idle["hub_cpu_share_of_machine"],
                "of the machine",
                target=targets["hub_cpu_share_of_machine"],
                baseline=None,
            ),
        },
        {
            "figure": "idle_requests_per_exchange",
            **figure(
                idle["requests_per_exchange"],
                "requests",
                target=targets["idle_requests"],
                baseline=base["requests_per_exchange"],
            ),
        },
        *(
            {
                "figure": f"idle_{way}_bytes_per_exchange",
                **figure(
                    idle[f"{way}_body_bytes_per_exchange"],
                    "bytes",
                    target=targets["idle_bytes_each_way"],
                    baseline=base[f"{way}_body_bytes_per_exchange"],
                ),
            }
            for way in ("request", "response")
        ),
        {"figure": "burst_errors", **figure(first["error_count"], "errors", target=0, baseline=None)},
    ]
    return {
        "children": n,
        "hub_store": "postgresql" if db_url else "sqlite",
        "burst": first,
        "idle": {
            **idle,
            "p99_latency": {
                "value": idle["latency_ms"]["p99"],
                "unit": "ms",
                "baseline": base["latency_ms"]["p99"],
                "baseline_unit": "ms, one child's idle exchange with no other load",
            },
        },
        "baseline_one_child": base,
        "targets": targets,
        "figures": figures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.many_nodes", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--children", type=int, default=500, help="simulated townships (default 500; issue 15: 5000)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between a child's exchanges (default 60)")
    parser.add_argument("--rounds", type=int, default=2, help="idle rounds (default 2)")
    parser.add_argument("--burst", type=int, default=500, help="first exchanges in flight at once (default 500)")
    parser.add_argument("--db", default=None, help="the hub's database URL (default: SQLite in the temp dir)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--quick", action="store_true", help="50 children, 10 s interval, 1 round")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.children, args.interval, args.rounds, args.burst = 50, 10.0, 1, 50
    if args.children < 1 or args.rounds < 1 or args.interval <= 0 or args.burst < 1:
        parser.error("--children, --rounds and --burst must be at least 1, --interval above 0")
    load_before = load_average()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="sanji-many-"))
    try:
        body = asyncio.run(run(args.children, args.interval, args.rounds, args.burst, workdir, args.db, args.seed))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "benchmark": "many_nodes",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "load_average_1m": {"before": load_before, "after": load_average()}},
        **body,
        "seconds": rounded(time.perf_counter() - started),
    }
    publish(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
