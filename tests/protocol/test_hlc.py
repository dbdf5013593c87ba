"""Hybrid logical clock: never backwards, follows causality, counts when the wall clock stalls."""

from __future__ import annotations

import itertools

import pytest

from protocol.hlc import COUNTER_BITS, COUNTER_MASK, HybridClock, pack, wall_ms, wall_seconds


class FakeWall:
    """A wall clock the test moves by hand (milliseconds)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_pack_and_unpack() -> None:
    ts = pack(1_700_000_000_123, 5)
    assert wall_ms(ts) == 1_700_000_000_123
    assert ts & COUNTER_MASK == 5
    assert wall_seconds(ts) == pytest.approx(1_700_000_000.123)
    assert pack(2, 0) > pack(1, COUNTER_MASK)  # the wall clock dominates the counter
    assert COUNTER_MASK == (1 << COUNTER_BITS) - 1


def test_follows_an_advancing_wall_clock() -> None:
    wall = FakeWall(1_000)
    clock = HybridClock(now_ms=wall)
    assert clock.now() == pack(1_000, 0)
    wall.ms = 1_005
    assert clock.now() == pack(1_005, 0)
    assert clock.last == pack(1_005, 0)


def test_counter_increments_while_the_wall_clock_stalls() -> None:
    wall = FakeWall(1_000)
    clock = HybridClock(now_ms=wall)
    stamps = [clock.now() for _ in range(5)]
    assert stamps == [pack(1_000, c) for c in range(5)]
    wall.ms = 1_001
    assert clock.now() == pack(1_001, 0)  # the counter resets once the wall clock moves on


def test_never_runs_backwards_when_the_wall_clock_does() -> None:
    wall = FakeWall(5_000)
    clock = HybridClock(now_ms=wall)
    first = clock.now()
    wall.ms = 4_000  # NTP stepped the clock back a second
    later = [clock.now() for _ in range(3)]
    assert later == [pack(5_000, 1), pack(5_000, 2), pack(5_000, 3)]
    assert first < later[0]


@pytest.mark.parametrize("wall_value", [1_000, 1_001])  # even and odd walls: the carry must not be lost
def test_counter_overflow_carries_into_the_wall_part(wall_value: int) -> None:
    clock = HybridClock(pack(wall_value, COUNTER_MASK - 2), now_ms=FakeWall(wall_value))
    stamps = [clock.now() for _ in range(6)]
    assert all(a < b for a, b in itertools.pairwise(stamps)), [hex(s) for s in stamps]
    assert wall_ms(stamps[-1]) == wall_value + 1


def test_monotonic_over_a_long_stall() -> None:
    clock = HybridClock(now_ms=FakeWall(7))
    previous = clock.now()
    for _ in range(70_000):  # more than the counter holds
        current = clock.now()
        assert current > previous
        previous = current


def test_resumes_from_a_persisted_last_value() -> None:
    persisted = pack(9_000, 3)
    clock = HybridClock(persisted, now_ms=FakeWall(8_000))  # restarted with a slower wall clock
    assert clock.last == persisted
    assert clock.now() == pack(9_000, 4)


def test_observing_a_remote_from_the_future_moves_the_clock_forward() -> None:
    wall = FakeWall(1_000)
    clock = HybridClock(now_ms=wall)
    clock.now()
    remote = pack(1_250, 7)
    skew = clock.observe(remote)
    assert skew == 250
    assert clock.last == remote
    assert clock.now() == pack(1_250, 8)  # after what it saw, although the wall clock is still at 1000


def test_observing_the_past_changes_nothing() -> None:
    wall = FakeWall(2_000)
    clock = HybridClock(now_ms=wall)
    mine = clock.now()
    assert clock.observe(pack(1_500, 9)) == -500
    assert clock.last == mine
    assert clock.now() == pack(2_000, 1)


def test_default_wall_clock_is_real_time() -> None:
    import time

    clock = HybridClock()
    before = time.time_ns() // 1_000_000
    stamp = clock.now()
    after = time.time_ns() // 1_000_000
    assert before <= wall_ms(stamp) <= after
    assert clock.now() > stamp


def test_a_remote_far_in_the_future_is_flagged_not_obeyed() -> None:
    wall = FakeWall(1_000)
    clock = HybridClock(now_ms=wall)
    year_2100 = pack(4_102_444_800_000, 0)
    skew = clock.observe(year_2100)
    assert skew > 10**12  # flagged ...
    assert wall_ms(clock.now()) < 4_102_444_800_000  # ... but not obeyed
