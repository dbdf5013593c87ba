"""Handing freed heap back to the system, on glibc Linux only (issue 16: a village idles under 80 MB).

glibc keeps what ``free`` returns inside the process: the main heap is only shrunk from its top, so
the many small blocks that imports, start-up (migrations, the first exchange) and a burst of sync
work leave scattered through it stay resident until something calls ``malloc_trim``, which gives
every whole free page back. Each thread that allocates (aiosqlite runs one per connection, anyio
and uvicorn add more) also gets an arena of its own, which holds its freed memory the same way;
two arenas are enough for a node whose Python code runs on one thread at a time (the GIL).

Elsewhere (musl, macOS, Windows) these calls do nothing: those allocators have neither knob, and a
node there only costs the memory it would have cost anyway.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache

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
