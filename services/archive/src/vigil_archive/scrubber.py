"""The integrity scrubber (ARC-4): re-checks stored segments continuously, a bounded sample per tick.

Each tick follows the domain's plan (`plan_tick`): the next rows of a rotating walk over the whole
index by row id (the cursor persists in archive_state, so a restart resumes the pass) plus a random
sample of the id space, cut to the tick's byte budget (`within_budget`). Each segment gets the same
re-check as VerifySegments (version re-hashed, newer versions looked for); findings are reported
with detected_by "scrubber".
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil_archive import store
from vigil_archive.dayroots import run_periodically
from vigil_archive.domain import ScrubCursor, ScrubPolicy, advance, plan_tick, within_budget
from vigil_archive.verification import SYSTEM_ACTOR, Finding, StorageChecker, record_and_report

log = logging.getLogger(__name__)

CURSOR_STATE = "integrity.scrub_cursor"
DETECTED_BY = "scrubber"


@dataclass(frozen=True)
class ScrubReport:
    checked: int
    findings: tuple[Finding, ...]
    new_findings: int
    cursor: ScrubCursor


def encode_cursor(cursor: ScrubCursor) -> str:
    return json.dumps({"after": cursor.after, "passes": cursor.passes})


def decode_cursor(text: str | None) -> ScrubCursor:
    """The persisted cursor; a missing or unreadable one starts a fresh pass (never fails the scrubber)."""
    if not text:
        return ScrubCursor()
    try:
        raw = json.loads(text)
        after = raw.get("after")
        return ScrubCursor(after=int(after) if after is not None else None, passes=int(raw.get("passes", 0)))
    except (ValueError, TypeError, AttributeError):
        log.warning("unreadable scrub cursor; starting a new pass", extra={"value": text[:100]})
        return ScrubCursor()


class Scrubber:
    """Background re-checks of the index against storage; `run_once()` is one tick."""

    def __init__(
        self,
        part: object,
        sessions: async_sessionmaker[AsyncSession],
        checker: StorageChecker,
        clock: Callable[[], datetime],
        *,
        policy: ScrubPolicy,
        interval_s: float,
        rng: random.Random | None = None,
    ) -> None:
        self.part = part
        self.sessions = sessions
        self.checker = checker
        self.clock = clock
        self.policy = policy
        self.interval_s = interval_s
        self.rng = rng or random.Random()
        self._stop = asyncio.Event()

    async def run_once(self) -> ScrubReport:
        async with self.sessions() as s:
            cursor = decode_cursor(await store.get_state(s, CURSOR_STATE))
            tick = plan_tick(self.policy, cursor, await store.segment_id_bounds(s), self.rng)
            walked = await store.segments_after_id(s, tick.after, tick.sequential) if tick.sequential else []
            sampled = await store.segments_by_ids(s, tick.random_ids)
        # The walk gets the budget first, so the cursor only moves past what was really re-checked;
        # `within_budget` keeps a prefix (at least one segment, so a huge one cannot stall the walk).
        kept = walked[: len(list(within_budget([seg.ref for seg in walked], self.policy.max_bytes)))]
        if len(kept) < len(walked):
            tick = dataclasses.replace(tick, sequential=len(kept))
        cursor = advance(cursor, tick, [seg.row_id for seg in kept])
        remaining = self.policy.max_bytes - sum(seg.ref.size for seg in kept)
        seen = {seg.row_id for seg in kept}
        extra = _prefix_within(
            [seg for seg in sampled if seg.row_id not in seen], remaining, at_least_one=not kept
        )
        findings: list[Finding] = []
        checked = 0
        for seg in kept + extra:
            findings += await self.checker.check(seg.ref, detected_by=DETECTED_BY)
            checked += 1
        now = self.clock()
        async with self.sessions.begin() as s:
            new = await record_and_report(
                s, self.part, findings, detected_by=DETECTED_BY, actor=SYSTEM_ACTOR, now=now
            )
            await store.put_state(s, CURSOR_STATE, encode_cursor(cursor), now)
        return ScrubReport(checked, tuple(findings), new, cursor)

    async def run(self) -> None:
        await run_periodically(self, self.interval_s, "scrubber")

    def stop(self) -> None:
        self._stop.set()


def _prefix_within(
    segments: list[store.IndexedSegment], budget: int, *, at_least_one: bool
) -> list[store.IndexedSegment]:
    """The longest prefix of `segments` whose sizes fit `budget` (one at least when asked)."""
    total = 0
    for i, seg in enumerate(segments):
        if total + seg.ref.size > budget and not (at_least_one and i == 0):
            return segments[:i]
        total += seg.ref.size
    return segments
