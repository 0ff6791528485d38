"""DeleteSegment (ARC-2), PlaceHold / ReleaseHold / ListHolds (ARC-3, ARC-6) over real SQLite and moto S3."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from vigil.archive.v1 import events_pb2
from vigil.audit.v1 import audit_record_pb2
from vigil_archive import store
from vigil_archive.codec import time_range
from vigil_archive.domain import IMPORTANT_RETENTION
from vigil_testing.calls import refused
from vigil_testing.poll import apoll_until

from .conftest import Archive, hour, new_device_id, pb


async def expired(row: store.IndexedSegment) -> None:
    """Wait (really) until the segment's retain-until has passed."""

    async def passed() -> bool:
        return datetime.now(UTC) > row.ref.retain_until

    await apoll_until(passed, timeout=30, interval=0.2, what="retention to pass")


async def legal_hold_on(archive: Archive, row: store.IndexedSegment) -> bool:
    bucket, key, version = row.ref.object_id
    return await asyncio.to_thread(archive.s3.is_object_legal_hold_enabled, bucket, key, version_id=version)


async def stored_retain_until(archive: Archive, row: store.IndexedSegment) -> datetime:
    """The version's retain-until as storage reports it (from its object-lock headers)."""
    bucket, key, version = row.ref.object_id
    stat = await asyncio.to_thread(archive.s3.stat_object, bucket, key, version_id=version)
    return datetime.fromisoformat(stat.metadata["x-amz-object-lock-retain-until-date"].replace("Z", "+00:00"))


async def indexed(archive: Archive, row: store.IndexedSegment) -> store.IndexedSegment | None:
    async with archive.sessions() as s:
        return await store.get_segment(s, row.ref.key, row.ref.version_id)


async def version_exists(archive: Archive, row: store.IndexedSegment) -> bool:
    bucket, key, version = row.ref.object_id
    try:
        await asyncio.to_thread(archive.s3.stat_object, bucket, key, version_id=version)
    except Exception:
        return False
    return True


def place(device_ids, start, end, *, important: bool = False) -> pb.PlaceHoldRequest:
    return pb.PlaceHoldRequest(
        device_ids=device_ids,
        range=time_range(start, end),
        case_reference="CASE-2026-0042",
        reason="evidence preservation for an investigation",
        important=important,
    )


# --- DeleteSegment (ARC-2) ----------------------------------------------------------------------------


async def test_deleting_before_retain_until_is_refused_naming_the_key_and_audited(archive: Archive) -> None:
    row = await archive.put_segment(new_device_id(), hour(0))
    async with refused() as err:
        await archive.stub().DeleteSegment(
            pb.DeleteSegmentRequest(key=row.ref.key, version_id=row.ref.version_id, reason="cleanup")
        )
    assert (err[0].code.name, err[0].rule, err[0].field) == ("FAILED_PRECONDITION", "ARC-2", "key")
    (record,) = await archive.audits("archive.segment.delete")
    assert record.decision == audit_record_pb2.DECISION_DENIED and record.rule_id == "ARC-2"
    assert list(record.resources.segment_ids) == [row.ref.version_id]
    assert await indexed(archive, row) is not None and await version_exists(archive, row)


async def test_deleting_an_expired_segment_under_an_active_hold_is_refused(archive: Archive) -> None:
    device = new_device_id()
    row = await archive.put_segment(device, hour(0), retain_for=timedelta(seconds=2))
    hold = await archive.stub("officer").PlaceHold(place([device], hour(0), hour(1)))
    await expired(row)
    async with refused() as err:
        await archive.stub().DeleteSegment(
            pb.DeleteSegmentRequest(key=row.ref.key, version_id=row.ref.version_id)
        )
    assert (err[0].code.name, err[0].rule, err[0].field) == ("FAILED_PRECONDITION", "ARC-2", "key")
    assert hold.hold_id in err[0].message
    assert await version_exists(archive, row)


async def test_deleting_after_expiry_removes_the_version_from_storage_and_the_index(archive: Archive) -> None:
    row = await archive.put_segment(new_device_id(), hour(0), retain_for=timedelta(seconds=2))
    await expired(row)
    resp = await archive.stub().DeleteSegment(
        pb.DeleteSegmentRequest(key=row.ref.key, version_id=row.ref.version_id, reason="purpose achieved")
    )
    assert resp.segment.version_id == row.ref.version_id and resp.audit_record_id
    assert not await version_exists(archive, row)
    assert await indexed(archive, row) is None
    (event,) = await archive.events(events_pb2.SegmentExpired)
    assert event.segment.version_id == row.ref.version_id
    (record,) = await archive.audits("archive.segment.delete")
    assert record.decision == audit_record_pb2.DECISION_ALLOWED and record.record_id == resp.audit_record_id


