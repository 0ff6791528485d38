"""Archive integrity on the real stack (ARC-4): registry, ingest and archive processes, the broker and S3.

A device uploads signed segments through ingest; the archive indexes them from Kafka. Then storage
is tampered with behind the platform's back: a newer version PUT straight over an indexed key, and
an indexed version deleted by version id once its (seconds-long) lock has passed. The scrubber and
VerifySegments both catch both. An ingest-style object PUT straight into S3 with a valid signed
header, never announced, is re-indexed by reconciliation after the archive verifies its signature
with the key the registry holds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from minio.commonconfig import COMPLIANCE
from minio.retention import Retention

from vigil.archive.v1 import archive_service_pb2 as apb
from vigil.archive.v1 import archive_service_pb2_grpc as apb_grpc
from vigil.archive.v1 import events_pb2 as archive_events
from vigil.common.v1 import time_range_pb2
from vigil.ingest.v1 import ingest_service_pb2 as ipb
from vigil.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_kit import cloudevents, objectstore, topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.grpc_client import make_channel
from vigil_kit.kafka import create_consumer
from vigil_kit.objectstore import make_minio
from vigil_kit.segment_header import (
    Container,
    SegmentHeader,
    UploadHeader,
    generate_device_key,
    object_metadata,
    sign,
)
from vigil_kit.settings import ServiceSettings
from vigil_testing.platform import register_active_device
from vigil_testing.services import start_together

SHOP = ("91320200MA1ABCDEF0", "Corner shop", "UNIT_KIND_ENTERPRISE")
ADMIN_UNIT = "11320200MB0000001T"
# A non-mandatory place may keep footage for seconds (ARC-1), so a test can outlive a real lock.
FLASH_DAYS = 3 / 86_400
MiB = 1024 * 1024
EVENT_TYPES = [
    archive_events.IntegrityViolation,
    archive_events.OrphanReindexed,
    archive_events.SegmentArchived,
]


def _admin(issuer: TokenIssuer) -> str:
    return issuer.mint(
        sub="user:admin",
        name="admin",
        unit=ADMIN_UNIT,
        unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
        roles=["ROLE_PLATFORM_ADMIN"],
    )


def _gateway(issuer: TokenIssuer) -> str:
    return issuer.mint(
        sub="gateway:shop", name="gateway", unit=SHOP[0], unit_kind=SHOP[2], roles=["ROLE_UNIT_OPERATOR"]
    )


def _device_id() -> str:
    return f"32020501501320{secrets.randbelow(10**6):06d}"


async def _register_and_activate(address: str, token: str, device_id: str, public_key_b64: str) -> None:
    """A corner shop's till camera: a private, non-public place, so the short "flash" profile is lawful."""
    await register_active_device(
        address,
        token,
        device_id,
        public_key_b64,
        unit=SHOP,
        site_id="shop-1",
        place_category=pb.PLACE_CATEGORY_NON_PUBLIC,
        funding=pb.FUNDING_PRIVATE,
        retention_profile="flash",
    )


def _stack(vigil_service, issuer: TokenIssuer, **archive_settings: object):
    registry = vigil_service(
        "registry",
        start=False,
        JURISDICTION_PREFIXES='["3202"]',
        RETENTION_PROFILES_DAYS=f'{{"standard": 30, "flash": {FLASH_DAYS}}}',
    )
    ingest = vigil_service(
        "ingest",
        start=False,
        REGISTRY_ADDR=registry.address,
        SERVICE_TOKEN=issuer.mint_service("ingest"),
        MIN_LOCK_S=1,
    )
    archive = vigil_service(
        "archive",
        start=False,
        REGISTRY_ADDR=registry.address,
        SERVICE_TOKEN=issuer.mint_service("archive"),
        SWEEP_INTERVAL_S=3600,  # expiry would remove the expired segment this test deletes behind its back
        **archive_settings,
    )
    start_together(registry, ingest, archive)
    return registry, ingest, archive


