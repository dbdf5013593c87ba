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
seconds starts afresh.

Attempts sent all at once cannot outrun the counters: a password check takes a turn (``begin``) before
anything is looked up and gives it back when decided (``end``); at most ``address_turns`` checks from one
address and ``name_turns`` for one name are in flight at a time, and any more are answered at once as
throttled (a wait of ``base``), with no Argon2id check. So a burst of guesses costs what the same guesses
one by one would, not one hash each. The counters live in the process (a hub running several processes
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
        address_turns: int = 4,
        name_turns: int = 2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.base = base
        self.address_turns, self.name_turns = address_turns, name_turns
        # checks in flight, per key; a key leaves when its last check ends (at most one per request in flight)
        self._busy_names: dict[str, int] = {}
        self._busy_addresses: dict[str, int] = {}
        self.names = _Table(free=name_free, base=base, cap=name_cap, forget=forget, max_keys=max_keys)
        self.addresses = _Table(free=address_free, base=base, cap=address_cap, forget=forget, max_keys=max_keys)

    def wait(self, name: str, address: str) -> float:
        """Seconds before a login for ``name`` from ``address`` may be tried (0: now)."""
        now = self.clock()
        return max(self.names.wait(name[:64], now), self.addresses.wait(address[:64], now))

    def begin(self, name: str, address: str) -> float:
        """Take a turn to check a password for ``name`` from ``address``: 0 and the turn is taken (give it back
        with ``end``, whatever happens), or the seconds to wait and nothing is taken."""
        wait = self.wait(name, address)
        if wait > 0:
            return wait
        name, address = name[:64], address[:64]
        if (
            self._busy_names.get(name, 0) >= self.name_turns
            or self._busy_addresses.get(address, 0) >= self.address_turns
        ):
            return self.base
        self._busy_names[name] = self._busy_names.get(name, 0) + 1
        self._busy_addresses[address] = self._busy_addresses.get(address, 0) + 1
        return 0.0

    def end(self, name: str, address: str) -> None:
        """Give back the turn ``begin`` took."""
        for busy, key in ((self._busy_names, name[:64]), (self._busy_addresses, address[:64])):
            left = busy.get(key, 0) - 1
            if left > 0:
                busy[key] = left
            else:
                busy.pop(key, None)

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        self.names.fail(name[:64], now)
        self.addresses.fail(address[:64], now)

    def succeeded(self, name: str) -> None:
        self.names.clear(name[:64])
