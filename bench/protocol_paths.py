"""Time the rules' hot paths alone, on the actions of a corpus saved by ``bench.profile_apply``.

Run: ``python -m bench.protocol_paths --corpus /tmp/corpus-1000.msgpack``

Every frame of the saved pushes is opened once (before any clock starts) and each action kept once, in the
order the county received it. Then, process CPU time, best of a few runs each: the bounds walk of every action
(``bounds.action_problem``), a full projection of every errand (``errand.project``), and every errand folded
one action at a time onto the projection of what came before (``errand.fold``, as far as it goes). A hash of
the projections' digests is printed to compare versions. These are the parts of an apply that are only Python
in ``protocol/``: two builds of them (e.g. pure and compiled) are compared here without the store's noise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from bench.profile_apply import Saved
from protocol.actions import Action
from protocol.batch import open_frame
from protocol.bounds import action_problem
from protocol.errand import fold, project
from protocol.topology import Directory


def _best(run: Callable[[], object], times: int) -> float:
    spent = []
    for _ in range(times):
        started = time.process_time()
        run()
        spent.append(time.process_time() - started)
    return round(1000 * min(spent), 1)


def measure(corpus: Path) -> dict[str, object]:
    saved = msgspec.msgpack.decode(corpus.read_bytes(), type=Saved)
    directory = Directory(saved.entries)
    actions: list[Action] = []
    by_errand: dict[str, list[Action]] = {}
    seen: set[str] = set()
    for _town, frames in saved.pushes:
        for frame in frames:
            for action in open_frame(frame, directory).actions:
                if action.id not in seen:
                    seen.add(action.id)
                    actions.append(action)
                    by_errand.setdefault(action.errand, []).append(action)

    def bounds() -> None:
        for action in actions:
            action_problem(action)

    def projections() -> None:
        for errand, held in by_errand.items():
            project(errand, held, directory)

    folded = [0]

    def folds() -> None:
        folded[0] = 0
        for errand, held in by_errand.items():
            projection = project(errand, held[:1], directory)
            bases = {held[0].id: getattr(held[0], "base", None)}
            for action in held[1:]:
                further = fold(projection, bases, [action], directory, made_here=True)
                if further is None:
                    break  # not a plain continuation: the store would project it whole
                folded[0] += 1
                bases[action.id] = getattr(action, "base", None)
                projection = further

    digests = sorted((e, project(e, held, directory).digest) for e, held in by_errand.items())
    return {
        "actions": len(actions),
        "errands": len(by_errand),
        "digests_sha256": hashlib.sha256(msgspec.msgpack.encode(digests)).hexdigest()[:16],
        "bounds_ms": _best(bounds, 7),
        "project_ms": _best(projections, 5),
        "fold_chain_ms": _best(folds, 3),
        "folds": folded[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.protocol_paths", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a corpus saved by bench.profile_apply --corpus")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.corpus)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
