"""ARC-5 coverage: earliest footage, reported gaps, percentage, in one streaming pass."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil_archive.domain.coverage import CoverageScan, coverage
from vigil_archive.domain.model import Gap
from vigil_kit.errors import InvalidArgument

T0 = datetime(2026, 11, 28, tzinfo=UTC)
DEVICE = "32020501501320000001"
S = timedelta(seconds=1)


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime


def spans(*pairs: tuple[float, float]) -> list[Span]:
    return [Span(T0 + a * S, T0 + b * S) for a, b in pairs]


def back_to_back(n: int, length: float = 2, offset: float = 0) -> list[Span]:
    return [Span(T0 + (offset + i * length) * S, T0 + (offset + (i + 1) * length) * S) for i in range(n)]


def test_unbroken_footage_is_fully_covered_with_no_gaps():
    c = coverage(DEVICE, back_to_back(30), T0, T0 + 60 * S)
    assert c.percent == 100.0
    assert c.gaps == () and c.gap_count == 0
    assert c.earliest == T0 and c.latest == T0 + 60 * S
    assert c.continuous_since == T0
    assert c.segments == 30


def test_a_gap_longer_than_a_segment_is_reported():
    segs = spans((0, 2), (2, 4), (10, 12), (12, 14))
    c = coverage(DEVICE, segs, T0, T0 + 14 * S)
    assert c.gaps == (Gap(T0 + 4 * S, T0 + 10 * S),)
    assert c.covered == 8 * S
    assert c.continuous_since == T0 + 10 * S


def test_a_gap_no_longer_than_a_segment_is_not_reported_but_is_not_covered():
    segs = spans((0, 2), (4, 6))  # exactly one segment duration missing
    c = coverage(DEVICE, segs, T0, T0 + 6 * S)
    assert c.gaps == ()
    assert c.covered == 4 * S
    assert c.continuous_since == T0


def test_the_tolerance_is_the_longer_neighbour_of_the_gap():
    # A 3 s gap between a 2 s and a 4 s segment is within one (the longer) segment duration.
    c = coverage(DEVICE, spans((0, 2), (5, 9)), T0, T0 + 9 * S)
    assert c.gaps == ()


def test_an_explicit_tolerance_replaces_the_segment_duration():
    c = coverage(DEVICE, spans((0, 2), (3, 5)), T0, T0 + 5 * S, tolerance=timedelta(0))
    assert c.gaps == (Gap(T0 + 2 * S, T0 + 3 * S),)


def test_overlapping_and_duplicate_segments_are_counted_once():
    segs = spans((0, 2), (0, 2), (1, 3), (2, 4), (2.5, 3.5))
    c = coverage(DEVICE, segs, T0, T0 + 4 * S)
    assert c.covered == 4 * S
    assert c.percent == 100.0
    assert c.segments == 5


def test_a_long_segment_swallowing_later_ones_leaves_no_false_gap():
    c = coverage(DEVICE, spans((0, 20), (2, 4), (19, 21)), T0, T0 + 21 * S, tolerance=timedelta(0))
    assert c.gaps == () and c.covered == 21 * S


def test_segments_straddling_the_range_are_clipped_to_it():
    c = coverage(DEVICE, spans((-1, 1), (1, 3), (3, 5)), T0, T0 + 4 * S)
    assert c.covered == 4 * S
    assert c.earliest == T0 and c.latest == T0 + 4 * S


def test_leading_and_trailing_gaps_are_reported():
    c = coverage(DEVICE, spans((10, 12)), T0, T0 + 20 * S)
    assert c.gaps == (Gap(T0, T0 + 10 * S), Gap(T0 + 12 * S, T0 + 20 * S))
    assert c.earliest == T0 + 10 * S
    assert c.percent == pytest.approx(10.0)


def test_a_range_without_footage_is_one_gap():
    c = coverage(DEVICE, [], T0, T0 + S)
    assert c.gaps == (Gap(T0, T0 + S),)
    assert c.earliest is None and c.latest is None and c.continuous_since is None
    assert c.percent == 0.0


def test_segments_outside_the_range_are_ignored():
    c = coverage(DEVICE, spans((-10, -8), (-2, 0), (5, 7)), T0, T0 + 5 * S, tolerance=timedelta(0))
    assert c.segments == 0 and c.covered == timedelta(0)


def test_the_gap_list_is_bounded_but_every_gap_is_counted():
    segs = [Span(T0 + i * 10 * S, T0 + (i * 10 + 1) * S) for i in range(100)]
    c = coverage(DEVICE, segs, T0, T0 + 1000 * S, max_gaps=5)
    assert len(c.gaps) == 5 and c.gap_count == 100 and c.gaps_truncated


def test_add_streams_out_the_gap_a_segment_closes():
    scan = CoverageScan(DEVICE, T0, T0 + 20 * S)
    assert scan.add(Span(T0, T0 + 2 * S)) is None
    assert scan.add(Span(T0 + 10 * S, T0 + 12 * S)) == Gap(T0 + 2 * S, T0 + 10 * S)


def test_unsorted_segments_are_refused():
    with pytest.raises(ValueError, match="order of start"):
        coverage(DEVICE, spans((4, 6), (0, 2)), T0, T0 + 6 * S)


@pytest.mark.parametrize(
    ("start", "end"),
    [(T0, T0), (T0 + S, T0), (datetime(2026, 11, 28), datetime(2026, 11, 29))],
    ids=["empty", "reversed", "naive"],
)
def test_an_invalid_range_is_refused_naming_the_field(start, end):
    with pytest.raises(InvalidArgument) as e:
        coverage(DEVICE, [], start, end)
    assert e.value.field == "range"


def test_a_negative_tolerance_is_refused():
    with pytest.raises(InvalidArgument):
        coverage(DEVICE, [], T0, T0 + S, tolerance=-S)


def test_the_scan_holds_constant_memory_over_a_long_stream():
    def stream(n):
        for i in range(n):
            # Two of every 100 segments missing: a reported gap each time, kept only up to max_gaps.
            if i % 100 > 1:
                yield Span(T0 + 2 * i * S, T0 + 2 * (i + 1) * S)

    tracemalloc.start()
    try:
        c = coverage(DEVICE, stream(20_000), T0, T0 + 40_000 * S, max_gaps=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert c.gap_count == 200 and len(c.gaps) == 10
    assert peak < 200_000  # bytes: a list of the 20k spans alone would be megabytes


# --- properties --------------------------------------------------------------------------------------

intervals = st.lists(
    st.tuples(st.integers(-20, 200), st.integers(1, 30)).map(lambda p: (p[0], p[0] + p[1])),
    max_size=40,
).map(sorted)
ranges = st.tuples(st.integers(-10, 150), st.integers(1, 150)).map(lambda p: (p[0], p[0] + p[1]))


def _union_seconds(pairs, lo, hi) -> int:
    return sum(1 for t in range(lo, hi) if any(a <= t < b for a, b in pairs))


@settings(max_examples=300, deadline=None)
@given(intervals, ranges)
def test_covered_plus_gaps_is_the_range_and_no_gap_overlaps_a_segment(pairs, rng):
    lo, hi = rng
    c = coverage(DEVICE, spans(*pairs), T0 + lo * S, T0 + hi * S, tolerance=timedelta(0))
    assert c.covered + sum((g.duration for g in c.gaps), timedelta(0)) == (hi - lo) * S
    assert c.covered == _union_seconds(pairs, lo, hi) * S
    for g in c.gaps:
        assert g.duration > timedelta(0)
        assert all(not (T0 + a * S < g.end and g.start < T0 + b * S) for a, b in pairs)
    assert all(a.end < b.start for a, b in zip(c.gaps, c.gaps[1:], strict=False))


@settings(max_examples=200, deadline=None)
@given(intervals, ranges)
def test_gaps_reported_by_segment_duration_are_a_subset_of_all_gaps(pairs, rng):
    lo, hi = rng
    every = coverage(DEVICE, spans(*pairs), T0 + lo * S, T0 + hi * S, tolerance=timedelta(0))
    by_segment = coverage(DEVICE, spans(*pairs), T0 + lo * S, T0 + hi * S)
    assert set(by_segment.gaps) <= set(every.gaps)
    assert by_segment.covered == every.covered
