"""Links that fail: how real node processes fare on a slow, cut or vanished link, each figure against a clean one.

Run: ``python -m bench.links [--quick] [--out bench/results/links.json] [--seed 1] [--keep]``

One county of real processes (``sanji {county,town,village} serve``): C, T01, and villages
T01V01..T01V04, every child→parent link through a ``devtools.faultproxy.FaultProxy`` (the T01→C link
stays clean). Sync settings like deploy/ but shorter: interval 2 s, max_backoff 5 s, budget_bytes
65536 at the villages (deploy/village.toml) and 524288 at the township (deploy/town.toml).
"Slow" means 64 kbit/s (8000 bytes/s) each way and 300 ms one-way latency on the village's link.

1. reconnect: time from a link's return to the village's first successful exchange, ~10 trials per way
   the link can be down (refusing; blackhole whose connections resume; blackhole whose connection state
   is lost). Baseline: on a clean link, from a random instant to the next successful exchange.
2. backlog_slow: 500 errands registered at a village while its link refuses; then the link returns slow.
   Seconds until the village's queue is empty and the township and county hold every errand.
   Baseline: the same on a clean link.
3. backlog_drops: the same on the slow link with 30 % of request/response exchanges cut mid-transfer,
   12 times (three villages at once, four rounds; the slowest counts); nothing may be lost or doubled;
   bytes sent beyond a fault-free transfer, against the payload.
4. first_download: a village with 2,000 open errands gets a new, empty database (a new laptop) and
   downloads its errands and the catalogue again over the slow link. Baseline: the same on a clean link.

One JSON object goes to stdout and to ``--out``; progress goes to stderr. See bench/README.md.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import harness
from bench.figures import figure, percentile, rounded
from devtools.faultproxy import FaultProxy
from sanji.cli.serve import KEEP_ALIVE_S
from sanji.client import NodeClient
from sanji.demo.cluster import Cluster
from sanji.demo.staff import Desk, Tally, register_errands
from sanji.sync.transport import POOL_KEEPALIVE_S, HttpTransport

INTERVAL = 2.0
MAX_BACKOFF = 5.0
TOWN_BUDGET = 524_288
VILLAGE_BUDGET = 65_536
KBIT_64 = 8000  # bytes/s
SLOW: dict[str, Any] = {"bandwidth_bps": KBIT_64, "latency_ms": 300}
DROP_P = 0.3
HTTP_TIMEOUT = inspect.signature(HttpTransport).parameters["timeout"].default  # what a node's driver uses
VILLAGES = ("T01V01", "T01V02", "T01V03", "T01V04")
BASELINE_VILLAGE, REFUSED_VILLAGE, RESUME_VILLAGE, LOST_VILLAGE = VILLAGES


@dataclass(frozen=True)
class Plan:
    trials: int
    outage_s: tuple[float, float]  # blackhole: spans the 10 s idle timeout, its retry and a backoff
    refused_outage_s: tuple[float, float]
    backlog: int
    drop_rounds: int  # each round: three villages at once, each its own slow, cutting link
    download: int
    limit_backlog_s: float
    limit_drops_s: float
    limit_download_s: float


FULL = Plan(10, (10.0, 45.0), (8.0, 15.0), 500, 4, 2000, 600.0, 1200.0, 900.0)
QUICK = Plan(2, (4.0, 15.0), (4.0, 6.0), 40, 1, 60, 240.0, 300.0, 300.0)
TARGETS = {"reconnect_p95": 10.0, "backlog_slow": 120.0, "backlog_drops": 600.0, "resent_ratio": 2.0, "download": 300.0}


def log(message: str) -> None:
    print(f"[bench.links] {message}", file=sys.stderr, flush=True)


async def wait_for(check: Callable[[], Awaitable[bool]], within: float, every: float = 0.25) -> float | None:
    """Seconds until ``check()`` holds, or None if it did not within ``within``."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(every)
    return None