async def test_an_operator_of_another_unit_may_not_delete(archive: Archive) -> None:
    row = await archive.put_segment(new_device_id(), hour(0), retain_for=timedelta(seconds=1))
    await expired(row)
    async with refused() as err:
        await archive.stub("shop").DeleteSegment(pb.DeleteSegmentRequest(key=row.ref.key))
    assert err[0].code.name == "PERMISSION_DENIED"
    assert await version_exists(archive, row)


async def test_deleting_an_unknown_segment_is_not_found(archive: Archive) -> None:
    async with refused() as err:
        await archive.stub().DeleteSegment(pb.DeleteSegmentRequest(key="segments/none.ts", version_id="v"))
    assert (err[0].code.name, err[0].field) == ("NOT_FOUND", "key")


# --- PlaceHold ----------------------------------------------------------------------------------------


async def test_placing_a_hold_sets_an_s3_legal_hold_on_each_covered_version_only(archive: Archive) -> None:
    device = new_device_id()
    inside = await archive.put_run(device, hour(0), 3)
    outside = await archive.put_segment(device, hour(2))
    hold = await archive.stub("officer").PlaceHold(place([device], hour(0), hour(1)))
    assert hold.covered_segments == 3 and hold.placed_by == "user:officer"
    assert [await legal_hold_on(archive, r) for r in inside] == [True, True, True]
    assert not await legal_hold_on(archive, outside)
    assert [(await indexed(archive, r)).legal_hold for r in inside] == [True, True, True]
    (event,) = await archive.events(events_pb2.HoldPlaced)
    assert event.hold.hold_id == hold.hold_id and list(event.hold.device_ids) == [device]
    (record,) = await archive.audits("archive.hold.place")
    assert record.decision == audit_record_pb2.DECISION_ALLOWED
    assert list(record.resources.hold_ids) == [hold.hold_id]
    assert record.attributes["case_reference"] == "CASE-2026-0042"


async def test_an_important_hold_extends_retain_until_to_the_long_profile_in_storage_and_index(
    archive: Archive,
) -> None:
    device = new_device_id()
    row = await archive.put_segment(device, hour(0))
    await archive.stub("officer").PlaceHold(place([device], hour(0), hour(1), important=True))
    want = hour(0) + IMPORTANT_RETENTION
    assert await stored_retain_until(archive, row) == want
    assert (await indexed(archive, row)).ref.retain_until == want


async def test_placing_a_hold_needs_an_officer_or_an_administrator(archive: Archive) -> None:
    device = new_device_id()
    row = await archive.put_segment(device, hour(0))
    async with refused() as err:
        await archive.stub("analyst").PlaceHold(place([device], hour(0), hour(1)))
    assert (err[0].code.name, err[0].rule) == ("PERMISSION_DENIED", "ACC-2")
    assert not await legal_hold_on(archive, row)
    (record,) = await archive.audits("archive.hold.place")
    assert record.decision == audit_record_pb2.DECISION_DENIED


async def test_a_hold_without_an_end_is_refused_naming_the_range(archive: Archive) -> None:
    request = pb.PlaceHoldRequest(device_ids=[new_device_id()], case_reference="C", reason="r")
    request.range.start_time.CopyFrom(time_range(hour(0), hour(1)).start_time)
    async with refused() as err:
        await archive.stub("officer").PlaceHold(request)
    assert (err[0].code.name, err[0].field) == ("INVALID_ARGUMENT", "range")


async def test_a_segment_indexed_inside_an_active_hold_gets_its_legal_hold(archive: Archive) -> None:
    device = new_device_id()
    await archive.stub("officer").PlaceHold(place([device], hour(0), hour(1), important=True))
    row = await archive.put_segment(device, hour(0) + timedelta(minutes=5))
    assert row.legal_hold and await legal_hold_on(archive, row)
    assert row.ref.retain_until == hour(0) + timedelta(minutes=5) + IMPORTANT_RETENTION


# --- ReleaseHold --------------------------------------------------------------------------------------


async def test_releasing_clears_legal_holds_no_other_active_hold_needs(archive: Archive) -> None:
    device = new_device_id()
    early, late = await archive.put_segment(device, hour(0)), await archive.put_segment(device, hour(2))
    wide = await archive.stub("officer").PlaceHold(place([device], hour(0), hour(3)))
    await archive.stub("officer").PlaceHold(place([device], hour(2), hour(3)))
    released = await archive.stub("officer").ReleaseHold(
        pb.ReleaseHoldRequest(hold_id=wide.hold_id, reason="closed")
    )
    assert released.HasField("release_time") and released.released_by == "user:officer"
    assert not await legal_hold_on(archive, early)
    assert await legal_hold_on(archive, late)
    assert not (await indexed(archive, early)).legal_hold
    (event,) = await archive.events(events_pb2.HoldReleased)
    assert event.hold.hold_id == wide.hold_id


