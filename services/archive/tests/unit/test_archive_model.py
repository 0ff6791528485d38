"""The archive's domain values: segments by object version, holds, coverage figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil_archive.domain.model import Coverage, Hold, SegmentRef

T0 = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
SHA = "ab" * 32
DEVICE = "32020501501320000001"


def segment(**kw) -> SegmentRef:
    values = dict(
        device_id=DEVICE,
        start=T0,
        end=T0 + timedelta(seconds=2),
        bucket="vigil-segments",
        key="segments/a.ts",
        version_id="v1",
        size=10,
        sha256=SHA,
        retain_until=T0 + timedelta(days=30),
    )
    values.update(kw)
    return SegmentRef(**values)


def hold(**kw) -> Hold:
    values = dict(
        hold_id="h1",
        device_ids={DEVICE},
        start=T0,
        end=T0 + timedelta(hours=1),
        case_reference="CASE-1",
        reason="robbery",
        placed_by="officer",
        placed_at=T0,
    )
    values.update(kw)
    return Hold(**values)


def test_a_segment_names_its_object_by_bucket_key_and_version():
    s = segment(hold_ids=["h1"])
    assert s.object_id == ("vigil-segments", "segments/a.ts", "v1")
    assert s.duration == timedelta(seconds=2)
    assert s.hold_ids == frozenset({"h1"})


@pytest.mark.parametrize(
    "change",
    [
        {"start": datetime(2026, 11, 28, 10, 30)},
        {"end": T0},
        {"sha256": "AB" * 32},
        {"size": -1},
        {"version_id": ""},
    ],
    ids=["naive start", "empty duration", "upper-case hash", "negative size", "no version"],
)
def test_a_segment_refuses_impossible_values(change):
    with pytest.raises(ValueError):
        segment(**change)


def test_a_hold_is_active_until_the_instant_it_is_released():
    h = hold(released_at=T0 + timedelta(minutes=5))
    assert h.active_at(T0 + timedelta(minutes=4))
    assert not h.active_at(T0 + timedelta(minutes=5))
    assert hold().active_at(T0 + timedelta(days=9999))


def test_a_hold_covers_overlapping_footage_of_its_devices_only():
    h = hold()
    assert h.covers(segment())
    assert not h.covers(segment(device_id="32020501501320000002"))
    # Half-open ranges: footage ending where the hold starts is outside it.
    assert not h.covers(segment(start=T0 - timedelta(seconds=2), end=T0))
    assert h.covers(segment(start=T0 - timedelta(seconds=1), end=T0 + timedelta(seconds=1)))


def test_a_hold_refuses_an_empty_range_and_no_devices():
    with pytest.raises(ValueError):
        hold(end=T0)
    with pytest.raises(ValueError):
        hold(device_ids=set())


def test_coverage_percent_and_uncovered_follow_from_covered():
    c = Coverage(
        device_id=DEVICE,
        start=T0,
        end=T0 + timedelta(hours=1),
        tolerance=None,
        covered=timedelta(minutes=45),
        gaps=(),
        gap_count=2,
        earliest=T0,
        latest=T0,
        continuous_since=T0,
        segments=1,
    )
    assert c.percent == pytest.approx(75.0)
    assert c.uncovered == timedelta(minutes=15)
    assert c.gaps_truncated
