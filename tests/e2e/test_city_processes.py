"""``sanji demo --city``: a city hub above two counties on loopback, each node a real process.

The layout test only prepares the configs (fast). The process test is kept small — the city, two
counties, one township and one village each — and enrolls every node by token under the city's
root of trust, as an operator would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sanji.demo.cluster import Cluster


def test_the_city_demo_lays_out_a_city_above_two_counties(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "demo", counties=2, towns=1, villages_per_town=1, enroll=True)
    configs = {n: tomllib.loads(p.config.read_text(encoding="utf-8")) for n, p in cluster.nodes.items()}
    assert set(configs) == {"S", "C1", "C1T01", "C1T01V01", "C2", "C2T01", "C2T01V01"}
    assert configs["S"]["node"]["role"] == "city" and "parent" not in configs["S"]
    for county in ("C1", "C2"):
        assert configs[county]["node"]["role"] == "county"
        assert configs[county]["parent"]["url"] == cluster.nodes["S"].url  # syncs up as a township does
        assert configs[f"{county}T01"]["parent"]["url"] == cluster.nodes[county].url
        # Villagers look up at their own county's hub.
        assert configs[f"{county}T01V01"]["node"]["public_url"] == cluster.nodes[county].url
    # Only the top hub gets a key from the launcher; it makes the root of trust, every other node enrolls.
    assert (cluster.workdir / "S" / "node.key").exists() and not (cluster.workdir / "C1" / "node.key").exists()
    plain = Cluster.prepare(tmp_path / "plain", towns=1, villages_per_town=1)
    assert set(plain.nodes) == {"C", "T01", "T01V01"} and plain.layout.directory.parent("C") is None


@pytest.mark.processes
@pytest.mark.timeout(900)
def test_city_demo_converges_and_keeps_each_countys_errands_to_itself(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "sanji.cli.main", "demo", "--city", "--towns", "1", "--villages", "1"]
    cmd += ["--errands", "6", "--json", "--workdir", str(tmp_path / "demo"), "--timeout", "600"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=800, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["converged"] is True and result["mismatched"] == [] and result["misplaced"] == []
    assert result["errands"] == 6 and result["closed"] == 6
    nodes = result["nodes"]
    assert sum(nodes["S"].values()) == 6  # the city holds both counties' errands
    assert sum(nodes["C1"].values()) == sum(nodes["C1T01V01"].values()) == 3  # each county only its own
    assert sum(nodes["C2"].values()) == sum(nodes["C2T01V01"].values()) == 3
