"""A node started by a launcher exits when that launcher is gone, however the launcher ended.

The demo starts each node in its own session (so a Ctrl-C at the terminal reaches only the
launcher, which then stops the nodes in order). A launcher killed with SIGKILL, or by the OOM
killer, cannot stop anyone: its nodes would keep their ports and databases. So the launcher names
itself in ``SANJI_EXIT_WITH_PARENT`` and the node watches for being orphaned — the portable test is
that its parent process id changed (re-parented to init or a subreaper). Polling works the same on
Linux and Windows, unlike ``PR_SET_PDEATHSIG``, which also fires when the spawning *thread* ends.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

ENV = "SANJI_EXIT_WITH_PARENT"
POLL_S = 0.5

log = logging.getLogger(__name__)


def launcher_env() -> dict[str, str]:
    """Environment entries for a child that must not outlive this process."""
    return {ENV: str(os.getpid())}


def watch_parent(poll_s: float = POLL_S) -> threading.Thread | None:
    """If a launcher asked for it, stop this process (SIGTERM: graceful) once the launcher is gone."""
    wanted = os.environ.get(ENV, "")
    if not wanted.isdigit():
        return None
    parent = int(wanted)

    def run() -> None:
        stop = threading.Event()
        while not stop.wait(poll_s):
            if os.getppid() != parent:
                log.warning("launcher %d is gone: stopping this node", parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    if os.getppid() != parent:
        # Orphaned before we even started watching.
        os.kill(os.getpid(), signal.SIGTERM)
        return None
    thread = threading.Thread(target=run, name="parent-watch", daemon=True)
    thread.start()
    return thread
