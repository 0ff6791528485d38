"""ExportClip (ACC-1, ACC-5, REG-5, ARC-4): authorised, audited before footage is read, masked, stored under
retention in the evidence bucket with a manifest that verifies offline; refusals are audited."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import grpc
import matplotlib
import numpy as np
import pytest

from vigil.archive.v1 import events_pb2
from vigil.audit.v1 import audit_record_pb2
from vigil.sharing.v1 import sharing_service_pb2 as sharing_pb
from vigil_archive.codec import time_range
from vigil_kit import objectstore
from vigil_kit.errors import from_rpc_error
from vigil_media import synthetic, video
from vigil_media.deidentify import Deidentifier
from vigil_media.evidence import verify_export
from vigil_media.masks import MASK_LUMA, rasterise

from .conftest import Archive, hour, new_device_id, pb

W, H = 320, 180
MASK = ((0.0, 0.6), (0.3, 0.6), (0.3, 1.0), (0.0, 1.0))


def _grant(allowed: bool = True, unmasked: bool = False):
    seen: list[int] = []

    async def check(p: Any, device_id: str, start: Any, end: Any, *, action: int = 0):
        seen.append(action)
        return sharing_pb.AuthorizeResponse(
            allowed=allowed,
            grant_id="grant-7" if allowed else "",
            unmasked_allowed=unmasked,
            reason="" if allowed else "no grant covers the export",
            rule="" if allowed else "ACC-3",
        )

    check.seen = seen  # type: ignore[attr-defined]
    return check


def _face() -> np.ndarray:
    grey = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"), 0)
    return (16 + cv2.resize(grey, (96, 112), interpolation=cv2.INTER_AREA) * (219 / 255)).astype(np.uint8)


@pytest.fixture
async def exporter(archive: Archive) -> Archive:
    await objectstore.bootstrap_buckets(archive.s3, [objectstore.EVIDENCE_BUCKET])

    async def masks(device_id: str):
        return (MASK,)

    archive.servicer.deps.extra["device_masks"] = masks
    return archive


async def _footage(archive: Archive, device_id: str, count: int = 2, picture: np.ndarray | None = None):
    start = hour()
    for i in range(count):
        data = synthetic.clip(W, H, 1.0, seed=i, start_pts=i * 90_000, picture=picture, at=(180, 40))
        await archive.put_segment(
            device_id, start + timedelta(seconds=i), duration=timedelta(seconds=1), data=data
        )
    return start


async def _export(
    archive: Archive, device_id: str, start: datetime, *, public: bool = False
) -> list[pb.ExportProgress]:
    call = archive.stub("analyst").ExportClip(
        pb.ExportClipRequest(
            device_id=device_id,
            range=time_range(start, start + timedelta(minutes=1)),
            purpose="case 2026-118: collision at Renmin Rd",
            public=public,
        )
    )
    return [m async for m in call]


async def _clip(archive: Archive, done: pb.ExportedClip) -> bytes:
    def read() -> bytes:
        response = archive.s3.get_object(done.bucket, done.key, version_id=done.version_id)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    return await asyncio.to_thread(read)


async def test_an_export_is_stored_masked_under_retention_with_a_manifest_that_verifies(
    exporter: Archive,
) -> None:
    archive = exporter
    archive.servicer.deps.grant_check = _grant()
    device_id = new_device_id()
    start = await _footage(archive, device_id)
    progress = await _export(archive, device_id, start)
    assert progress[0].stage == pb.EXPORT_STAGE_AUTHORIZED
    assert pb.EXPORT_STAGE_ENCODING in [m.stage for m in progress]
    done = progress[-1].done
    assert progress[-1].stage == pb.EXPORT_STAGE_STORED and done.masked and done.segment_count == 2
    assert archive.servicer.deps.grant_check.seen == [sharing_pb.ACTION_EXPORT]

    clip = await _clip(archive, done)
    key = archive.servicer.deps.extra["export_key"]
    assert verify_export(clip, done.manifest, key.public_key_pem).ok
    manifest = json.loads(done.manifest)
    assert (
        manifest["purpose"] == "case 2026-118: collision at Renmin Rd" and manifest["grant_id"] == "grant-7"
    )
    assert manifest["masking"]["privacy_masks_applied"] and manifest["exported_by"]["name"] == "analyst"
    assert (
        len(manifest["segments"]) == 2
        and done.manifest
        == json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )

    inside = rasterise([MASK], W, H)
    frames = video.decode_yuv(clip)
    assert len(frames) == 50
    assert all(np.abs(f[:H][inside].astype(np.int16) - MASK_LUMA).mean() < 2 for f in frames)

    stat = await asyncio.to_thread(archive.s3.stat_object, done.bucket, done.key, version_id=done.version_id)
    headers = {k.lower(): v for k, v in stat.metadata.items()}
    assert headers["x-amz-object-lock-mode"] == "COMPLIANCE"
    retained = datetime.fromisoformat(headers["x-amz-object-lock-retain-until-date"])
    assert retained == done.retain_until.ToDatetime(UTC) > datetime.now(UTC) + timedelta(days=700)

    [before] = await archive.audits("archive.clip.export")
    [after] = await archive.audits("archive.clip.exported")
    assert before.record_id == done.audit_record_id and before.purpose == manifest["purpose"]
    assert after.attributes["sha256"] == done.sha256
    [event] = await archive.events(events_pb2.ClipExported)
    assert event.clip.sha256 == done.sha256 and event.purpose == manifest["purpose"]


async def test_a_public_export_blurs_every_face_and_records_it(exporter: Archive) -> None:
    archive = exporter
    archive.servicer.deps.grant_check = _grant(unmasked=True)
    device_id = new_device_id()
    face = _face()
    start = await _footage(archive, device_id, count=1, picture=face)
    done = (await _export(archive, device_id, start, public=True))[-1].done
    assert done.public and not done.masked
    manifest = json.loads(done.manifest)
    assert manifest["masking"]["faces_and_plates_blurred"] and manifest["masking"]["face_detections"] >= 25
    detector = Deidentifier()
    frames = video.decode_yuv(await _clip(archive, done))
    assert len(frames) == 25 and sum(len(detector.detect(f[:H])[0]) for f in frames) == 0


async def test_an_export_the_caller_may_see_unmasked_copies_the_segments_unchanged(exporter: Archive) -> None:
    archive = exporter
    archive.servicer.deps.grant_check = _grant(unmasked=True)
    device_id = new_device_id()
    start = await _footage(archive, device_id)
    done = (await _export(archive, device_id, start))[-1].done
    manifest = json.loads(done.manifest)
    assert not done.masked and manifest["masking"]["encoder"].startswith("stream copy")
    assert len(video.decode_yuv(await _clip(archive, done))) == 50


async def test_an_export_without_a_grant_is_permission_denied_audited_and_reads_nothing(
    exporter: Archive,
) -> None:
    archive = exporter
    archive.servicer.deps.grant_check = _grant(allowed=False)
    device_id = new_device_id()
    start = await _footage(archive, device_id, count=1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _export(archive, device_id, start)
    error = from_rpc_error(refused.value)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED and error.rule == "ACC-3"
    [record] = await archive.audits("archive.clip.export")
    assert record.decision == audit_record_pb2.DECISION_DENIED and record.purpose.startswith("case 2026-118")
    assert await archive.events(events_pb2.ClipExported) == []


async def test_an_export_without_a_purpose_is_refused(exporter: Archive) -> None:
    archive = exporter
    archive.servicer.deps.grant_check = _grant()
    call = archive.stub("analyst").ExportClip(
        pb.ExportClipRequest(device_id=new_device_id(), range=time_range(hour(), hour(1)), purpose=" ")
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        [m async for m in call]
    assert from_rpc_error(refused.value).field == "purpose"


async def test_the_export_key_is_served_for_offline_verification(exporter: Archive) -> None:
    key = await exporter.stub("auditor").GetExportKey(pb.GetExportKeyRequest())
    assert key.key_id == exporter.servicer.deps.extra["export_key"].key_id
    assert key.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
