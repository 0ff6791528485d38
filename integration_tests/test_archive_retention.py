"""Archive retention on the real stack (ARC-2, ARC-3, ARC-6): an archive PROCESS, a fresh broker, moto S3 with
object lock. Segments are stored as ingest stores them (COMPLIANCE retention a few seconds long) and announced
with SegmentIngested on the broker; the archive indexes them from there."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from minio.commonconfig import COMPLIANCE
from minio.error import S3Error
from minio.retention import Retention

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.archive.v1 import archive_service_pb2_grpc as pb_grpc
from vigil.ingest.v1 import events_pb2 as ingest_events
from vigil.ingest.v1 import ingest_service_pb2 as ipb
from vigil_archive.codec import from_ts, time_range, ts
from vigil_kit import cloudevents, objectstore, topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.grpc_client import make_channel
from vigil_kit.kafka import create_producer, ensure_topics
from vigil_kit.settings import ServiceSettings
from vigil_testing.poll import apoll_until

HOSPITAL = "12320200MB0000003X"
RETAIN = timedelta(seconds=4)


def _token(issuer: TokenIssuer, who: str, unit: str, kind: str, role: str) -> str:
    return issuer.mint(sub=f"user:{who}", name=who, unit=unit, unit_kind=kind, roles=[role])


def _device_id() -> str:
    return f"32020501501320{secrets.randbelow(10**6):06d}"


def _retain_until_header(stat: object) -> datetime:
    value = stat.metadata["x-amz-object-lock-retain-until-date"]  # type: ignore[attr-defined]
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
async def stack(vigil_service, fresh_kafka_broker, s3_server, issuer: TokenIssuer):
    archive = vigil_service("archive", kafka=fresh_kafka_broker, SWEEP_INTERVAL_S="1")
    client = objectstore.make_minio(ServiceSettings(service_name="test", s3_endpoint=s3_server.address))
    admin = _token(
        issuer, "admin", "11320200MB0000001T", "UNIT_KIND_GOVERNMENT_DEPARTMENT", "ROLE_PLATFORM_ADMIN"
    )
    officer = _token(
        issuer,
        "officer",
        "11320200MB0000002R",
        "UNIT_KIND_PUBLIC_SECURITY_ORGAN",
        "ROLE_PUBLIC_SECURITY_OFFICER",
    )
    async with (
        make_channel(archive.address, token=admin, default_timeout_s=30) as a,
        make_channel(archive.address, token=officer, default_timeout_s=30) as o,
    ):
        yield (
            archive,
            fresh_kafka_broker,
            client,
            pb_grpc.ArchiveServiceStub(a),
            pb_grpc.ArchiveServiceStub(o),
        )


async def _store_and_announce(
    client, bootstrap: str, device: str, starts: list[datetime]
) -> list[tuple[str, str, datetime]]:
    """PUT each segment under COMPLIANCE retention (as ingest does) and publish its SegmentIngested."""
    await ensure_topics(bootstrap)
    producer = await create_producer(bootstrap)
    out = []
    try:
        for seq, start in enumerate(starts, 1):
            data = hashlib.sha256(f"{device}{seq}".encode()).digest() * 8
            key = f"segments/{device}/{start:%Y/%m/%d}/{start:%Y%m%dT%H%M%S}.000Z-{seq}.ts"
            until = datetime.now(UTC).replace(microsecond=0) + RETAIN
            put = await asyncio.to_thread(
                client.put_object,
                objectstore.SEGMENTS_BUCKET,
                key,
                io.BytesIO(data),
                len(data),
                metadata={
                    "x-amz-sdk-checksum-algorithm": "SHA256",
                    "x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
                },
                retention=Retention(COMPLIANCE, until),
            )
            event = ingest_events.SegmentIngested(
                device_id=device,
                sequence=seq,
                start_time=ts(start),
                end_time=ts(start + timedelta(seconds=2)),
                bucket=objectstore.SEGMENTS_BUCKET,
                key=key,
                version_id=put.version_id,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                codec="h264",
                container=ipb.CONTAINER_MPEG_TS,
                retain_until=ts(until),
                owner_unit_id=HOSPITAL,
            )
            await producer.send_and_wait(
                topics.INGEST_SEGMENTS,
                event.SerializeToString(),
                key=device.encode(),
                headers=cloudevents.headers_for(event, source_service="ingest", subject=device),
            )
            out.append((key, put.version_id, until))
    finally:
        await producer.stop()
    return out


async def _indexed(stub, device: str, start: datetime, count: int) -> list[pb.Segment]:
    async def listed() -> list[pb.Segment] | None:
        resp = await stub.FindSegments(
            pb.FindSegmentsRequest(device_id=device, range=time_range(start, start + timedelta(hours=1)))
        )
        return list(resp.segments) if len(resp.segments) == count else None

    return await apoll_until(listed, timeout=60, interval=0.3, what=f"{count} segments indexed")


async def _passed(t: datetime) -> None:
    async def after() -> bool:
        return datetime.now(UTC) > t + timedelta(seconds=1)

    await apoll_until(after, timeout=60, interval=0.2, what="retention to pass")


async def test_retention_is_enforced_by_storage_and_expiry_keeps_only_held_footage(stack) -> None:
    _archive, broker, client, admin, officer = stack
    device = _device_id()
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    starts = [t0, t0 + timedelta(seconds=2), t0 + timedelta(minutes=30)]
    stored = await _store_and_announce(client, broker.address, device, starts)
    segments = await _indexed(admin, device, t0, 3)
    bucket = objectstore.SEGMENTS_BUCKET

    # The object's retain-until is the index's.
    for (key, version, _), seg in zip(stored, segments, strict=True):
        stat = await asyncio.to_thread(client.stat_object, bucket, key, version_id=version)
        assert seg.version_id == version and _retain_until_header(stat) == from_ts(seg.retain_until)

    # A versioned DELETE of a locked object is refused by storage before expiry.
    key0, version0, _ = stored[0]
    with pytest.raises(S3Error) as refused:
        await asyncio.to_thread(client.remove_object, bucket, key0, version_id=version0)
    assert refused.value.code == "AccessDenied"

    # A plain DELETE only adds a delete marker: the archive still finds the indexed version.
    await asyncio.to_thread(client.remove_object, bucket, key0)
    again = await _indexed(admin, device, t0, 3)
    assert again[0].version_id == version0
    await asyncio.to_thread(client.stat_object, bucket, key0, version_id=version0)

    # Hold the last segment; after expiry the sweeper removes exactly the two unheld ones.
    await officer.PlaceHold(
        pb.PlaceHoldRequest(
            device_ids=[device],
            range=time_range(t0 + timedelta(minutes=29), t0 + timedelta(minutes=31)),
            case_reference="CASE-7",
            reason="evidence",
        )
    )
    await _passed(max(u for _, _, u in stored))
    remaining = await _indexed(admin, device, t0, 1)
    assert remaining[0].version_id == stored[2][1]
    for key, version, _ in stored[:2]:
        with pytest.raises(S3Error):
            await asyncio.to_thread(client.stat_object, bucket, key, version_id=version)
    await asyncio.to_thread(client.stat_object, bucket, stored[2][0], version_id=stored[2][1])
