"""bench.many_nodes at a toy scale: a real hub process, children played by real worker processes.

What is checked is what the benchmark's numbers rest on: every child's burst and settle exchange done
without an error by the workers between them, the idle rounds' exchanges one request each with nothing
moved, each side's CPU reported apart, and in full idle rounds never more stores open at once in a worker
than ``--max-open`` (unbounded, a simulator behind its schedule ran out of descriptors: SQLite's "unable to
open database file").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.many_nodes import main

pytestmark = pytest.mark.processes

FIGURES = [
    "idle_p99_ms",
    "hub_cpu_share_of_machine",
    "idle_requests_per_exchange",
    "idle_request_bytes_per_exchange",
    "idle_response_bytes_per_exchange",
    "burst_errors",
]


def run(tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "many.json"
    args = ["--children", "6", "--interval", "0.5", "--rounds", "1", "--burst", "4", "--workers", "2"]
    assert main([*args, *extra, "--out", str(out)]) == 0
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def test_lean_idle_children_send_what_a_running_child_sends(tmp_path: Path) -> None:
    result = run(tmp_path)
    burst, settle, idle = result["burst"], result["settle"], result["idle"]
    assert result["simulator"]["workers"] == 2 and idle["children_kind"] == "lean"
    assert (burst["exchanges"], burst["error_count"], burst["in_flight"]) == (6, 0, 4)
    assert (settle["exchanges"], settle["error_count"], settle["requests_per_exchange"]) == (6, 0, 1)
    beats = idle["heartbeats"]
    assert (idle["exchanges"] + beats["exchanges"], idle["error_count"], idle["requests_per_exchange"]) == (6, 0, 1)
    assert idle["exchanges_that_moved_batches"] == 0  # the hub held nothing the children lacked
    # The settle request carries the child's report again (its store, and report memo, were opened afresh);
    # a running child's memo has carried it, and sends it again only at its heartbeat: at this interval the
    # first child of each worker's slice is due in the first round.
    assert idle["request_body_bytes_per_exchange"] < settle["request_body_bytes_per_exchange"]
    assert beats["exchanges"] == 2 and beats["requests_per_exchange"] == 1
    assert beats["request_body_bytes_per_exchange"] > idle["request_body_bytes_per_exchange"]
    for phase in (burst, settle, idle):
        assert phase["hub_cpu_cores"] > 0 and phase["simulator_cpu_cores"] > 0
        assert len(phase["simulator_cpu_cores_per_worker"]) == 2
        assert 0 < phase["machine_busy_share"] <= 1
    assert idle["simulator"]["start_late_ms"]["p50"] >= 0
    assert burst["listen_queue_drops"].keys() <= {"ListenOverflows", "ListenDrops"}
    assert [f["figure"] for f in result["figures"]] == FIGURES
    assert result["baseline_one_child"]["exchanges"] == result["baseline_one_child_full"]["exchanges"] == 20


def test_full_idle_children_open_no_more_stores_at_once_than_allowed(tmp_path: Path) -> None:
    # Six exchanges of ≈ 50 ms or more due within half a second: unbounded, they would overlap.
    result = run(tmp_path, "--idle-children", "full", "--max-open", "1")
    idle = result["idle"]
    assert (idle["exchanges"], idle["error_count"], idle["children_kind"]) == (6, 0, "full")
    assert idle["simulator"]["open_stores_peak_per_worker"] == [1, 1]
    assert result["burst"]["simulator"]["open_stores_peak_per_worker"] == [2, 2]  # the burst's 4, split
