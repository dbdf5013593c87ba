"""How fast ``sanji.evidence.verify`` re-checks a county's whole store, on a process pool vs. in one process.

Run: ``python -m bench.audit_verify [--actions 1000000] [--out bench/results/audit_verify.json]``

0. corpus: a county (``--towns`` x ``--villages`` per town) whose errands live whole lives
   (registered at a village, submitted, accepted at the township, decided there or escalated
   to a county department and decided there, the result sent back down, delivered, often
   closed, with notes, ratings and supervision remarks). The actions are built directly with
   ``protocol.actions`` (not through ``ErrandService`` and no sync: that would take hours for
   a million actions), each writer's actions are sealed with ``protocol.batch.seal`` into its
   stream ``(writer, scope)`` in time order, 200 actions a batch (the default), signed with the
   writer's own key and chained; the county's store is then bulk-inserted: ``batches``,
   ``streams``, ``actions`` (with the status ``project()`` gives) and ``errands`` (with the
   digest ``project()`` gives). Every projection is checked to reject nothing, and the audit
   must find the store clean.
1. ``verify(store, workers=2)`` — the measured value; baseline: ``verify(store, workers=1)``,
   the same checks in a single process, on the same store in the same run.

One JSON object goes to stdout and to ``--out``; progress goes to stderr. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import harness
from bench.figures import quantity, rounded
from bench.machine import ROOT, STORE_PACKAGES
from protocol import actions as a
from protocol import limits
from protocol.batch import GENESIS, frame_hash, open_frame, seal
from protocol.encoding import encode
from protocol.errand import Projection, project
from protocol.hlc import pack
from protocol.topology import Directory
from sanji.demo.population import person
from sanji.evidence import EvidenceReport, verify
from sanji.keys import read_directory, write_directory, write_key
from sanji.layout import Layout, county_layout
from sanji.store import Store, open_database

TARGET_ACTIONS = 1_000_000
TARGET_SECONDS = 30.0
START_MS = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)
DEPARTMENTS = ("县民政局", "县人社局", "县卫健局", "县自然资源局", "县市场监管局")
MATTERS = ("MZ-001", "MZ-002", "MZ-003", "RS-001", "WJ-001", "ZR-001", "SC-001")


def log(message: str) -> None:
    print(f"[bench.audit_verify] {message}", file=sys.stderr, flush=True)


# -- 0. the corpus ---------------------------------------------------------------------------


class Life:
    """Builds one errand's actions, each based on the version before it."""

    def __init__(self, rng: random.Random, errand: str, scope: str, start_ms: int) -> None:
        self.rng = rng
        self.errand = errand
        self.scope = scope
        self.ms = start_ms
        self.version = 0
        self.out: list[a.Action] = []

    def _common(self, node: str, actor: str, role: str, main: bool) -> dict[str, Any]:
        self.ms += self.rng.randint(60_000, 2 * 86_400_000)  # a minute to two days later
        common = {
            "id": f"{self.rng.getrandbits(128):032x}",
            "errand": self.errand,
            "scope": self.scope,
            "node": node,
            "actor": actor,
            "role": role,
            "at": pack(self.ms, self.rng.randint(0, 50)),
            "base": self.version if main else 0,
        }
        return common

    def main(self, cls: type[a.Action], node: str, actor: str, role: str, **fields: Any) -> None:
        self.out.append(cls(**self._common(node, actor, role, True), **fields))
        self.version += 1

    def note(self, cls: type[a.Action], node: str, actor: str, role: str, **fields: Any) -> None:
        self.out.append(cls(**self._common(node, actor, role, False), **fields))


