"""Playback and live view on the real stack: registry, ingest, sharing and archive processes, the broker
and S3. Without a grant a manifest is PERMISSION_DENIED and audited as denied; with one, its presigned,
version-pinned URLs download the stored bytes, which decode with PyAV, and expire within the setting;
a live playlist gains a newly uploaded segment; a revoked grant stops new manifests at once (ACC-1)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import av
import grpc
import pytest

from vigil.archive.v1 import archive_service_pb2 as apb
from vigil.archive.v1 import archive_service_pb2_grpc as apb_grpc
from vigil.audit.v1 import audit_record_pb2
from vigil.sharing.v1 import sharing_service_pb2 as spb
from vigil.sharing.v1 import sharing_service_pb2_grpc as spb_grpc
from vigil_archive.codec import time_range
from vigil_ingest.domain.signing import generate_device_key
from vigil_ingest.video import encode_segment
from vigil_kit import cloudevents, topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.errors import from_rpc_error
from vigil_kit.grpc_client import make_channel
from vigil_kit.kafka import create_consumer
from vigil_testing.platform import Uploader, admin_token, gateway_token, new_device_id, register_active_device
from vigil_testing.poll import apoll_until
from vigil_testing.services import start_together

pytestmark = pytest.mark.slow

PSB = ("113202000142870306", "UNIT_KIND_PUBLIC_SECURITY_ORGAN")
TRANSPORT = ("113202000142871537", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
PRESIGN_TTL_S = 120
SEGMENT = timedelta(seconds=1)


def _token(issuer: TokenIssuer, who: str, unit: tuple[str, str], role: str) -> str:
    return issuer.mint(sub=f"user:{who}", name=who, unit=unit[0], unit_kind=unit[1], roles=[role])


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
    sharing = vigil_service(
        "sharing", start=False, REGISTRY_ADDR=registry.address, SERVICE_TOKEN=issuer.mint_service("sharing")
    )
    archive = vigil_service(
        "archive",
        start=False,
        REGISTRY_ADDR=registry.address,
        SHARING_ADDR=sharing.address,
        SERVICE_TOKEN=issuer.mint_service("archive"),
        PRESIGN_TTL_S=str(PRESIGN_TTL_S),
        s3=s3_server,
    )
    start_together(registry, ingest, sharing, archive)
    return registry, ingest, sharing, archive


async def _denied_records(
    consumer, device_id: str, action: str, timeout_s: float = 20
) -> audit_record_pb2.AuditRecord:
    async def one() -> audit_record_pb2.AuditRecord | None:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            for record in records:
                event = cloudevents.from_record(record)
                msg = cloudevents.decode(event, [audit_record_pb2.AuditRecord])
                if (
                    msg.action == action
                    and device_id in msg.resources.device_ids
                    and msg.decision == audit_record_pb2.DECISION_DENIED
                ):
                    return msg  # type: ignore[return-value]
        return None

    return await apoll_until(one, timeout=timeout_s, what=f"a denied {action} record")


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


async def test_playback_is_refused_without_a_grant_and_served_by_version_with_one_until_revoked(
    stack, issuer: TokenIssuer, kafka_broker
) -> None:
    registry, ingest, sharing, archive = stack
    device_id = new_device_id()
    key = generate_device_key()
    await register_active_device(registry.address, admin_token(issuer), device_id, key.public_key_b64)
    uploader = Uploader(ingest.address, gateway_token(issuer), device_id, key)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    clips = [
        encode_segment(device_id, t0 + i * SEGMENT, seconds=1, size=(160, 96), bitrate=200_000)
        for i in range(3)
    ]
    for i, data in enumerate(clips):
        await uploader.upload(data, t0 + i * SEGMENT, i + 1, SEGMENT)
    window = time_range(t0, t0 + timedelta(minutes=1))

    consumer = await create_consumer(
        kafka_broker.address, [topics.AUDIT_RECORDS], f"playback-it-{uuid.uuid4()}"
    )
    analyst_token = _token(issuer, "analyst", TRANSPORT, "ROLE_DEPARTMENT_ANALYST")
    officer_token = _token(issuer, "officer", PSB, "ROLE_PUBLIC_SECURITY_OFFICER")
    async with (
        make_channel(archive.address, token=analyst_token, default_timeout_s=20) as analyst_archive,
        make_channel(sharing.address, token=analyst_token) as analyst_sharing,
        make_channel(sharing.address, token=officer_token) as officer_sharing,
    ):
        viewer = apb_grpc.ArchiveServiceStub(analyst_archive)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await viewer.GetPlaybackManifest(
                    apb.GetPlaybackManifestRequest(device_id=device_id, range=window)
                )
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            record = await _denied_records(consumer, device_id, "archive.playback.manifest")
            assert record.actor.name == "analyst"
        finally:
            await consumer.stop()

        now = datetime.now(UTC)
        request = await spb_grpc.SharingServiceStub(analyst_sharing).CreateAccessRequest(
            spb.CreateAccessRequestRequest(
                access_request=spb.AccessRequest(
                    purpose=spb.PURPOSE_TRAFFIC_MANAGEMENT,
                    legal_basis="congestion study, Renmin Rd",
                    scope=spb.Scope(device_ids=[device_id]),
                    actions=[spb.ACTION_PLAYBACK, spb.ACTION_LIVE_VIEW],
                    footage_window=time_range(now - timedelta(days=1), now + timedelta(days=1)),
                    valid_until=time_range(now, now + timedelta(days=7)).end_time,
                )
            )
        )
        await spb_grpc.SharingServiceStub(officer_sharing).ApproveAccessRequest(
            spb.ApproveAccessRequestRequest(request_id=request.request_id)
        )

        async def manifest() -> apb.PlaybackManifest | None:
            try:
                found = await viewer.GetPlaybackManifest(
                    apb.GetPlaybackManifestRequest(device_id=device_id, range=window)
                )
            except grpc.aio.AioRpcError:
                return None
            return found if len(found.urls) == len(clips) else None

        issued = await apoll_until(manifest, timeout=30, what="a manifest under the grant")
        assert issued.grant_id == request.request_id and not issued.masked
        assert issued.playlist.startswith("#EXTM3U") and issued.playlist.rstrip().endswith("#EXT-X-ENDLIST")
        for url, segment, data in zip(issued.urls, issued.segments, clips, strict=True):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
            assert int(query["X-Amz-Expires"][0]) <= PRESIGN_TTL_S
            assert query["versionId"] == [segment.version_id]
            body = await asyncio.to_thread(_download, url)
            assert hashlib.sha256(body).hexdigest() == segment.sha256 == hashlib.sha256(data).hexdigest()
            with av.open(io.BytesIO(body)) as container:
                assert sum(1 for _ in container.decode(video=0)) > 0

        live = await viewer.GetLiveManifest(apb.GetLiveManifestRequest(device_id=device_id))
        assert [s.sequence for s in live.segments] == [1, 2, 3] and "#EXT-X-ENDLIST" not in live.playlist
        captured = t0 + 3 * SEGMENT
        await uploader.upload(
            encode_segment(device_id, captured, seconds=1, size=(160, 96), bitrate=200_000),
            captured,
            4,
            SEGMENT,
        )
        uploaded = asyncio.get_running_loop().time()

        async def newest() -> bool:
            again = await viewer.GetLiveManifest(apb.GetLiveManifestRequest(device_id=device_id))
            return again.segments[-1].sequence == 4

        await apoll_until(newest, timeout=30, interval=0.05, what="the new segment in the live playlist")
        # Two segment durations plus a second, from the moment the segment was stored.
        assert asyncio.get_running_loop().time() - uploaded <= 2 * SEGMENT.total_seconds() + 1

        await spb_grpc.SharingServiceStub(officer_sharing).RevokeGrant(
            spb.RevokeGrantRequest(grant_id=request.request_id)
        )
        revoked = asyncio.get_running_loop().time()
        with pytest.raises(grpc.aio.AioRpcError) as after:
            await viewer.GetPlaybackManifest(
                apb.GetPlaybackManifestRequest(device_id=device_id, range=window)
            )
        assert from_rpc_error(after.value).code == grpc.StatusCode.PERMISSION_DENIED
        assert asyncio.get_running_loop().time() - revoked <= 1.0
