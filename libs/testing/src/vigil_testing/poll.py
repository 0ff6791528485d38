"""Wait for a condition with a deadline instead of sleeping (tests never sleep blindly)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class PollTimeout(AssertionError):
    pass


def poll_until(
    check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Call check() until it returns a truthy value; return it, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the condition may raise until the system is ready
            last_exc = exc
        if time.monotonic() > deadline:
            raise PollTimeout(f"{what} not reached within {timeout} s (last error: {last_exc!r})")
        time.sleep(interval)


async def apoll_until(
    check: Callable[[], Awaitable[T]], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Async poll_until: await check() until truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = await check()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        if time.monotonic() > deadline:
            raise PollTimeout(f"{what} not reached within {timeout} s (last error: {last_exc!r})")
        await asyncio.sleep(interval)
