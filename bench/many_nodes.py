"""Many children against one hub: a recovery burst, then idle exchanges every interval (issue 15).

A real county process (`sanji county serve`, SQLite or PostgreSQL) serves N simulated townships. The children
are played by ``--workers`` processes (default: one per core), each owning a slice of them and answering the
parent's commands as JSON lines, so the simulator is not one Python process at 100 % of a core queueing
the exchanges it is meant to time. Each worker's own CPU is measured and reported beside the hub's.

1. **Burst**: every child makes its first exchange at once (at most `--burst` in flight over all workers),
   as after a county-wide outage: a real `Store` on its own SQLite file (copied from one migrated template)
   running the real `sync_once` over `HttpTransport`, signed requests and all. Every one must complete
   without an error.
2. **Settle**: every child's second exchange, the same way: it must be idle (one request), and its opening
   request is what the child sends on every idle exchange after it.
3. **Idle rounds**: each child exchanges once per `--interval` at a random moment within it. By default
   (`--idle-children lean`) a child sends its own opening request from the settle exchange again, signed
   afresh with its key (a new counter), carrying the lease of the last reply, and checks the reply holds
   nothing it lacks — to the hub exactly what the real child's idle exchange is, without the ≈ 40 ms of
   CPU the real child spends in its own SQLite store (which would need more cores than the machine has at
   issue 15's scale). `--idle-children full` runs the real `sync_once` instead. Latency of each exchange
   (client side, p50/p95/p99), requests and body bytes per exchange each way, the hub process's CPU and
   the simulator's (utime + stime) over the rounds.

The baseline, in the same run, is the same idle exchange by one child alone (no other load).
`python -m bench.many_nodes --children 5000 --interval 60` is issue 15's scale (targets: p99 ≤ 200 ms at
≤ 50 % of two cores; the burst from 500 nodes completes without an error); `--quick` is small.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import resource
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench import harness, nodes
from bench.figures import figure, percentile, rounded
from protocol.session import CursorsRequest, CursorsResponse
from protocol.signing import SigningKey
from protocol.topology import COUNTY, Directory
from sanji.context import NodeContext
from sanji.keys import read_directory
from sanji.layout import Layout, county_layout
from sanji.store import Store, open_database
from sanji.sync.driver import sync_once
from sanji.sync.report_memo import HEARTBEAT_S
from sanji.sync.requests_auth import RequestSigner
from sanji.sync.transport import HttpTransport

ROOT = Path(__file__).resolve().parent.parent
HTTP_TIMEOUT_S = 60.0
# Children whose store is open at once in one worker during `--idle-children full` rounds. Each open child
# holds ≈ 6 descriptors (SQLite file, WAL and shm for the writer and a reader or two, and the socket) and an
# aiosqlite thread per connection; unbounded, a simulator that falls behind its schedule opens thousands at
# once and SQLite answers "unable to open database file" at the descriptor limit.
MAX_OPEN = 64  # the default of --max-open
SETTLE_IN_FLIGHT = 32  # per worker: the settle exchanges are not timed against a target, only checked


def log(message: str) -> None:
    print(f"[bench.many_nodes] {message}", file=sys.stderr, flush=True)


def own_cpu_seconds() -> float:
    """This process's CPU, every thread (aiosqlite runs each connection on its own)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat: what every process used, ours or not."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def listen_drops() -> dict[str, int]:
    """The kernel's count of connections dropped because a listen queue was full (every socket on the machine)."""
    try:
        lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()]
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names and names[0] == "TcpExt:":
            row = dict(zip(names[1:], values[1:], strict=False))
            return {k: int(row[k]) for k in ("ListenOverflows", "ListenDrops") if k in row}
    return {}


async def start_hub(layout: Layout, workdir: Path, db_url: str | None) -> nodes.Served:
    """``sanji county serve`` (its store on ``db_url``, else SQLite in its folder), logins off: the bench reads
    the hub's /metrics without an account."""
    node = nodes.Node("C", COUNTY, layout.keys["C"], layout.entries, folder="county", db_url=db_url, logins=False)
    return await nodes.serve(workdir, node)