class County:
    """The running cluster, a client for every node, and the bits of bookkeeping the measurements share."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.clients = {n.id: NodeClient(n.url, timeout=60.0) for n in cluster.nodes.values()}

    def desk(self, node_id: str) -> Desk:
        return Desk(node_id, self.cluster.nodes[node_id].role, self.clients[node_id])

    def link(self, village: str) -> FaultProxy:
        return self.cluster.link(village)

    async def node(self, node_id: str) -> dict[str, Any]:
        return await self.clients[node_id].node()

    async def last_ok(self, village: str) -> float:
        exchange = (await self.node(village))["exchanges"].get("T01", {})
        return float(exchange.get("last_ok_at") or 0.0)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()

    def reopen(self, node_id: str) -> None:
        """A fresh client after a node restarts (its old connections are gone)."""
        self.clients[node_id] = NodeClient(self.cluster.nodes[node_id].url, timeout=60.0)


def prepare(workdir: Path, seed: int) -> Cluster:
    cluster = Cluster.prepare(
        workdir,
        towns=1,
        villages_per_town=len(VILLAGES),
        interval=INTERVAL,
        max_backoff=MAX_BACKOFF,
        budget_bytes=TOWN_BUDGET,
        proxies=True,
        proxy_seed=seed,
        open_demo=True,
    )
    for village in VILLAGES:  # villages use the deploy/village.toml budget
        config = cluster.nodes[village].config
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace(f"budget_bytes = {TOWN_BUDGET}", f"budget_bytes = {VILLAGE_BUDGET}"), encoding="utf-8"
        )
    return cluster


# -- 1. reconnect -------------------------------------------------------------------------------


async def reconnect_trials(
    county: County, village: str, mode: str, plan: Plan, rng: random.Random
) -> list[float | None]:
    """Take the village's link down in ``mode``, bring it back, time the first successful exchange after."""
    link = county.link(village)
    results: list[float | None] = []
    low, high = plan.refused_outage_s if mode == "refused" else plan.outage_s
    for trial in range(plan.trials):
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        if mode == "baseline":
            returned = time.time()
        else:
            if mode == "refused":
                link.set(reset=True)
            else:
                link.set(blackhole=True)
            await asyncio.sleep(rng.uniform(low, high))
            if mode == "lost":
                link.abandon_held()
            link.clear()
            returned = time.time()

        async def exchanged(since: float = returned) -> bool:
            return await county.last_ok(village) > since

        if await wait_for(exchanged, within=120.0, every=0.05) is None:
            results.append(None)
        else:
            results.append(await county.last_ok(village) - returned)
        log(f"reconnect {mode:8} trial {trial + 1}/{plan.trials}: {results[-1]}")
    return results


def summarise_trials(values: list[float | None]) -> dict[str, Any]:
    done = [v for v in values if v is not None]
    return {
        "trials": len(values),
        "not_within_120s": len(values) - len(done),
        "p50_s": rounded(percentile(done, 50)) if done else None,
        "p95_s": rounded(percentile(done, 95)) if done and len(done) == len(values) else None,
        "max_s": rounded(max(done)) if done else None,
        "each_s": [None if v is None else rounded(v) for v in values],
    }


async def measure_reconnect(county: County, plan: Plan, seed: int) -> dict[str, Any]:
    modes = {"baseline": BASELINE_VILLAGE, "refused": REFUSED_VILLAGE, "resume": RESUME_VILLAGE, "lost": LOST_VILLAGE}
    runs = await asyncio.gather(
        *(
            reconnect_trials(county, village, mode, plan, random.Random(f"{seed}-{mode}"))
            for mode, village in modes.items()
        )
    )
    by_mode = {mode: summarise_trials(values) for mode, values in zip(modes, runs, strict=True)}
    base = by_mode["baseline"]
    what = {
        "refused": "the link refuses connections while down (RST): every attempt fails at once, backoff applies",
        "resume": "blackhole: connections hang while down and carry on when it returns (TCP retransmission)",
        "lost": "blackhole, and the connections open during it are dead when it returns (modem re-dial, NAT "
        "rebinding): a hung request waits for the client's own timeout",
    }
    out: dict[str, Any] = {}
    for mode in ("resume", "lost", "refused"):
        row = by_mode[mode]
        out[mode] = {
            "what": what[mode],
            "p50": figure(row["p50_s"], "s", target=None, baseline=base["p50_s"]),
            "p95": figure(row["p95_s"], "s", target=TARGETS["reconnect_p95"], baseline=base["p95_s"]),
            **{k: row[k] for k in ("trials", "not_within_120s", "max_s", "each_s")},
        }
    out["baseline"] = {"what": "clean link: from a random instant to the next successful exchange", **base}
    out["outage_s"] = {"blackhole": list(plan.outage_s), "refused": list(plan.refused_outage_s)}
    return out


