"""Failed logins slow down whoever makes them; they never lock anyone out, and they never reveal a name.

Two counters, both kept for any name typed, whether or not an account has it (so a throttled
unknown name answers exactly like a throttled real one):

* **per address**: from the ``address_free``-th failure from one address (whatever names it tried),
  each further failure makes that address wait ``base * 2**k`` seconds, up to ``address_cap``
  (``[auth] lockout_minutes``). Guessing from one place gets slow fast.
* **per name**: from the ``name_free``-th failure for one name (``[auth] max_failures``, from any
  address), each further one makes every attempt at that name wait ``base * 2**k`` seconds, up
  to ``name_cap`` (one minute). Guessing from many places gets slow too, yet nobody can keep the
  real holder of an account out: the most she ever waits is ``name_cap``.

A success clears the name's counter (not the address's). A counter left alone for ``forget``
seconds starts afresh. The counters live in the process (a hub running several processes
throttles in each); at most ``max_keys`` of each are kept, the longest-quiet forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Count:
    failures: int = 0
    last: float = 0.0
    until: float = 0.0  # no attempt before this time


class _Table:
    def __init__(self, *, free: int, base: float, cap: float, forget: float, max_keys: int) -> None:
        self.free, self.base, self.cap, self.forget, self.max_keys = free, base, cap, forget, max_keys
        self.counts: OrderedDict[str, _Count] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        count = self.counts.get(key)
        return max(0.0, count.until - now) if count is not None else 0.0

    def fail(self, key: str, now: float) -> None:
        count = self.counts.pop(key, None) or _Count()
        if now - count.last > self.forget:
            count = _Count()
        count.failures += 1
        count.last = now
        over = count.failures - self.free + 1  # the free-th failure in a row already costs a wait
        if over > 0:
            count.until = now + min(self.cap, self.base * 2 ** min(over - 1, 30))
        self.counts[key] = count  # most recent last
        while len(self.counts) > self.max_keys:
            self.counts.popitem(last=False)

    def clear(self, key: str) -> None:
        self.counts.pop(key, None)


class LoginThrottle:
    def __init__(
        self,
        *,
        name_free: int = 5,
        address_free: int = 20,
        base: float = 1.0,
        name_cap: float = 60.0,
        address_cap: float = 15 * 60.0,
        forget: float = 3600.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.names = _Table(free=name_free, base=base, cap=name_cap, forget=forget, max_keys=max_keys)
        self.addresses = _Table(free=address_free, base=base, cap=address_cap, forget=forget, max_keys=max_keys)

    def wait(self, name: str, address: str) -> float:
        """Seconds before a login for ``name`` from ``address`` may be tried (0: now)."""
        now = self.clock()
        return max(self.names.wait(name[:64], now), self.addresses.wait(address[:64], now))

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        self.names.fail(name[:64], now)
        self.addresses.fail(address[:64], now)

    def succeeded(self, name: str) -> None:
        self.names.clear(name[:64])
