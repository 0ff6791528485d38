"""Device-day Merkle roots (ARC-4): an RFC 6962 tree per device and UTC day over its segments' hashes.

A day's leaves are its indexed segments in (start time, row id) order, each leaf
`vigil_kit.merkle.leaf_hash(raw 32-byte sha256)` — what SegmentProof's comment promises a verifier.
Indexing (and expiry) flags a day dirty in the same transaction (store.mark_day_dirty); the
`DayRootWorker` recomputes dirty days every `root_interval_s`, and a proof request recomputes its
day first when it is dirty, so a proof always matches the root it is returned with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil_archive import metrics, store
from vigil_kit import merkle

log = logging.getLogger(__name__)


def leaf_of(sha256_hex: str) -> bytes:
    """The Merkle leaf of one segment: SHA-256(0x00 || raw 32-byte segment sha256)."""
    return merkle.leaf_hash(bytes.fromhex(sha256_hex))


def day_root(leaves: Sequence[store.IndexedSegment]) -> bytes:
    """The RFC 6962 root over the segments, in the order given (the day's leaf order)."""
    return merkle.merkle_root(leaf_of(seg.ref.sha256) for seg in leaves)


def inclusion_path(leaves: Sequence[store.IndexedSegment], index: int) -> list[bytes]:
    """The RFC 6962 audit path of leaf `index` in the tree over `leaves`."""
    tree = merkle.InMemoryNodeStore()
    tree.append(leaf_of(seg.ref.sha256) for seg in leaves)
    return merkle.inclusion_proof(tree, index, tree.size)


@dataclass(frozen=True)
class ComputedRoot:
    device_id: str
    day: str
    leaves: tuple[store.IndexedSegment, ...]
    root: bytes

    @property
    def leaf_count(self) -> int:
        return len(self.leaves)


async def compute(s: AsyncSession, device_id: str, day: str) -> ComputedRoot:
    """The day's root as the index gives it now (nothing recorded)."""
    leaves = tuple(await store.day_leaves(s, device_id, day))
    return ComputedRoot(device_id, day, leaves, day_root(leaves))


async def recompute(s: AsyncSession, device_id: str, day: str, now: datetime) -> ComputedRoot:
    """Recompute the day's root from the index and record it (clearing its dirty flag), in `s`."""
    await store.lock_day_root(s, device_id, day)
    leaves = tuple(await store.day_leaves(s, device_id, day))
    root = day_root(leaves)
    existing = await store.get_day_root(s, device_id, day)
    if existing is None:
        # A day the index never flagged (rows written before day roots existed): record it now.
        await store.mark_day_dirty(s, device_id, day, now)
    await store.put_day_root(s, device_id, day, len(leaves), root, now)
    metrics.DAY_ROOTS_COMPUTED.inc()
    return ComputedRoot(device_id, day, leaves, root)


class DayRootWorker:
    """Recomputes dirty device-day roots every `interval_s`; `run_once()` does one pass."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        *,
        interval_s: float,
        batch: int = 100,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.interval_s = interval_s
        self.batch = batch
        self._stop = asyncio.Event()

    async def run_once(self, *, max_days: int = 10_000) -> int:
        """Recompute every dirty day (up to `max_days`); how many were recomputed."""
        done = 0
        while done < max_days:
            async with self.sessions() as s:
                days = await store.dirty_days(s, min(self.batch, max_days - done))
            if not days:
                break
            for device_id, day in days:
                # One transaction per day: a long day never holds the writer lock for a whole batch.
                async with self.sessions.begin() as s:
                    await recompute(s, device_id, day, self.clock())
                done += 1
        return done

    async def run(self) -> None:
        await run_periodically(self, self.interval_s, "day roots")

    def stop(self) -> None:
        self._stop.set()


async def run_periodically(worker: object, interval_s: float, name: str) -> None:
    """Call `worker.run_once()` every `interval_s` (the first after one interval) until its `_stop` is set.

    A failed pass is logged and retried next interval rather than ending the loop (storage or the
    registry being away for a while is normal).
    """
    stop: asyncio.Event = worker._stop  # type: ignore[attr-defined]
    stop.clear()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
            return
        except TimeoutError:
            pass
        try:
            await worker.run_once()  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s pass failed; retrying next interval", name)
