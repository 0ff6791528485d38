"""CoalescedWake: the first commit wakes the relay at once, a burst within the interval shares one wake-up."""

from __future__ import annotations

import asyncio

from vigil_kit.outbox import CoalescedWake
from vigil_testing.poll import apoll_until


async def test_a_burst_of_commits_wakes_the_relay_once_now_and_once_at_the_end_of_the_interval() -> None:
    woken: list[float] = []
    loop = asyncio.get_running_loop()
    wake = CoalescedWake(lambda: woken.append(loop.time()), interval_s=0.05)
    for _ in range(100):
        wake()
    assert len(woken) == 1  # the first commit of a quiet spell, at once

    async def woken_twice() -> bool:
        return len(woken) == 2

    await apoll_until(woken_twice, timeout=2, what="the coalesced wake-up")
    assert woken[1] - woken[0] >= 0.05 * 0.9

    async def quiet_spell_over() -> bool:
        return loop.time() >= woken[1] + 0.05

    await apoll_until(quiet_spell_over, timeout=2, interval=0.01, what="a quiet spell of one interval")
    assert len(woken) == 2  # nothing more was due
    wake()
    assert len(woken) == 3