def errand_life(rng: random.Random, directory: Directory, village: str, start_ms: int) -> list[a.Action]:
    town = directory.parent(village)
    county = directory.parent(town) if town else None
    assert town and county
    who = person(rng)
    life = Life(rng, f"{village}-{rng.getrandbits(64):016x}", village, start_ms)
    agent, window, dept = "代办员 李建国", f"窗口{rng.randint(1, 4)} 王丽", rng.choice(DEPARTMENTS)
    life.main(
        a.Register,
        village,
        agent,
        "代办员",
        matter=rng.choice(MATTERS),
        applicant=a.Applicant(name=who.name, id_number=who.id_number, phone=who.phone),
        materials=("身份证复印件", "户口簿复印件", "申请书"),
        receipt=f"{village}-{life.ms // 86_400_000}-{rng.randint(1, 999):03d}",
    )
    life.main(a.HandOff, village, agent, "代办员", to=town, purpose="submit")
    life.main(a.Receive, town, window, "受理窗口", stage_due="2024-04-01")
    path = rng.random()
    if path < 0.1:  # 不予受理, the notice goes back down
        life.main(a.NotAccept, town, window, "受理窗口", reasons="不属于本中心受理范围，请向县人社局申请")
        life.main(a.HandOff, town, window, "受理窗口", to=village, purpose="result")
    elif path < 0.55:  # decided at the township
        life.main(a.Accept, town, window, "受理窗口", errand_kind="承诺件", due="2024-04-15", limit_days=10)
        if rng.random() < 0.5:
            life.main(a.Assign, town, "中心主任 赵刚", "主任", window="民政窗口", handler="王丽")
        if rng.random() < 0.2:
            life.note(a.Note, town, window, "受理窗口", text="已电话告知申请人办理进度")
        life.main(
            a.Decide, town, window, "受理窗口", outcome=rng.choice(("approved", "approved", "refused")), document="镇批"
        )
        life.main(a.HandOff, town, window, "受理窗口", to=village, purpose="result")
    else:  # 上报件: a county department decides
        life.main(a.Accept, town, window, "受理窗口", errand_kind="上报件", due="2024-04-30", limit_days=20)
        life.main(a.HandOff, town, window, "受理窗口", to=county, purpose="escalate", department=dept)
        life.main(a.Receive, county, f"{dept} 审批员", "部门审批")
        if rng.random() < 0.1:
            life.note(a.Supervise, county, "政务办 督查员", "督查", text="请按时办结")
        life.main(a.Decide, county, f"{dept} 审批员", "部门审批", outcome="approved", department=dept, document="县批")
        life.main(a.HandOff, county, f"{dept} 审批员", "部门审批", to=town, purpose="result")
        life.main(a.Receive, town, window, "受理窗口")
        life.main(a.HandOff, town, window, "受理窗口", to=village, purpose="result")
    life.main(a.Receive, village, agent, "代办员")
    life.main(a.Deliver, village, agent, "代办员", confirmed_by=who.name, signature=who.name)
    if rng.random() < 0.7:
        life.main(a.Close, village, agent, "代办员", archive_no=f"档{rng.randint(1, 99999):05d}")
    if rng.random() < 0.5:
        life.note(a.Rate, village, who.name, "申请人", level=rng.choice(("满意", "满意", "基本满意", "不满意")))
    return life.out


def errand_row(errand_id: str, proj: Projection) -> dict[str, Any]:
    """The `errands` row ``Store._recompute`` writes for a projection."""
    s = proj.state
    assert s is not None
    return {
        "id": errand_id,
        "scope": s.scope,
        "matter": s.matter,
        "applicant_name": s.applicant_name,
        "stage": s.stage,
        "holder": s.holder,
        "pending_to": s.pending_to,
        "version": s.version,
        "errand_kind": s.errand_kind,
        "department": s.department,
        "outcome": s.outcome,
        "registered_at": s.registered_at,
        "updated_at": s.updated_at,
        "digest": proj.digest,
        "waiting": len(proj.waiting),
        "receipt": s.receipt,
        "due": s.due,
        "stage_due": s.stage_due,
        "responsible": s.responsible,
        "window": s.window,
        "handler": s.handler,
        "paused": s.stage == "supplement",
        "state": encode(s),
    }