# -- 2, 3. backlog ----------------------------------------------------------------------------------


def village_db(county: County, village: str) -> Path:
    return county.cluster.workdir / village / "node.db"


def frame_bytes(county: County, village: str, after_seq: int) -> tuple[int, int]:
    """Bytes and count of the village's own batches numbered after ``after_seq``: the payload."""
    db = sqlite3.connect(f"file:{village_db(county, village)}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute(
            "SELECT coalesce(sum(size), 0), count(*) FROM batches WHERE origin = ? AND scope = ? AND seq > ?",
            (village, village, after_seq),
        ).fetchone()
    finally:
        db.close()
    return int(row[0]), int(row[1])


SETTLE_S = 15.0  # how long a queue may take to drain after the errands are everywhere


async def own_seq(county: County, village: str) -> int:
    streams = (await county.node(village))["streams"]
    return max((s["seq"] for s in streams if s["origin"] == village and s["scope"] == village), default=0)


async def doubled_or_lost(county: County, ids: list[str]) -> list[str]:
    """Anything wrong with these errands anywhere: missing, unequal, held, quarantined, doubled."""
    problems: list[str] = []
    village = ids[0].rsplit("-", 1)[0]
    digests = {n: await county.clients[n].digests() for n in ("C", "T01", village)}
    for errand_id in ids:
        seen = {n: d.get(errand_id) for n, d in digests.items()}
        if None in seen.values() or len(set(seen.values())) != 1:
            problems.append(f"{errand_id}: {seen}")
    for node_id in ("C", "T01", village):
        # A batch the township relayed a moment ago may still await the county's acknowledgement (its
        # reply in flight): only what stays queued, held or quarantined after a settling wait is wrong.
        async def settled(node_id: str = node_id) -> bool:
            node = await county.node(node_id)
            return not (node["held_batches"] or node["quarantined_batches"] or node["queue_length"])

        if await wait_for(settled, within=SETTLE_S) is None:
            node = await county.node(node_id)
            problems.append(
                f"{node_id}: held {node['held_batches']} quarantined {node['quarantined_batches']} "
                f"queue {node['queue_length']} after {SETTLE_S:.0f} s"
            )
    for errand_id in ids:
        history = (await county.clients["C"].errand(errand_id))["history"]
        action_ids = [h["id"] for h in history]
        registers = [h for h in history if h["kind"] == "register"]
        if len(action_ids) != len(set(action_ids)) or len(registers) != 1:
            problems.append(f"{errand_id}: doubled at the county ({len(action_ids)} actions, {len(registers)} reg.)")
    return problems


