"""Retention as pure rules: no early deletion (ARC-2), expiry selection (ARC-3), holds and important material (ARC-6).

Retention is owned in layers (ARCHITECTURE.md, "Ownership"): the registry resolves a device's
retention, ingest stamps each object's retain-until at PUT (capture start + retention, ARC-1), and
the archive only ever *extends* it. Storage enforces the date too (S3 object lock); these rules are
the application's half of ARC-2, which must hold even where storage does not enforce.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from vigil_kit.errors import FailedPrecondition, InvalidArgument

from .model import Hold, SegmentRef, require_aware

# ARC-6: "important public-safety material" is kept two years (the registry's "important" profile).
IMPORTANT_RETENTION = timedelta(days=730)
# S3 DeleteObjects takes at most 1,000 keys per request.
S3_MAX_DELETE_KEYS = 1000
MAX_HOLD_DEVICES = 1000
MAX_CASE_REFERENCE = 256
MAX_REASON = 2000


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


# --- holds -----------------------------------------------------------------------------------------


def active_holds_covering(segment: SegmentRef, holds: Iterable[Hold], now: datetime) -> list[Hold]:
    """The holds active at `now` whose devices include the segment's and whose range overlaps it."""
    return [h for h in holds if h.active_at(now) and h.covers(segment)]


def held_by(segment: SegmentRef, holds: Iterable[Hold], now: datetime) -> tuple[str, ...]:
    """Ids of everything that holds the segment at `now`, sorted.

    Fails closed: besides the active holds that cover it, a hold id the index records on the
    segment counts unless `holds` shows that hold released — the index may know of a hold the
    caller's list lacks (its S3 legal hold is still on), and deleting held evidence is irreversible.
    """
    holds = list(holds)
    ids = {h.hold_id for h in active_holds_covering(segment, holds, now)}
    released = {h.hold_id for h in holds if not h.active_at(now)}
    ids.update(segment.hold_ids - released)
    return tuple(sorted(ids))


def new_hold(
    *,
    hold_id: str,
    device_ids: Iterable[str],
    start: datetime,
    end: datetime,
    case_reference: str,
    reason: str,
    placed_by: str,
    now: datetime,
    important: bool = False,
) -> Hold:
    """A PlaceHold request checked field by field (INVALID_ARGUMENT listing every fault)."""
    devices = [d.strip() if isinstance(d, str) else d for d in device_ids]
    faults: list[tuple[str, str]] = []
    if not devices:
        faults.append(("device_ids", "a hold needs at least one device"))
    elif len(set(devices)) > MAX_HOLD_DEVICES:
        faults.append(
            ("device_ids", f"a hold covers at most {MAX_HOLD_DEVICES} devices, got {len(set(devices))}")
        )
    elif any(not isinstance(d, str) or not d for d in devices):
        faults.append(("device_ids", "device ids must be non-empty strings"))
    aware = all(isinstance(t, datetime) and t.tzinfo is not None for t in (start, end))
    if not aware:
        faults.append(("range", "start_time and end_time must be timezone-aware times"))
    elif end <= start:
        faults.append(("range", f"end_time {_iso(end)} must be after start_time {_iso(start)}"))
    case_reference = case_reference.strip() if isinstance(case_reference, str) else ""
    reason = reason.strip() if isinstance(reason, str) else ""
    if not case_reference:
        faults.append(("case_reference", "a hold must name the case it preserves evidence for"))
    elif len(case_reference) > MAX_CASE_REFERENCE:
        faults.append(("case_reference", f"case_reference is at most {MAX_CASE_REFERENCE} characters"))
    if not reason:
        faults.append(("reason", "a hold must give its reason"))
    elif len(reason) > MAX_REASON:
        faults.append(("reason", f"reason is at most {MAX_REASON} characters"))
    if faults:
        field, message = faults[0]
        raise InvalidArgument(message, field=field, violations=faults[1:])
    require_aware(now, "now")
    return Hold(
        hold_id=hold_id,
        device_ids=frozenset(devices),
        start=start,
        end=end,
        case_reference=case_reference,
        reason=reason,
        placed_by=placed_by,
        placed_at=now,
        important=important,
    )


def release_hold(hold: Hold, *, released_by: str, now: datetime) -> Hold:
    """ReleaseHold: the hold stops protecting footage from `now`; releasing twice is refused."""
    if hold.released_at is not None:
        raise FailedPrecondition(
            f"hold {hold.hold_id} was already released at {_iso(hold.released_at)} by {hold.released_by or '?'}",
            field="hold_id",
        )
    require_aware(now, "now")
    return replace(hold, released_at=now, released_by=released_by)


# --- ARC-2: no early deletion ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeleteDecision:
    """Whether a segment may be deleted now; truthy when allowed. `refusal` says why not (ARC-2)."""

    segment: SegmentRef
    refusal: FailedPrecondition | None
    retained: bool
    held_by: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    def __bool__(self) -> bool:
        return self.allowed

    def raise_if_refused(self) -> None:
        if self.refusal is not None:
            raise self.refusal


