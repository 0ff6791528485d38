"""ARC-5 continuity: earliest footage, every recording gap and the share covered, in one streaming pass.

The service feeds a device's segments from a paginated index query (30 days of 2 s segments is
~1.3 M rows), so the scan holds O(1) state: the furthest end covered so far and a few counters.
Only the reported gaps are kept, and at most `max_gaps` of them (the rest are counted).

What counts as a gap: time in the range no segment covers. Segments may overlap or repeat (a
replayed upload, a gateway's overlapping cut): the scan covers their union, so nothing is counted
twice. A gap is *reported* when it is longer than the tolerance; by default that is "one segment
duration" — the longer of the segments either side of the gap (at the range's edges, the one
neighbour). Measuring against the neighbours rather than a global figure keeps the rule right for a
device whose segment length changed, and needs no first pass. The keyframe jitter between
back-to-back segments (microseconds) is thus never a gap, but still counts as uncovered, so the
percentage is exact. A range with no footage at all is one reported gap.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from vigil_kit.errors import InvalidArgument

from .model import Coverage, Gap

DEFAULT_MAX_GAPS = 10_000


class Span(Protocol):
    """Anything with a start and an end: a SegmentRef, or a lighter row from the index query."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


def check_range(start: datetime, end: datetime, *, field: str = "range") -> None:
    """A requested range: aware datetimes, start before end (INVALID_ARGUMENT naming the field otherwise)."""
    for name, value in (("start_time", start), ("end_time", end)):
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise InvalidArgument(f"{field}.{name} must be a timezone-aware time, got {value!r}", field=field)
    if end <= start:
        raise InvalidArgument(
            f"{field}: end_time {end.isoformat()} must be after start_time {start.isoformat()}", field=field
        )


class CoverageScan:
    """The streaming state: `add()` each segment in start order, then `result()`.

    `add` returns the reported gap the segment closes (or None), so a caller may stream gaps out as
    they are found instead of waiting for the list; `result` returns the trailing gap via the list.
    """

    def __init__(
        self,
        device_id: str,
        start: datetime,
        end: datetime,
        *,
        tolerance: timedelta | None = None,
        max_gaps: int = DEFAULT_MAX_GAPS,
    ) -> None:
        check_range(start, end)
        if tolerance is not None and tolerance < timedelta(0):
            raise InvalidArgument(f"gap tolerance must not be negative, got {tolerance}", field="tolerance")
        if max_gaps < 0:
            raise ValueError(f"max_gaps must not be negative, got {max_gaps}")
        self.device_id = device_id
        self.start = start
        self.end = end
        self.tolerance = tolerance
        self.max_gaps = max_gaps
        self._cover_end = start  # everything before this instant is settled: covered or a gap
        self._edge: timedelta | None = None  # duration of the segment that reaches _cover_end
        self._last_start: datetime | None = None
        self._covered = timedelta(0)
        self._gaps: list[Gap] = []
        self._gap_count = 0
        self._earliest: datetime | None = None
        self._run_start: datetime | None = None
        self._segments = 0
        self._done = False

    def add(self, segment: Span) -> Gap | None:
        """Account for one segment; they must come in order of start (ties in any order)."""
        if self._done:
            raise ValueError("the scan is finished")
        s_start, s_end = segment.start, segment.end
        if self._last_start is not None and s_start < self._last_start:
            # Unsorted input would silently misreport gaps: refuse it.
            raise ValueError(
                f"segments must come in order of start: {s_start.isoformat()} after {self._last_start.isoformat()}"
            )
        self._last_start = s_start
        if s_end <= self.start or s_start >= self.end or s_end <= s_start:
            return None
        c_start, c_end = max(s_start, self.start), min(s_end, self.end)
        duration = s_end - s_start
        self._segments += 1
        reported: Gap | None = None
        if c_start > self._cover_end:
            neighbour = duration if self._edge is None else max(self._edge, duration)
            reported = self._gap(self._cover_end, c_start, neighbour)
            if reported is not None or self._run_start is None:
                self._run_start = c_start
        elif self._run_start is None:
            self._run_start = c_start
        if self._earliest is None:
            self._earliest = c_start
        if c_end > self._cover_end:
            self._covered += c_end - max(c_start, self._cover_end)
            self._cover_end = c_end
            self._edge = duration
        elif c_end == self._cover_end and self._edge is not None:
            self._edge = max(self._edge, duration)
        return reported

    def result(self) -> Coverage:
        """Close the scan: the trailing gap (if any) and the figures."""
        if not self._done:
            self._done = True
            if self._cover_end < self.end:
                # No footage at all: the whole range is a gap, whatever its length.
                neighbour = self._edge if self._edge is not None else timedelta(0)
                if self._edge is None and self.tolerance is None:
                    self._record(Gap(self._cover_end, self.end))
                else:
                    self._gap(self._cover_end, self.end, neighbour)
        return Coverage(
            device_id=self.device_id,
            start=self.start,
            end=self.end,
            tolerance=self.tolerance,
            covered=self._covered,
            gaps=tuple(self._gaps),
            gap_count=self._gap_count,
            earliest=self._earliest,
            latest=self._cover_end if self._earliest is not None else None,
            continuous_since=self._run_start,
            segments=self._segments,
        )

    def _gap(self, start: datetime, end: datetime, neighbour: timedelta) -> Gap | None:
        tolerance = self.tolerance if self.tolerance is not None else neighbour
        if end - start <= tolerance:
            return None
        gap = Gap(start, end)
        self._record(gap)
        return gap

    def _record(self, gap: Gap) -> None:
        self._gap_count += 1
        if len(self._gaps) < self.max_gaps:
            self._gaps.append(gap)


def coverage(
    device_id: str,
    segments: Iterable[Span],
    start: datetime,
    end: datetime,
    *,
    tolerance: timedelta | None = None,
    max_gaps: int = DEFAULT_MAX_GAPS,
) -> Coverage:
    """ARC-5: the coverage of [start, end) by `segments` (in order of start; any iterable, read once)."""
    scan = CoverageScan(device_id, start, end, tolerance=tolerance, max_gaps=max_gaps)
    for segment in segments:
        scan.add(segment)
    return scan.result()
