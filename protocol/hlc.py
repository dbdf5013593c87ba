"""Hybrid logical clock: timestamps that never run backwards and respect causality.

A timestamp is one integer, ``(wall_ms << 16) | counter``, so it sorts, encodes
compactly and compares across nodes. Receiving a timestamp from the future moves
the local clock forward (causality) but never by more than ``max_skew_ms`` beyond
the local wall clock: a node with a badly wrong clock is flagged, not obeyed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

COUNTER_BITS = 16
COUNTER_MASK = (1 << COUNTER_BITS) - 1
MAX_SKEW_MS = 5 * 60 * 1000  # beyond this a peer's clock is flagged, and not followed


def pack(wall_ms: int, counter: int) -> int:
    return (wall_ms << COUNTER_BITS) | counter


def wall_ms(ts: int) -> int:
    return ts >> COUNTER_BITS


def wall_seconds(ts: int) -> float:
    return wall_ms(ts) / 1000.0


class HybridClock:
    """Issue monotonic timestamps; ``observe`` remote ones to keep causality."""

    def __init__(
        self, last: int = 0, *, now_ms: Callable[[], int] | None = None, max_skew_ms: int = MAX_SKEW_MS
    ) -> None:
        self._last = last
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self.max_skew_ms = max_skew_ms

    @property
    def last(self) -> int:
        return self._last

    def now(self) -> int:
        physical = self._now_ms()
        last_wall = wall_ms(self._last)
        if physical > last_wall:
            self._last = pack(physical, 0)
        else:
            # Next counter value; when the counter is full this carries into the wall part
            # (``pack`` would OR the overflow bit into the wall and could run backwards).
            self._last += 1
        return self._last

    def observe(self, remote: int) -> int:
        """Merge a remote timestamp; returns the skew (remote wall − local wall) in ms."""
        physical = self._now_ms()
        skew = wall_ms(remote) - physical
        # Follow a remote clock forward only as far as the skew we tolerate: a village laptop a
        # week fast must not drag the county's clock a week into the future.
        bounded = min(remote, pack(physical + self.max_skew_ms, 0))
        if bounded > self._last:
            self._last = bounded
        return skew
