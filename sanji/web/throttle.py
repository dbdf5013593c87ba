"""Rate limits for the public pages (no login): bounded memory, one process.

A ``Throttle`` counts events per key (a client address, a receipt number) in a sliding
window and refuses once ``limit`` is reached, until the oldest counted event leaves the
window. It keeps at most ``max_keys`` keys (the least recently used are forgotten), so a
flood of addresses costs bounded memory and time. Counts live in the node process: a hub
run as several processes behind one address multiplies the limit by their number, and a
node behind a reverse proxy must see the client's address (uvicorn ``--forwarded-allow-ips``).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from litestar.exceptions import TooManyRequestsException


class Throttled(TooManyRequestsException):
    """429 with ``Retry-After``: ``message`` both languages, Chinese first, and ``message_zh`` the Chinese alone
    (``sanji.web.errors.http_error_handler`` puts it in the JSON body)."""

    def __init__(self, zh: str, en: str, seconds: int) -> None:
        super().__init__(detail=f"{zh} · {en}", headers={"Retry-After": str(seconds)})
        self.message_zh = zh


class Throttle:
    def __init__(
        self, limit: int, window_s: float, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self.clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def _live(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            hits = deque()
            self._hits[key] = hits
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(key)
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        return hits

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        now = self.clock()
        hits = self._live(key, now)
        if len(hits) < self.limit:
            return 0.0
        return max(0.0, hits[0] + self.window_s - now)

    def hit(self, key: str) -> float:
        """Count one event for ``key`` now; returns its time, for ``forgive``."""
        now = self.clock()
        self._live(key, now).append(now)
        return now

    def forgive(self, key: str, at: float) -> None:
        """Take back the event ``hit`` counted at ``at`` (a miss counted while in doubt that turned out not one)."""
        hits = self._hits.get(key)
        if hits is not None and at in hits:
            hits.remove(at)
