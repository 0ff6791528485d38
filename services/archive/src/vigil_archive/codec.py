"""Mapping between vigil.archive.v1 / vigil.ingest.v1 messages and the archive's domain types, in one place."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.common.v1 import time_range_pb2
from vigil.ingest.v1 import events_pb2 as ingest_events
from vigil.ingest.v1 import ingest_service_pb2 as ingest_pb
from vigil_archive.domain import Coverage, Hold, SegmentRef, check_range
from vigil_archive.store import IndexedSegment
from vigil_kit.errors import InvalidArgument

CONTAINER_NAMES = {ingest_pb.CONTAINER_MPEG_TS: "ts", ingest_pb.CONTAINER_FMP4: "mp4"}
DEFAULT_WINDOW = timedelta(hours=24)
# Footage times the archive accepts: no camera recorded before the epoch, and far-future times would
# overflow the date arithmetic of a query (a range's start less the longest segment, and so on).
EARLIEST_SECONDS = 0
LATEST_SECONDS = 221_845_392_000  # 9000-01-01T00:00:00Z


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts(t: datetime) -> Timestamp:
    """Timestamp.FromDatetime's result for an aware time, exactly (integer arithmetic), without its
    per-call conversions: pages, manifests and the sweeper's events build hundreds at a time."""
    delta = t - _EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


def from_ts(t: Timestamp) -> datetime:
    return t.ToDatetime(tzinfo=UTC)


def time_range(start: datetime, end: datetime) -> time_range_pb2.TimeRange:
    return time_range_pb2.TimeRange(start_time=ts(start), end_time=ts(end))


def read_range(
    msg: time_range_pb2.TimeRange,
    *,
    has_range: bool,
    now: datetime,
    default: timedelta = DEFAULT_WINDOW,
    field: str = "range",
) -> tuple[datetime, datetime]:
    """The request's [start, end): the last `default` when unset; an unset end is now, an unset start
    is `default` before the end; INVALID_ARGUMENT naming the field when start is not before end."""
    if not has_range:
        return now - default, now
    check_bounds(msg, field)
    end = from_ts(msg.end_time) if msg.HasField("end_time") else now
    start = from_ts(msg.start_time) if msg.HasField("start_time") else end - default
    check_range(start, end, field=field)
    return start, end


def check_bounds(msg: time_range_pb2.TimeRange, field: str = "range") -> None:
    """INVALID_ARGUMENT naming the field when a set end of the range lies outside the footage era."""
    for name in ("start_time", "end_time"):
        if msg.HasField(name) and not EARLIEST_SECONDS <= getattr(msg, name).seconds <= LATEST_SECONDS:
            raise InvalidArgument(
                f"{field}.{name} must lie between 1970-01-01 and 9000-01-01 (UTC)", field=f"{field}.{name}"
            )


def segment_from_event(event: ingest_events.SegmentIngested) -> SegmentRef:
    """The index's view of an ingested object version; INVALID_ARGUMENT when the event cannot be one."""
    try:
        return SegmentRef(
            device_id=event.device_id,
            start=from_ts(event.start_time),
            end=from_ts(event.end_time),
            bucket=event.bucket,
            key=event.key,
            version_id=event.version_id,
            size=event.size,
            sha256=event.sha256,
            retain_until=from_ts(event.retain_until),
        )
    except ValueError as exc:
        raise InvalidArgument(f"SegmentIngested cannot be indexed: {exc}", field="segment") from exc


def segment_to_pb(seg: IndexedSegment, hold_ids: frozenset[str] | None = None) -> pb.Segment:
    ref = seg.ref
    return pb.Segment(
        device_id=ref.device_id,
        sequence=seg.sequence,
        start_time=ts(ref.start),
        end_time=ts(ref.end),
        bucket=ref.bucket,
        key=ref.key,
        version_id=ref.version_id,
        size=ref.size,
        sha256=ref.sha256,
        retain_until=ts(ref.retain_until),
        hold_ids=sorted(ref.hold_ids if hold_ids is None else hold_ids),
        owner_unit_id=seg.owner_unit_id,
        codec=seg.codec,
        container=seg.container,
    )


