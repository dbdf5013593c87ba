"""bench.footprint reads memory and CPU from /proc: the probes see what a real process tree uses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from bench.footprint import MB, cpu_seconds, rss_bytes

CHILD = """
import sys, time
held = bytearray(96 * 1024 * 1024)
for i in range(0, len(held), 4096):  # touch every page: resident, not just reserved
    held[i] = 1
began = time.process_time()
while time.process_time() - began < 0.6:
    pass
print("ready", flush=True)
time.sleep(60)
"""
PARENT = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", {CHILD!r}], stdout=sys.stdout)
child.wait()
"""


def test_memory_and_cpu_of_a_process_and_its_children() -> None:
    # Its own session, so the whole tree (parent and child) is stopped together at the end.
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as parent:
        try:
            assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
            # The parent alone holds a bare interpreter; the 96 MB and the busy 0.6 s are its child's.
            assert rss_bytes(parent.pid) >= 96 * MB
            assert cpu_seconds(parent.pid) >= 0.6
        finally:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()