async def test_releasing_an_important_hold_never_shortens_the_extension(archive: Archive) -> None:
    device = new_device_id()
    row = await archive.put_segment(device, hour(0))
    hold = await archive.stub("officer").PlaceHold(place([device], hour(0), hour(1), important=True))
    await archive.stub("officer").ReleaseHold(pb.ReleaseHoldRequest(hold_id=hold.hold_id))
    assert await stored_retain_until(archive, row) == hour(0) + IMPORTANT_RETENTION
    assert (await indexed(archive, row)).ref.retain_until == hour(0) + IMPORTANT_RETENTION


async def test_releasing_twice_is_refused(archive: Archive) -> None:
    hold = await archive.stub("officer").PlaceHold(place([new_device_id()], hour(0), hour(1)))
    await archive.stub("officer").ReleaseHold(pb.ReleaseHoldRequest(hold_id=hold.hold_id))
    async with refused() as err:
        await archive.stub("officer").ReleaseHold(pb.ReleaseHoldRequest(hold_id=hold.hold_id))
    assert (err[0].code.name, err[0].field) == ("FAILED_PRECONDITION", "hold_id")


async def test_releasing_an_unknown_hold_is_not_found(archive: Archive) -> None:
    async with refused() as err:
        await archive.stub("admin").ReleaseHold(pb.ReleaseHoldRequest(hold_id="no-such-hold"))
    assert (err[0].code.name, err[0].field) == ("NOT_FOUND", "hold_id")


# --- ListHolds ----------------------------------------------------------------------------------------


async def test_list_holds_pages_through_active_holds_in_placement_order(archive: Archive) -> None:
    device = new_device_id()
    placed = [
        (await archive.stub("officer").PlaceHold(place([device], hour(0), hour(1)))).hold_id for _ in range(5)
    ]
    seen: list[str] = []
    token = ""
    while True:
        page = await archive.stub("auditor").ListHolds(
            pb.ListHoldsRequest(device_id=device, page_size=2, page_token=token)
        )
        seen += [h.hold_id for h in page.holds]
        token = page.next_page_token
        if not token:
            break
    assert seen == placed


async def test_list_holds_shows_released_holds_only_when_asked(archive: Archive) -> None:
    device = new_device_id()
    kept = await archive.stub("officer").PlaceHold(place([device], hour(0), hour(1)))
    gone = await archive.stub("officer").PlaceHold(place([device], hour(0), hour(1)))
    await archive.stub("officer").ReleaseHold(pb.ReleaseHoldRequest(hold_id=gone.hold_id))
    active = await archive.stub("officer").ListHolds(pb.ListHoldsRequest(device_id=device))
    every = await archive.stub("officer").ListHolds(
        pb.ListHoldsRequest(device_id=device, include_released=True)
    )
    assert [h.hold_id for h in active.holds] == [kept.hold_id]
    assert [h.hold_id for h in every.holds] == [kept.hold_id, gone.hold_id]


async def test_a_unit_operator_may_not_list_holds(archive: Archive) -> None:
    async with refused() as err:
        await archive.stub("hospital").ListHolds(pb.ListHoldsRequest())
    assert err[0].code.name == "PERMISSION_DENIED"


async def test_a_list_token_for_another_device_is_refused(archive: Archive) -> None:
    device = new_device_id()
    for _ in range(2):
        await archive.stub("officer").PlaceHold(place([device], hour(0), hour(1)))
    first = await archive.stub("officer").ListHolds(pb.ListHoldsRequest(device_id=device, page_size=1))
    async with refused() as err:
        await archive.stub("officer").ListHolds(
            pb.ListHoldsRequest(device_id=new_device_id(), page_token=first.next_page_token)
        )
    assert (err[0].code.name, err[0].field) == ("INVALID_ARGUMENT", "page_token")


async def test_find_segments_names_the_active_holds_covering_each_segment(archive: Archive) -> None:
    device = new_device_id()
    await archive.put_run(device, hour(0), 2)
    late = await archive.put_segment(device, hour(2))
    hold = await archive.stub("officer").PlaceHold(place([device], hour(0), hour(1)))
    found = await archive.stub().FindSegments(
        pb.FindSegmentsRequest(device_id=device, range=time_range(hour(0), hour(3)))
    )
    assert [list(s.hold_ids) for s in found.segments] == [[hold.hold_id], [hold.hold_id], []]
    assert found.segments[-1].version_id == late.ref.version_id
    await archive.stub("officer").ReleaseHold(
        pb.ReleaseHoldRequest(hold_id=hold.hold_id, reason="case closed")
    )
    after = await archive.stub().FindSegments(
        pb.FindSegmentsRequest(device_id=device, range=time_range(hour(0), hour(3)))
    )
    assert [list(s.hold_ids) for s in after.segments] == [[], [], []]