async def backlog(
    county: County, village: str, count: int, faults: dict[str, Any], limit: float, seed: int
) -> dict[str, Any]:
    """Register ``count`` errands while the village's link refuses, then let it return with ``faults``."""
    link = county.link(village)
    link.set(reset=True)
    await asyncio.sleep(1.0)
    before_seq = await own_seq(county, village)
    started = time.monotonic()
    ids = await register_errands([county.desk(village)], count, random.Random(seed), Tally())
    register_s = time.monotonic() - started
    await asyncio.sleep(1.0)
    link.clear()
    link.set(**faults)
    s0 = link.stats.snapshot()
    hub, town = county.clients["C"], county.clients["T01"]
    wanted = set(ids)

    async def acknowledged() -> bool:
        node = await county.node(village)
        if node["queue_length"] or node["held_batches"]:
            return False
        return wanted <= set(await town.digests()) and wanted <= set(await hub.digests())

    seconds = await wait_for(acknowledged, within=limit)
    s1 = link.stats.snapshot()
    link.clear()
    payload, frames = frame_bytes(county, village, before_seq)
    problems = await doubled_or_lost(county, ids) if seconds is not None else ["not acknowledged within the limit"]
    delta = {k: s1[k] - s0[k] for k in ("bytes_up", "bytes_down", "connections", "requests", "dropped", "reset")}
    return {
        "errands": count,
        "seconds": None if seconds is None else rounded(seconds),
        "limit_s": limit,
        "register_seconds": rounded(register_s),
        "payload_bytes": payload,
        "payload_frames": frames,
        "wire": delta,
        "problems": problems[:10],
        "lost_or_doubled": len(problems),
    }


