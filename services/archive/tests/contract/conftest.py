"""An in-process archive on real SQLite (or PostgreSQL), the session's broker and moto S3 with object lock.

Segments are real objects: `Archive.put_segment` writes bytes into the segments bucket under
COMPLIANCE retention with ingest's metadata, then indexes that version through the archive's own
Indexer (the path SegmentIngested takes), so index and storage agree until a test makes them not.
The Kafka path from ingest is covered in integration_tests/test_archive_*.py. The outbox relay is
left out, so every event and audit record stays in the outbox table for the test to read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.retention import Retention

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.archive.v1 import archive_service_pb2_grpc as pb_grpc
from vigil.archive.v1 import events_pb2
from vigil.audit.v1 import audit_record_pb2
from vigil_archive import app, store
from vigil_archive.config import Settings
from vigil_archive.domain import SegmentRef
from vigil_archive.indexer import Indexer
from vigil_kit import objectstore, topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.embedded import free_port
from vigil_kit.grpc_client import make_channel
from vigil_testing.inprocess import InProcess, in_process

HOSPITAL = ("12320200MB0000003X", "UNIT_KIND_INSTITUTION")
SHOP = ("91320200MA1ABCDEF0", "UNIT_KIND_ENTERPRISE")
GOV = ("11320200MB0000001T", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
PSB = ("11320200MB0000002R", "UNIT_KIND_PUBLIC_SECURITY_ORGAN")

PRINCIPALS: dict[str, dict[str, Any]] = {
    "hospital": {"unit": HOSPITAL[0], "unit_kind": HOSPITAL[1], "roles": ["ROLE_UNIT_OPERATOR"]},
    "shop": {"unit": SHOP[0], "unit_kind": SHOP[1], "roles": ["ROLE_UNIT_OPERATOR"]},
    "admin": {"unit": GOV[0], "unit_kind": GOV[1], "roles": ["ROLE_PLATFORM_ADMIN"]},
    "auditor": {"unit": GOV[0], "unit_kind": GOV[1], "roles": ["ROLE_AUDITOR"]},
    "officer": {"unit": PSB[0], "unit_kind": PSB[1], "roles": ["ROLE_PUBLIC_SECURITY_OFFICER"]},
    "analyst": {"unit": GOV[0], "unit_kind": GOV[1], "roles": ["ROLE_DEPARTMENT_ANALYST"]},
}

ARCHIVE_EVENTS = (
    events_pb2.SegmentArchived,
    events_pb2.SegmentExpired,
    events_pb2.HoldPlaced,
    events_pb2.HoldReleased,
    events_pb2.IntegrityViolation,
    events_pb2.OrphanReindexed,
)

# Device ids unique within the test session: the session's S3 server keeps every test's objects.
_SERIALS = itertools.count(random.randrange(0, 50_000))


def new_device_id() -> str:
    return f"320205015013300{next(_SERIALS):05d}"


def segment_key(device_id: str, start: datetime, sequence: int) -> str:
    """Ingest's key layout (IngestService.UploadSegment)."""
    stamp = start.strftime("%Y%m%dT%H%M%S.") + f"{start.microsecond // 1000:03d}Z"
    return f"segments/{device_id}/{start:%Y/%m/%d}/{stamp}-{sequence}.ts"


def ts_bytes(seed: int, packets: int = 4) -> bytes:
    """A few MPEG-TS packets whose payload depends on `seed` (distinct hashes per segment)."""
    body = hashlib.sha256(str(seed).encode()).digest() * 6
    return b"".join(b"\x47" + bytes([i % 256]) + body[:186] for i in range(packets))


