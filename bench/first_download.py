"""The first download of a new village laptop: is it linear in what the village must hold? (issue 15)

Run: ``python -m bench.first_download [--quick] [--out bench/results/first_download.json] [--seed 1] [--keep]``

1. **Townships that hold errands for several villages**, made by really running them (``bench.corpus``: real
   ``Store``s on SQLite, staff moving every errand through its whole life with ``ErrandService``, every child
   syncing with ``sync_once``). In township T01 village V01 holds no errand, V02, V03, … hold the measured sizes
   (N errands each), and the last villages hold other villages' errands: for each measured village, every
   errand of T01 not its own is one it must not download. Township T02 holds one village of the middle size
   (its V02) beside **far fewer** other villages' errands, for the check that others' errands do not count.
   Every village registers at the same pace, so its batches are cut alike whatever its total. Every errand at
   every node ends delivered (the build checks it).
2. Each township's store is then served by a real ``sanji town serve`` process on loopback (its own config,
   key and directory file; logins off, no parent link, as ``bench.many_nodes`` serves its hub).
3. For each village a **brand-new laptop** — a fresh, migrated SQLite store holding nothing, with the village's
   signing key, as a village restored onto a new machine from its key alone (a replacement enrolled with a
   token gets a new key, and then takes its errands back from the parent the same way: docs/architecture.md,
   "Enrollment") — runs the real ``sync_once`` over ``HttpTransport`` with the default page budget, exchange
   after exchange, as ``SyncDriver`` does (at once again while an exchange moved batches), until one moves
   nothing. Measured: request and response body bytes, requests, exchanges, wall and CPU seconds of this
   (the laptop's) process over the exchanges and of the township's process, batches, actions and errands
   received, and the laptop's store size. Then the laptop must hold **exactly** its village's errands, each
   with the township's digest, and no other village's.

Per size, against the smallest in the same run: bytes down, CPU seconds and wall seconds per errand held;
beside each, the bytes of the village's own batches held at the township (what it cannot download less of).
Linear means the marginal cost per errand (above the empty village's fixed cost) stays the same from the
smaller sizes to the larger, and T02's village (few others) costs per byte of its own batches what T01's of
the same size (many others) does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import harness, nodes
from bench.corpus import Corpus, build_corpus
from bench.figures import figure, rounded
from protocol.session import DEFAULT_BUDGET_BYTES
from protocol.stream import StreamKey
from protocol.topology import TOWN
from sanji.context import NodeContext
from sanji.layout import county_layout
from sanji.store import Store, open_database
from sanji.sync.driver import sync_once
from sanji.sync.transport import HttpTransport

MAX_EXCHANGES = 50
OTHER_VILLAGES = 2  # villages of T01 holding the others' errands; T02 has as many villages as T01
LINEAR_TOLERANCE = 0.25  # the largest size's marginal cost per errand may exceed the smallest's by this much
PAGING_TOLERANCE = 2.0  # a page of a 16× longer stream may cost twice as much (quadratic: 16×)
OTHERS_TOLERANCE = 0.10  # T01's village (many others) may cost this much more than T02's (few others)


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]  # errands of the measured villages of T01 (ascending)
    others: int  # errands of T01's other villages (besides the measured ones)
    others_few: int  # errands of T02's other villages (besides its one measured village): far fewer than T01's
    long_streams: tuple[int, ...] = ()  # batches of the one long stream paged out at the parent (``paging``)


FULL = Plan(sizes=(50, 200, 800), others=300, others_few=30, long_streams=(1000, 4000, 16000))
QUICK = Plan(sizes=(10, 40, 160), others=60, others_few=10, long_streams=(1000, 4000))
SMALL_BATCH = 500  # bytes: a batch of an action or two, as a village syncing after every change seals them


def log(message: str) -> None:
    print(f"[bench.first_download] {message}", file=sys.stderr, flush=True)


def villages_of(plan: Plan) -> dict[str, dict[str, int]]:
    """Errands per village, by township: T01 holds an empty village, the sizes and its others; T02 an empty
    village, the middle size and a few others."""
    per_town = 1 + len(plan.sizes) + OTHER_VILLAGES
    t01 = {"T01V01": 0} | {f"T01V{i + 2:02d}": n for i, n in enumerate(plan.sizes)}
    t02 = {"T02V01": 0, "T02V02": plan.sizes[len(plan.sizes) // 2]}
    rest_t01 = [f"T01V{i:02d}" for i in range(len(t01) + 1, per_town + 1)]
    rest_t02 = [f"T02V{i:02d}" for i in range(len(t02) + 1, per_town + 1)]
    for rest, total, town in ((rest_t01, plan.others, t01), (rest_t02, plan.others_few, t02)):
        for i, village in enumerate(rest):
            town[village] = total // len(rest) + (1 if i < total % len(rest) else 0)
    return {"T01": t01, "T02": t02}


def village_holdings(db: Path, village: str) -> dict[str, int]:
    """What a township's store holds for one village's subtree: its streams' batches and bytes, its errands
    and their actions (errand ids begin with the registering village's id)."""
    with sqlite3.connect(db) as conn:
        batches, frame_bytes = conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM batches WHERE scope = ?", (village,)
        ).fetchone()
        errands = conn.execute("SELECT count(*) FROM errands WHERE scope = ?", (village,)).fetchone()[0]
        actions = conn.execute("SELECT count(*) FROM actions WHERE scope = ?", (village,)).fetchone()[0]
        all_errands = conn.execute("SELECT count(*) FROM errands").fetchone()[0]
        all_bytes = conn.execute("SELECT coalesce(sum(size), 0) FROM batches").fetchone()[0]
    return {
        "batches": int(batches),
        "frame_bytes": int(frame_bytes),
        "errands": int(errands),
        "actions": int(actions),
        "township_errands": int(all_errands),
        "township_frame_bytes": int(all_bytes),
    }


