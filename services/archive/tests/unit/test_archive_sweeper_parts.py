"""The sweeper's pure parts: which versions storage refused, its Segment messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from vigil_archive import codec, store
from vigil_archive.domain import SegmentRef
from vigil_archive.sweeper import _refused

T = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_storage_errors_keep_exactly_the_versions_they_name() -> None:
    objects = [("a", "1"), ("a", "2"), ("b", "1")]
    assert _refused(objects, [("a", "2", "AccessDenied")]) == {("a", "2")}


def test_an_error_without_a_version_keeps_every_version_of_its_key() -> None:
    objects = [("a", "1"), ("a", "2"), ("b", "1")]
    assert _refused(objects, [("a", "", "AccessDenied")]) == {("a", "1"), ("a", "2")}


def test_a_version_already_gone_counts_as_deleted() -> None:
    assert _refused([("a", "1")], [("a", "1", "NoSuchVersion")]) == set()


def test_the_codecs_segment_timestamps_equal_from_datetimes() -> None:
    ref = SegmentRef(
        device_id="32020501501320000001",
        start=T,
        end=T + timedelta(seconds=2),
        bucket="vigil-segments",
        key="segments/x.ts",
        version_id="v1",
        size=9,
        sha256="ab" * 32,
        retain_until=T + timedelta(days=30, microseconds=7),
    )
    row = store.IndexedSegment(
        row_id=1, ref=ref, sequence=4, owner_unit_id="o", codec="h264", container="ts", legal_hold=False
    )
    reference = codec.segment_to_pb(row)
    for name, t in (("start_time", ref.start), ("end_time", ref.end), ("retain_until", ref.retain_until)):
        stamp = Timestamp()
        stamp.FromDatetime(t)
        assert getattr(reference, name) == stamp  # the codec's integer Timestamps equal FromDatetime's
