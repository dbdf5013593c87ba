"""One loop for the duties a node runs on a schedule (backups, archiving): start, stop, every interval.

The first run is one interval after ``start`` (an interval of 0 or less: never; the command line does
it by hand). A run that fails is told to ``failed`` (inside the ``except``: it may log the traceback)
and tried again at the next interval; a failure never stops the loop, and so never the node.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any

ASK_AGAIN_S = 1.0  # how long ``cancel`` waits before it asks a task to stop once more


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Stop a node's background task and wait until it has stopped (its cancellation is the expected end).

    The cancellation is asked for again until the task has ended: one can be lost inside the task (Python
    3.11's ``asyncio.wait_for`` drops a cancellation that arrives as the wait it guards completes, and the
    loop then waits its whole interval again, and again), and a shutdown must never wait forever on it.
    An error the task ended with is raised here; the caller's own cancellation (a shutdown cancelling the
    code that stops the task) is not swallowed.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=ASK_AGAIN_S)
    if not task.cancelled():
        task.result()


async def woken_or_timed_out(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` have passed; True if it was set.

    ``asyncio.timeout``, not ``asyncio.wait_for``: under Python 3.11 a ``wait_for`` whose wait completes as
    its task is cancelled returns the result and the cancellation is lost, so a node's loop never stops.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


class PeriodicDuty(ABC):
    """Subclasses give ``tick`` (one run) and ``failed`` (what a failed run leaves behind)."""

    def __init__(self, *, name: str, interval_hours: float) -> None:
        self.name = name  # the task's name, as in a stack dump
        self.interval_s = interval_hours * 3600
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    @abstractmethod
    async def tick(self) -> None:
        """One run of the duty."""

    @abstractmethod
    def failed(self) -> None:
        """Called inside the ``except`` of a failed run (it may log the traceback)."""

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.tick()
            except Exception:
                self.failed()
