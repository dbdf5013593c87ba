"""The published schema is the API: schemathesis's conformance checks on all three tiers, zero findings.

Real node processes (county, township, village; ``sanji.demo.cluster``) on loopback ports; each is
checked by the schemathesis command line (``--checks all``: no server error, every status, content
type, header and body as documented, schema-violating requests refused, schema-valid ones accepted,
undocumented methods answered 405 with ``Allow``) against the schema the node itself serves. The three
runs go in parallel. ``schemathesis.toml`` beside this file holds the one setting that is not a
default (opaque sync bodies), with its reason; ``st_hooks`` sends those bodies as drawn.

Bounded: ``SANJI_SCHEMA_EXAMPLES`` examples per operation (default 6) in the drawn phases, about a minute
on an idle machine; ``SANJI_SCHEMA_PHASES`` adds the coverage phase.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sanji.demo.cluster import Cluster

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
EXAMPLES = os.environ.get("SANJI_SCHEMA_EXAMPLES", "6")
# The coverage phase (every boundary of every field) takes minutes on a busy two-core machine; the suite runs
# the drawn phases, and SANJI_SCHEMA_PHASES=examples,coverage,fuzzing runs everything (same zero findings).
PHASES = os.environ.get("SANJI_SCHEMA_PHASES", "examples,fuzzing")
TIERS = ("C", "T01", "T01V01")

pytestmark = pytest.mark.processes


def schemathesis_run(url: str) -> subprocess.Popen[str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        url + "/schema/openapi.json",
        "--checks",
        "all",
        "--phases",
        PHASES,
        "--max-examples",
        EXAMPLES,
        "--workers",
        "1",
        "--continue-on-failure",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "20",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schema.st_hooks", "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.timeout(900)  # three real nodes and three schemathesis runs; ~1 min on an idle machine
def test_every_tier_serves_exactly_what_its_schema_says(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    runs: dict[str, subprocess.Popen[str]] = {}
    try:
        for node in TIERS:
            cluster.start(node, wait=False)
        for node in TIERS:
            cluster.wait_ready(node, timeout=120)
        runs = {node: schemathesis_run(cluster.nodes[node].url) for node in TIERS}
        outputs = {node: run.communicate(timeout=600)[0] for node, run in runs.items()}
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
            run.communicate()
        cluster.stop()
    problems = {
        node: outputs[node] for node, run in runs.items() if run.returncode != 0 or "Failures:" in outputs[node]
    }
    for node, out in outputs.items():
        assert "generated" in out, f"{node}: schemathesis did not run:\n{out[-3000:]}"
    assert not problems, "\n\n".join(f"--- {node} ---\n{out[-6000:]}" for node, out in problems.items())
