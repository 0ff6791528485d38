"""Masked playback (REG-5): a principal without the unmask right gets version-pinned URLs of masked renditions,
made once, kept under the source's retention and reused; with the right, the originals."""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from vigil.sharing.v1 import sharing_service_pb2 as sharing_pb
from vigil_archive.codec import time_range
from vigil_archive.renditions import rendition_key
from vigil_kit import objectstore
from vigil_media import synthetic, video
from vigil_media.masks import MASK_LUMA, rasterise

from .conftest import Archive, hour, new_device_id, pb

W, H = 160, 96
MASK = ((0.1, 0.1), (0.5, 0.1), (0.5, 0.7), (0.1, 0.7))


def _grant(unmasked: bool):
    async def check(p: Any, device_id: str, start: Any, end: Any, *, action: int = 0):
        return sharing_pb.AuthorizeResponse(allowed=True, grant_id="grant-1", unmasked_allowed=unmasked)

    return check


def _masks(polygons):
    calls: list[str] = []

    async def lookup(device_id: str):
        calls.append(device_id)
        return polygons

    return lookup


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


async def _footage(archive: Archive, device_id: str, count: int = 2):
    start = hour()
    rows = []
    for i in range(count):
        data = synthetic.clip(W, H, 1.0, seed=i, start_pts=i * 90_000)
        rows.append(
            await archive.put_segment(
                device_id, start + timedelta(seconds=i), duration=timedelta(seconds=1), data=data
            )
        )
    return start, rows


async def _manifest(archive: Archive, device_id: str, start) -> pb.PlaybackManifest:
    return await archive.stub("analyst").GetPlaybackManifest(
        pb.GetPlaybackManifestRequest(
            device_id=device_id, range=time_range(start, start + timedelta(minutes=1))
        )
    )


@pytest.fixture
def analyst_may_view(archive: Archive):
    archive.servicer.deps.grant_check = _grant(unmasked=False)
    archive.servicer.deps.extra["device_masks"] = _masks((MASK,))
    return archive


async def test_a_principal_without_the_unmask_right_gets_masked_renditions_uniform_inside_the_mask(
    analyst_may_view: Archive,
) -> None:
    archive = analyst_may_view
    device_id = new_device_id()
    start, rows = await _footage(archive, device_id)
    issued = await _manifest(archive, device_id, start)
    assert issued.masked and len(issued.urls) == 2
    inside = rasterise([MASK], W, H)
    for url, row in zip(issued.urls, rows, strict=True):
        assert f"renditions/masked/{row.ref.key}" in url.replace("%40", "@") and "versionId=" in url
        body = await asyncio.to_thread(_download, url)
        frames = video.decode_yuv(body)
        assert len(frames) == 25
        for frame in frames:
            assert np.abs(frame[:H][inside].astype(np.int16) - MASK_LUMA).mean() < 2
    [record] = [
        a for a in await archive.audits("archive.playback.manifest") if a.attributes["masked"] == "true"
    ]
    assert record.grant_id == "grant-1"


async def test_a_rendition_is_kept_under_its_sources_retention_and_reused(analyst_may_view: Archive) -> None:
    archive = analyst_may_view
    device_id = new_device_id()
    start, rows = await _footage(archive, device_id, count=1)
    first = await _manifest(archive, device_id, start)
    again = await _manifest(archive, device_id, start)
    renditions = archive.servicer.deps.extra["masked_renditions"]
    assert (renditions.made, renditions.reused) == (1, 1)
    key = rendition_key(rows[0].ref.key, rows[0].ref.version_id)
    stat = await asyncio.to_thread(archive.s3.stat_object, objectstore.SEGMENTS_BUCKET, key)
    headers = {k.lower(): v for k, v in stat.metadata.items()}
    assert headers["x-amz-object-lock-mode"] == "COMPLIANCE"
    assert datetime.fromisoformat(headers["x-amz-object-lock-retain-until-date"]) == rows[0].ref.retain_until
    assert f"versionId={stat.version_id}" in first.urls[0] and f"versionId={stat.version_id}" in again.urls[0]


async def test_a_principal_with_the_unmask_right_gets_the_originals(archive: Archive) -> None:
    archive.servicer.deps.grant_check = _grant(unmasked=True)
    archive.servicer.deps.extra["device_masks"] = _masks((MASK,))
    device_id = new_device_id()
    start, rows = await _footage(archive, device_id, count=1)
    issued = await _manifest(archive, device_id, start)
    assert not issued.masked and "renditions/" not in issued.urls[0]
    assert f"versionId={rows[0].ref.version_id}" in issued.urls[0]


async def test_a_device_without_masks_is_served_originals_without_rendering(
    analyst_may_view: Archive,
) -> None:
    archive = analyst_may_view
    archive.servicer.deps.extra["device_masks"] = _masks(())
    device_id = new_device_id()
    start, _rows = await _footage(archive, device_id, count=1)
    issued = await _manifest(archive, device_id, start)
    assert not issued.masked and "renditions/" not in issued.urls[0]
    assert archive.servicer.deps.extra["masked_renditions"].made == 0
