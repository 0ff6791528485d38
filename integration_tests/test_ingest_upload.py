"""Ingest on the real stack: registry and ingest processes, the broker and S3. A device registered and
activated through the registry uploads a real signed H.264 segment → the object is in S3 under the
device's retention and SegmentIngested arrives on Kafka; an unregistered device is refused."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from vigil.ingest.v1 import events_pb2
from vigil.ingest.v1 import ingest_service_pb2 as ipb
from vigil.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from vigil_ingest.domain.signing import SegmentHeader, generate_device_key, sign
from vigil_ingest.video import encode_segment
from vigil_kit import cloudevents, objectstore, topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.errors import from_rpc_error
from vigil_kit.grpc_client import make_channel
from vigil_kit.kafka import create_consumer
from vigil_kit.objectstore import make_minio
from vigil_kit.settings import ServiceSettings
from vigil_testing.platform import register_active_device
from vigil_testing.services import start_together

HOSPITAL = ("12320200MB0000003X", "First People's Hospital", "UNIT_KIND_INSTITUTION")
ADMIN_UNIT = "11320200MB0000001T"
MiB = 1024 * 1024


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
        sub="gateway:hosp",
        name="gateway",
        unit=HOSPITAL[0],
        unit_kind=HOSPITAL[2],
        roles=["ROLE_UNIT_OPERATOR"],
    )


def _device_id() -> str:
    # A fresh serial per run: the session broker and S3 server keep earlier runs' events and objects.
    return f"32020501501320{secrets.randbelow(10**6):06d}"


async def _register_and_activate(address: str, token: str, device_id: str, public_key_b64: str) -> None:
    await register_active_device(address, token, device_id, public_key_b64, unit=HOSPITAL)


def _requests(header: ipb.SegmentHeader, data: bytes):
    yield ipb.UploadSegmentRequest(header=header)
    for i in range(0, len(data), MiB):
        yield ipb.UploadSegmentRequest(chunk=data[i : i + MiB])


def _signed_header(device_id: str, key, data: bytes, start: datetime, sequence: int = 1) -> ipb.SegmentHeader:
    digest = hashlib.sha256(data).hexdigest()
    segment = SegmentHeader.of(
        device_id=device_id, sequence=sequence, start=start, duration=timedelta(seconds=1), sha256=digest
    )
    header = ipb.SegmentHeader(
        device_id=device_id,
        sequence=sequence,
        container=ipb.CONTAINER_MPEG_TS,
        codec="h264",
        size=len(data),
        sha256=digest,
        signature=sign(key.private_key, segment),
    )
    header.start_time.FromDatetime(start)
    header.duration.FromTimedelta(timedelta(seconds=1))
    return header


@pytest.fixture
def stack(vigil_service, issuer: TokenIssuer, s3_server):
    registry = vigil_service("registry", start=False, JURISDICTION_PREFIXES='["3202"]')
    ingest = vigil_service(
        "ingest",
        start=False,
        REGISTRY_ADDR=registry.address,
        SERVICE_TOKEN=issuer.mint_service("ingest"),
        s3=s3_server,
    )
    start_together(registry, ingest)
    return registry, ingest


async def test_a_signed_segment_from_an_activated_device_lands_in_s3_and_on_kafka(
    stack, issuer: TokenIssuer, kafka_broker, s3_server
) -> None:
    registry, ingest = stack
    device_id = _device_id()
    key = generate_device_key()
    await _register_and_activate(registry.address, _admin(issuer), device_id, key.public_key_b64)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    data = encode_segment(device_id, start, seconds=1, size=(320, 180))
    consumer = await create_consumer(
        kafka_broker.address, [topics.INGEST_SEGMENTS], f"ingest-it-{uuid.uuid4()}"
    )
    try:
        async with make_channel(ingest.address, token=_gateway(issuer), default_timeout_s=30) as channel:
            response = await ipb_grpc.IngestServiceStub(channel).UploadSegment(
                _requests(_signed_header(device_id, key, data, start), data)
            )
        event = await _wait_for_segment(consumer, device_id, timeout_s=20)
    finally:
        await consumer.stop()

    seg = response.segment
    assert (event.version_id, event.key, event.sha256, event.size) == (
        seg.version_id,
        seg.key,
        seg.sha256,
        len(data),
    )
    assert event.retain_until.ToDatetime(tzinfo=UTC) == start + timedelta(days=30)  # the standard profile
    s3 = make_minio(ServiceSettings(service_name="test", s3_endpoint=s3_server.address))
    obj = s3.get_object(objectstore.SEGMENTS_BUCKET, seg.key, version_id=seg.version_id)
    try:
        assert obj.read() == data
    finally:
        obj.close()
        obj.release_conn()
    stat = s3.stat_object(objectstore.SEGMENTS_BUCKET, seg.key, version_id=seg.version_id)
    assert stat.metadata["x-amz-object-lock-mode"] == "COMPLIANCE"
    assert (
        stat.metadata["x-amz-object-lock-retain-until-date"]
        == f"{start + timedelta(days=30):%Y-%m-%dT%H:%M:%S}.000Z"
    )


async def test_an_unregistered_device_is_refused_and_leaves_no_object(
    stack, issuer: TokenIssuer, s3_server
) -> None:
    _registry, ingest = stack
    device_id = _device_id()
    key = generate_device_key()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    data = encode_segment(device_id, start, seconds=0.5, size=(160, 96))
    async with make_channel(ingest.address, token=_gateway(issuer), default_timeout_s=30) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await ipb_grpc.IngestServiceStub(channel).UploadSegment(
                _requests(_signed_header(device_id, key, data, start), data)
            )
    assert from_rpc_error(caught.value).code.name == "FAILED_PRECONDITION"
    s3 = make_minio(ServiceSettings(service_name="test", s3_endpoint=s3_server.address))
    assert (
        list(
            s3.list_objects(
                objectstore.SEGMENTS_BUCKET,
                prefix=f"segments/{device_id}/",
                include_version=True,
                recursive=True,
            )
        )
        == []
    )


async def _wait_for_segment(consumer, device_id: str, timeout_s: float) -> events_pb2.SegmentIngested:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        batches = await consumer.getmany(timeout_ms=100)
        for records in batches.values():
            for record in records:
                event = cloudevents.from_record(record)
                if event.key == device_id and event.type == events_pb2.SegmentIngested.DESCRIPTOR.full_name:
                    return cloudevents.decode(event, [events_pb2.SegmentIngested])  # type: ignore[return-value]
    raise AssertionError(f"no SegmentIngested for {device_id} within {timeout_s} s")
