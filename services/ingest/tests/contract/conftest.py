"""An in-process ingest on real SQLite, the session's real broker and moto S3, with a fake registry.

The outbox relay is left out of the running service on purpose, so every event and audit record
ingest commits stays in its outbox table, where a test reads it back exactly (the published path is
covered by integration_tests/test_ingest_upload.py). The device-cache consumer runs against the
real broker. Device facts are seeded into the cache table directly, or served by `FakeRegistry`,
a RegistryService on loopback answering GetDevice from a dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import random
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from minio import Minio
from sqlalchemy import select

from vigil.audit.v1 import audit_record_pb2
from vigil.ingest.v1 import events_pb2
from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from vigil.registry.v1 import registry_service_pb2 as registry_pb
from vigil.registry.v1 import registry_service_pb2_grpc as registry_grpc
from vigil_ingest import app, store
from vigil_ingest.config import Settings
from vigil_ingest.domain.signing import DeviceKey, SegmentHeader, generate_device_key, sign
from vigil_ingest.store import DeviceFacts
from vigil_kit import objectstore, topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.embedded import EmbeddedProcess, free_port
from vigil_kit.grpc_client import make_channel
from vigil_kit.migrations import outbox_table
from vigil_kit.service import ServiceContext, run_service
from vigil_testing.calls import service_started as _started
from vigil_testing.poll import apoll_until

HOSPITAL = ("12320200MB0000003X", "UNIT_KIND_INSTITUTION")
SHOP = ("91320200MA1ABCDEF0", "UNIT_KIND_ENTERPRISE")
GOV = ("11320200MB0000001T", "UNIT_KIND_GOVERNMENT_DEPARTMENT")

PRINCIPALS: dict[str, dict[str, Any]] = {
    "gateway": {"unit": HOSPITAL[0], "unit_kind": HOSPITAL[1], "roles": ["ROLE_UNIT_OPERATOR"]},
    "shop": {"unit": SHOP[0], "unit_kind": SHOP[1], "roles": ["ROLE_UNIT_OPERATOR"]},
    "admin": {"unit": GOV[0], "unit_kind": GOV[1], "roles": ["ROLE_PLATFORM_ADMIN"]},
}

EVENT_TYPES = {
    m.DESCRIPTOR.full_name: m
    for m in (events_pb2.SegmentIngested, events_pb2.AlarmRaised, audit_record_pb2.AuditRecord)
}
MiB = 1024 * 1024


# Device ids unique within the test session: the session's S3 server keeps every test's objects.
_SERIALS = itertools.count(random.randrange(0, 50_000))


def device_id(serial: int) -> str:
    return f"320205015013200{serial:05d}"


def ts_packets(n: int, fill: int = 0) -> bytes:
    """n MPEG-TS packets: only the sync bytes matter to the container check."""
    return (b"\x47" + bytes([fill]) * 187) * n


@dataclass
class Event:
    topic: str
    key: str
    type: str
    message: Any


class FakeRegistry(registry_grpc.RegistryServiceServicer):
    """GetDevice from a dict; everything else unimplemented. Counts the calls."""

    def __init__(self) -> None:
        self.devices: dict[str, registry_pb.Device] = {}
        self.calls = 0

    async def GetDevice(self, request: registry_pb.GetDeviceRequest, context: grpc.aio.ServicerContext):
        self.calls += 1
        device = self.devices.get(request.device_id)
        if device is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"device {request.device_id} not found")
        return device


@dataclass
class Ingest:
    """The running ingest, its device keys, and readers for what it stored and committed."""

    settings: Settings
    issuer: TokenIssuer
    s3: Minio
    registry: FakeRegistry
    context: ServiceContext | None = None
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    keys: dict[str, DeviceKey] = field(default_factory=dict)

    def stub(self, who: str = "gateway") -> pb_grpc.IngestServiceStub:
        if who not in self.channels:
            token = self.issuer.mint(sub=f"user:{who}", name=who, **PRINCIPALS[who])
            self.channels[who] = make_channel(
                f"127.0.0.1:{self.settings.grpc_port}", token=token, default_timeout_s=30
            )
        return pb_grpc.IngestServiceStub(self.channels[who])

    async def seed_device(
        self,
        *,
        state: str = "DEVICE_STATE_ACTIVE",
        retention_days: float = 30.0,
        owner: str = HOSPITAL[0],
    ) -> str:
        """A device in ingest's cache table (as if its registry events had arrived), with a fresh key."""
        did = device_id(next(_SERIALS))
        key = self.keys.setdefault(did, generate_device_key())
        assert self.context is not None
        async with self.context.sessions.begin() as s:
            await store.put_device(
                s,
                DeviceFacts(
                    device_id=did,
                    state=state,
                    public_key=key.public_key_b64,
                    retention_days=retention_days,
                    owner_unit_id=owner,
                    site_id="hosp-1",
                    division_code="320205",
                ),
                now=datetime.now(UTC),
            )
        return did

    def header(
        self,
        did: str,
        data: bytes,
        *,
        sequence: int = 1,
        start: datetime | None = None,
        duration: timedelta = timedelta(seconds=2),
        container: int = pb.CONTAINER_MPEG_TS,
        size: int | None = None,
        sha256: str | None = None,
        sign_sha256: str | None = None,
        key: DeviceKey | None = None,
        signature: bytes | None = None,
    ) -> pb.SegmentHeader:
        """A signed header for `data`; each keyword overrides one claim (to build a bad upload)."""
        start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)
        digest = sha256 or hashlib.sha256(data).hexdigest()
        segment = SegmentHeader.of(
            device_id=did, sequence=sequence, start=start, duration=duration, sha256=sign_sha256 or digest
        )
        key = key or self.keys[did]
        msg = pb.SegmentHeader(
            device_id=did,
            sequence=sequence,
            container=container,
            codec="h264",
            size=len(data) if size is None else size,
            sha256=digest,
            signature=sign(key.private_key, segment) if signature is None else signature,
        )
        msg.start_time.FromDatetime(start)
        msg.duration.FromTimedelta(duration)
        return msg

    async def upload(
        self, header: pb.SegmentHeader | None, chunks: Iterable[bytes], *, who: str = "gateway"
    ) -> pb.UploadSegmentResponse:
        async def messages() -> AsyncIterator[pb.UploadSegmentRequest]:
            if header is not None:
                yield pb.UploadSegmentRequest(header=header)
            for chunk in chunks:
                yield pb.UploadSegmentRequest(chunk=chunk)

        return await self.stub(who).UploadSegment(messages())

    # --- what was left behind ------------------------------------------------------------------

    def versions(self, prefix: str = "segments/") -> list[Any]:
        return list(
            self.s3.list_objects(
                objectstore.SEGMENTS_BUCKET, prefix=prefix, include_version=True, recursive=True
            )
        )

    def open_multipart_uploads(self, prefix: str = "segments/") -> list[Any]:
        return list(self.s3._list_multipart_uploads(objectstore.SEGMENTS_BUCKET, prefix=prefix).uploads)

    async def events(self, *, topic: str | None = None) -> list[Event]:
        assert self.context is not None
        async with self.context.sessions() as s:
            rows = (await s.execute(select(outbox_table).order_by(outbox_table.c.id))).all()
        out = []
        for r in rows:
            cls = EVENT_TYPES.get(r.ce_type)
            if cls is None or (topic is not None and r.topic != topic):
                continue
            out.append(Event(r.topic, r.key, r.ce_type, cls.FromString(r.payload)))
        return out

    async def segment_events(self) -> list[events_pb2.SegmentIngested]:
        return [e.message for e in await self.events(topic=topics.INGEST_SEGMENTS)]

    async def audits(self, decision: int | None = None) -> list[audit_record_pb2.AuditRecord]:
        records = [e.message for e in await self.events(topic=topics.AUDIT_RECORDS)]
        return [r for r in records if decision is None or r.decision == decision]

    async def upload_rows(self) -> list[Any]:
        assert self.context is not None
        async with self.context.sessions() as s:
            return list((await s.execute(select(store.uploads))).all())


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """run_service configures process-wide JSON logging; put the test process's logging back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def fake_registry() -> AsyncIterator[tuple[FakeRegistry, int]]:
    registry = FakeRegistry()
    server = grpc.aio.server()
    registry_grpc.add_RegistryServiceServicer_to_server(registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield registry, port
    finally:
        await server.stop(0)


def ingest_settings(
    tmp_path, issuer: TokenIssuer, broker: EmbeddedProcess, s3: EmbeddedProcess, registry_port: int, **kw: Any
) -> Settings:
    base: dict[str, Any] = {
        "grpc_host": "127.0.0.1",
        "grpc_port": free_port(),
        "metrics_port": 0,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}",
        "kafka_bootstrap": broker.address,
        "s3_endpoint": s3.address,
        "auth_public_keys": [issuer.public_key_pem.decode()],
        "service_token": issuer.mint_service("ingest"),
        "registry_addr": f"127.0.0.1:{registry_port}",
        "readiness_interval_s": 5,
        "shutdown_grace_s": 0.5,
    }
    base.update(kw)
    return Settings(**base)


@contextlib.asynccontextmanager
async def running_ingest(
    settings: Settings, issuer: TokenIssuer, s3: EmbeddedProcess, registry: FakeRegistry
) -> AsyncIterator[Ingest]:
    client = objectstore.make_minio(settings)
    ingest = Ingest(settings=settings, issuer=issuer, s3=client, registry=registry)

    async def build(ctx: ServiceContext) -> list:
        ingest.context = ctx
        bindings = await app.build(ctx)
        # Keep every committed event in the outbox for the test to read (module docstring).
        ctx.workers[:] = [(n, w) for n, w in ctx.workers if n != "outbox-relay"]
        return bindings

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_service(settings, build=build, migrations_dir=app.MIGRATIONS, needs_s3=True, stop=stop)
    )
    try:
        await apoll_until(
            lambda: _started(task, settings.grpc_port), timeout=30, interval=0.02, what="ingest listening"
        )
        # Uploads need the bucket, which the service creates in the background.
        await apoll_until(
            lambda: asyncio.to_thread(client.bucket_exists, objectstore.SEGMENTS_BUCKET),
            timeout=30,
            what="segments bucket",
        )
        yield ingest
    finally:
        for channel in ingest.channels.values():
            await channel.close()
        stop.set()
        await asyncio.wait_for(task, 20)


@pytest.fixture
async def ingest(
    tmp_path, issuer: TokenIssuer, kafka_broker, s3_server, fake_registry
) -> AsyncIterator[Ingest]:
    registry, port = fake_registry
    settings = ingest_settings(tmp_path, issuer, kafka_broker, s3_server, port)
    async with running_ingest(settings, issuer, s3_server, registry) as running:
        yield running
