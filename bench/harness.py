"""The command line and the result document every benchmark shares, so each one's ``main`` says only what
is its own: the common flags, a scratch directory kept or removed, and the envelope around what it measured
(which benchmark, when, on what machine at what load, how long it took), published by ``bench.output``."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.figures import rounded
from bench.machine import NODE_PACKAGES, ROOT, load_average, machine_info
from bench.output import publish

RESULTS = ROOT / "bench" / "results"


def arguments(
    name: str,
    doc: str | None,
    *,
    quick: str | None = None,
    seed: int | None = None,
    seed_help: str | None = None,
    keep: str | None = "keep the temporary directory (databases, node logs)",
) -> argparse.ArgumentParser:
    """``python -m bench.<name>``'s parser with the flags benchmarks share: ``--out`` (default
    ``bench/results/<name>.json``) and, where given, ``--quick``, ``--seed`` and ``--keep`` (their help)."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=(doc or "").split("\n")[0])
    if quick is not None:
        parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", type=Path, default=RESULTS / f"{name}.json", help="where to write the JSON result")
    if seed is not None:
        parser.add_argument("--seed", type=int, default=seed, help=seed_help)
    if keep is not None:
        parser.add_argument("--keep", action="store_true", help=keep)
    return parser


class Run:
    """One run of a benchmark, from its start (the clock and the machine's load then) to its published result."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.perf_counter()
        self.load_before = load_average()

    @contextmanager
    def scratch(self, prefix: str, *, keep: bool = False, parent: Path | None = None) -> Iterator[Path]:
        """A fresh temporary directory for the run's databases and node logs, removed afterwards unless ``keep``
        (then its path goes to stderr, to look into after a failure as after a success)."""
        workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        try:
            yield workdir
        finally:
            if keep:
                print(f"[bench.{self.name}] kept {workdir}", file=sys.stderr, flush=True)
            else:
                shutil.rmtree(workdir, ignore_errors=True)

    def result(
        self, body: dict[str, Any], *, machine: dict[str, Any], head: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The result document: who and when, ``head`` (the run's settings), the machine with its load before and
        after (a load well above zero marks a noisy run), ``body`` (what was measured), and the seconds it took."""
        return {
            "benchmark": self.name,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            **(head or {}),
            "machine": {**machine, "load_average_1m": {"before": self.load_before, "after": load_average()}},
            **body,
            "seconds": rounded(time.perf_counter() - self.started),
        }

    def publish(
        self,
        body: dict[str, Any],
        out: Path,
        *,
        packages: tuple[str, ...] = NODE_PACKAGES,
        head: dict[str, Any] | None = None,
        **machine: Any,
    ) -> int:
        """Write and print the result with its chart (``bench.output.publish``); 0, the exit status."""
        publish(self.result(body, machine=machine_info(packages, **machine), head=head), out)
        return 0
