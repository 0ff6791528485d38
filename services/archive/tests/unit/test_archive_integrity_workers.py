"""The integrity part's pure pieces: day-root leaves and paths, the scrubber's cursor and budget, storage order."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vigil_archive import dayroots, scrubber, store
from vigil_archive.domain import ScrubCursor, SegmentRef
from vigil_archive.reconciler import _storage_items
from vigil_kit import merkle

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def seg(i: int, size: int = 100) -> store.IndexedSegment:
    return store.IndexedSegment(
        row_id=i,
        ref=SegmentRef(
            device_id="32020501501320000001",
            start=T0 + timedelta(seconds=2 * i),
            end=T0 + timedelta(seconds=2 * i + 2),
            bucket="vigil-segments",
            key=f"segments/k{i}",
            version_id=f"v{i}",
            size=size,
            sha256=hashlib.sha256(str(i).encode()).hexdigest(),
            retain_until=T0 + timedelta(days=30),
        ),
        sequence=i,
        owner_unit_id="unit",
        codec="h264",
        container="ts",
        legal_hold=False,
    )


def test_a_day_root_is_the_rfc_6962_root_over_the_raw_segment_hashes_in_order() -> None:
    leaves = [seg(i) for i in range(5)]
    expected = merkle.merkle_root(merkle.leaf_hash(bytes.fromhex(s.ref.sha256)) for s in leaves)
    assert dayroots.day_root(leaves) == expected
    assert dayroots.day_root(list(reversed(leaves))) != expected


def test_every_inclusion_path_verifies_against_the_day_root() -> None:
    leaves = [seg(i) for i in range(7)]
    root = dayroots.day_root(leaves)
    for i, s in enumerate(leaves):
        path = dayroots.inclusion_path(leaves, i)
        assert merkle.verify_inclusion(dayroots.leaf_of(s.ref.sha256), i, len(leaves), path, root)


def test_the_scrub_cursor_round_trips_and_an_unreadable_one_starts_a_new_pass() -> None:
    cursor = ScrubCursor(after=41, passes=3)
    assert scrubber.decode_cursor(scrubber.encode_cursor(cursor)) == cursor
    assert scrubber.decode_cursor("not json") == ScrubCursor()
    assert scrubber.decode_cursor(None) == ScrubCursor()


def test_the_random_sample_takes_the_prefix_that_fits_what_the_walk_left_of_the_budget() -> None:
    segments = [seg(1, 40), seg(2, 40), seg(3, 40)]
    assert [s.row_id for s in scrubber._prefix_within(segments, 100, at_least_one=False)] == [1, 2]
    assert scrubber._prefix_within(segments, 10, at_least_one=False) == []
    assert [s.row_id for s in scrubber._prefix_within(segments, 10, at_least_one=True)] == [1]


@dataclass
class Listed:
    object_name: str
    version_id: str
    is_delete_marker: bool = False
    size: int = 1
    last_modified: datetime = T0
    is_latest: bool = False


class FakeS3:
    def __init__(self, items: list[Listed]) -> None:
        self.items = items

    def list_objects(self, bucket: str, prefix: str, recursive: bool, include_version: bool):
        return iter(self.items)


def test_storage_versions_come_in_key_then_version_order_without_delete_markers_or_probes() -> None:
    listing = [
        Listed("segments/_probe/x", "p1"),
        Listed("segments/a", "v9"),  # S3 lists a key's versions newest first
        Listed("segments/a", "v3"),
        Listed("segments/a", "v5", is_delete_marker=True),
        Listed("segments/b", "v1"),
    ]
    out = [(v.key, v.version_id) for v in _storage_items(FakeS3(listing), "b", "segments/")]  # type: ignore[arg-type]
    assert out == [("segments/a", "v3"), ("segments/a", "v9"), ("segments/b", "v1")]
