"""No cyclic garbage collection while a push is taken (issue 15).

Taking a push allocates tens of thousands of short-lived objects (decoded actions, rows, projections)
and almost no reference cycles; the young-generation collections those allocations trigger scan them
over and over for nothing, about a tenth of a county's ingest time. Collection is paused for the length
of one push, which is bounded by the session's page budget, and resumes after it: whatever cycles the
push left are collected then, as they would have been a little earlier.

Pauses nest and overlap (two receives interleaved on one event loop): collection resumes when the last
one ends, and only if it was enabled when the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_resume = False


@contextmanager
def collections_paused() -> Iterator[None]:
    global _holders, _resume
    with _lock:
        if _holders == 0:
            _resume = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _resume:
                gc.enable()