@dataclass
class Archive:
    """The running archive, a minio client on the same S3, and helpers to make and read footage."""

    service: InProcess
    issuer: TokenIssuer
    s3: Minio
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    sequences: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def settings(self) -> Settings:
        return self.service.settings  # type: ignore[return-value]

    @property
    def sessions(self) -> Any:
        assert self.service.context is not None
        return self.service.context.sessions

    @property
    def servicer(self) -> Any:
        return self.service.servicer()

    def stub(self, who: str = "admin") -> pb_grpc.ArchiveServiceStub:
        if who not in self.channels:
            token = self.issuer.mint(sub=f"user:{who}", name=who, **PRINCIPALS[who])
            self.channels[who] = make_channel(self.service.address, token=token, default_timeout_s=30)
        return pb_grpc.ArchiveServiceStub(self.channels[who])

    def indexer(self) -> Indexer:
        return Indexer(clock=lambda: datetime.now(UTC), after_index=self.servicer.after_index)

    async def put_object(
        self, device_id: str, start: datetime, data: bytes, *, retain_until: datetime, sequence: int
    ) -> tuple[str, str]:
        """Store bytes as ingest does (COMPLIANCE retention, header metadata); (key, version id)."""
        key = segment_key(device_id, start, sequence)
        result = await asyncio.to_thread(
            self.s3.put_object,
            objectstore.SEGMENTS_BUCKET,
            key,
            io.BytesIO(data),
            len(data),
            content_type="video/mp2t",
            # S3 wants a checksum on a PUT under object lock; ingest sends the SHA-256 it checked.
            metadata={
                "x-amz-sdk-checksum-algorithm": "SHA256",
                "x-amz-checksum-sha256": b64(hashlib.sha256(data).digest()),
            },
            retention=Retention(COMPLIANCE, retain_until),
        )
        return key, result.version_id

    async def put_segment(
        self,
        device_id: str,
        start: datetime,
        *,
        duration: timedelta = timedelta(seconds=2),
        retain_for: timedelta = timedelta(days=30),
        owner: str = HOSPITAL[0],
        data: bytes | None = None,
    ) -> store.IndexedSegment:
        """One segment stored in S3 and indexed through the archive's Indexer."""
        sequence = next(self.sequences)
        data = data if data is not None else ts_bytes(hash((device_id, start, sequence)))
        retain_until = (datetime.now(UTC) + retain_for).replace(microsecond=0) + timedelta(seconds=1)
        key, version = await self.put_object(
            device_id, start, data, retain_until=retain_until, sequence=sequence
        )
        ref = SegmentRef(
            device_id=device_id,
            start=start,
            end=start + duration,
            bucket=objectstore.SEGMENTS_BUCKET,
            key=key,
            version_id=version,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            retain_until=retain_until,
        )
        async with self.sessions.begin() as s:
            row = await self.indexer().index(
                s,
                ref,
                sequence=sequence,
                owner_unit_id=owner,
                codec_name="h264",
                container="ts",
                source="ingest",
            )
        assert row is not None
        return row

    async def put_run(
        self,
        device_id: str,
        start: datetime,
        count: int,
        *,
        duration: timedelta = timedelta(seconds=2),
        **kw: Any,
    ) -> list[store.IndexedSegment]:
        """`count` back-to-back segments from `start`."""
        return [
            await self.put_segment(device_id, start + i * duration, duration=duration, **kw)
            for i in range(count)
        ]

    async def events(self, *types: type) -> list[Any]:
        rows = await self.service.outbox(types or ARCHIVE_EVENTS, topic=topics.ARCHIVE_EVENTS)
        return [r.message for r in rows]

    async def audits(self, action: str | None = None) -> list[audit_record_pb2.AuditRecord]:
        rows = await self.service.outbox([audit_record_pb2.AuditRecord], topic=topics.AUDIT_RECORDS)
        return [r.message for r in rows if action is None or r.message.action == action]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def archive_settings(tmp_path, issuer: TokenIssuer, broker, s3, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "grpc_host": "127.0.0.1",
        "grpc_port": free_port(),
        "metrics_port": 0,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'archive.db'}",
        "kafka_bootstrap": broker.address,
        "s3_endpoint": s3.address,
        "auth_public_keys": [issuer.public_key_pem.decode()],
        "service_token": issuer.mint_service("archive"),
        # No sharing runs here: a grant check finds nothing to ask and denies (ACC-2).
        "sharing_addr": f"127.0.0.1:{free_port()}",
        "sharing_timeout_s": 0.5,
        "readiness_interval_s": 5,
        "shutdown_grace_s": 0.5,
    }
    base.update(kw)
    return Settings(**base)


@pytest.fixture
async def archive(tmp_path, issuer: TokenIssuer, kafka_broker, s3_server) -> AsyncIterator[Archive]:
    settings = archive_settings(tmp_path, issuer, kafka_broker, s3_server)
    # The Kafka indexer would also index every other test's segments from the session broker.
    async with in_process(
        settings,
        build=app.build,
        migrations_dir=app.MIGRATIONS,
        needs_s3=True,
        drop_workers=("outbox-relay", "segment-indexer"),
        buckets=(objectstore.SEGMENTS_BUCKET,),
    ) as service:
        running = Archive(service=service, issuer=issuer, s3=objectstore.make_minio(settings))
        try:
            yield running
        finally:
            for channel in running.channels.values():
                await channel.close()


def hour(n: int = 0) -> datetime:
    """A fixed, whole hour in the recent past (tests lay footage out from it)."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    return base + timedelta(hours=n)


__all__ = ["HOSPITAL", "PRINCIPALS", "SHOP", "Archive", "hour", "new_device_id", "pb"]
