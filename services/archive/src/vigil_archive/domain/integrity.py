"""ARC-4 integrity findings and the scrubber's plan: classify what a re-check of storage saw, choose what to re-check.

A re-check reads the indexed object *version* (never the key: S3 accepts a new PUT over a locked
key as a newer version, and a plain DELETE only adds a delete marker) and lists the key's versions.
`classify` turns what it saw into violations; the service emits each as `IntegrityViolation` and an
audit record. The scrubber re-checks continuously at a bounded cost per tick: a rotating cursor
walks the whole index pass after pass, so every segment is re-checked within a bounded time, and a
random sample each tick makes tampering anywhere likely to be found long before the cursor arrives.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from .model import SHA256_HEX, SegmentRef, require_aware


class ViolationKind(Enum):
    MISSING_OBJECT = "missing_object"  # the indexed version is gone from storage
    NEWER_VERSION = "newer_version"  # another version now sits on top of the indexed one's key
    SIZE_MISMATCH = "size_mismatch"
    HASH_MISMATCH = "hash_mismatch"
    RETENTION_SHORTENED = "retention_shortened"  # storage's lock ends before the index's date (ARC-2)


@dataclass(frozen=True)
class Observation:
    """What a re-check saw in storage for one indexed segment.

    `found`: the indexed version exists. `size`/`sha256`: of the bytes read by version id (None
    when not read: a stat-only check skips the hash). `latest_version_id`: the newest version of
    the key in storage (None when the listing has none). `retain_until`: the object-lock date read
    back (None when not read).
    """

    found: bool
    size: int | None = None
    sha256: str | None = None
    latest_version_id: str | None = None
    retain_until: datetime | None = None

    def __post_init__(self) -> None:
        if self.sha256 is not None and not SHA256_HEX.fullmatch(self.sha256):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, got {self.sha256!r}")
        if self.retain_until is not None:
            require_aware(self.retain_until, "retain_until")

    @classmethod
    def missing(cls, *, latest_version_id: str | None = None) -> Observation:
        return cls(found=False, latest_version_id=latest_version_id)


@dataclass(frozen=True)
class Violation:
    """One integrity finding about one segment."""

    kind: ViolationKind
    segment: SegmentRef
    message: str
    rule: str = "ARC-4"


def classify(segment: SegmentRef, seen: Observation) -> tuple[Violation, ...]:
    """ARC-4: every way what storage holds differs from what the index recorded; empty when intact."""
    where = f"segment {segment.label()} of device {segment.device_id} in {segment.bucket}"
    out: list[Violation] = []
    if not seen.found:
        out.append(
            Violation(
                ViolationKind.MISSING_OBJECT,
                segment,
                f"{where}: the indexed object version is missing (ARC-4)",
            )
        )
    if seen.latest_version_id is not None and seen.latest_version_id != segment.version_id:
        out.append(
            Violation(
                ViolationKind.NEWER_VERSION,
                segment,
                f"{where}: a newer version {seen.latest_version_id} was written over the key; readers by key "
                "no longer get the original (ARC-4)",
            )
        )
    if seen.found and seen.size is not None and seen.size != segment.size:
        out.append(
            Violation(
                ViolationKind.SIZE_MISMATCH,
                segment,
                f"{where}: {seen.size} bytes stored, {segment.size} indexed (ARC-4)",
            )
        )
    if seen.found and seen.sha256 is not None and seen.sha256 != segment.sha256:
        out.append(
            Violation(
                ViolationKind.HASH_MISMATCH,
                segment,
                f"{where}: the stored bytes hash to {seen.sha256}, {segment.sha256} indexed (ARC-4)",
            )
        )
    if seen.found and seen.retain_until is not None and seen.retain_until < segment.retain_until:
        out.append(
            Violation(
                ViolationKind.RETENTION_SHORTENED,
                segment,
                f"{where}: storage locks it until {seen.retain_until.isoformat()}, the index until "
                f"{segment.retain_until.isoformat()} (ARC-2)",
                rule="ARC-2",
            )
        )
    return tuple(out)


# --- the scrubber's sampling plan ------------------------------------------------------------------


@dataclass(frozen=True)
class ScrubPolicy:
    """How much one tick re-checks: `per_tick` segments at most, `random_share` of them drawn at random,
    and no more than `max_bytes` read (always at least one segment, so a huge one cannot stall it)."""

    per_tick: int = 50
    random_share: float = 0.2
    max_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.per_tick < 1:
            raise ValueError(f"per_tick must be at least 1, got {self.per_tick}")
        if not 0.0 <= self.random_share <= 1.0:
            raise ValueError(f"random_share must be within 0..1, got {self.random_share}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {self.max_bytes}")

    @property
    def random_count(self) -> int:
        return round(self.per_tick * self.random_share)

    @property
    def sequential_count(self) -> int:
        return self.per_tick - self.random_count


@dataclass(frozen=True)
class ScrubCursor:
    """Where the rotating walk stands: after index row `after` (None: at the beginning), in pass `passes`."""

    after: int | None = None
    passes: int = 0


@dataclass(frozen=True)
class ScrubTick:
    """One tick's queries: the next `sequential` rows with id > `after` (None: from the first),
    plus the rows with the `random_ids` (ids of deleted rows simply return nothing)."""

    after: int | None
    sequential: int
    random_ids: tuple[int, ...]


def plan_tick(
    policy: ScrubPolicy,
    cursor: ScrubCursor,
    id_bounds: tuple[int, int] | None,
    rng: random.Random,
) -> ScrubTick:
    """The next tick over an index whose row ids lie in `id_bounds` (inclusive; None: empty index).

    Random ids are drawn from the whole id space, distinct; gaps left by expired rows only make a
    sample smaller, never biased towards any device or time.
    """
    if id_bounds is None:
        return ScrubTick(after=None, sequential=0, random_ids=())
    low, high = id_bounds
    if high < low:
        raise ValueError(f"id_bounds must be (low, high) with low <= high, got {id_bounds}")
    k = min(policy.random_count, high - low + 1)
    random_ids = tuple(sorted(rng.sample(range(low, high + 1), k))) if k else ()
    return ScrubTick(after=cursor.after, sequential=policy.sequential_count, random_ids=random_ids)


def advance(cursor: ScrubCursor, tick: ScrubTick, sequential_ids: Iterable[int]) -> ScrubCursor:
    """The cursor after a tick, from the ids its sequential query returned: fewer rows than asked for
    means the walk reached the end, so it wraps to the beginning and a pass is complete."""
    if tick.sequential == 0:
        return cursor  # an all-random policy never walks
    ids = list(sequential_ids)
    if len(ids) < tick.sequential or not ids:
        return ScrubCursor(after=None, passes=cursor.passes + 1)
    last = max(ids)
    if cursor.after is not None and last <= cursor.after:
        raise ValueError(f"the sequential query must return ids after {cursor.after}, got up to {last}")
    return ScrubCursor(after=last, passes=cursor.passes)


def within_budget(segments: Iterable[SegmentRef], max_bytes: int) -> Iterator[SegmentRef]:
    """The segments to re-hash this tick: in order, until the next would pass `max_bytes` (at least one)."""
    total = 0
    for i, segment in enumerate(segments):
        if i and total + segment.size > max_bytes:
            return
        total += segment.size
        yield segment