def store_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


async def township_digests(corpus: Corpus, town: str) -> dict[str, str]:
    store, db = await corpus.open_store(town)
    try:
        return await store.digests()
    finally:
        await db.dispose()


async def start_township(corpus: Corpus, town: str, workdir: Path) -> nodes.Served:
    """``sanji town serve`` on the township's store as the build left it (its own config, key, directory)."""
    key, entries = corpus.layout.keys[town], corpus.layout.entries
    node = nodes.Node(town, TOWN, key, entries, folder=f"serve-{town}", db_url=corpus.db_url(town), logins=False)
    return await nodes.serve(workdir, node)


async def first_download(
    corpus: Corpus, village: str, url: str, town_pid: int, expected: dict[str, str], workdir: Path
) -> dict[str, Any]:
    """A brand-new laptop of ``village`` exchanges with its township until an exchange moves nothing."""
    path = workdir / f"laptop-{village}.db"
    db = await open_database(f"sqlite:///{path}")
    transport = HttpTransport(url, timeout=300.0)
    exchanges: list[dict[str, Any]] = []
    try:
        store = Store(db, node_id=village, key=corpus.layout.keys[village], directory=corpus.directory)
        await store.start()
        context = NodeContext(store, None)  # as a node's driver does (the catalogue etc. come down in the reply)
        await context.load()
        town_cpu0 = nodes.cpu_seconds(town_pid)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(MAX_EXCHANGES):
            began = time.perf_counter()
            report = await sync_once(store, transport, context=context)
            exchanges.append(
                {
                    "seconds": rounded(time.perf_counter() - began),
                    "requests": report.requests,
                    "pulled": report.pulled,
                    "pushed": report.pushed,
                    "refused": report.refused,
                    "bytes_up": report.bytes_sent,
                    "bytes_down": report.bytes_received,
                }
            )
            if not (report.pulled or report.pushed):
                break  # SyncDriver goes again at once only while an exchange moved batches
        else:
            raise RuntimeError(f"{village}: still moving batches after {MAX_EXCHANGES} exchanges")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        town_cpu = nodes.cpu_seconds(town_pid) - town_cpu0
        held = await store.digests()
    finally:
        await transport.close()
        await db.dispose()
    with sqlite3.connect(path) as conn:
        actions = int(conn.execute("SELECT count(*) FROM actions").fetchone()[0])
        foreign_actions = int(conn.execute("SELECT count(*) FROM actions WHERE scope != ?", (village,)).fetchone()[0])
        batches = int(conn.execute("SELECT count(*) FROM batches").fetchone()[0])
    others = sorted(e for e in held if not e.startswith(f"{village}-"))
    differ = sorted(e for e, d in expected.items() if held.get(e) != d)
    return {
        "exchanges": len(exchanges),
        "exchanges_that_moved": sum(1 for e in exchanges if e["pulled"] or e["pushed"]),
        "requests": transport.requests,
        "bytes_down": sum(e["bytes_down"] for e in exchanges),
        "bytes_up": sum(e["bytes_up"] for e in exchanges),
        "batches_pulled": sum(e["pulled"] for e in exchanges),
        "batches_pushed": sum(e["pushed"] for e in exchanges),
        "refused": sum(e["refused"] for e in exchanges),
        "wall_s": rounded(wall),
        "cpu_s": rounded(cpu),
        "township_cpu_s": rounded(town_cpu),
        "errands_held": len(held),
        "actions_held": actions,
        "batches_held": batches,
        "store_bytes": store_bytes(path),
        "errands_expected": len(expected),
        "holds_exactly_its_errands": not others and not differ and set(held) == set(expected),
        "digests_differ": len(differ),
        "other_villages_errands_held": len(others),
        "other_scopes_actions_held": foreign_actions,
        "per_exchange": exchanges,
    }


