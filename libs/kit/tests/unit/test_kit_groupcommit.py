"""Group commit: concurrent submitters share commits, and each hears its own result or the batch's failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from vigil_kit.groupcommit import GroupCommit


async def test_callers_that_queue_behind_a_commit_share_the_next_one():
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def commit(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        if len(batches) == 1:
            await gate.wait()  # hold the first commit so the others queue behind it
        return [i * 10 for i in items]

    group: GroupCommit[int, int] = GroupCommit(commit, max_batch=100)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(group.submit(i)) for i in range(2, 6)]
    await asyncio.sleep(0)
    gate.set()
    assert await first == 10
    assert [await t for t in rest] == [20, 30, 40, 50]
    assert batches == [[1], [2, 3, 4, 5]]


async def test_a_batch_never_exceeds_max_batch():
    batches: list[int] = []

    async def commit(items: Sequence[int]) -> list[int]:
        batches.append(len(items))
        await asyncio.sleep(0)
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(commit, max_batch=3)
    assert await asyncio.gather(*(group.submit(i) for i in range(10))) == list(range(10))
    assert max(batches) <= 3


async def test_every_caller_in_a_failed_batch_hears_the_failure_and_later_batches_still_commit():
    calls = 0

    async def commit(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk full")
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(commit, max_batch=10)
    with pytest.raises(RuntimeError, match="disk full"):
        await group.submit(1)
    assert await group.submit(2) == 2
