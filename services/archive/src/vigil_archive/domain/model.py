"""The archive's domain values: indexed segments (by object version), legal holds, gaps, coverage, stored versions.

Times are timezone-aware datetimes (the index stores them with vigil_kit.db.UTCDateTime, which
refuses naive values too); ranges are half-open, [start, end), everywhere in the archive, so two
segments that touch do not overlap and a segment ending at a range's start is outside it.
Constructors refuse impossible values with ValueError: these values come from the index and from
ingest's checked events, so a bad one is a bug, not a caller's request (requests are checked in
`retention.new_hold` and `coverage.check_range`, which raise vigil_kit errors naming the field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def require_aware(value: datetime, name: str) -> None:
    """Refuse a naive datetime: the archive never guesses a time zone."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Whether two half-open ranges share an instant."""
    return a_start < b_end and b_start < a_end


@dataclass(frozen=True)
class SegmentRef:
    """One stored segment as the index knows it: one object *version* (S3 accepts a newer PUT over a
    locked key, so the key alone does not name the original — ARC-4).

    `retain_until` is the object-lock date ingest stamped (ARC-1) or a later one set by the archive
    (ARC-6); `hold_ids` are the legal holds the index records on the object.
    """

    device_id: str
    start: datetime
    end: datetime
    bucket: str
    key: str
    version_id: str
    size: int
    sha256: str
    retain_until: datetime
    hold_ids: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name in ("start", "end", "retain_until"):
            require_aware(getattr(self, name), name)
        if self.end <= self.start:
            raise ValueError(f"segment {self.key}: end {self.end} must be after start {self.start}")
        for name in ("device_id", "bucket", "key", "version_id"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"segment {self.key!r}: {name} must be a non-empty string")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"segment {self.key}: size must be a non-negative integer, got {self.size!r}")
        if not isinstance(self.sha256, str) or not SHA256_HEX.fullmatch(self.sha256):
            raise ValueError(
                f"segment {self.key}: sha256 must be 64 lower-case hex digits, got {self.sha256!r}"
            )
        object.__setattr__(self, "hold_ids", frozenset(self.hold_ids))

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def object_id(self) -> tuple[str, str, str]:
        """(bucket, key, version id): what storage deletes, reads and presigns by."""
        return (self.bucket, self.key, self.version_id)

    def label(self) -> str:
        """How messages name the segment: key@version."""
        return f"{self.key}@{self.version_id}"


@dataclass(frozen=True)
class Hold:
    """A legal hold (evidence preservation, ARC-3) over some devices' footage in a time range.

    While active it keeps every covered segment from expiry; with `important` set the footage is
    "important public-safety material" (ARC-6) and covered segments' retain-until is extended to the
    long profile. Releasing ends the hold but never shortens an extension already made.
    """

    hold_id: str
    device_ids: frozenset[str]
    start: datetime
    end: datetime
    case_reference: str
    reason: str
    placed_by: str
    placed_at: datetime
    released_at: datetime | None = None
    important: bool = False
    released_by: str = ""

    def __post_init__(self) -> None:
        for name in ("start", "end", "placed_at"):
            require_aware(getattr(self, name), name)
        if self.released_at is not None:
            require_aware(self.released_at, "released_at")
        if self.end <= self.start:
            raise ValueError(f"hold {self.hold_id}: end {self.end} must be after start {self.start}")
        if not self.hold_id:
            raise ValueError("hold_id must be non-empty")
        object.__setattr__(self, "device_ids", frozenset(self.device_ids))
        if not self.device_ids:
            raise ValueError(f"hold {self.hold_id}: at least one device is required")

    def active_at(self, now: datetime) -> bool:
        """Active from placement until released (a release takes effect at its instant)."""
        return self.released_at is None or now < self.released_at

    def covers(self, segment: SegmentRef) -> bool:
        """The hold's devices include the segment's and its time range overlaps the segment (active or not)."""
        return segment.device_id in self.device_ids and overlaps(
            self.start, self.end, segment.start, segment.end
        )


@dataclass(frozen=True)
class Gap:
    """A stretch of a device's timeline no segment covers (ARC-5)."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class Coverage:
    """ARC-5 for one device over [start, end): what footage exists and where it does not.

    `covered` + `uncovered` is always the range's length. `gaps` lists the gaps longer than the
    tolerance, in time order, at most the caller's `max_gaps` of them; `gap_count` counts them all
    (so a truncated list says so). `earliest`/`latest` bound the footage held in the range (None
    when there is none); `continuous_since` is where the last run of footage without a reported gap
    begins — "continuous footage from … to `latest`".
    """

    device_id: str
    start: datetime
    end: datetime
    tolerance: timedelta | None  # None: one segment duration (the longer neighbour of each gap)
    covered: timedelta
    gaps: tuple[Gap, ...]
    gap_count: int
    earliest: datetime | None
    latest: datetime | None
    continuous_since: datetime | None
    segments: int  # segments that contributed (overlapped the range)

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def uncovered(self) -> timedelta:
        return self.length - self.covered

    @property
    def percent(self) -> float:
        """Percentage of the range covered by footage, 0..100."""
        return 100.0 * (self.covered / self.length)

    @property
    def gaps_truncated(self) -> bool:
        return self.gap_count > len(self.gaps)


@dataclass(frozen=True)
class ObjectVersion:
    """One object version as a storage listing shows it (delete markers are not object versions)."""

    key: str
    version_id: str
    size: int = 0
    last_modified: datetime | None = None
    is_latest: bool = False