def per_errand(sample: dict[str, Any], empty: dict[str, Any]) -> dict[str, float]:
    """Cost per errand held, whole and marginal (above the empty village's fixed cost of a first exchange)."""
    n = max(sample["errands_held"], 1)
    return {
        "bytes_down_per_errand": sample["bytes_down"] / n,
        "bytes_up_per_errand": sample["bytes_up"] / n,
        "cpu_s_per_errand": sample["cpu_s"] / n,
        "wall_s_per_errand": sample["wall_s"] / n,
        "requests_per_errand": sample["requests"] / n,
        "marginal_bytes_down_per_errand": (sample["bytes_down"] - empty["bytes_down"]) / n,
        "marginal_cpu_s_per_errand": (sample["cpu_s"] - empty["cpu_s"]) / n,
        "marginal_wall_s_per_errand": (sample["wall_s"] - empty["wall_s"]) / n,
        "marginal_township_cpu_s_per_errand": (sample["township_cpu_s"] - empty["township_cpu_s"]) / n,
        "bytes_down_over_frame_bytes": sample["bytes_down"] / max(sample["township"]["frame_bytes"], 1),
    }


def linear_fit(points: list[tuple[float, float]]) -> dict[str, float]:
    """Least squares y = a + b·x, and the largest residual relative to the largest y (a curve, not a line,
    leaves residuals of the same sign at both ends and the other in the middle)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    a = my - b * mx
    top = max(abs(y) for y in ys) or 1.0
    worst = max(abs(y - (a + b * x)) / top for x, y in points)
    return {"intercept": rounded(a), "slope_per_errand": rounded(b), "max_relative_residual": rounded(worst)}


def against(name: str, value: float, baseline: float, unit: str, allowed: float | None) -> dict[str, Any]:
    """A figure measured against its baseline from the same run (the smallest size, the fewer others, the
    shortest stream): met while within ``allowed`` times it; no target where ``allowed`` is None."""
    target = None if allowed is None else rounded(baseline * allowed)
    return {"figure": name, **figure(value, unit, target=target, baseline=baseline)}


async def measure_town(
    corpus: Corpus, town: str, villages: list[str], workdir: Path
) -> tuple[dict[str, dict[str, Any]], float]:
    """Serve ``town`` and download each of ``villages`` onto a new laptop, one after the other."""
    digests = await township_digests(corpus, town)
    db = corpus.workdir / f"{town}.db"
    holdings = {v: village_holdings(db, v) for v in villages}
    township = await start_township(corpus, town, workdir)
    url = township.url
    out: dict[str, dict[str, Any]] = {}
    began = time.perf_counter()
    try:
        for village in villages:
            expected = {e: d for e, d in digests.items() if e.startswith(f"{village}-")}
            log(f"{village}: a new laptop's first download ({len(expected)} errands) from {town} at {url}")
            try:
                sample = await first_download(corpus, village, url, township.pid, expected, workdir)
            except Exception:
                log(f"{town}'s log:\n{nodes.tail(township.log_path)}")
                raise
            out[village] = {**sample, "township": holdings[village]}
            log(
                f"{village}: {sample['errands_held']} errands, {sample['bytes_down']:,} bytes down in "
                f"{sample['requests']} requests, {sample['cpu_s']:.2f} CPU-s, {sample['wall_s']:.2f} s; "
                f"exact: {sample['holds_exactly_its_errands']}"
            )
    finally:
        await nodes.stop(township)
    return out, time.perf_counter() - began


async def paging(batches: int, workdir: Path) -> dict[str, Any]:
    """A township's cost of paging out one long stream of small batches (a village that synced after every
    change for years), page after page as a new laptop's pulls ask: CPU seconds of ``Store.frames_after``.

    The rows are written straight into a migrated store (``frames_after`` reads frames and sizes, never opens
    them); the corpus above cuts far fewer, larger batches, so its streams are too short to show this."""
    layout = county_layout(1, 1)
    path = workdir / f"paging-{batches}.db"
    db = await open_database(f"sqlite:///{path}")
    try:
        store = Store(db, node_id="T01", key=layout.keys["T01"], directory=layout.directory)
        await store.start()
        with sqlite3.connect(path) as conn:
            conn.executemany(
                "INSERT INTO batches (origin, scope, seq, hash, frame, size, received_at) VALUES (?, ?, ?, ?, ?, ?, 0)",
                [("T01V01", "T01V01", i, bytes(32), bytes(SMALL_BATCH), SMALL_BATCH) for i in range(1, batches + 1)],
            )
        key = StreamKey("T01V01", "T01V01")
        cursor = pages = 0
        cpu = 0.0
        while True:
            began = time.process_time()
            frames, more = await store.frames_after({key: cursor}, DEFAULT_BUDGET_BYTES)
            cpu += time.process_time() - began
            cursor, pages = cursor + len(frames), pages + 1
            if not more:
                break
        if cursor != batches:
            raise RuntimeError(f"paged out {cursor} of {batches} batches")
    finally:
        await db.dispose()
    return {"batches": batches, "pages": pages, "cpu_s": rounded(cpu), "cpu_ms_per_page": rounded(cpu * 1000 / pages)}


async def run(plan: Plan, seed: int, workdir: Path) -> dict[str, Any]:
    plan_by_town = villages_of(plan)
    every = {v: n for town in plan_by_town.values() for v, n in town.items()}
    total = sum(every.values())
    log(f"building 2 townships by running them: {total} errands ({plan_by_town})")
    corpus = await build_corpus(
        workdir / "corpus",
        total,
        seed=seed,
        towns=2,
        villages_per_town=1 + len(plan.sizes) + OTHER_VILLAGES,
        workers=2,
        village_errands=every,
    )
    log(f"built in {corpus.seconds:.0f} s")
    t01 = ["T01V01", *(f"T01V{i + 2:02d}" for i in range(len(plan.sizes)))]
    t02 = ["T02V01", "T02V02"]
    samples, t01_s = await measure_town(corpus, "T01", t01, workdir)
    few, t02_s = await measure_town(corpus, "T02", t02, workdir)

    empty = samples["T01V01"]
    sizes = []
    for village, n in zip(t01[1:], plan.sizes, strict=True):
        sample = samples[village]
        sizes.append(
            {
                "village": village,
                "errands": n,
                **sample,
                **{k: rounded(v) for k, v in per_errand(sample, empty).items()},
            }
        )
    mid = sizes[len(sizes) // 2]
    other = {"village": "T02V02", "errands": plan.sizes[len(plan.sizes) // 2], **few["T02V02"]}
    other.update({k: rounded(v) for k, v in per_errand(few["T02V02"], few["T02V01"]).items()})

    pages = [await paging(n, workdir) for n in plan.long_streams]
    if pages:
        log("parent paging: " + ", ".join(f"{p['batches']} batches {p['cpu_ms_per_page']} CPU-ms/page" for p in pages))
    first, last = sizes[0], sizes[-1]
    marginal_growth = last["marginal_bytes_down_per_errand"] / first["marginal_bytes_down_per_errand"]
    cpu_growth = last["marginal_cpu_s_per_errand"] / max(first["marginal_cpu_s_per_errand"], 1e-9)
    # Many others' errands (T01) against few (T02), per byte of the village's own batches: 1 if they do not count.
    others_ratio = mid["bytes_down_over_frame_bytes"] / other["bytes_down_over_frame_bytes"]
    exact = all(s["holds_exactly_its_errands"] for s in [*samples.values(), *few.values()])
    verdict = {
        "every_laptop_holds_exactly_its_village": exact,
        "no_other_village_errand_downloaded": all(
            s["other_villages_errands_held"] == 0 for s in [*samples.values(), *few.values()]
        ),
        "bytes_marginal_growth_largest_over_smallest": rounded(marginal_growth),
        "cpu_marginal_growth_largest_over_smallest": rounded(cpu_growth),
        "bytes_linear": marginal_growth <= 1 + LINEAR_TOLERANCE,
        "cpu_linear": cpu_growth <= 1 + LINEAR_TOLERANCE,
        "others_bytes_ratio": rounded(others_ratio),
        "others_do_not_count": abs(others_ratio - 1) <= OTHERS_TOLERANCE,
        "parent_paging_growth": rounded(pages[-1]["cpu_ms_per_page"] / pages[0]["cpu_ms_per_page"]) if pages else None,
        "tolerances": {"linear": LINEAR_TOLERANCE, "others": OTHERS_TOLERANCE, "paging": PAGING_TOLERANCE},
    }
    fits = {
        "bytes_down": linear_fit([(0, empty["bytes_down"])] + [(s["errands_held"], s["bytes_down"]) for s in sizes]),
        "cpu_s": linear_fit([(0, empty["cpu_s"])] + [(s["errands_held"], s["cpu_s"]) for s in sizes]),
        "requests": linear_fit([(0, empty["requests"])] + [(s["errands_held"], s["requests"]) for s in sizes]),
        "township_cpu_s": linear_fit(
            [(0, empty["township_cpu_s"])] + [(s["errands_held"], s["township_cpu_s"]) for s in sizes]
        ),
    }
    figures: list[dict[str, Any]] = []
    for s in sizes:
        n = s["errands"]
        figures += [
            against(
                f"bytes_down_per_errand_{n}",
                s["marginal_bytes_down_per_errand"],
                first["marginal_bytes_down_per_errand"],
                "bytes/errand",
                1 + LINEAR_TOLERANCE,
            ),
            against(
                f"cpu_ms_per_errand_{n}",
                s["marginal_cpu_s_per_errand"] * 1000,
                first["marginal_cpu_s_per_errand"] * 1000,
                "CPU-ms/errand",
                1 + LINEAR_TOLERANCE,
            ),
            against(
                f"wall_ms_per_errand_{n}",
                s["marginal_wall_s_per_errand"] * 1000,
                first["marginal_wall_s_per_errand"] * 1000,
                "ms/errand",
                None,
            ),
        ]
    figures += [
        against(
            f"bytes_down_over_own_batches_{mid['errands']}_many_others",
            mid["bytes_down_over_frame_bytes"],
            other["bytes_down_over_frame_bytes"],
            "bytes down ÷ its batches' bytes",
            1 + OTHERS_TOLERANCE,
        ),
        *(
            against(
                f"parent_cpu_ms_per_page_{p['batches']}_batches",
                p["cpu_ms_per_page"],
                pages[0]["cpu_ms_per_page"],
                "CPU-ms/page",
                PAGING_TOLERANCE,
            )
            for p in pages
        ),
        {
            "figure": "other_villages_errands_held",
            **figure(
                sum(s["other_villages_errands_held"] for s in [*samples.values(), *few.values()]),
                "errands",
                target=0,
                baseline=None,
            ),
        },
    ]
    return {
        "plan": {
            "sizes": list(plan.sizes),
            "others": plan.others,
            "others_few": plan.others_few,
            "long_streams": list(plan.long_streams),
        },
        "villages": plan_by_town,
        "corpus": {
            "errands": corpus.errands,
            "escalated": corpus.escalated,
            "actions_by_role": dict(corpus.actions_by_role),
            "build_seconds": rounded(corpus.seconds),
        },
        "empty_village": {"T01": empty, "T02": few["T02V01"]},
        "sizes": sizes,
        "fewer_others": other,
        "linear_fit": fits,
        "parent_paging": pages,
        "verdict": verdict,
        "figures": figures,
        "phase_seconds": {"build": rounded(corpus.seconds), "T01": rounded(t01_s), "T02": rounded(t02_s)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(
        "first_download", __doc__, quick=f"sizes {QUICK.sizes}, fewer others: a few minutes", seed=1
    )
    parser.add_argument("--sizes", default="", help="comma-separated errands of the measured villages")
    parser.add_argument("--others", type=int, default=-1, help="errands of T01's other villages")
    parser.add_argument("--others-few", type=int, default=-1, help="errands of T02's other villages")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.sizes:
        plan = dataclasses.replace(plan, sizes=tuple(sorted(int(s) for s in args.sizes.split(","))))
    if args.others >= 0:
        plan = dataclasses.replace(plan, others=args.others)
    if args.others_few >= 0:
        plan = dataclasses.replace(plan, others_few=args.others_few)
    if len(plan.sizes) < 2 or min(plan.sizes) < 1:
        parser.error("--sizes needs at least two sizes of at least 1 errand")
    this_run = harness.Run("first_download")
    with this_run.scratch("sanji-first-", keep=args.keep) as workdir:
        body = asyncio.run(run(plan, args.seed, workdir))
    return this_run.publish(body, args.out, head={"quick": args.quick, "seed": args.seed})


if __name__ == "__main__":
    raise SystemExit(main())