@dataclass
class KeyHolder:
    """What ``RequestSigner`` signs with: a lean child has a key and no store."""

    key: SigningKey


@dataclass
class Opening:
    """A child's opening request as its real ``sync_once`` sent it, and what the parent then held for it."""

    request: CursorsRequest
    down: tuple[Any, ...] | None
    reports: tuple[Any, ...] = ()  # what the child's report memo sends again at its heartbeat


class RecordingTransport(HttpTransport):
    """``HttpTransport`` keeping the last opening request it carried and the reply to it."""

    opening: CursorsRequest | None = None
    reply: CursorsResponse | None = None

    async def cursors(self, request: CursorsRequest) -> CursorsResponse:
        reply = await super().cursors(request)
        self.opening, self.reply = request, reply
        return reply


class Children:
    """A slice of the townships, each a Store on its own SQLite file, opened only for the length of one exchange."""

    def __init__(self, directory: Directory, keys: dict[str, SigningKey], workdir: Path, hub_url: str) -> None:
        self.directory = directory
        self.keys = keys
        self.workdir = workdir
        self.hub_url = hub_url
        self.ids = sorted(keys)
        self.openings: dict[str, Opening] = {}
        self.open_now = 0
        self.open_peak = 0  # children whose store was open at once: what the descriptors are spent on

    async def exchange(self, child: str) -> dict[str, Any]:
        """The real thing: open the child's store, run ``sync_once``, keep its opening request."""
        self.open_now += 1
        self.open_peak = max(self.open_peak, self.open_now)
        try:
            db = await open_database(f"sqlite:///{self.workdir / f'{child}.db'}", migrate=False)
            transport = RecordingTransport(self.hub_url, timeout=HTTP_TIMEOUT_S)
            try:
                store = Store(db, node_id=child, key=self.keys[child], directory=self.directory)
                await store.start()
                context = NodeContext(store, None)  # as a node's driver does: what it holds is not asked for again
                await context.load()
                started = time.perf_counter()
                report = await sync_once(store, transport, context=context)
                seconds = time.perf_counter() - started
            finally:
                await transport.close()
                await db.dispose()
        finally:
            self.open_now -= 1
        reply = transport.reply
        if transport.opening is not None and reply is not None:
            # Without the reports: this store is opened afresh for every exchange, so its report memo
            # (sanji.sync.report_memo, one per Store object) is new each time and sends them all again. A
            # running node's memo, having carried them, sends none until news or the 5-minute heartbeat.
            opening = msgspec.structs.replace(transport.opening, reports=())
            self.openings[child] = Opening(opening, reply.down, transport.opening.reports)
        return {
            "seconds": seconds,
            "requests": transport.requests,
            "sent": report.bytes_sent,
            "received": report.bytes_received,
            "moved": report.pushed + report.pulled,
            # The parent sent what the child lacked (its catalogue, calendar or rules): not idle yet.
            "caught_up": int(reply is not None and bool(reply.catalogue or reply.calendar or reply.rules)),
        }

    async def settled_exchange(self, child: str) -> dict[str, Any]:
        """Exchanges until one is idle (at most 3): a child whose burst exchange failed catches up first,
        so the opening request kept is one sent with nothing to catch up on. The last one is returned."""
        sample = await self.exchange(child)
        for _ in range(2):
            if not (sample["moved"] or sample["caught_up"]):
                break
            sample = {**await self.exchange(child), "catch_up": 1}
        return sample

    async def lean_exchange(self, child: str, *, heartbeat: bool = False) -> dict[str, Any]:
        """The child's idle exchange as the hub sees it: its last opening request, signed afresh.

        The real child would read its cursors, send this request, find the parent holds nothing it lacks
        and stop (one request); its own bookkeeping (traffic counted, clock observed) stays in its store
        and never reaches the hub. ``moved`` counts a reply after which the real child would have pulled.
        ``heartbeat``: the child's report memo is due to send its reports again (every ``HEARTBEAT_S``).
        """
        opening = self.openings.get(child)
        if opening is None:
            raise RuntimeError("no idle opening request to send: the child's settle exchanges failed")
        request = opening.request
        if heartbeat and opening.reports:
            request = msgspec.structs.replace(request, reports=opening.reports)
        transport = HttpTransport(self.hub_url, timeout=HTTP_TIMEOUT_S)
        transport.signer = RequestSigner(child, KeyHolder(self.keys[child]))
        transport.recipient = self.directory.parent(child) or ""
        transport.ancestors = frozenset(n for n in self.directory.path(child) if n != child)
        try:
            started = time.perf_counter()
            reply = await transport.cursors(request)
            seconds = time.perf_counter() - started
        finally:
            await transport.close()
        # As the child's trust step keeps it: the next request presents the lease this reply handed out.
        if reply.lease:
            self.openings[child] = Opening(
                msgspec.structs.replace(opening.request, lease=reply.lease), opening.down, opening.reports
            )
        behind = reply.down != opening.down or bool(reply.catalogue or reply.calendar or reply.rules or reply.reclaim)
        return {
            "seconds": seconds,
            "requests": transport.requests,
            "sent": transport.bytes_sent,
            "received": transport.bytes_received,
            "moved": int(behind),
            "heartbeat": int(request is not opening.request),
        }


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


