"""The expiry sweeper (ARC-3) and the object-lock check (ARC-2) against real SQLite and moto S3 with object lock."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta

from minio.commonconfig import COMPLIANCE
from minio.retention import Retention

from vigil.archive.v1 import events_pb2
from vigil_archive import metrics, store
from vigil_archive.codec import time_range
from vigil_archive.objectlock import PROBE_PREFIX, ObjectLockCheck
from vigil_archive.sweeper import EXPIRE_ACTION, Sweeper, minio_deleter
from vigil_kit.objectstore import SEGMENTS_BUCKET
from vigil_testing.poll import apoll_until

from .conftest import Archive, hour, new_device_id, pb

SHORT = timedelta(seconds=2)


async def all_expired(*rows: store.IndexedSegment) -> None:
    latest = max(r.ref.retain_until for r in rows)

    async def passed() -> bool:
        return datetime.now(UTC) > latest

    await apoll_until(passed, timeout=30, interval=0.2, what="retention to pass")


async def indexed_versions(archive: Archive) -> set[str]:
    async with archive.sessions() as s:
        rows = await store.expired_candidates(s, datetime.now(UTC) + timedelta(days=3650), limit=100_000)
    return {r.ref.version_id for r in rows}


async def version_exists(archive: Archive, row: store.IndexedSegment) -> bool:
    bucket, key, version = row.ref.object_id
    try:
        await asyncio.to_thread(archive.s3.stat_object, bucket, key, version_id=version)
    except Exception:
        return False
    return True


async def test_a_sweep_removes_exactly_the_expired_segments_from_storage_and_index(archive: Archive) -> None:
    device = new_device_id()
    old = await archive.put_run(device, hour(0), 3, retain_for=SHORT)
    young = await archive.put_segment(device, hour(1))
    await all_expired(*old)
    report = await archive.servicer.sweeper.run_once()
    assert report.expired == 3
    assert await indexed_versions(archive) == {young.ref.version_id}
    assert [await version_exists(archive, r) for r in old] == [False, False, False]
    assert await version_exists(archive, young)
    events = await archive.events(events_pb2.SegmentExpired)
    assert sorted(e.segment.version_id for e in events) == sorted(r.ref.version_id for r in old)


async def test_each_removal_is_in_an_audit_record_of_its_device(archive: Archive) -> None:
    a, b = new_device_id(), new_device_id()
    rows = [
        *await archive.put_run(a, hour(0), 2, retain_for=SHORT),
        *await archive.put_run(b, hour(0), 1, retain_for=SHORT),
    ]
    await all_expired(*rows)
    await archive.servicer.sweeper.run_once()
    records = await archive.audits(EXPIRE_ACTION)
    listed = {(tuple(r.resources.device_ids), v) for r in records for v in r.resources.segment_ids}
    assert listed == {((r.ref.device_id,), r.ref.version_id) for r in rows}
    assert {r.rule_id for r in records} == {"ARC-3"}
    assert {r.actor.id for r in records} == {"service:archive"}


async def test_held_footage_survives_expiry_and_goes_after_release(archive: Archive) -> None:
    device = new_device_id()
    held = await archive.put_segment(device, hour(0), retain_for=SHORT)
    free = await archive.put_segment(device, hour(3), retain_for=SHORT)
    hold = await archive.stub("officer").PlaceHold(
        pb.PlaceHoldRequest(
            device_ids=[device], range=time_range(hour(0), hour(1)), case_reference="C-1", reason="case"
        )
    )
    await all_expired(held, free)
    await archive.servicer.sweeper.run_once()
    assert await indexed_versions(archive) == {held.ref.version_id}
    assert await version_exists(archive, held)
    await archive.stub("officer").ReleaseHold(pb.ReleaseHoldRequest(hold_id=hold.hold_id))
    await archive.servicer.sweeper.run_once()
    assert await indexed_versions(archive) == set()
    assert not await version_exists(archive, held)


async def test_held_rows_do_not_starve_the_expired_rows_behind_them(archive: Archive) -> None:
    device = new_device_id()
    held = await archive.put_run(device, hour(0), 3, retain_for=SHORT)
    free = await archive.put_run(device, hour(2), 3, retain_for=SHORT)
    await archive.stub("officer").PlaceHold(
        pb.PlaceHoldRequest(
            device_ids=[device], range=time_range(hour(0), hour(1)), case_reference="C", reason="r"
        )
    )
    await all_expired(*held, *free)
    # Batches of two: the first pages are all held rows (they expire first).
    small = Sweeper(archive.servicer, deleter=minio_deleter(archive.s3), batch_size=2)
    report = await small.run_once()
    assert report.expired == 3 and report.kept == 3
    assert await indexed_versions(archive) == {r.ref.version_id for r in held}


async def test_a_version_storage_still_locks_stays_indexed_for_the_next_sweep(archive: Archive) -> None:
    device = new_device_id()
    row = await archive.put_segment(device, hour(0), retain_for=SHORT)
    # Storage's lock outlives the index's date (extended behind the archive's back): S3 refuses.
    bucket, key, version = row.ref.object_id
    longer = Retention(COMPLIANCE, datetime.now(UTC).replace(microsecond=0) + timedelta(days=1))
    await asyncio.to_thread(archive.s3.set_object_retention, bucket, key, longer, version_id=version)
    await all_expired(row)
    before = metrics.SWEEP_STORAGE_FAILURES._value.get()
    report = await archive.servicer.sweeper.run_once()
    assert (report.expired, report.failed) == (0, 1)
    assert metrics.SWEEP_STORAGE_FAILURES._value.get() == before + 1
    assert await indexed_versions(archive) == {version}
    assert await archive.events(events_pb2.SegmentExpired) == []


async def test_two_concurrent_sweeps_report_each_segment_once(archive: Archive) -> None:
    rows = await archive.put_run(new_device_id(), hour(0), 4, retain_for=SHORT)
    await all_expired(*rows)
    first = Sweeper(archive.servicer, deleter=minio_deleter(archive.s3), batch_size=2)
    second = Sweeper(archive.servicer, deleter=minio_deleter(archive.s3), batch_size=2)
    await asyncio.gather(first.run_once(), second.run_once())
    events = await archive.events(events_pb2.SegmentExpired)
    assert sorted(e.segment.version_id for e in events) == sorted(r.ref.version_id for r in rows)


# --- the object-lock check (ARC-2) ---------------------------------------------------------------------


async def test_storage_status_reports_enforced_object_lock_after_the_start_up_check(archive: Archive) -> None:
    async def checked() -> pb.StorageStatus | None:
        status = await archive.stub("auditor").GetStorageStatus(pb.GetStorageStatusRequest())
        return status if status.HasField("checked_at") else None

    status = await apoll_until(checked, timeout=30, what="the object-lock check")
    assert status.object_lock_enforced and "refused" in status.detail
    assert metrics.OBJECT_LOCK_ENFORCED._value.get() == 1


async def test_a_bucket_without_object_lock_is_reported_as_not_enforcing(archive: Archive) -> None:
    bucket = f"vigil-unlocked-{new_device_id()[-8:]}"
    await asyncio.to_thread(archive.s3.make_bucket, bucket)
    check = ObjectLockCheck(archive.s3, bucket)
    try:
        status = await check.check()
        assert not status.enforced and "object-lock" in status.detail
        assert metrics.OBJECT_LOCK_ENFORCED._value.get() == 0
    finally:
        metrics.OBJECT_LOCK_ENFORCED.set(1)


async def test_probes_are_removed_once_their_retention_has_passed(archive: Archive) -> None:
    check = ObjectLockCheck(archive.s3, SEGMENTS_BUCKET, probe_retention=timedelta(seconds=1))
    assert (await check.check()).enforced

    def probes() -> list[str]:
        return [
            o.version_id
            for o in archive.s3.list_objects(
                SEGMENTS_BUCKET, prefix=PROBE_PREFIX, recursive=True, include_version=True
            )
        ]

    mine = set(await asyncio.to_thread(probes))
    assert mine

    async def cleaned() -> bool:
        await check.clean_probes()
        return not (mine & set(await asyncio.to_thread(probes)))

    await apoll_until(cleaned, timeout=30, interval=0.5, what="probes removed")


async def test_an_unlocked_probe_object_counts_as_not_enforced(archive: Archive) -> None:
    # A plain object in an unlocked, versioned bucket: the check's versioned delete succeeds.
    bucket = f"vigil-plain-{new_device_id()[-8:]}"
    await asyncio.to_thread(archive.s3.make_bucket, bucket)
    await asyncio.to_thread(archive.s3.put_object, bucket, "x", io.BytesIO(b"x"), 1)
    try:
        assert not (await ObjectLockCheck(archive.s3, bucket).check()).enforced
    finally:
        metrics.OBJECT_LOCK_ENFORCED.set(1)
