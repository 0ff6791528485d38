"""Group commit: callers that arrive while a batch is committing share the next commit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Runs `commit(batch)` for whatever was submitted while the previous batch was committing.

    Nothing waits for a window: a lone call commits at once, and under load each commit carries every
    call that queued behind the one before it (at most `max_batch`), so many concurrent writers share one
    SQLite write lock and one commit instead of queueing for it one by one.
    """

    def __init__(
        self,
        commit: Callable[[Sequence[T]], Awaitable[list[R]]],
        max_batch: int,
        *,
        name: str = "group-commit",
    ) -> None:
        self._commit = commit
        self._max = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._name = name

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._running:
            self._running = True
            self._task = asyncio.create_task(self._drain(), name=self._name)
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
                # A caller that gave up (deadline, cancellation) before its turn is left out.
                batch = [(item, future) for item, future in batch if not future.done()]
                if not batch:
                    continue
                try:
                    results = await self._commit([item for item, _ in batch])
                except BaseException as e:  # every caller in the batch hears the failure
                    for _, future in batch:
                        if future.done():
                            continue
                        if isinstance(e, asyncio.CancelledError):
                            future.cancel()
                        else:
                            future.set_exception(e)
                    if not isinstance(e, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._running = False
