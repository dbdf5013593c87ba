"""Handing freed heap back to the system, on glibc Linux only (issue 16: a village idles under 80 MB).

glibc keeps what ``free`` returns inside the process: the main heap is only shrunk from its top, so
the many small blocks that imports, start-up (migrations, the first exchange) and a burst of sync
work leave scattered through it stay resident until something calls ``malloc_trim``, which gives
every whole free page back. Each thread that allocates (aiosqlite runs one per connection, anyio
and uvicorn add more) also gets an arena of its own, which holds its freed memory the same way;
two arenas are enough for a node whose Python code runs on one thread at a time (the GIL).

Elsewhere (musl, macOS, Windows) these calls do nothing: those allocators have neither knob, and a
node there only costs the memory it would have cost anyway.

A running node trims off its event loop (``BackgroundTrim``): ``malloc_trim`` walks the whole heap, and on
the loop it would hold every request and the sync driver for as long as that takes. In a worker thread the
loop keeps running (ctypes lets the GIL go for the call); glibc still locks each arena while it trims that
arena, so a large allocation on the loop's thread can wait for the main arena's walk, never for the whole.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import sys
from collections.abc import Callable
from functools import cache

log = logging.getLogger("sanji.memory")
M_ARENA_MAX = -8  # <malloc.h>
ARENAS = 2


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"; musl has no such name
    except (ValueError, OSError):
        return None
    if not version or not version.startswith("glibc"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def available() -> bool:
    """Whether this process runs on glibc, where ``limit_arenas`` and ``trim`` act."""
    return _glibc() is not None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas; call before the node starts its threads. True when applied.

    An operator's ``MALLOC_ARENA_MAX`` (glibc reads it at start) is left to stand.
    """
    libc = _glibc()
    if libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Give every whole free page of the heap back to the system. True when glibc released some."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0) == 1)


def settle_heap() -> int:
    """Collect once, then keep what start-up left alive (modules, the app, its caches) out of every later
    collection (``gc.freeze``); returns how many objects are now left alone.

    A full collection walks every tracked object in the process. A running county has hundreds of thousands
    from its imports alone, none of them ever garbage, so each full collection a burst of pushes triggers
    held that push for tens of milliseconds (bench/README.md, "Session 11"). Called once, when a served node
    has started (``sanji.cli.serve``), never in a test process: objects frozen there would outlive the apps
    the next tests build.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class BackgroundTrim:
    """``trim`` in the loop's default executor, never on the event loop itself; asked for by ``request``.

    Requests while a trim runs are folded into one more trim after it (the work that asked may have freed
    memory the running walk had already passed), so a burst of exchanges costs at most two walks. ``close``
    waits for the one running: a thread in ``malloc_trim`` cannot be cancelled, and the node's shutdown should
    not leave it behind. ``trims`` counts the trims done, for tests and the curious.
    """

    def __init__(self, run: Callable[[], bool] = trim) -> None:
        self._run = run
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self.trims = 0

    def request(self) -> None:
        """Ask for a trim soon, off the loop. Called on the loop; without a running loop it trims at once."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to hold (a command, a test): nothing to move the walk off
            self._run()
            self.trims += 1
            return
        self._task = loop.create_task(self._trim_off_loop(), name="sanji.memory.trim")

    async def _trim_off_loop(self) -> None:
        while True:
            self._again = False
            try:
                await asyncio.get_running_loop().run_in_executor(None, self._run)
            except Exception:  # giving memory back is a courtesy: never a reason to fail anything else
                log.exception("malloc_trim failed")
            self.trims += 1
            if not self._again:
                return

    async def wait(self) -> None:
        """Until no trim is running or asked for."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def close(self) -> None:
        await self.wait()