def _signed(
    device_id: str, key, data: bytes, start: datetime, sequence: int
) -> tuple[UploadHeader, ipb.SegmentHeader]:
    digest = hashlib.sha256(data).hexdigest()
    segment = SegmentHeader.of(
        device_id=device_id, sequence=sequence, start=start, duration=timedelta(seconds=1), sha256=digest
    )
    upload = UploadHeader(
        segment=segment,
        container=Container.MPEG_TS,
        codec="h264",
        size=len(data),
        signature=sign(key.private_key, segment),
    )
    header = ipb.SegmentHeader(
        device_id=device_id,
        sequence=sequence,
        container=ipb.CONTAINER_MPEG_TS,
        codec="h264",
        size=len(data),
        sha256=digest,
        signature=upload.signature,
    )
    header.start_time.FromDatetime(start)
    header.duration.FromTimedelta(timedelta(seconds=1))
    return upload, header


def _segment_bytes(seed: int) -> bytes:
    body = hashlib.sha256(str(seed).encode()).digest() * 6
    return b"".join(b"\x47" + bytes([i % 256]) + body[:186] for i in range(8))


async def _upload(
    ingest, issuer: TokenIssuer, device_id: str, key, start: datetime, sequence: int
) -> ipb.UploadSegmentResponse:
    data = _segment_bytes(sequence)
    _, header = _signed(device_id, key, data, start, sequence)

    def requests():
        yield ipb.UploadSegmentRequest(header=header)
        yield ipb.UploadSegmentRequest(chunk=data)

    async with make_channel(ingest.address, token=_gateway(issuer), default_timeout_s=30) as channel:
        return await ipb_grpc.IngestServiceStub(channel).UploadSegment(requests())


def _put(s3, key: str, data: bytes, metadata: dict[str, str], until: datetime):
    return s3.put_object(
        objectstore.SEGMENTS_BUCKET,
        key,
        io.BytesIO(data),
        len(data),
        content_type="video/mp2t",
        metadata={
            **metadata,
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        },
        retention=Retention(COMPLIANCE, until),
    )


class Events:
    """The archive's events for one device, read from Kafka as they arrive."""

    def __init__(self, consumer, device_id: str) -> None:
        self.consumer = consumer
        self.device_id = device_id
        self.seen: list[object] = []

    async def wait_for(self, predicate, what: str, timeout_s: float = 30.0):
        end = time.monotonic() + timeout_s
        while True:
            for msg in self.seen:
                if predicate(msg):
                    return msg
            if time.monotonic() > end:
                raise AssertionError(f"no {what} within {timeout_s} s; seen {self.seen}")
            batches = await self.consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    event = cloudevents.from_record(record)
                    if event.key == self.device_id:
                        self.seen.append(cloudevents.decode(event, EVENT_TYPES))


def _violation(kind: int, detected_by: str, version_id: str):
    def match(msg) -> bool:
        return (
            isinstance(msg, archive_events.IntegrityViolation)
            and msg.finding.kind == kind
            and msg.detected_by == detected_by
            and msg.finding.version_id == version_id
        )

    return match


@pytest.fixture
async def archive_events_consumer(kafka_broker):
    consumer = await create_consumer(
        kafka_broker.address, [topics.ARCHIVE_EVENTS], f"archive-it-{uuid.uuid4()}"
    )
    try:
        yield consumer
    finally:
        await consumer.stop()