def hold_to_pb(hold: Hold, covered: int = 0) -> pb.Hold:
    msg = pb.Hold(
        hold_id=hold.hold_id,
        device_ids=sorted(hold.device_ids),
        range=time_range(hold.start, hold.end),
        case_reference=hold.case_reference,
        reason=hold.reason,
        important=hold.important,
        placed_by=hold.placed_by,
        place_time=ts(hold.placed_at),
        released_by=hold.released_by,
        covered_segments=covered,
    )
    if hold.released_at is not None:
        msg.release_time.CopyFrom(ts(hold.released_at))
    return msg


def coverage_to_pb(cov: Coverage) -> pb.Coverage:
    msg = pb.Coverage(
        device_id=cov.device_id,
        range=time_range(cov.start, cov.end),
        percent_covered=cov.percent,
        gaps=[pb.Gap(start_time=ts(g.start), end_time=ts(g.end)) for g in cov.gaps],
        gap_count=cov.gap_count,
        segment_count=cov.segments,
    )
    for name, value in (
        ("earliest", cov.earliest),
        ("latest", cov.latest),
        ("continuous_since", cov.continuous_since),
    ):
        if value is not None:
            getattr(msg, name).CopyFrom(ts(value))
    return msg


def segment_row_to_pb(row: Any, hold_ids: Iterable[str] = ()) -> pb.Segment:
    """A pb.Segment straight from an index row (store.SEGMENT_COLUMNS): FindSegments' page path."""
    return pb.Segment(
        device_id=row.device_id,
        sequence=row.sequence,
        start_time=ts(row.start_time),
        end_time=ts(row.end_time),
        bucket=row.bucket,
        key=row.key,
        version_id=row.version_id,
        size=row.size,
        sha256=row.sha256,
        retain_until=ts(row.retain_until),
        hold_ids=sorted(hold_ids),
        owner_unit_id=row.owner_unit_id,
        codec=row.codec,
        container=row.container,
    )


# --- driver values (store.PAGE_COLUMNS rows): FindSegments pages and manifests, built straight ---------

_EPOCH_NAIVE = datetime(1970, 1, 1)


def driver_seconds(value: Any) -> tuple[int, int]:
    """(seconds, nanos) since the epoch of a time column as the driver gives it: SQLite's
    'YYYY-MM-DD HH:MM:SS[.ffffff]' text (naive UTC, as vigil_kit.db.UTCDateTime stores it) or a datetime."""
    if isinstance(value, str):
        delta = datetime.fromisoformat(value) - _EPOCH_NAIVE
    elif value.tzinfo is None:
        delta = value - _EPOCH_NAIVE
    else:
        delta = value - _EPOCH
    return delta.days * 86_400 + delta.seconds, delta.microseconds * 1000


def driver_datetime(value: Any) -> datetime:
    """A time column's driver value as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DriverTimes:
    """driver_seconds with a memo: in a page of back-to-back segments each end is the next start, and
    retain-until dates repeat, so most of a page's times are read once."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[Any, tuple[int, int]] = {}

    def __call__(self, value: Any) -> tuple[int, int]:
        found = self._seen.get(value)
        if found is None:
            found = self._seen[value] = driver_seconds(value)
        return found


def add_segments(
    container: Any,
    rows: Iterable[Any],
    *,
    times: DriverTimes | None = None,
    holds: Iterable[Any] = (),
) -> None:
    """Append a pb.Segment per driver row (store.PAGE_COLUMNS) to a repeated Segment field, naming the
    holds — (hold_id, start_time, end_time) driver rows, sorted by id — whose span overlaps each row.

    Fields are set on the added message in place: the cheapest way protobuf offers to build a page
    (no intermediate Timestamp messages to copy in)."""
    seconds = times or DriverTimes()
    spans = [(h[0], seconds(h[1]), seconds(h[2])) for h in holds]
    add = container.add
    for r in rows:
        m = add(
            device_id=r[1],
            sequence=r[2],
            bucket=r[5],
            key=r[6],
            version_id=r[7],
            size=r[8],
            sha256=r[9],
            owner_unit_id=r[11],
            codec=r[12],
            container=r[13],
        )
        start = seconds(r[3])
        end = seconds(r[4])
        t = m.start_time
        t.seconds, t.nanos = start
        t = m.end_time
        t.seconds, t.nanos = end
        t = m.retain_until
        t.seconds, t.nanos = seconds(r[10])
        if spans:
            covering = [hold_id for hold_id, h_start, h_end in spans if h_start < end and start < h_end]
            if covering:
                m.hold_ids.extend(sorted(covering))
