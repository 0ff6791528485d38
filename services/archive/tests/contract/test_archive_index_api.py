"""FindSegments and GetCoverage over the real index: paging, default window, who may read (ACC-2), ARC-5."""

from __future__ import annotations

from datetime import timedelta

from vigil.archive.v1 import events_pb2
from vigil.audit.v1 import audit_record_pb2
from vigil.common.v1 import time_range_pb2
from vigil_archive.codec import time_range
from vigil_testing.calls import refused

from .conftest import HOSPITAL, Archive, hour, new_device_id, pb


def window(start, end) -> time_range_pb2.TimeRange:
    return time_range(start, end)


async def test_find_segments_pages_through_a_window_in_time_order_without_repeats(archive: Archive) -> None:
    device = new_device_id()
    made = await archive.put_run(device, hour(0), 25)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        resp = await archive.stub().FindSegments(
            pb.FindSegmentsRequest(
                device_id=device, range=window(hour(0), hour(1)), page_size=10, page_token=token
            )
        )
        pages += 1
        seen += [s.version_id for s in resp.segments]
        token = resp.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == [m.ref.version_id for m in made]


async def test_find_segments_returns_what_overlaps_the_range_and_nothing_outside_it(archive: Archive) -> None:
    device = new_device_id()
    await archive.put_run(device, hour(0), 5)  # [0s, 10s)
    resp = await archive.stub().FindSegments(
        pb.FindSegmentsRequest(
            device_id=device, range=window(hour(0) + timedelta(seconds=3), hour(0) + timedelta(seconds=6))
        )
    )
    starts = [s.start_time.ToDatetime().second for s in resp.segments]
    assert starts == [2, 4]  # [2,4) overlaps [3,6); [4,6) too; [6,8) starts at the range's end


async def test_find_segments_defaults_to_the_last_day(archive: Archive) -> None:
    device = new_device_id()
    await archive.put_segment(device, hour(0))
    await archive.put_segment(device, hour(-30))  # 36 hours ago: outside the default window
    resp = await archive.stub().FindSegments(pb.FindSegmentsRequest(device_id=device))
    assert len(resp.segments) == 1
    assert resp.segments[0].sha256 and len(resp.segments[0].sha256) == 64


async def test_a_page_token_for_another_query_is_refused_naming_the_field(archive: Archive) -> None:
    device = new_device_id()
    await archive.put_run(device, hour(0), 3)
    first = await archive.stub().FindSegments(
        pb.FindSegmentsRequest(device_id=device, range=window(hour(0), hour(1)), page_size=1)
    )
    async with refused() as err:
        await archive.stub().FindSegments(
            pb.FindSegmentsRequest(
                device_id=new_device_id(), range=window(hour(0), hour(1)), page_token=first.next_page_token
            )
        )
    assert err[0].code.name == "INVALID_ARGUMENT" and err[0].field == "page_token"


async def test_a_backwards_range_is_refused_naming_the_range(archive: Archive) -> None:
    async with refused() as err:
        await archive.stub().FindSegments(
            pb.FindSegmentsRequest(device_id=new_device_id(), range=window(hour(1), hour(0)))
        )
    assert err[0].code.name == "INVALID_ARGUMENT" and err[0].field == "range"


async def test_the_owner_unit_reads_its_device_and_another_unit_is_denied_and_audited(
    archive: Archive,
) -> None:
    device = new_device_id()
    await archive.put_segment(device, hour(0), owner=HOSPITAL[0])
    mine = await archive.stub("hospital").FindSegments(
        pb.FindSegmentsRequest(device_id=device, range=window(hour(0), hour(1)))
    )
    assert len(mine.segments) == 1
    async with refused() as err:
        await archive.stub("shop").FindSegments(
            pb.FindSegmentsRequest(device_id=device, range=window(hour(0), hour(1)))
        )
    assert err[0].code.name == "PERMISSION_DENIED" and err[0].rule == "ACC-2"
    denied = [
        r
        for r in await archive.audits("archive.segments.find")
        if r.decision == audit_record_pb2.DECISION_DENIED
    ]
    assert [r.actor.name for r in denied] == ["shop"]
    assert list(denied[0].resources.device_ids) == [device]


async def test_an_analyst_without_a_grant_is_denied(archive: Archive) -> None:
    device = new_device_id()
    await archive.put_segment(device, hour(0))
    async with refused() as err:
        await archive.stub("analyst").GetCoverage(pb.GetCoverageRequest(device_id=device))
    assert err[0].code.name == "PERMISSION_DENIED"


async def test_every_allowed_read_is_an_audit_record_with_its_footage_window(archive: Archive) -> None:
    device = new_device_id()
    await archive.put_segment(device, hour(0))
    await archive.stub("auditor").FindSegments(
        pb.FindSegmentsRequest(device_id=device, range=window(hour(0), hour(1)))
    )
    (record,) = await archive.audits("archive.segments.find")
    assert record.decision == audit_record_pb2.DECISION_ALLOWED
    assert record.footage.start_time.ToDatetime().hour == hour(0).hour
    assert record.actor.name == "auditor"


async def test_coverage_reports_each_gap_longer_than_a_segment_and_the_share_covered(
    archive: Archive,
) -> None:
    device = new_device_id()
    await archive.put_run(device, hour(0), 30)  # [0, 60 s)
    await archive.put_run(device, hour(0) + timedelta(seconds=90), 15)  # [90, 120 s)
    cov = await archive.stub().GetCoverage(
        pb.GetCoverageRequest(device_id=device, range=window(hour(0), hour(0) + timedelta(seconds=120)))
    )
    assert cov.percent_covered == 75.0
    t0 = hour(0)
    assert [
        (g.start_time.ToDatetime(tzinfo=t0.tzinfo) - t0, g.end_time.ToDatetime(tzinfo=t0.tzinfo) - t0)
        for g in cov.gaps
    ] == [(timedelta(seconds=60), timedelta(seconds=90))]
    assert cov.segment_count == 45
    assert cov.earliest.ToDatetime() == hour(0).replace(tzinfo=None)


async def test_coverage_without_a_range_starts_at_the_earliest_footage(archive: Archive) -> None:
    device = new_device_id()
    await archive.put_run(device, hour(-2), 3)
    cov = await archive.stub().GetCoverage(pb.GetCoverageRequest(device_id=device))
    assert cov.range.start_time.ToDatetime() == hour(-2).replace(tzinfo=None)
    assert cov.gap_count == 1  # from the last segment to now


async def test_indexing_the_same_version_twice_changes_nothing(archive: Archive) -> None:
    device = new_device_id()
    row = await archive.put_segment(device, hour(0))
    async with archive.sessions.begin() as s:
        again = await archive.indexer().index(
            s,
            row.ref,
            sequence=row.sequence,
            owner_unit_id=row.owner_unit_id,
            codec_name="h264",
            container="ts",
            source="ingest",
        )
    assert again is None
    archived = await archive.events(events_pb2.SegmentArchived)
    assert [e.segment.version_id for e in archived] == [row.ref.version_id]


async def test_a_range_before_the_epoch_is_refused_naming_its_end(archive: Archive) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    far = time_range_pb2.TimeRange(
        start_time=Timestamp(seconds=-62_135_596_800), end_time=Timestamp(seconds=0)
    )
    async with refused() as err:
        await archive.stub().GetCoverage(pb.GetCoverageRequest(device_id=new_device_id(), range=far))
    assert err[0].code.name == "INVALID_ARGUMENT" and err[0].field == "range.start_time"
