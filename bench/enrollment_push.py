"""One push received at the county just after a village is enrolled (until this change every enrollment
made every errand's next batch be projected in full).

Run: ``python -m bench.enrollment_push [--errands 2000] [--history 0] [--runs 1]``; run as a file with
``PYTHONPATH`` naming another checkout, it times that checkout's store (``rule`` says which basis it keeps).

A fresh county store (an SQLite file in a temporary folder) takes, from village T01V01, ``--errands``
errands registered and submitted, and township T01's receipt of each (``--history N``: and N assignments
of each). Then a new village is enrolled under T01 (``Store.use_directory`` with one more node) and one
push from T01 brings the next step of every errand (承办, ``Assign``). The CPU seconds of that ``receive``
call (``time.process_time``) are printed, one JSON line per run, with how many errands were folded onto
their kept rows rather than projected again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from protocol import errand as errand_rules
from protocol.actions import Action, Applicant, Assign, HandOff, Receive, Register
from protocol.batch import GENESIS, frame_hash, seal
from protocol.hlc import pack
from protocol.topology import VILLAGE as VILLAGE_ROLE
from protocol.topology import NodeEntry
from sanji.keys import NodeKey
from sanji.layout import Layout, county_layout
from sanji.store import Store, open_database, projections

VILLAGE, TOWN, COUNTY = "T01V01", "T01", "C"
PER_FRAME = 500
T0 = int(time.time() * 1000)


def _at(i: int) -> int:
    return pack(T0, i)


def _common(errand: str, i: int, node: str, step: str) -> dict[str, object]:
    return {
        "id": f"{step}-{errand}",
        "errand": errand,
        "scope": VILLAGE,
        "node": node,
        "actor": "李",
        "role": "代办员",
        "at": _at(i),
    }


def _frames(
    layout: Layout, origin: str, actions: Sequence[Action], start: int = 1, prev: bytes = GENESIS
) -> list[bytes]:
    frames = []
    for n, at in enumerate(range(0, len(actions), PER_FRAME)):
        frame = seal(
            key=layout.keys[origin],
            origin=origin,
            scope=VILLAGE,
            audience=layout.directory.audience(origin, VILLAGE),
            seq=start + n,
            prev=prev,
            created=_at(10_000_000 + n),
            actions=list(actions[at : at + PER_FRAME]),
        )
        frames.append(frame)
        prev = frame_hash(frame)
    return frames


def _enrolled(layout: Layout, node: str) -> Layout:
    key = NodeKey.generate_pair()
    entry = NodeEntry(id=node, role=VILLAGE_ROLE, parent=TOWN, name="新村代办点", keys=key.records(node))
    return Layout(entries=[*layout.entries, entry], keys={**layout.keys, node: key})


async def run(errands: int, history: int) -> dict[str, object]:
    layout = county_layout(2, 1)
    ids = [f"E{n:05d}" for n in range(errands)]
    village: list[Action] = []
    town_before: list[Action] = []
    town_after: list[Action] = []
    step = history + 4  # clock ticks per errand
    for n, e in enumerate(ids):
        t = step * n
        village.append(Register(**_common(e, t, VILLAGE, "reg"), matter="低保", applicant=Applicant(name="张三")))  # type: ignore[arg-type]
        village.append(HandOff(**_common(e, t + 1, VILLAGE, "sub"), base=1, to=TOWN, purpose="submit"))  # type: ignore[arg-type]
        town_before.append(Receive(**_common(e, t + 2, TOWN, "rcv"), base=2))  # type: ignore[arg-type]
        for k in range(history + 1):  # the last one is the measured push's
            assign = Assign(**_common(e, t + 3 + k, TOWN, f"asg{k:02d}"), base=3 + k, window=f"{k}号窗口", handler="王")  # type: ignore[arg-type]
            (town_before if k < history else town_after).append(assign)
    first = _frames(layout, TOWN, town_before)
    folder = Path(tempfile.mkdtemp(prefix="sanji-enrollment-"))
    db = await open_database(f"sqlite:///{folder / 'county.db'}")
    try:
        county = Store(db, node_id=COUNTY, key=layout.keys[COUNTY], directory=layout.directory)
        await county.start()
        await county.receive(_frames(layout, VILLAGE, village), peer=TOWN)
        await county.receive(first, peer=TOWN)
        county.use_directory(_enrolled(layout, "T01V02").directory)
        folded = 0
        real = projections.fold_kept

        def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal folded
            out = real(*args, **kwargs)
            folded += out is not None
            return out

        projections.fold_kept = counting
        push = _frames(layout, TOWN, town_after, start=len(first) + 1, prev=frame_hash(first[-1]))
        cpu, wall = time.process_time(), time.perf_counter()
        outcome = await county.receive(push, peer=TOWN)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        projections.fold_kept = real
        assert {r.status for r in outcome.results} == {"stored"}, outcome.results
        versions = {row["version"] for row in [await county.errand(ids[0]), await county.errand(ids[-1])] if row}
        rule = "path" if hasattr(errand_rules, "basis_scope") else "tree"  # which checkout was timed
        return {
            "rule": rule,
            "errands": errands,
            "actions_held_per_errand": 3 + history,
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "folded": folded,
            "versions": sorted(versions),
        }
    finally:
        await db.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--errands", type=int, default=2000)
    parser.add_argument("--history", type=int, default=0, help="assignments each errand already holds")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.runs):
        print(json.dumps(asyncio.run(run(args.errands, args.history))), flush=True)


if __name__ == "__main__":
    main()
