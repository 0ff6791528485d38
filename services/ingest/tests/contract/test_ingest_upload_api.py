"""UploadSegment end to end in-process: stored bytes, retention lock, metadata, event, audit, replays."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from vigil.audit.v1 import audit_record_pb2
from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil_ingest.domain.upload import header_from_metadata
from vigil_ingest.video import encode_segment
from vigil_kit import objectstore
from vigil_testing.calls import refused

from .conftest import Ingest, ts_packets

MiB = 1024 * 1024


def chunks(data: bytes, size: int = 256 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_a_real_segment_is_stored_byte_for_byte_under_the_devices_retention(ingest: Ingest) -> None:
    did = await ingest.seed_device(retention_days=30)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    data = encode_segment(did, start, seconds=1, size=(320, 180))
    response = await ingest.upload(ingest.header(did, data, start=start), chunks(data))

    seg = response.segment
    assert not response.replayed
    assert (seg.bucket, seg.size, seg.sha256) == (
        objectstore.SEGMENTS_BUCKET,
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert seg.key == f"segments/{did}/{start:%Y/%m/%d}/{start:%Y%m%dT%H%M%S}.000Z-1.ts"
    obj = ingest.s3.get_object(seg.bucket, seg.key, version_id=seg.version_id)
    try:
        assert obj.read() == data
    finally:
        obj.close()
        obj.release_conn()
    stat = ingest.s3.stat_object(seg.bucket, seg.key, version_id=seg.version_id)
    assert stat.metadata["x-amz-object-lock-mode"] == "COMPLIANCE"
    assert (
        stat.metadata["x-amz-object-lock-retain-until-date"]
        == f"{start + timedelta(days=30):%Y-%m-%dT%H:%M:%S}.000Z"
    )
    assert seg.retain_until.ToDatetime(tzinfo=UTC) == start + timedelta(days=30)


async def test_the_stored_object_carries_the_signed_header_so_storage_alone_can_reindex_it(
    ingest: Ingest,
) -> None:
    did = await ingest.seed_device()
    data = ts_packets(100)
    header = ingest.header(did, data, sequence=7)
    seg = (await ingest.upload(header, [data])).segment
    stat = ingest.s3.stat_object(seg.bucket, seg.key, version_id=seg.version_id)
    restored = header_from_metadata(stat.metadata)
    assert (restored.device_id, restored.sequence, restored.sha256, restored.signature) == (
        did,
        7,
        header.sha256,
        header.signature,
    )


async def test_a_stored_segment_publishes_segment_ingested_with_its_facts(ingest: Ingest) -> None:
    did = await ingest.seed_device(retention_days=7.5)
    data = ts_packets(50)
    header = ingest.header(did, data, sequence=3, container=pb.CONTAINER_MPEG_TS)
    seg = (await ingest.upload(header, [data])).segment

    (event,) = await ingest.events(topic="vigil.ingest.segments.v1")
    msg = event.message
    assert event.key == did
    assert (msg.device_id, msg.sequence, msg.bucket, msg.key, msg.version_id) == (
        did,
        3,
        seg.bucket,
        seg.key,
        seg.version_id,
    )
    assert (msg.size, msg.sha256, msg.codec, msg.container) == (
        len(data),
        header.sha256,
        "h264",
        pb.CONTAINER_MPEG_TS,
    )
    assert msg.start_time == header.start_time
    assert msg.end_time.ToDatetime() - msg.start_time.ToDatetime() == timedelta(seconds=2)
    assert msg.retain_until == seg.retain_until
    assert msg.retention_days == 7.5
    assert msg.signature == header.signature
    assert msg.uploader.id == "user:gateway"


async def test_a_stored_segment_is_audited_as_an_allowed_upload(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(10)
    seg = (await ingest.upload(ingest.header(did, data), [data])).segment
    (record,) = await ingest.audits()
    assert record.action == "ingest.segment.upload"
    assert record.decision == audit_record_pb2.DECISION_ALLOWED
    assert list(record.resources.device_ids) == [did]
    assert list(record.resources.segment_ids) == [seg.version_id]
    assert record.actor.id == "user:gateway"
    assert record.attributes["sha256"] == seg.sha256


async def test_a_large_segment_goes_up_as_a_multipart_upload_and_is_locked(ingest: Ingest) -> None:
    did = await ingest.seed_device(retention_days=30)
    # Over single_put_max_bytes (8 MiB): two 8 MiB parts would be 16; 9 MiB gives a part and a tail.
    data = ts_packets((9 * MiB) // 188 + 1)
    response = await ingest.upload(ingest.header(did, data), chunks(data, MiB))
    seg = response.segment
    obj = ingest.s3.get_object(seg.bucket, seg.key, version_id=seg.version_id)
    try:
        assert hashlib.sha256(obj.read()).hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        obj.close()
        obj.release_conn()
    stat = ingest.s3.stat_object(seg.bucket, seg.key, version_id=seg.version_id)
    assert stat.metadata["x-amz-object-lock-mode"] == "COMPLIANCE"
    assert ingest.open_multipart_uploads(f"segments/{did}/") == []


async def test_a_fragmented_mp4_segment_is_stored_with_an_mp4_key(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    data = encode_segment(did, start, seconds=0.5, size=(160, 96), container="mp4")
    seg = (
        await ingest.upload(ingest.header(did, data, start=start, container=pb.CONTAINER_FMP4), [data])
    ).segment
    assert seg.key.endswith("-1.mp4")
    assert seg.container == pb.CONTAINER_FMP4


async def test_the_same_sequence_and_hash_again_returns_the_first_result(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(20)
    header = ingest.header(did, data, sequence=5)
    first = await ingest.upload(header, [data])
    again = await ingest.upload(header, [data])
    assert again.replayed
    assert again.segment == first.segment
    assert len(ingest.versions(f"segments/{did}/")) == 1
    assert len(await ingest.segment_events()) == 1


async def test_a_replay_is_answered_without_its_chunks(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(20)
    header = ingest.header(did, data, sequence=5)
    first = await ingest.upload(header, [data])
    again = await ingest.upload(header, [])
    assert again.replayed and again.segment.version_id == first.segment.version_id


async def test_a_replay_with_a_bad_signature_is_refused_before_the_first_result_is_revealed(
    ingest: Ingest,
) -> None:
    did = await ingest.seed_device()
    data = ts_packets(20)
    await ingest.upload(ingest.header(did, data, sequence=5), [data])
    async with refused() as err:
        await ingest.upload(ingest.header(did, data, sequence=5, signature=b"\x00" * 64), [])
    assert err[0].code.name == "UNAUTHENTICATED"


async def test_different_bytes_for_a_stored_sequence_are_refused_as_originals_are_immutable(
    ingest: Ingest,
) -> None:
    did = await ingest.seed_device()
    data = ts_packets(20)
    await ingest.upload(ingest.header(did, data, sequence=9), [data])
    other = ts_packets(20, fill=1)
    async with refused() as err:
        await ingest.upload(ingest.header(did, other, sequence=9), [other])
    assert (err[0].code.name, err[0].rule, err[0].field) == ("ALREADY_EXISTS", "ARC-4", "header.sequence")
    assert len(ingest.versions(f"segments/{did}/")) == 1
    assert len(await ingest.segment_events()) == 1


async def test_a_platform_admin_may_upload_for_any_unit(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(10)
    response = await ingest.upload(ingest.header(did, data), [data], who="admin")
    assert not response.replayed
