"""What ``blobs_wanted()`` and ``attachment_errands()`` cost on a county store with thousands of attachments.

A county store takes ``--errands`` errands from a village's signed frames, each registered with one attach
action (its own scan), and holds every scan whole but ``--missing`` of them (an exchange at rest wants few);
then ``blobs_wanted()`` (every sync exchange) and ``attachment_errands()`` (every download) are timed, medians
of ``--runs`` calls. Only the store's public calls are used, so the same script times a tree before the kept
attachment rows (migration 0030) and after:

    PYTHONPATH=<tree> .venv/bin/python -m bench.blobs_wanted --errands 5000 [--pg]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from protocol.actions import Action, Applicant, Attach, Register
from protocol.batch import GENESIS, frame_hash, seal
from protocol.hlc import pack
from sanji.layout import county_layout
from sanji.store import Store, open_database

VILLAGE = "T01V01"
PER_FRAME = 40  # actions a frame: 20 errands, registered and attached


def scan(n: int) -> bytes:
    return f"扫描件 {n:06d} ".encode() * 8


def actions(n: int, t0: int) -> list[Action]:
    errand, data = f"E{n:06d}", scan(n)
    register = Register(
        id=f"r{n:06d}",
        errand=errand,
        scope=VILLAGE,
        node=VILLAGE,
        actor="李代办",
        role="代办员",
        at=pack(t0, 2 * n),
        matter="低保",
        applicant=Applicant(name=f"张三{n}"),
    )
    attach = Attach(
        id=f"x{n:06d}",
        errand=errand,
        scope=VILLAGE,
        node=VILLAGE,
        actor="李代办",
        role="代办员",
        at=pack(t0, 2 * n + 1),
        blob=hashlib.sha256(data).hexdigest(),
        size=len(data),
        name="扫描件.jpg",
    )
    return [register, attach]


@asynccontextmanager
async def database(pg: bool) -> AsyncIterator[str]:
    if pg:
        from devtools.throwaway_pg import throwaway_database

        async with throwaway_database("sanji_bench") as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as where:
            yield f"sqlite:///{Path(where) / 'county.db'}"


async def main(errands: int, runs: int, pg: bool, missing: int) -> None:
    layout = county_layout(1, 1)
    t0 = int(time.time() * 1000)
    async with database(pg) as url:
        db = await open_database(url)
        try:
            store = Store(db, node_id="C", key=layout.keys["C"], directory=layout.directory)
            await store.start()
            every = [a for n in range(errands) for a in actions(n, t0)]
            frames, prev = [], GENESIS
            for seq, i in enumerate(range(0, len(every), PER_FRAME), start=1):
                frame = seal(
                    key=layout.keys[VILLAGE],
                    origin=VILLAGE,
                    scope=VILLAGE,
                    audience=layout.directory.audience(VILLAGE, VILLAGE),
                    seq=seq,
                    prev=prev,
                    created=pack(t0, 10 * errands + seq),
                    actions=every[i : i + PER_FRAME],
                )
                frames.append(frame)
                prev = frame_hash(frame)
            began = time.perf_counter()
            for i in range(0, len(frames), 50):
                await store.receive(frames[i : i + 50], peer="T01")
            filled = time.perf_counter() - began
            for n in range(missing, errands):
                await store.put_blob(scan(n))
            wanted = await store.blobs_wanted()
            assert len(wanted) == min(missing, errands), len(wanted)
            probe = hashlib.sha256(scan(errands // 2)).hexdigest()
            assert await store.attachment_errands(probe) == [f"E{errands // 2:06d}"]

            # Wall time and the process's CPU time (every thread's: aiosqlite reads in its own), the CPU less
            # swayed by other work on a shared machine.
            async def errands_of_probe() -> list[str]:
                return await store.attachment_errands(probe)

            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "blobs_wanted": store.blobs_wanted,
                "attachment_errands": errands_of_probe,
            }
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
            for _ in range(runs):
                for name, call in calls.items():
                    wall, cpu = time.perf_counter(), time.process_time()
                    await call()
                    times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
            kind = "PostgreSQL" if pg else "SQLite"
            print(f"{kind}: {errands} errands, an attach action each ({len(wanted)} not held), taken in {filled:.1f} s")
            for name, spent in times.items():
                wall_ms = statistics.median(w for w, _ in spent) * 1000
                cpu_ms = statistics.median(c for _, c in spent) * 1000
                print(f"  {name}: median {wall_ms:.2f} ms wall, {cpu_ms:.2f} ms CPU over {runs} calls")
        finally:
            await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errands", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--missing", type=int, default=50, help="attachments named but not held")
    parser.add_argument("--pg", action="store_true", help="a throwaway PostgreSQL database instead of SQLite")
    args = parser.parse_args()
    asyncio.run(main(args.errands, args.runs, args.pg, args.missing))
