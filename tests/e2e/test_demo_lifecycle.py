"""However `sanji demo` ends, none of the node processes it started outlives it.

Real processes: the demo is started as a user would, its nodes are found by the work
directory on their command lines, and the demo is ended the ways it is ended in practice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Generous limits: three interpreters and two enrollments on a loaded 2-core machine take minutes.
pytestmark = [pytest.mark.processes, pytest.mark.timeout(900)]


def _nodes_of(workdir: Path) -> list[int]:
    """Pids of `sanji … serve` processes whose config lives under ``workdir``."""
    pids = []
    marker = str(workdir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"serve" in cmdline and marker in cmdline:
            pids.append(int(entry.name))
    return pids


def _wait_gone(workdir: Path, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    left = _nodes_of(workdir)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _nodes_of(workdir)
    return left


def _start_demo(workdir: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "sanji.cli.main", "demo", "--towns", "1", "--villages", "1", "--errands", "0"]
    cmd += ["--workdir", str(workdir), "--interval", "0.3", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_serving(demo: subprocess.Popen[str], seconds: float = 600) -> str:
    assert demo.stdout is not None
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "Nodes keep running" in line:
            return "".join(seen)
    raise AssertionError("the demo never reached --serve:\n" + "".join(seen))


def _end(demo: subprocess.Popen[str], workdir: Path) -> None:
    demo.kill()
    demo.wait()
    if demo.stdout is not None:
        demo.stdout.close()
    _kill_leftovers(workdir)


def _kill_leftovers(workdir: Path) -> None:
    for pid in _nodes_of(workdir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_demo_stops_every_node_it_started(tmp_path: Path, signum: int) -> None:
    workdir = tmp_path / "demo"
    demo = _start_demo(workdir, "--serve")
    try:
        _wait_serving(demo)
        running = _nodes_of(workdir)
        assert len(running) == 3, running  # county, one township, one village
        demo.send_signal(signum)
        demo.wait(timeout=300)
        assert _wait_gone(workdir, 5) == []
    finally:
        _end(demo, workdir)


def test_nodes_exit_when_the_demo_is_killed_outright(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    demo = _start_demo(workdir, "--serve")
    try:
        _wait_serving(demo)
        assert len(_nodes_of(workdir)) == 3
        demo.kill()  # SIGKILL: no clean-up runs in the demo; the nodes must notice on their own
        demo.wait(timeout=10)
        assert _wait_gone(workdir, 10) == []
    finally:
        _end(demo, workdir)


def test_a_demo_stopped_while_its_nodes_are_starting_leaves_none(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    demo = _start_demo(workdir, "--serve")
    try:
        deadline = time.monotonic() + 600
        while not _nodes_of(workdir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _nodes_of(workdir), "no node ever started"
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=300)
        assert _wait_gone(workdir, 5) == []
    finally:
        _end(demo, workdir)
