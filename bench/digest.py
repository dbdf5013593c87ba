"""The errand digest's state encoding: decode-and-re-encode (<= 0.4) against the mirror structs, same run.

Run: ``python -m bench.digest [--calls 20000] [--repeat 5] [--out bench/results/digest.json]``

``digest_of`` runs on every projection (``protocol.errand.project`` and ``fold``). Until 0.4 it encoded
the state, decoded the bytes, deleted the fields added since 0.3.0 while at their defaults and encoded
again (``old_digest``, kept here as the baseline and as the oracle of
``tests/protocol/test_digest_encoding.py``); now the state is encoded once through mirror structs.
Both are timed on the same states, interleaved, best of ``--repeat``; the two digests are checked equal
first. One JSON object goes to stdout and to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from bench.output import publish
from protocol.encoding import encode
from protocol.errand import ErrandState, digest_of
from protocol.urging import Urging
from sanji.catalogue import default_catalogue

_plain = msgspec.msgpack.Encoder()


def old_digest(
    errand_id: str, state: ErrandState | None, main: list[str], notes: list[str], rejected: dict[str, str]
) -> str:
    """The method of releases up to 0.4: decode the canonical encoding, drop fields, encode again."""
    plain: Any = None
    if state is not None:
        plain = msgspec.msgpack.decode(encode(state))
        if plain.get("urgings") == []:
            del plain["urgings"]
        plain.pop("rated", None)  # derived from the notes and the entry: never digested (0.4.0)
        entry = plain.get("matter_entry")
        if isinstance(entry, dict):
            entry.pop("joint_answers_at_departments", None)
            entry.pop("rules", None)
    return hashlib.sha256(_plain.encode([errand_id, plain, main, notes, sorted(rejected)])).hexdigest()


def sample_states() -> list[tuple[str, ErrandState, list[str], list[str], dict[str, str]]]:
    """Plausible states: registered, bound to a catalogue entry, a 联办 with sub-tasks, an urged one."""
    matter = default_catalogue().matters[2]
    base = ErrandState(
        id="T01V01-000123",
        scope="T01V01",
        matter=matter.code,
        applicant_name="王伟",
        stage="accepted",
        holder="T01",
        version=4,
        registered_at=1_790_000_000_000,
        updated_at=1_790_000_900_000,
        receipt="T01V01-2026-000123-K",
        responsible="T01",
        window="T01-1",
        due="2026-10-20",
        stage_due="2026-10-12",
        steps=("register", "submit", "receive", "accept"),
        catalogue_version=3,
        matter_entry=matter,
    )
    joint = msgspec.structs.replace(base, subtasks={"县人社局": "pending", "县民政局": "agreed"}, pauses=((1, 2),))
    urged = msgspec.structs.replace(
        base, urgings=(Urging(id="s1", by="C", to="T01", answer_by="2026-10-15", at=1_790_000_950_000),)
    )
    bare = msgspec.structs.replace(base, matter_entry=None, stage="registered", holder="T01V01", version=1)
    main = [f"a{i:04d}" for i in range(5)]
    return [(s.id, s, main, ["n0001"], {"r0001": "not the holder"}) for s in (base, joint, urged, bare)]


def best_of(fn: Callable[..., str], cases: list[Any], calls: int, repeat: int) -> float:
    """Best wall time of ``calls`` digests (cycling through ``cases``), in microseconds per digest."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(calls):
            fn(*cases[i % len(cases)])
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/digest.json"))
    args = parser.parse_args(argv)
    cases = sample_states()
    for case in cases:
        assert digest_of(*case) == old_digest(*case), f"digests differ for {case[1].stage}"
    old, new = [], []
    for _ in range(args.repeat):  # interleaved, so other load on the machine falls on both alike
        old.append(best_of(old_digest, cases, args.calls, 1))
        new.append(best_of(digest_of, cases, args.calls, 1))
    result = {
        "bench": "digest",
        "python": platform.python_version(),
        "msgspec": msgspec.__version__,
        "calls": args.calls,
        "repeat": args.repeat,
        "states": len(cases),
        "old_us_per_digest": round(min(old), 3),
        "new_us_per_digest": round(min(new), 3),
        "speedup": round(min(old) / min(new), 2),
        # What bench.chart draws: the encoding of 0.4 against the method it replaced, timed in the same run.
        "figures": [
            {
                "figure": "us_per_digest",
                "value": round(min(new), 3),
                "unit": "µs per digest",
                "baseline": round(min(old), 3),
                "baseline_unit": "µs per digest, the method of releases up to 0.4",
            }
        ],
    }
    publish(result, args.out)
    print(f"digest: old {result['old_us_per_digest']} us, new {result['new_us_per_digest']} us", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