def may_delete(segment: SegmentRef, holds: Iterable[Hold], now: datetime) -> DeleteDecision:
    """ARC-2 (and ARC-3's hold exception): a segment may be deleted once its retain-until has passed
    (S3 object lock's rule: retained while now < retain-until) and nothing holds it.

    A refusal is FAILED_PRECONDITION [ARC-2] naming the date and/or the holds; the caller audits it.
    """
    require_aware(now, "now")
    retained = now < segment.retain_until
    holding = held_by(segment, holds, now)
    if not retained and not holding:
        return DeleteDecision(segment, None, False, ())
    reasons: list[tuple[str, str]] = []
    if retained:
        reasons.append(("retain_until", f"retained until {_iso(segment.retain_until)}"))
    if holding:
        reasons.append(("hold_ids", f"under legal hold {', '.join(holding)}"))
    message = f"segment {segment.label()} of device {segment.device_id} cannot be deleted: " + (
        " and ".join(text for _, text in reasons) + " (ARC-2)"
    )
    metadata = {"retain_until": _iso(segment.retain_until), "device_id": segment.device_id}
    if holding:
        metadata["hold_ids"] = ",".join(holding)
    refusal = FailedPrecondition(
        message,
        rule="ARC-2",
        violations=[(f"segment {segment.label()}", text) for _, text in reasons],
        metadata=metadata,
    )
    return DeleteDecision(segment, refusal, retained, holding)


# --- ARC-3: expiry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpirySelection:
    """A sweeper batch sorted out: what to delete, what a hold keeps, what is not due (never deleted)."""

    expired: tuple[SegmentRef, ...]
    held: tuple[SegmentRef, ...]
    not_due: tuple[SegmentRef, ...]


def select_expired(candidates: Iterable[SegmentRef], holds: Iterable[Hold], now: datetime) -> ExpirySelection:
    """ARC-3: from candidates (the index's `retain_until <= now` rows), the ones to delete.

    The retain-until date is checked again here rather than trusted to the query, so a wrong
    query can never cause an early deletion (ARC-2). Holds are indexed by device once per batch.
    """
    require_aware(now, "now")
    by_device: dict[str, list[Hold]] = {}
    all_holds = list(holds)
    for hold in all_holds:
        for device in hold.device_ids:
            by_device.setdefault(device, []).append(hold)
    released = {h.hold_id for h in all_holds if not h.active_at(now)}
    expired: list[SegmentRef] = []
    held: list[SegmentRef] = []
    not_due: list[SegmentRef] = []
    for segment in candidates:
        if now < segment.retain_until:
            not_due.append(segment)
        elif (segment.hold_ids - released) or active_holds_covering(
            segment, by_device.get(segment.device_id, ()), now
        ):
            held.append(segment)
        else:
            expired.append(segment)
    return ExpirySelection(tuple(expired), tuple(held), tuple(not_due))


@dataclass(frozen=True)
class DeleteBatch:
    """One S3 multi-object delete: ≤ 1,000 object versions of one bucket."""

    bucket: str
    segments: tuple[SegmentRef, ...]

    @property
    def objects(self) -> list[tuple[str, str]]:
        """(key, version id) pairs, as the delete request names them."""
        return [(s.key, s.version_id) for s in self.segments]


def plan_delete_batches(
    segments: Iterable[SegmentRef], *, max_keys: int = S3_MAX_DELETE_KEYS
) -> Iterator[DeleteBatch]:
    """Group segments into multi-object deletes: per bucket (a request names one bucket), ≤ `max_keys`
    each, a repeated object version sent once. Streams: holds at most one open batch per bucket.
    """
    if not 1 <= max_keys <= S3_MAX_DELETE_KEYS:
        raise ValueError(f"max_keys must be 1..{S3_MAX_DELETE_KEYS} (S3 DeleteObjects), got {max_keys}")
    open_batches: dict[str, dict[tuple[str, str], SegmentRef]] = {}
    for segment in segments:
        batch = open_batches.setdefault(segment.bucket, {})
        batch.setdefault((segment.key, segment.version_id), segment)
        if len(batch) == max_keys:
            yield DeleteBatch(segment.bucket, tuple(batch.values()))
            del open_batches[segment.bucket]
    for bucket, batch in open_batches.items():
        if batch:
            yield DeleteBatch(bucket, tuple(batch.values()))


# --- ARC-6: important public-safety material -----------------------------------------------------------


def _ceil_second(t: datetime) -> datetime:
    """Up to the whole second (S3's precision for retain-until), so rounding never shortens."""
    return t if t.microsecond == 0 else t.replace(microsecond=0) + timedelta(seconds=1)


def important_retain_until(segment: SegmentRef, retention: timedelta = IMPORTANT_RETENTION) -> datetime:
    """ARC-6: max(current retain-until, capture start + the important profile) — only ever extends.

    Counted from capture start, as ingest counts the first date (ARC-1), so marking a clip
    important a year after it was recorded still keeps it two years from its recording.
    """
    if retention <= timedelta(0):
        raise ValueError(f"the important retention must be positive, got {retention}")
    return max(segment.retain_until, _ceil_second(segment.start + retention))


@dataclass(frozen=True)
class Extension:
    """A retain-until to raise: storage first (object lock, which also only extends), then the index."""

    segment: SegmentRef
    retain_until: datetime


def plan_extensions(
    segments: Iterable[SegmentRef],
    holds: Sequence[Hold],
    now: datetime,
    *,
    retention: timedelta = IMPORTANT_RETENTION,
) -> list[Extension]:
    """ARC-6: for each segment an active *important* hold covers, its new retain-until — where it grows."""
    important = [h for h in holds if h.important and h.active_at(now)]
    out: list[Extension] = []
    for segment in segments:
        if any(h.covers(segment) for h in important):
            until = important_retain_until(segment, retention)
            if until > segment.retain_until:
                out.append(Extension(segment, until))
    return out