def served_ms(seconds: float | None) -> float | str | None:
    """A bucket bound of ``served_percentile`` as the result says it: milliseconds, or past the last bound."""
    if seconds is None:
        return None
    return rounded(seconds * 1000) if seconds != math.inf else "over 10 s"


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
        "children_that_caught_up_first": sum(1 for s in samples if s.get("catch_up")),
    }


# -- a worker: one process playing a slice of the children -----------------------------------------------


LAG_PROBE_S = 0.1


async def loop_lag(lags: list[float]) -> None:
    """How late the worker's event loop wakes a task that sleeps ``LAG_PROBE_S``, every time, into ``lags``.

    A worker with hundreds of exchanges in flight, each tens of milliseconds of CPU, can fall seconds
    behind: a reply sitting in its socket is then read only after the child's own idle limit ran out, and
    the exchange fails with a ``ReadTimeout`` the hub had no part in. This says whether it did."""
    loop = asyncio.get_running_loop()
    while True:
        began = loop.time()
        await asyncio.sleep(LAG_PROBE_S)
        lags.append(loop.time() - began - LAG_PROBE_S)


class Worker:
    """Answers the parent's commands for its slice of the children; every answer says what it cost here."""

    def __init__(self, children: Children, index: int) -> None:
        self.children = children
        self.index = index

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        cpu0, wall0 = own_cpu_seconds(), time.perf_counter()
        peak0, self.children.open_peak = self.children.open_peak, self.children.open_now
        lags: list[float] = []
        probe = asyncio.create_task(loop_lag(lags))
        try:
            out = await self._run(command)
        finally:
            probe.cancel()
        out["loop_lag_s"] = lags
        out["cpu_s"] = own_cpu_seconds() - cpu0
        out["wall_s"] = time.perf_counter() - wall0
        out["open_stores_peak"] = self.children.open_peak
        self.children.open_peak = max(peak0, self.children.open_peak)
        return out

    async def _run(self, command: dict[str, Any]) -> dict[str, Any]:
        what = command["do"]
        if what in ("burst", "settle"):
            out = await self.all_at_once(int(command["in_flight"]), settle=what == "settle")
        elif what == "alone":
            out = await self.alone(int(command["times"]), str(command["mode"]))
        elif what == "idle":
            out = await self.idle(
                float(command["interval"]),
                int(command["rounds"]),
                int(command["seed"]),
                str(command["mode"]),
                int(command.get("max_open", MAX_OPEN)),
            )
        else:
            raise ValueError(f"unknown command {what!r}")
        return out

    async def all_at_once(self, in_flight: int, *, settle: bool = False) -> dict[str, Any]:
        gate = asyncio.Semaphore(in_flight)
        samples: list[dict[str, Any]] = []
        errors: list[str] = []

        async def one(child: str) -> None:
            async with gate:
                try:
                    do = self.children.settled_exchange if settle else self.children.exchange
                    samples.append(await do(child))
                except Exception as exc:
                    errors.append(f"{child}: {type(exc).__name__}: {exc}")

        await asyncio.gather(*(one(c) for c in self.children.ids))
        return {"samples": samples, "errors": errors}

    async def alone(self, times: int, mode: str) -> dict[str, Any]:
        child = self.children.ids[0]
        do = self.children.lean_exchange if mode == "lean" else self.children.exchange
        return {"samples": [await do(child) for _ in range(times)], "errors": []}

    async def idle(self, interval: float, rounds: int, seed: int, mode: str, max_open: int) -> dict[str, Any]:
        rng = random.Random(seed * 1009 + self.index)
        samples: list[dict[str, Any]] = []
        errors: list[str] = []
        late: list[float] = []  # how long after its moment an exchange began: the simulator falling behind
        gate = asyncio.Semaphore(max_open)  # only a full child opens a store; a lean one holds a socket
        loop = asyncio.get_running_loop()

        # A running child's report memo sends its reports again every HEARTBEAT_S: at a 60 s interval one
        # exchange in five of each child, the children staggered so a fifth of them do it in any round.
        every = max(1, round(HEARTBEAT_S / interval))
        position = {child: i for i, child in enumerate(self.children.ids)}

        async def one(child: str, at: float, round_no: int) -> None:
            await asyncio.sleep(max(0.0, at - loop.time()))
            try:
                if mode == "lean":
                    late.append(loop.time() - at)
                    due = (round_no + position[child]) % every == 0
                    samples.append(await self.children.lean_exchange(child, heartbeat=due))
                    return
                async with gate:
                    late.append(loop.time() - at)
                    samples.append(await self.children.exchange(child))
            except Exception as exc:
                errors.append(f"{child}: {type(exc).__name__}: {exc}")

        for round_no in range(rounds):
            began = loop.time()
            await asyncio.gather(*(one(c, began + rng.uniform(0, interval), round_no) for c in self.children.ids))
        return {"samples": samples, "errors": errors, "late_s": late}