async def measure_backlogs(county: County, plan: Plan, seed: int) -> dict[str, Any]:
    n = plan.backlog
    log(f"backlog: {n} errands at {BASELINE_VILLAGE}, link returns clean (baseline)")
    base = await backlog(county, BASELINE_VILLAGE, n, {}, plan.limit_backlog_s, seed + 1)
    log(f"  {base['seconds']} s, payload {base['payload_bytes']} B, wire {base['wire']}")
    log(f"backlog: {n} errands at {REFUSED_VILLAGE}, link returns at 64 kbit/s, 300 ms")
    slow = await backlog(county, REFUSED_VILLAGE, n, SLOW, plan.limit_backlog_s, seed + 2)
    log(f"  {slow['seconds']} s, payload {slow['payload_bytes']} B, wire {slow['wire']}")
    # Cut points uniform within one exchange's bytes of the slow run: the push carrying the backlog is the
    # biggest, so a cut lands anywhere in it; a small exchange (cursors) is cut less often.
    exchange = (slow["wire"]["bytes_up"] + slow["wire"]["bytes_down"]) // max(1, slow["wire"]["requests"])
    span = max(2048, exchange, slow["payload_bytes"] // max(1, slow["payload_frames"]) + 2048)
    drops = {**SLOW, "drop_p": DROP_P, "per_request": True, "drop_span": span}
    runs: list[dict[str, Any]] = []
    cutters = (BASELINE_VILLAGE, REFUSED_VILLAGE, RESUME_VILLAGE)  # T01V04 stays clean for the download
    for round_ in range(plan.drop_rounds):
        log(
            f"backlog round {round_ + 1}/{plan.drop_rounds}: {n} errands at each of {', '.join(cutters)} at once, "
            f"slow links, {DROP_P:.0%} of exchanges cut"
        )
        done = await asyncio.gather(
            *(
                backlog(county, v, n, drops, plan.limit_drops_s, seed + 10 + 3 * round_ + i)
                for i, v in enumerate(cutters)
            )
        )
        for village, run in zip(cutters, done, strict=True):
            runs.append({"village": village, **run})
            log(f"  {village}: {run['seconds']} s, payload {run['payload_bytes']} B, wire {run['wire']}")
    finished = [r["seconds"] for r in runs if r["seconds"] is not None]
    worst = max(finished) if len(finished) == len(runs) else None
    # Bytes sent up beyond what a fault-free transfer of this payload costs on the same slow link.
    clean_per_payload = slow["wire"]["bytes_up"] / max(1, slow["payload_bytes"])
    payload = sum(r["payload_bytes"] for r in runs)
    wire_up = sum(r["wire"]["bytes_up"] for r in runs)
    extra = wire_up - clean_per_payload * payload
    cuts = sum(r["wire"]["dropped"] + r["wire"]["reset"] for r in runs)
    requests = sum(r["wire"]["requests"] for r in runs)
    return {
        "backlog_slow": {
            "what": f"{n} errands registered while the link refused; it returns at 64 kbit/s, 300 ms one way",
            "seconds": figure(slow["seconds"], "s", target=TARGETS["backlog_slow"], baseline=base["seconds"]),
            "run": slow,
            "baseline_run": base,
        },
        "backlog_drops": {
            "what": f"the same on the slow link with {DROP_P:.0%} of request/response exchanges cut at a random "
            f"byte within the first {span} of the exchange (FaultProxy per_request); {3 * plan.drop_rounds} "
            "repetitions, three villages at a time; seconds: the slowest",
            "seconds": figure(worst, "s", target=TARGETS["backlog_drops"], baseline=slow["seconds"]),
            "seconds_each": [r["seconds"] for r in runs],
            "exchanges": requests,
            "exchanges_cut": cuts,
            "lost_or_doubled": figure(sum(r["lost_or_doubled"] for r in runs), "problems", target=0, baseline=0),
            "resent_ratio": {
                **figure(max(0.0, extra / max(1, payload)), "× payload", target=TARGETS["resent_ratio"], baseline=0.0),
                "what": "bytes sent up beyond a fault-free transfer of the same payload on the same slow link "
                "(its wire bytes per payload byte, from backlog_slow), divided by the payload bytes; all repetitions",
                "extra_bytes": round(extra),
                "payload_bytes": payload,
                "wire_up_bytes": wire_up,
                "wire_up_per_payload_byte": rounded(wire_up / max(1, payload)),
                "wire_up_per_payload_byte_without_cuts": rounded(clean_per_payload),
                "wire_up_per_payload_byte_clean_link": rounded(
                    base["wire"]["bytes_up"] / max(1, base["payload_bytes"])
                ),
            },
            "runs": runs,
        },
    }


# -- 4. first download --------------------------------------------------------------------------------


def wipe_database(db: Path) -> None:
    """A new laptop: the SQLite file and its WAL are gone (key and config stay)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


async def restore_and_time(county: County, village: str, faults: dict[str, Any], limit: float) -> dict[str, Any]:
    cluster = county.cluster
    await asyncio.to_thread(cluster.stop, village)
    await county.clients[village].close()
    wipe_database(village_db(county, village))
    link = county.link(village)
    link.clear()
    link.set(**faults)
    s0 = link.stats.snapshot()
    started = time.monotonic()
    await asyncio.to_thread(cluster.start, village)
    ready = time.monotonic()
    county.reopen(village)
    client = county.clients[village]
    catalogue = (await county.node("C"))["catalogue_version"]
    town = await county.clients["T01"].digests()
    mine = {k: v for k, v in town.items() if k.startswith(f"{village}-")}

    async def restored() -> bool:
        node = await client.node()
        if node["catalogue_version"] != catalogue or node["queue_length"]:
            return False
        held = await client.digests()
        return len(held) >= len(mine) and all(held.get(k) == v for k, v in mine.items())

    seconds = await wait_for(restored, within=limit, every=0.5)
    s1 = link.stats.snapshot()
    link.clear()
    node = await client.node()
    return {
        "errands": len(mine),
        "seconds_from_ready": None if seconds is None else rounded(seconds),
        "start_seconds": rounded(ready - started),
        "limit_s": limit,
        "catalogue_version": node["catalogue_version"],
        "errands_held": sum(node["errands_by_stage"].values()),
        "wire": {k: s1[k] - s0[k] for k in ("bytes_up", "bytes_down", "connections", "requests", "dropped")},
    }


async def measure_download(county: County, plan: Plan, seed: int) -> dict[str, Any]:
    village, n = LOST_VILLAGE, plan.download
    log(f"first download: registering {n} open errands at {village} (clean link)")
    started = time.monotonic()
    ids = await register_errands([county.desk(village)], n, random.Random(seed + 4), Tally())
    register_s = time.monotonic() - started
    hub = county.clients["C"]

    async def uploaded() -> bool:
        return (await county.node(village))["queue_length"] == 0 and set(ids) <= set(await hub.digests())

    if await wait_for(uploaded, within=600.0, every=1.0) is None:
        raise RuntimeError(f"{village} did not upload its {n} errands within 600 s")
    log(f"  registered in {register_s:.1f} s; the township and county hold them. New laptop, clean link (baseline)")
    base = await restore_and_time(county, village, {}, plan.limit_download_s)
    log(f"  {base['seconds_from_ready']} s, {base['wire']}")
    log("  new laptop again, link at 64 kbit/s, 300 ms")
    slow = await restore_and_time(county, village, SLOW, plan.limit_download_s)
    log(f"  {slow['seconds_from_ready']} s, {slow['wire']}")
    return {
        "what": f"{village} holds {n} open errands (registered there); its database is replaced by an empty one "
        "and it downloads its errands and the catalogue again from T01; timed from the process answering "
        "until it holds every errand with the township's digest and the county's catalogue version",
        "seconds": figure(
            slow["seconds_from_ready"], "s", target=TARGETS["download"], baseline=base["seconds_from_ready"]
        ),
        "register_seconds": rounded(register_s),
        "run": slow,
        "baseline_run": base,
    }


# -- the whole run ------------------------------------------------------------------------------------


async def run(plan: Plan, seed: int, workdir: Path) -> dict[str, Any]:
    phases: dict[str, float] = {}
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        phases[name] = rounded(time.monotonic() - mark)
        mark = time.monotonic()

    cluster = prepare(workdir / "county", seed)
    log(f"starting C, T01, {', '.join(VILLAGES)} with a FaultProxy on every link")
    await asyncio.to_thread(cluster.start)
    county = County(cluster)
    try:

        async def all_synced() -> bool:
            return all([await county.last_ok(v) > 0 for v in VILLAGES])

        if await wait_for(all_synced, within=60.0) is None:
            raise RuntimeError("the villages did not complete a first exchange within 60 s")
        phase("start")
        log(f"reconnect: {plan.trials} trials each way, in parallel on four villages")
        reconnect = await measure_reconnect(county, plan, seed)
        phase("reconnect")
        backlogs = await measure_backlogs(county, plan, seed)
        phase("backlog")
        download = await measure_download(county, plan, seed)
        phase("first_download")
    finally:
        await county.close()
        await asyncio.to_thread(cluster.stop)
    figures = [
        {"figure": f"reconnect_p95_{mode}", **reconnect[mode]["p95"]} for mode in ("resume", "lost", "refused")
    ] + [
        {"figure": "backlog_slow_seconds", **backlogs["backlog_slow"]["seconds"]},
        {"figure": "backlog_drops_seconds", **backlogs["backlog_drops"]["seconds"]},
        {"figure": "backlog_drops_lost_or_doubled", **backlogs["backlog_drops"]["lost_or_doubled"]},
        {
            "figure": "backlog_drops_resent_ratio",
            **{
                k: backlogs["backlog_drops"]["resent_ratio"][k] for k in ("value", "unit", "target", "pass", "baseline")
            },
        },
        {"figure": "first_download_seconds", **download["seconds"]},
    ]
    return {
        "figures": figures,
        "measurements": {"reconnect": reconnect, **backlogs, "first_download": download},
        "phase_seconds": phases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(
        "links",
        __doc__,
        quick="fewer trials and errands: under 3 minutes",
        seed=1,
        seed_help="seed for registrations, outages and link faults",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    this_run = harness.Run("links")
    with this_run.scratch("sanji-links-", keep=args.keep) as workdir:
        body = asyncio.run(run(plan, args.seed, workdir))
    settings = {
        "sync": {
            "interval_s": INTERVAL,
            "max_backoff_s": MAX_BACKOFF,
            "budget_bytes": {"village": VILLAGE_BUDGET, "town": TOWN_BUDGET},
            "http_timeout_s": HTTP_TIMEOUT,
            "client_pool_keepalive_s": POOL_KEEPALIVE_S,
            "server_keep_alive_s": KEEP_ALIVE_S,
        },
        "slow_link": {"bytes_per_s_each_way": KBIT_64, "one_way_latency_ms": SLOW["latency_ms"]},
        "plan": plan.__dict__,
    }
    return this_run.publish(body, args.out, head={"quick": args.quick, "seed": args.seed, "settings": settings})


if __name__ == "__main__":
    sys.exit(main())
