"""The archive on the real stack: registry, ingest and archive processes, the broker and S3.

Segments a device uploads through ingest reach the archive's index over Kafka (SegmentIngested),
indexed by object version with the retain-until S3 holds; killing the archive with SIGKILL while
segments stream in loses none of them and indexes none twice (idempotent consumer, outbox).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil.archive.v1 import archive_service_pb2 as apb
from vigil.archive.v1 import archive_service_pb2_grpc as apb_grpc
from vigil_archive.codec import time_range
from vigil_ingest.domain.signing import generate_device_key
from vigil_kit import objectstore
from vigil_kit.auth import TokenIssuer
from vigil_kit.grpc_client import make_channel
from vigil_kit.objectstore import make_minio
from vigil_kit.settings import ServiceSettings
from vigil_testing.platform import (
    Uploader,
    admin_token,
    gateway_token,
    new_device_id,
    register_active_device,
    ts_payload,
)
from vigil_testing.poll import apoll_until
from vigil_testing.services import start_together

pytestmark = pytest.mark.slow


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
    archive = vigil_service(
        "archive",
        start=False,
        REGISTRY_ADDR=registry.address,
        SERVICE_TOKEN=issuer.mint_service("archive"),
        s3=s3_server,
    )
    start_together(registry, ingest, archive)
    return registry, ingest, archive


async def _indexed(
    address: str, token: str, device_id: str, start: datetime, end: datetime
) -> list[apb.Segment]:
    out: list[apb.Segment] = []
    page = ""
    async with make_channel(address, token=token, default_timeout_s=10) as channel:
        stub = apb_grpc.ArchiveServiceStub(channel)
        while True:
            resp = await stub.FindSegments(
                apb.FindSegmentsRequest(device_id=device_id, range=time_range(start, end), page_token=page)
            )
            out += resp.segments
            page = resp.next_page_token
            if not page:
                return out


async def _device(stack, issuer: TokenIssuer) -> Uploader:
    registry, ingest, _archive = stack
    device_id = new_device_id()
    key = generate_device_key()
    await register_active_device(registry.address, admin_token(issuer), device_id, key.public_key_b64)
    return Uploader(ingest.address, gateway_token(issuer), device_id, key)


async def test_uploaded_segments_are_indexed_by_version_with_the_retain_until_storage_holds(
    stack, issuer: TokenIssuer, s3_server
) -> None:
    _registry, _ingest, archive = stack
    device = await _device(stack, issuer)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    stored = [
        (await device.upload(ts_payload(i), t0 + timedelta(seconds=2 * i), i + 1)).segment for i in range(3)
    ]
    admin = admin_token(issuer)
    segments = await apoll_until(
        lambda: _found(archive.address, admin, device.device_id, t0, 3), timeout=30, what="3 segments indexed"
    )
    assert [(s.key, s.version_id, s.sha256) for s in segments] == [
        (s.key, s.version_id, s.sha256) for s in stored
    ]
    s3 = make_minio(ServiceSettings(service_name="test", s3_endpoint=s3_server.address))
    for seg in segments:
        stat = s3.stat_object(objectstore.SEGMENTS_BUCKET, seg.key, version_id=seg.version_id)
        assert stat.metadata["x-amz-object-lock-mode"] == "COMPLIANCE"
        locked_until = datetime.fromisoformat(stat.metadata["x-amz-object-lock-retain-until-date"])
        assert locked_until == seg.retain_until.ToDatetime(tzinfo=UTC)


async def test_a_sigkilled_archive_loses_and_duplicates_no_segment(stack, issuer: TokenIssuer) -> None:
    _registry, _ingest, archive = stack
    device = await _device(stack, issuer)
    admin = admin_token(issuer)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    total = 24
    for i in range(total // 2):
        await device.upload(ts_payload(1000 + i), t0 + timedelta(seconds=2 * i), i + 1)
    # Kill it while it is indexing the first half (some indexed, some not yet), then keep uploading.
    await apoll_until(
        lambda: _indexed(archive.address, admin, device.device_id, t0, t0 + timedelta(hours=1)),
        timeout=30,
        what="indexing under way",
    )
    archive.kill()
    for i in range(total // 2, total):
        await device.upload(ts_payload(1000 + i), t0 + timedelta(seconds=2 * i), i + 1)
    archive.start()
    segments = await apoll_until(
        lambda: _found(archive.address, admin, device.device_id, t0, total), timeout=60, what="all indexed"
    )
    assert sorted(s.sequence for s in segments) == list(range(1, total + 1))
    assert len({(s.key, s.version_id) for s in segments}) == total


async def _found(address: str, token: str, device_id: str, t0: datetime, n: int) -> list[apb.Segment] | None:
    segments = await _indexed(address, token, device_id, t0, t0 + timedelta(hours=1))
    assert len(segments) <= n, f"more segments indexed than uploaded: {len(segments)} > {n}"
    return segments if len(segments) == n else None
