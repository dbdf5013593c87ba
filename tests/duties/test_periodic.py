"""The one periodic-duty loop (``sanji.periodic``): a failed run is told and tried again; stop ends it."""

from __future__ import annotations

import asyncio

from sanji.periodic import PeriodicDuty


class Flaky(PeriodicDuty):
    def __init__(self) -> None:
        super().__init__(name="flaky", interval_hours=0.01 / 3600)  # every 10 ms
        self.runs = 0
        self.failures = 0

    async def tick(self) -> None:
        self.runs += 1
        if self.runs == 1:
            raise RuntimeError("first run fails")

    def failed(self) -> None:
        self.failures += 1


async def test_a_failed_run_is_told_and_the_loop_goes_on() -> None:
    duty = Flaky()
    duty.start()
    for _ in range(500):
        if duty.runs >= 3:
            break
        await asyncio.sleep(0.01)
    await duty.stop()
    assert duty.runs >= 3 and duty.failures == 1
    runs = duty.runs
    await asyncio.sleep(0.05)
    assert duty.runs == runs  # stopped


async def test_an_interval_of_zero_never_runs() -> None:
    duty = Flaky()
    duty.interval_s = 0
    duty.start()
    await asyncio.sleep(0.02)
    await duty.stop()
    assert duty.runs == 0
