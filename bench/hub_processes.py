"""Hub processes on one PostgreSQL database, each taking some townships' pushes, all at the same time.

A push locks only the streams and errands it touches (``Database.write_touching``), so pushes of different
townships taken by different hub processes are applied at once (issue 15): this measures it, for
``bench.apply_rate`` (``postgresql.hub_processes``), and runs the processes the tests check
(tests/store/test_push_locks.py). Each process is ``python -m bench.hub_processes worker CORPUS URL TOWNS
START ORIGINS``: it opens the county's store (migrated already), waits for the common start time, receives
the recorded pushes of ``TOWNS`` in order (``ORIGINS``: "*", or "town"/"village" for only those frames) and
prints one JSON line: each frame's status, how its pushes were locked, its wall and CPU seconds.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from bench.profile_apply import Saved
from protocol.batch import open_frame
from protocol.topology import COUNTY, Directory
from sanji.keys import NodeKey
from sanji.store import Store, open_database

ROOT = Path(__file__).resolve().parents[1]
START_AFTER = 3.0  # seconds for every process to open its store before the common start
WORKER_TIMEOUT = 300.0  # seconds a process may take: a deadlock fails the run instead of hanging it


async def county(saved: Saved, url: str, *, migrate: bool = True) -> Store:
    """The county's store at ``url``, started (the caller disposes of ``store.db``)."""
    db = await open_database(url, role=COUNTY, migrate=migrate)
    key = NodeKey.from_raw(saved.signing, saved.sealing)
    store = Store(db, node_id=saved.county, key=key, directory=Directory(saved.entries))
    try:
        await store.start()
    except BaseException:
        await db.dispose()
        raise
    return store


async def worker(saved: Saved, url: str, towns: list[str], start_at: float, origins: str) -> dict[str, Any]:
    store = await county(saved, url, migrate=False)
    try:
        directory = store.directory
        pushes = []
        for town, frames in saved.pushes:
            if town in towns:
                if origins != "*":
                    frames = [f for f in frames if directory.role(open_frame(f, directory).origin) == origins]
                if frames:
                    pushes.append((town, frames))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        started, cpu = time.perf_counter(), time.process_time()
        statuses: list[str] = []
        actions = 0
        for town, frames in pushes:
            outcome = await store.receive(frames, peer=town)
            statuses.extend(r.status for r in outcome.results)
            actions += outcome.applied_actions
        return {
            "statuses": statuses,
            "push_locks": dict(store.push_locks),
            "actions": actions,
            "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu,
            "ended_at": time.time(),
        }
    finally:
        await store.db.dispose()


async def run_processes(
    corpus: Path, url: str, towns_each: list[list[str]], origins: list[str] | None = None
) -> tuple[list[dict[str, Any]], float]:
    """One process per entry of ``towns_each``, all starting at once; their reports, and the wall seconds
    from the common start to the last one's end."""
    start_at = time.time() + START_AFTER
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.hub_processes", "worker", str(corpus), url, ",".join(towns),
            str(start_at), origin, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for towns, origin in zip(towns_each, origins or ["*"] * len(towns_each), strict=True)
    ]  # fmt: skip
    reports = []
    try:
        for proc in procs:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=WORKER_TIMEOUT)
            if proc.returncode != 0:
                raise RuntimeError(f"a hub process failed ({proc.returncode}): {err.decode()[-2000:]}")
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    return reports, max(r["ended_at"] for r in reports) - start_at


async def measure(saved: Saved, url: str, workdir: Path) -> dict[str, Any]:
    """Every township's pushes taken by a hub process of its own, on the empty county database at ``url``."""
    path = workdir / "hub-processes-corpus.msgpack"
    path.write_bytes(msgspec.msgpack.encode(saved))
    store = await county(saved, url)  # migrated and started once, as before the workers start
    await store.db.dispose()
    towns = sorted({town for town, _ in saved.pushes})
    reports, seconds = await run_processes(path, url, [[town] for town in towns])
    store = await county(saved, url, migrate=False)
    try:
        digests = await store.digests()
    finally:
        await store.db.dispose()
    actions = sum(r["actions"] for r in reports)
    return {
        "what": "each township's pushes taken by a hub process of its own, all at once, on one database",
        "processes": len(towns),
        "actions_per_s": round(actions / seconds, 1),
        "seconds": round(seconds, 3),
        "process_cpu_seconds": [round(r["cpu_seconds"], 3) for r in reports],
        "frames_stored": sum(r["statuses"].count("stored") for r in reports),
        "push_locks": [r["push_locks"] for r in reports],
        "digests": digests,
    }


def _main(argv: list[str]) -> int:
    if len(argv) != 6 or argv[0] != "worker":
        print(__doc__, file=sys.stderr)
        return 2
    _, corpus, url, towns, start_at, origins = argv
    saved = msgspec.msgpack.decode(Path(corpus).read_bytes(), type=Saved)
    report = asyncio.run(worker(saved, url, towns.split(","), float(start_at), origins))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
