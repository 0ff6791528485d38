"""Masked playback and export on the real stack (REG-5, ACC-1, ACC-5, ARC-4): a device registered with a
privacy mask, an analyst with a grant and no unmask right: playback URLs point at masked renditions
uniform inside the mask; an export is masked, stored in the evidence bucket and its manifest verifies
with the key the archive serves."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from google.protobuf import field_mask_pb2

from vigil.archive.v1 import archive_service_pb2 as apb
from vigil.archive.v1 import archive_service_pb2_grpc as apb_grpc
from vigil.registry.v1 import registry_service_pb2 as rpb
from vigil.registry.v1 import registry_service_pb2_grpc as rpb_grpc
from vigil.sharing.v1 import sharing_service_pb2 as spb
from vigil.sharing.v1 import sharing_service_pb2_grpc as spb_grpc
from vigil_archive.codec import time_range
from vigil_ingest.domain.signing import generate_device_key
from vigil_ingest.video import encode_segment
from vigil_kit.auth import TokenIssuer
from vigil_kit.grpc_client import make_channel
from vigil_media import video
from vigil_media.evidence import verify_export
from vigil_media.masks import MASK_LUMA, rasterise
from vigil_testing.platform import Uploader, admin_token, gateway_token, new_device_id, register_active_device
from vigil_testing.poll import apoll_until
from vigil_testing.services import start_together

pytestmark = pytest.mark.slow

PSB = ("113202000142870306", "UNIT_KIND_PUBLIC_SECURITY_ORGAN")
TRANSPORT = ("113202000142871537", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
SEGMENT = timedelta(seconds=1)
W, H = 160, 96
# The lower-right quarter of the frame, away from the id/time overlay at the top left.
MASK = ((0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0))


def _token(issuer: TokenIssuer, who: str, unit: tuple[str, str], role: str) -> str:
    return issuer.mint(sub=f"user:{who}", name=who, unit=unit[0], unit_kind=unit[1], roles=[role])


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


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
        X264_PRESET="ultrafast",
        s3=s3_server,
    )
    start_together(registry, ingest, sharing, archive)
    return registry, ingest, sharing, archive


async def test_an_analyst_without_the_unmask_right_sees_and_exports_a_masked_device_only_masked(
    stack, issuer: TokenIssuer
) -> None:
    registry, ingest, sharing, archive = stack
    device_id = new_device_id()
    key = generate_device_key()
    await register_active_device(registry.address, admin_token(issuer), device_id, key.public_key_b64)
    async with make_channel(registry.address, token=admin_token(issuer), default_timeout_s=30) as channel:
        await rpb_grpc.RegistryServiceStub(channel).UpdateDevice(
            rpb.UpdateDeviceRequest(
                device=rpb.Device(
                    device_id=device_id,
                    privacy_masks=[rpb.PrivacyMask(points=[rpb.Point(x=x, y=y) for x, y in MASK])],
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["privacy_masks"]),
            )
        )
    uploader = Uploader(ingest.address, gateway_token(issuer), device_id, key)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    for i in range(2):
        data = encode_segment(device_id, t0 + i * SEGMENT, seconds=1, size=(W, H), bitrate=200_000)
        await uploader.upload(data, t0 + i * SEGMENT, i + 1, SEGMENT)
    window = time_range(t0, t0 + timedelta(minutes=1))

    analyst_token = _token(issuer, "analyst", TRANSPORT, "ROLE_DEPARTMENT_ANALYST")
    officer_token = _token(issuer, "officer", PSB, "ROLE_PUBLIC_SECURITY_OFFICER")
    async with (
        make_channel(archive.address, token=analyst_token, default_timeout_s=60) as analyst_archive,
        make_channel(sharing.address, token=analyst_token) as analyst_sharing,
        make_channel(sharing.address, token=officer_token) as officer_sharing,
    ):
        now = datetime.now(UTC)
        request = await spb_grpc.SharingServiceStub(analyst_sharing).CreateAccessRequest(
            spb.CreateAccessRequestRequest(
                access_request=spb.AccessRequest(
                    purpose=spb.PURPOSE_TRAFFIC_MANAGEMENT,
                    legal_basis="collision review, Renmin Rd",
                    scope=spb.Scope(device_ids=[device_id]),
                    actions=[spb.ACTION_PLAYBACK, spb.ACTION_EXPORT],
                    footage_window=time_range(now - timedelta(days=1), now + timedelta(days=1)),
                    valid_until=time_range(now, now + timedelta(days=7)).end_time,
                    # ACC-4: an export by an outside unit is an external retrieval.
                    approval_document_ref="Xishan PSB retrieval approval 2026-118",
                    officers=[
                        spb.Officer(name="Wang Lei", work_id="032118"),
                        spb.Officer(name="Li Na", work_id="032119"),
                    ],
                )
            )
        )
        await spb_grpc.SharingServiceStub(officer_sharing).ApproveAccessRequest(
            spb.ApproveAccessRequestRequest(request_id=request.request_id)
        )
        viewer = apb_grpc.ArchiveServiceStub(analyst_archive)

        async def manifest() -> apb.PlaybackManifest | None:
            try:
                found = await viewer.GetPlaybackManifest(
                    apb.GetPlaybackManifestRequest(device_id=device_id, range=window)
                )
            except Exception:
                return None
            return found if len(found.urls) == 2 else None

        issued = await apoll_until(manifest, timeout=60, what="a masked manifest under the grant")
        assert issued.masked and issued.grant_id == request.request_id
        inside = rasterise([MASK], W, H)
        for url, segment in zip(issued.urls, issued.segments, strict=True):
            assert "renditions/masked/" in url and segment.version_id in url.replace("%40", "@")
            frames = video.decode_yuv(await asyncio.to_thread(_download, url))
            assert len(frames) == 25
            assert all(np.abs(f[:H][inside].astype(np.int16) - MASK_LUMA).mean() < 2 for f in frames)

        progress = [
            m
            async for m in viewer.ExportClip(
                apb.ExportClipRequest(device_id=device_id, range=window, purpose="collision review")
            )
        ]
        done = progress[-1].done
        assert done.masked and done.segment_count == 2 and done.bucket == "vigil-evidence"
        clip = await asyncio.to_thread(_download, done.url)
        exported = video.decode_yuv(clip)
        assert len(exported) == 50
        assert all(np.abs(f[:H][inside].astype(np.int16) - MASK_LUMA).mean() < 2 for f in exported)
        served = await viewer.GetExportKey(apb.GetExportKeyRequest())
        assert verify_export(clip, done.manifest, served.public_key_pem).ok
        assert json.loads(done.manifest)["grant_id"] == request.request_id
        tampered = bytearray(clip)
        tampered[len(clip) // 2] ^= 0x01
        assert not verify_export(bytes(tampered), done.manifest, served.public_key_pem).ok