def read_spec(path: Path, index: int, count: int) -> Children:
    spec = json.loads(path.read_text(encoding="utf-8"))
    ids = sorted(spec["keys"])[index::count]
    keys = {child: SigningKey.from_private_bytes(bytes.fromhex(spec["keys"][child])) for child in ids}
    return Children(read_directory(Path(spec["directory"])), keys, Path(spec["children_dir"]), spec["hub_url"])


async def worker_main(spec: Path, index: int, count: int) -> int:
    """A worker's life: say ready, then answer one JSON command per line on stdin until "exit" or EOF."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # a full child holds several descriptors while its store is open
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    worker = Worker(read_spec(spec, index, count), index)
    print(json.dumps({"ready": len(worker.children.ids)}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or json.loads(line)["do"] == "exit":
            return 0
        print(json.dumps(await worker.run(json.loads(line))), flush=True)


class WorkerProcess:
    """The parent's handle on one worker process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, spec: Path, index: int, count: int) -> WorkerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.many_nodes",
            "--worker",
            str(spec),
            "--worker-index",
            str(index),
            "--workers",
            str(count),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(ROOT),
            limit=1 << 28,  # one answer line holds every sample of the worker's slice
        )
        worker = cls(proc)
        await worker.answer()  # {"ready": n}
        return worker

    async def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()

    async def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a simulator worker exited ({await self.proc.wait()}); its stderr is above")
        out: dict[str, Any] = json.loads(line)
        return out

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.send({"do": "exit"})
                await asyncio.wait_for(self.proc.wait(), timeout=10)
            except (TimeoutError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()


class Simulator:
    """Every worker, and the parent's view of what they cost: each command goes to all at once."""

    def __init__(self, workers: list[WorkerProcess]) -> None:
        self.workers = workers

    async def ask_all(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for worker, command in zip(self.workers, commands, strict=True):
            await worker.send(command)
        return list(await asyncio.gather(*(w.answer() for w in self.workers)))

    async def phase(self, commands: list[dict[str, Any]], hub_pid: int) -> dict[str, Any]:
        """Run one command on every worker; merge their answers, with the hub's, the simulator's and the
        machine's CPU over the phase (cores: 1.0 is one core busy the whole time)."""
        cores = os.cpu_count() or 1
        hub0, wall0, (busy0, total0) = nodes.cpu_seconds(hub_pid), time.perf_counter(), machine_busy()
        answers = await self.ask_all(commands)
        hub, wall = nodes.cpu_seconds(hub_pid) - hub0, time.perf_counter() - wall0
        busy1, total1 = machine_busy()
        sim = sum(a["cpu_s"] for a in answers)
        late = [x for a in answers for x in a.get("late_s", [])]
        lags = [x for a in answers for x in a.get("loop_lag_s", [])]
        return {
            "samples": [s for a in answers for s in a["samples"]],
            "errors": [e for a in answers for e in a["errors"]],
            "seconds": wall,
            "cpu": {
                "hub_cpu_share_of_machine": rounded(hub / wall / cores),
                "hub_cpu_cores": rounded(hub / wall),
                "simulator_cpu_share_of_machine": rounded(sim / wall / cores),
                "simulator_cpu_cores": rounded(sim / wall),
                "simulator_cpu_cores_per_worker": [rounded(a["cpu_s"] / wall) for a in answers],
                # Every process on the machine, the hub's and the simulator's included: what is left is
                # other work (the machine is shared), which competes for the same cores.
                "machine_busy_share": rounded((busy1 - busy0) / max(total1 - total0, 1.0)),
            },
            "simulator": {
                "workers": len(answers),
                "open_stores_peak_per_worker": [a["open_stores_peak"] for a in answers],
                # How late the workers' event loops ran (``loop_lag``): seconds here mean the simulator, not
                # the hub, kept replies waiting.
                **(
                    {
                        "loop_lag_ms": {
                            "p50": rounded(percentile(lags, 50) * 1000),
                            "p99": rounded(percentile(lags, 99) * 1000),
                            "max": rounded(max(lags) * 1000),
                        }
                    }
                    if lags
                    else {}
                ),
                **(
                    {
                        "start_late_ms": {
                            "p50": rounded(percentile(late, 50) * 1000),
                            "p99": rounded(percentile(late, 99) * 1000),
                            "max": rounded(max(late) * 1000),
                        }
                    }
                    if late
                    else {}
                ),
            },
        }

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers))


def shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` as evenly as whole numbers go, each at least 1."""
    return [max(1, total // parts + (1 if i < total % parts else 0)) for i in range(parts)]


async def burst(
    sim: Simulator, width: int, hub_pid: int, children: int, what: str = "burst", hub_url: str = ""
) -> dict[str, Any]:
    drops0 = listen_drops()
    buckets0 = await served_buckets(hub_url) if hub_url else {}
    phase = await sim.phase([{"do": what, "in_flight": n} for n in shares(width, len(sim.workers))], hub_pid)
    drops1 = listen_drops()
    buckets1 = await served_buckets(hub_url) if hub_url else {}
    served = {pct: served_percentile(buckets0, buckets1, pct) for pct in (50, 99)}
    samples, errors = phase["samples"], phase["errors"]
    return {
        **(summary(samples) if samples else {}),
        "children": children,
        "in_flight": width,
        "seconds": rounded(phase["seconds"]),
        "errors": errors[:20],
        "error_count": len(errors),
        **phase["cpu"],
        "simulator": phase["simulator"],
        # Connections the kernel dropped because a listen queue was full (the hub's is uvicorn's backlog,
        # 2048, capped by net.core.somaxconn), machine-wide: 0 rules out the hub's accept queue.
        "listen_queue_drops": {k: drops1[k] - drops0.get(k, 0) for k in drops1},
        # The hub's own time per opening request (its turn's wait included), from its /metrics histogram.
        **{f"hub_served_p{pct}_ms_at_most": served_ms(v) for pct, v in served.items()},
    }


async def idle_rounds(
    sim: Simulator,
    hub_url: str,
    interval: float,
    rounds: int,
    hub_pid: int,
    seed: int,
    mode: str,
    children: int,
    max_open: int = MAX_OPEN,
) -> dict[str, Any]:
    buckets0 = await served_buckets(hub_url)
    log(f"idle rounds: {children} exchanges spread over {interval:g} s, {rounds} time(s), {mode} children")
    command = {"do": "idle", "interval": interval, "rounds": rounds, "seed": seed, "mode": mode, "max_open": max_open}
    phase = await sim.phase([command] * len(sim.workers), hub_pid)
    buckets1 = await served_buckets(hub_url)
    p99 = served_percentile(buckets0, buckets1, 99)
    errors = phase["errors"]
    plain = [s for s in phase["samples"] if not s.get("heartbeat")]
    beats = [s for s in phase["samples"] if s.get("heartbeat")]
    return {
        # The idle figures are the exchanges with nothing to say; the heartbeats (reports sent again) apart.
        # The CPU below is the round's whole, heartbeats included.
        **summary(plain or beats),  # every exchange a heartbeat only at an interval past HEARTBEAT_S
        "heartbeats": summary(beats) if beats else {"exchanges": 0},
        "rounds": rounds,
        "interval_s": interval,
        "children_kind": mode,
        **phase["cpu"],
        # The hub's own time per idle exchange, free of the simulated children's share of the CPU: the upper
        # bound of the /metrics histogram bucket that holds the 99th percentile.
        "hub_served_p99_ms_at_most": served_ms(p99),
        "simulator": phase["simulator"],
        "errors": errors[:20],
        "error_count": len(errors),
    }


async def prepare_children(layout: Layout, workdir: Path, hub_url: str) -> Path:
    """Every child's store (copies of one migrated template) and the spec the workers read; returns the spec."""
    children_dir = workdir / "children"
    children_dir.mkdir()
    template = children_dir / "template.db"
    db = await open_database(f"sqlite:///{template}")
    await db.dispose()
    ids = layout.ids("town")
    for child in ids:
        shutil.copyfile(template, children_dir / f"{child}.db")
    spec = workdir / "simulator.json"  # the children's private keys: in the run's own 0700 temp dir
    spec.write_text(
        json.dumps(
            {
                "hub_url": hub_url,
                "directory": str(workdir / "directory.json"),
                "children_dir": str(children_dir),
                "keys": {child: layout.keys[child].private_bytes().hex() for child in ids},
            }
        ),
        encoding="utf-8",
    )
    return spec


async def run(
    n: int,
    interval: float,
    rounds: int,
    width: int,
    workdir: Path,
    db_url: str | None,
    seed: int,
    *,
    workers: int = 0,
    mode: str = "lean",
    max_open: int = MAX_OPEN,
) -> dict[str, Any]:
    workers = min(n, workers or default_workers())
    log(f"making {n} children's keys and the hub")
    layout = county_layout(towns=n, villages_per_town=0, sealing=False)
    hub = await start_hub(layout, workdir, db_url)
    url, hub_pid = hub.url, hub.pid
    sim: Simulator | None = None
    try:
        spec = await prepare_children(layout, workdir, url)
        log(f"starting {workers} simulator worker(s)")
        sim = Simulator(list(await asyncio.gather(*(WorkerProcess.start(spec, i, workers) for i in range(workers)))))
        log(f"burst: {n} first exchanges, {width} in flight")
        first = await burst(sim, width, hub_pid, n, hub_url=url)
        log(f"settle: {n} second exchanges (each child's idle opening request)")
        settle = await burst(sim, min(width, SETTLE_IN_FLIGHT * workers), hub_pid, n, what="settle", hub_url=url)
        log("baseline: one child's idle exchange alone, 20 times")
        # The real exchange alone too, whichever kind the idle rounds use: what a child costs end to end.
        alone_full = (await alone_phase(sim, {"do": "alone", "times": 20, "mode": "full"}, hub_pid))["samples"]
        alone = alone_full
        if mode != "full":
            alone = (await alone_phase(sim, {"do": "alone", "times": 20, "mode": mode}, hub_pid))["samples"]
        idle = await idle_rounds(sim, url, interval, rounds, hub_pid, seed, mode, n, max_open)
    finally:
        if sim is not None:
            await sim.stop()
        await nodes.stop(hub)
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
        "simulator": {
            "workers": workers,
            "idle_children": mode,
            "max_open_stores_per_worker": max_open,
            "http_timeout_s": HTTP_TIMEOUT_S,
        },
        "burst": first,
        "settle": settle,
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
        "baseline_one_child_full": summary(alone_full),
        "targets": targets,
        "figures": figures,
    }


async def alone_phase(sim: Simulator, command: dict[str, Any], hub_pid: int) -> dict[str, Any]:
    """``command`` on the first worker only: one child, nothing else running."""
    return await Simulator(sim.workers[:1]).phase([command], hub_pid)


def default_workers() -> int:
    """One per core: a worker's children are CPU-bound in the burst; a lean idle round needs far less."""
    return max(1, os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments("many_nodes", __doc__, quick="50 children, 10 s interval, 1 round", seed=2024)
    parser.add_argument("--children", type=int, default=500, help="simulated townships (default 500; issue 15: 5000)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between a child's exchanges (default 60)")
    parser.add_argument("--rounds", type=int, default=2, help="idle rounds (default 2)")
    parser.add_argument("--burst", type=int, default=500, help="first exchanges in flight at once (default 500)")
    parser.add_argument("--db", default=None, help="the hub's database URL (default: SQLite in the temp dir)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="simulator processes, each a slice of the children (default: one per core)",
    )
    parser.add_argument(
        "--idle-children",
        choices=("lean", "full"),
        default="lean",
        help="idle rounds: lean (each child's own opening request, signed afresh; default) or full (sync_once)",
    )
    parser.add_argument(
        "--max-open",
        type=int,
        default=MAX_OPEN,
        help=f"full idle children's stores open at once per worker ({MAX_OPEN})",
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # a simulator worker: its spec file
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        return asyncio.run(worker_main(args.worker, args.worker_index, args.workers))
    if args.quick:
        args.children, args.interval, args.rounds, args.burst = 50, 10.0, 1, 50
    if args.children < 1 or args.rounds < 1 or args.interval <= 0 or args.burst < 1 or args.max_open < 1:
        parser.error("--children, --rounds, --burst and --max-open must be at least 1, --interval above 0")
    if args.workers < 0:
        parser.error("--workers must not be negative (0: one per core)")
    this_run = harness.Run("many_nodes")
    with this_run.scratch("sanji-many-", keep=args.keep) as workdir:
        body = asyncio.run(
            run(
                args.children,
                args.interval,
                args.rounds,
                args.burst,
                workdir,
                args.db,
                args.seed,
                workers=args.workers,
                mode=args.idle_children,
                max_open=args.max_open,
            )
        )
    return this_run.publish(body, args.out)


if __name__ == "__main__":
    sys.exit(main())