async def test_a_newer_version_and_a_missing_object_are_caught_by_the_scrubber_and_by_verify(
    vigil_service, issuer: TokenIssuer, s3_server, archive_events_consumer
) -> None:
    _registry, ingest, archive = _stack(
        vigil_service,
        issuer,
        SCRUB_INTERVAL_S=0.5,
        SCRUB_PER_TICK=100,
        SCRUB_RANDOM_SHARE=0,
        RECONCILE_INTERVAL_S=3600,
    )
    device_id = _device_id()
    key = generate_device_key()
    await _register_and_activate(_registry.address, _admin(issuer), device_id, key.public_key_b64)
    events = Events(archive_events_consumer, device_id)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)
    overwritten = (await _upload(ingest, issuer, device_id, key, start, 1)).segment
    deleted = (await _upload(ingest, issuer, device_id, key, start + timedelta(seconds=1), 2)).segment
    for seg in (overwritten, deleted):
        await events.wait_for(
            lambda m, v=seg.version_id: (
                isinstance(m, archive_events.SegmentArchived) and m.segment.version_id == v
            ),
            "SegmentArchived",
        )

    s3 = make_minio(ServiceSettings(service_name="test", s3_endpoint=s3_server.address))
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    newer = await asyncio.to_thread(_put, s3, overwritten.key, b"\x47" * 188, {}, until)
    await _remove_when_unlocked(s3, deleted.key, deleted.version_id, timeout_s=30)

    await events.wait_for(
        _violation(apb.VIOLATION_KIND_NEWER_VERSION, "scrubber", overwritten.version_id),
        "scrubber NEWER_VERSION",
    )
    await events.wait_for(
        _violation(apb.VIOLATION_KIND_MISSING, "scrubber", deleted.version_id), "scrubber MISSING"
    )

    window = time_range_pb2.TimeRange()
    window.start_time.FromDatetime(start - timedelta(minutes=1))
    window.end_time.FromDatetime(start + timedelta(minutes=1))
    async with make_channel(archive.address, token=_admin(issuer), default_timeout_s=30) as channel:
        resp = await apb_grpc.ArchiveServiceStub(channel).VerifySegments(
            apb.VerifySegmentsRequest(device_id=device_id, range=window)
        )
    found = {(f.kind, f.version_id) for f in resp.findings}
    assert not resp.ok and resp.checked == 2
    assert (apb.VIOLATION_KIND_NEWER_VERSION, overwritten.version_id) in found
    assert (apb.VIOLATION_KIND_MISSING, deleted.version_id) in found
    assert any(newer.version_id in f.detail for f in resp.findings)


async def _remove_when_unlocked(s3, key: str, version_id: str, timeout_s: float) -> None:
    """Delete a version by id as soon as storage's lock lets it (the lock is seconds long)."""
    end = time.monotonic() + timeout_s
    while True:
        try:
            await asyncio.to_thread(s3.remove_object, objectstore.SEGMENTS_BUCKET, key, version_id=version_id)
            return
        except Exception:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.25)  # polling storage's lock, with the deadline above


async def test_an_orphan_object_with_a_valid_signed_header_is_reindexed(
    vigil_service, issuer: TokenIssuer, s3_server, archive_events_consumer
) -> None:
    registry, _ingest, archive = _stack(
        vigil_service, issuer, SCRUB_INTERVAL_S=3600, RECONCILE_INTERVAL_S=0.5, RECONCILE_SETTLE_S=1
    )
    device_id = _device_id()
    key = generate_device_key()
    await _register_and_activate(registry.address, _admin(issuer), device_id, key.public_key_b64)
    events = Events(archive_events_consumer, device_id)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    data = _segment_bytes(99)
    upload, _ = _signed(device_id, key, data, start, 99)
    object_key = f"segments/{device_id}/{start:%Y/%m/%d}/{start:%Y%m%dT%H%M%S}.000Z-99.ts"
    s3 = make_minio(ServiceSettings(service_name="test", s3_endpoint=s3_server.address))
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    stored = await asyncio.to_thread(_put, s3, object_key, data, object_metadata(upload), until)

    orphan = await events.wait_for(lambda m: isinstance(m, archive_events.OrphanReindexed), "OrphanReindexed")
    seg = orphan.segment
    assert (seg.key, seg.version_id, seg.sha256, seg.size) == (
        object_key,
        stored.version_id,
        hashlib.sha256(data).hexdigest(),
        len(data),
    )
    assert seg.owner_unit_id == SHOP[0] and seg.retain_until.ToDatetime(tzinfo=UTC) == until
    archived = await events.wait_for(
        lambda m: isinstance(m, archive_events.SegmentArchived), "SegmentArchived"
    )
    assert archived.source == "reconciliation"
    async with make_channel(archive.address, token=_admin(issuer), default_timeout_s=30) as channel:
        found = await apb_grpc.ArchiveServiceStub(channel).FindSegments(
            apb.FindSegmentsRequest(device_id=device_id)
        )
    assert [s.version_id for s in found.segments] == [stored.version_id]
