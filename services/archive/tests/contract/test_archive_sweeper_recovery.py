"""A sweep that deleted from storage but did not commit its index work: the next sweep finishes it, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from vigil.archive.v1 import events_pb2
from vigil_archive import store
from vigil_archive.sweeper import Sweeper, minio_deleter
from vigil_testing.poll import apoll_until

from .conftest import Archive, hour, new_device_id

SHORT = timedelta(seconds=2)


async def test_a_version_already_deleted_from_storage_leaves_the_index_with_one_event(
    archive: Archive,
) -> None:
    rows = await archive.put_run(new_device_id(), hour(0), 2, retain_for=SHORT)
    latest = max(r.ref.retain_until for r in rows)

    async def passed() -> bool:
        return datetime.now(UTC) > latest

    await apoll_until(passed, timeout=30, interval=0.2, what="retention to pass")
    # What a crash between storage's delete and the index commit leaves: the version is gone from
    # storage, its row still indexed, no event written.
    gone = rows[0]
    bucket, key, version = gone.ref.object_id
    await asyncio.to_thread(archive.s3.remove_object, bucket, key, version_id=version)
    report = await Sweeper(archive.servicer, deleter=minio_deleter(archive.s3)).run_once()
    assert (report.expired, report.failed) == (2, 0)
    async with archive.sessions() as s:
        assert await store.get_segment(s, key, version) is None
    events = await archive.events(events_pb2.SegmentExpired)
    assert sorted(e.segment.version_id for e in events) == sorted(r.ref.version_id for r in rows)
