"""A node's loops stop when told, even when told just as they are woken (CI hung 300 s on this, session 19).

Under Python 3.11 ``asyncio.wait_for`` returns the result of a wait that completes as its task is cancelled
and drops the cancellation: a store change (which wakes the duties, the notifier and the sync driver)
followed at once by the node's shutdown left the loop waiting its whole interval, again and again.
"""

from __future__ import annotations

import asyncio

from sanji.periodic import cancel, woken_or_timed_out


async def test_a_loop_told_to_stop_as_it_is_woken_stops() -> None:
    wake = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            wake.clear()
            rounds += 1
            await woken_or_timed_out(wake, 3600)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)  # in its wait
    wake.set()  # a store change ...
    task.cancel()  # ... and the shutdown, in the same turn of the loop
    done, _ = await asyncio.wait({task}, timeout=2)
    assert done == {task} and task.cancelled() and rounds == 1


async def test_the_wait_says_whether_it_was_woken() -> None:
    wake = asyncio.Event()
    assert await woken_or_timed_out(wake, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, wake.set)
    assert await woken_or_timed_out(wake, 5) is True


async def test_stopping_asks_again_a_task_that_lost_one_cancellation() -> None:
    lost = 0

    async def deaf_once() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost += 1  # as a 3.11 ``wait_for`` would: the cancellation goes nowhere

    task = asyncio.create_task(deaf_once())
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await cancel(task)
    assert task.cancelled() and lost == 1


async def test_stopping_raises_what_the_task_ended_with() -> None:
    async def broken() -> None:
        raise RuntimeError("the duty broke")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    try:
        await cancel(task)
    except RuntimeError as exc:
        assert str(exc) == "the duty broke"
    else:
        raise AssertionError("the task's error was swallowed")
    await cancel(None)  # nothing started: nothing to stop
