"""The sweeper's ARC-3 rule (`sweepable`) against the domain's select_expired, and its cheap row forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.archive.v1 import events_pb2
from vigil_archive import codec, store
from vigil_archive.domain import Hold, SegmentRef, select_expired
from vigil_archive.sweeper import Expiring, expired_payloads, sweepable, time_parser, utc_naive

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
T0 = NOW - timedelta(days=40)
DEVICES = ("32020501501320000001", "32020501501320000002", "32020501501320000003")


def row(
    row_id: int = 1,
    *,
    device: str = DEVICES[0],
    start: datetime = T0,
    retain_until: datetime = NOW - timedelta(days=1),
    legal_hold: bool = False,
) -> Expiring:
    return Expiring(
        row_id, device, row_id, utc_naive(start), utc_naive(start + timedelta(seconds=2)),
        store.day_of(start), "vigil-segments", f"segments/{device}/{row_id}.ts", f"v{row_id}", 9,
        "ab" * 32, utc_naive(retain_until), "12320200MB0000003X", "h264", "ts", legal_hold,
    )  # fmt: skip


def hold(hold_id: str, devices: set[str], start: datetime, end: datetime, *, released: bool = False) -> Hold:
    return Hold(
        hold_id=hold_id,
        device_ids=frozenset(devices),
        start=start,
        end=end,
        case_reference="C-1",
        reason="case",
        placed_by="officer",
        placed_at=T0,
        released_at=NOW - timedelta(hours=1) if released else None,
    )


def test_a_row_under_an_active_hold_is_never_swept() -> None:
    r = row(start=T0)
    h = hold("h1", {r.device_id}, T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))
    assert sweepable([r], [h], NOW) == []


def test_a_row_flagged_with_the_archives_legal_hold_is_never_swept_even_without_a_hold_row() -> None:
    assert sweepable([row(legal_hold=True)], [], NOW) == []


def test_a_row_not_yet_due_is_never_swept_whatever_the_query_returned() -> None:
    assert sweepable([row(retain_until=NOW + timedelta(microseconds=1))], [], NOW) == []


def test_a_row_is_swept_at_the_instant_its_retention_ends() -> None:
    r = row(retain_until=NOW)
    assert sweepable([r], [], NOW) == [r]


def test_rows_of_a_held_device_outside_the_holds_range_are_swept() -> None:
    inside, outside = row(1, start=T0), row(2, start=T0 + timedelta(hours=2))
    h = hold("h1", {DEVICES[0]}, T0, T0 + timedelta(hours=1))
    assert sweepable([inside, outside], [h], NOW) == [outside]


def test_a_released_hold_keeps_nothing() -> None:
    r = row()
    h = hold("h1", {r.device_id}, T0 - timedelta(days=1), T0 + timedelta(days=1), released=True)
    assert sweepable([r], [h], NOW) == [r]


rows_strategy = st.lists(
    st.builds(
        lambda i, d, minutes, due, lh: row(
            i,
            device=DEVICES[d],
            start=T0 + timedelta(minutes=minutes),
            retain_until=NOW + timedelta(seconds=due),
            legal_hold=lh,
        ),
        st.integers(1, 10**6),
        st.integers(0, len(DEVICES) - 1),
        st.integers(0, 600),
        st.integers(-5, 5),
        st.booleans(),
    ),
    max_size=30,
    unique_by=lambda r: r.row_id,
)
holds_strategy = st.lists(
    st.builds(
        lambda i, devices, a, length, released: hold(
            f"h{i}",
            {DEVICES[d] for d in devices},
            T0 + timedelta(minutes=a),
            T0 + timedelta(minutes=a + length),
            released=released,
        ),
        st.integers(0, 10**6),
        st.sets(st.integers(0, len(DEVICES) - 1), min_size=1),
        st.integers(-10, 600),
        st.integers(1, 120),
        st.booleans(),
    ),
    max_size=4,
    unique_by=lambda h: h.hold_id,
)


@settings(max_examples=300, deadline=None)
@given(rows_strategy, holds_strategy)
def test_sweepable_selects_exactly_what_select_expired_selects(
    rows: list[Expiring], holds: list[Hold]
) -> None:
    # The old path: every row as a validated SegmentRef through the domain, legal-hold rows kept.
    refs = {r.ref(): r for r in rows if not r.legal_hold}
    expected = {refs[ref].row_id for ref in select_expired(refs, holds, NOW).expired}
    assert [r.row_id for r in sweepable(rows, holds, NOW)] == [r.row_id for r in rows if r.row_id in expected]


def test_the_payload_is_the_segment_expired_message_the_codec_builds() -> None:
    ref = SegmentRef(
        device_id=DEVICES[0],
        start=datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        end=datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC),
        bucket="vigil-segments",
        key="segments/x.ts",
        version_id="v1",
        size=752,
        sha256="cd" * 32,
        retain_until=datetime(2026, 1, 31, 0, 0, 2, 7, tzinfo=UTC),
    )
    indexed = store.IndexedSegment(
        row_id=3, ref=ref, sequence=42, owner_unit_id="o", codec="h265", container="mp4", legal_hold=False
    )
    expire = datetime(2026, 2, 1, 1, 2, 3, 456789, tzinfo=UTC)
    (payload,) = expired_payloads([Expiring.from_indexed(indexed)], expire)
    expected = events_pb2.SegmentExpired(segment=codec.segment_to_pb(indexed), expire_time=codec.ts(expire))
    assert events_pb2.SegmentExpired.FromString(payload) == expected
    assert payload == expected.SerializeToString()


def test_driver_times_read_back_as_naive_utc_from_either_database() -> None:
    naive = datetime(2026, 1, 1, 10, 0, 0, 5)
    assert utc_naive("2026-01-01 10:00:00.000005") == naive
    assert time_parser("sqlite")("2026-01-01 10:00:00.000005") == naive
    eight = timezone(timedelta(hours=8))
    assert time_parser("postgresql")(datetime(2026, 1, 1, 18, 0, 0, 5, tzinfo=eight)) == naive
    assert utc_naive(naive) == naive