async def build_store(layout: Layout, target_actions: int, seed: int, db_path: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    directory = layout.directory
    villages = layout.ids("village")
    county = next(e.id for e in layout.entries if e.parent is None)
    mark = time.perf_counter()
    by_stream: dict[tuple[str, str], list[a.Action]] = defaultdict(list)
    action_rows: list[tuple[Any, ...]] = []
    errand_rows: list[dict[str, Any]] = []
    total = errands = 0
    project_s = 0.0
    while total < target_actions:
        village = villages[errands % len(villages)]
        acts = errand_life(rng, directory, village, START_MS + rng.randint(0, 180 * 86_400_000))
        errands += 1
        total += len(acts)
        started = time.perf_counter()
        proj = project(acts[0].errand, acts, directory)
        project_s += time.perf_counter() - started
        if proj.rejected or proj.waiting:
            raise AssertionError(f"corpus bug: {acts[0].errand} rejects {proj.rejected} / waits {proj.waiting}")
        errand_rows.append(errand_row(acts[0].errand, proj))
        for act in acts:
            by_stream[(act.node, act.scope)].append(act)
            action_rows.append(
                (act.id, act.errand, act.scope, act.node, a.kind_of(act), act.base, act.at, encode(act), "applied", "")
            )
    build_s = time.perf_counter() - mark
    log(f"built {errands} errands, {total} actions in {build_s:.1f} s (projection {project_s:.1f} s); sealing")
    mark = time.perf_counter()
    batch_rows: list[tuple[Any, ...]] = []
    stream_rows: list[tuple[Any, ...]] = []
    now = time.time()
    for (origin, scope), acts in sorted(by_stream.items()):
        acts.sort(key=lambda x: (x.at, x.id))
        audience = directory.audience(origin, scope)
        prev, seq = GENESIS, 0
        for start in range(0, len(acts), limits.DEFAULT_BATCH_ACTIONS):
            part = acts[start : start + limits.DEFAULT_BATCH_ACTIONS]
            seq += 1
            frame = seal(
                key=layout.keys[origin],
                origin=origin,
                scope=scope,
                audience=audience,
                seq=seq,
                prev=prev,
                created=part[-1].at,
                actions=part,
            )
            prev = frame_hash(frame)
            batch_rows.append((origin, scope, seq, prev, frame, len(frame), now))
        stream_rows.append((origin, scope, seq, prev))
    seal_s = time.perf_counter() - mark
    log(f"sealed {len(batch_rows)} batches in {len(stream_rows)} streams in {seal_s:.1f} s; inserting")

    # The schema comes from the real migrations, the meta rows from Store.start().
    url = f"sqlite:///{db_path}"
    db = await open_database(url)
    try:
        await Store(db, node_id=county, key=layout.keys[county], directory=directory).start()
    finally:
        await db.dispose()
    mark = time.perf_counter()
    con = sqlite3.connect(db_path)
    try:
        with con:
            con.executemany("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?)", batch_rows)
            con.executemany("INSERT INTO streams VALUES (?, ?, ?, ?)", stream_rows)
            con.executemany(
                "INSERT INTO actions (id, errand, scope, node, kind, base, at, body, status, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                action_rows,
            )
            columns = list(errand_rows[0])
            con.executemany(
                f"INSERT INTO errands ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                [tuple(r[c] for c in columns) for r in errand_rows],
            )
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    insert_s = time.perf_counter() - mark
    frame_bytes = sum(r[5] for r in batch_rows)
    return {
        "node": county,
        "towns": len(layout.ids("town")),
        "villages": len(villages),
        "errands": errands,
        "actions": total,
        "streams": len(stream_rows),
        "batches": len(batch_rows),
        "actions_per_batch": rounded(total / len(batch_rows)),
        "frame_bytes": frame_bytes,
        "frame_bytes_per_action": rounded(frame_bytes / total),
        "build_seconds": {
            "actions_and_projection": rounded(build_s),
            "projection_alone": rounded(project_s),
            "seal": rounded(seal_s),
            "insert": rounded(insert_s),
        },
        "_frames": [r[4] for r in batch_rows],
    }


# -- 1. the measurement ------------------------------------------------------------------------


async def measure(config: Path, workers: int) -> EvidenceReport:
    """One verify() of the node ``config`` describes, opened the way the CLI opens it."""
    from sanji.cli.common import node_store
    from sanji.config import load_settings

    async with node_store(load_settings(config)) as (store, _):
        return await verify(store, workers=workers)


def verify_in_fresh_process(config: Path, workers: int) -> dict[str, Any]:
    """Run ``measure`` in a new interpreter: no corpus left in memory, no warm imports; wall time included."""
    cmd = [sys.executable, "-m", "bench.audit_verify", "--measure", str(config), "--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    report["process_wall_seconds"] = rounded(wall)
    # CPU of the whole process tree (the verify process and its pool workers, which it joins):
    # other work on the machine stretches wall time, it hardly changes this.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report["process_tree_cpu_seconds"] = rounded(cpu)
    report["cpu_seconds_per_core"] = rounded(cpu / workers)
    return report


def open_frame_alone(frames: list[bytes], directory: Directory) -> float:
    """Seconds for protocol.batch.open_frame over every frame in this process: the floor of phase 1."""
    started = time.perf_counter()
    for frame in frames:
        open_frame(frame, directory)
    return time.perf_counter() - started


def audit_summary(report: EvidenceReport) -> dict[str, Any]:
    return {
        "seconds": report.seconds,
        "workers": report.workers,
        "ok": report.ok,
        "problems": [str(p) for p in report.problems[:5]],
        "batches_verified": report.batches_verified,
        "actions": report.actions,
        "errands": report.errands,
        "history_rows_compared": report.stored_actions,
        "timings": report.timings,
    }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time (the lower middle one of an even number)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def summary_line(run: dict[str, Any]) -> str:
    return (
        f"{'clean' if run['ok'] else 'PROBLEMS'}: {run['actions']} actions, {run['errands']} errands in "
        f"{run['seconds']} s on {run['workers']} process(es) ({run['process_wall_seconds']} s with interpreter start)"
    )


def write_config(layout: Layout, node: str, workdir: Path, db_path: Path) -> Path:
    """A node config for the corpus, so ``sanji verify store --config`` can be run on a kept one."""
    write_directory(workdir / "directory.json", layout.entries)
    write_key(workdir / "node.key", layout.keys[node])
    config = workdir / "node.toml"
    config.write_text(
        f'[node]\nid = "{node}"\nrole = "county"\nkey_file = "node.key"\ndirectory = "directory.json"\n'
        f'db = "sqlite:///{db_path}"\n',
        encoding="utf-8",
    )
    return config


def stored_frames(db_path: Path) -> list[bytes]:
    con = sqlite3.connect(db_path)
    try:
        return [bytes(r[0]) for r in con.execute("SELECT frame FROM batches ORDER BY origin, scope, seq")]
    finally:
        con.close()


def run(
    actions: int,
    *,
    seed: int,
    workers: int,
    towns: int,
    villages: int,
    workdir: Path,
    reuse: bool = False,
    repeats: int = 1,
) -> dict[str, Any]:
    db_path = workdir / "county.db"
    config = workdir / "node.toml"
    if reuse:  # a corpus kept by an earlier --keep run: measure again without building it
        corpus = json.loads((workdir / "corpus.json").read_text(encoding="utf-8"))
        directory = read_directory(workdir / "directory.json")
        frames = stored_frames(db_path)
    else:
        layout = county_layout(towns, villages)
        directory = layout.directory
        corpus = asyncio.run(build_store(layout, actions, seed, db_path))
        corpus["database_bytes"] = db_path.stat().st_size
        config = write_config(layout, corpus["node"], workdir, db_path)
        frames = corpus.pop("_frames")
        (workdir / "corpus.json").write_text(json.dumps(corpus, ensure_ascii=False), encoding="utf-8")
    log(f"open_frame alone over {len(frames)} frames")
    frame_floor = open_frame_alone(frames, directory)
    del frames
    parallel_runs: list[dict[str, Any]] = []
    single_runs: list[dict[str, Any]] = []
    for i in range(repeats):  # alternated, so a burst of other work on the machine hits both alike
        log(f"[{i + 1}/{repeats}] verify on {workers} processes (fresh interpreter)")
        parallel_runs.append(verify_in_fresh_process(config, workers))
        log(summary_line(parallel_runs[-1]))
        log(f"[{i + 1}/{repeats}] baseline: verify in a single process (fresh interpreter)")
        single_runs.append(verify_in_fresh_process(config, 1))
        log(summary_line(single_runs[-1]))
    if not all(r["ok"] for r in parallel_runs + single_runs):
        raise AssertionError(f"the corpus must audit clean: {[r['problems'] for r in parallel_runs + single_runs]}")
    parallel = median_run(parallel_runs)
    single = median_run(single_runs)
    n = corpus["actions"]
    return {
        "corpus": corpus,
        "measurements": {
            "verify_seconds": quantity(
                parallel["seconds"],
                "s",
                single["seconds"],
                "s, the same verify() in one process",
                speedup=rounded(single["seconds"] / parallel["seconds"]),
                workers=workers,
            ),
            "verify_rate": quantity(
                n / parallel["seconds"], "actions/s", n / single["seconds"], "actions/s in one process"
            ),
            "target": {
                "actions": TARGET_ACTIONS,
                "seconds": TARGET_SECONDS,
                "measured_actions": n,
                "measured_seconds": parallel["seconds"],
                "seconds_scaled_to_target": rounded(parallel["seconds"] * TARGET_ACTIONS / n),
                "met": parallel["seconds"] * TARGET_ACTIONS / n <= TARGET_SECONDS,
            },
            "where_the_time_goes": {
                "open_frame_alone_one_process_s": rounded(frame_floor),
                "projection_alone_one_process_s": corpus["build_seconds"]["projection_alone"],
                "parallel": parallel["timings"],
                "single": single["timings"],
            },
        },
        "runs": {"parallel": parallel, "single": single},
        "samples_seconds": {
            "parallel": [r["seconds"] for r in parallel_runs],
            "single": [r["seconds"] for r in single_runs],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(
        "audit_verify",
        __doc__,
        seed=2024,
        seed_help="seed of the synthetic corpus (default 2024)",
        keep="keep the temporary directory (the county database)",
    )
    parser.add_argument("--actions", type=int, default=TARGET_ACTIONS, help="signed actions in the store (1,000,000)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the measured run (default 2)")
    parser.add_argument("--towns", type=int, default=4, help="townships in the county (default 4)")
    parser.add_argument("--villages", type=int, default=8, help="villages per township (default 8)")
    parser.add_argument("--repeats", type=int, default=1, help="measure each way N times; the median counts")
    parser.add_argument("--reuse", type=Path, help="measure again on a directory kept by an earlier --keep run")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: verify one node, print JSON
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(audit_summary(asyncio.run(measure(args.measure, args.workers))), ensure_ascii=False))
        return 0
    if args.actions < 1 or args.workers < 1 or args.repeats < 1:
        parser.error("--actions, --workers and --repeats must be at least 1")
    this_run = harness.Run("audit_verify")
    workdir = args.reuse or Path(tempfile.mkdtemp(prefix="sanji-bench-audit-"))
    try:
        body = run(
            args.actions,
            seed=args.seed,
            workers=args.workers,
            towns=args.towns,
            villages=args.villages,
            workdir=workdir,
            reuse=args.reuse is not None,
            repeats=args.repeats,
        )
    finally:
        if args.keep or args.reuse:
            log(f"kept {workdir} (sanji verify store --config {workdir / 'node.toml'})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return this_run.publish(body, args.out, packages=STORE_PACKAGES, tmpdir=str(workdir.parent))


if __name__ == "__main__":
    sys.exit(main())
