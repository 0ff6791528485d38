"""Masked renditions (REG-5): privacy-masked copies of segments, made on demand and kept beside the originals.

A principal without the unmask right never gets a URL to an original of a device with privacy masks:
playback presigns a masked rendition instead. A rendition is the segment decoded, its masks filled
on every frame and re-encoded (vigil_media, libx264) into MPEG-TS with the segment's own timestamps,
stored in the segments bucket as `renditions/masked/<key>@<version>.ts` under COMPLIANCE retention
until the source's retain-until (a rendition lives exactly as long as its original may). It is
cached: a later request reuses it when it was made with the same masks (their fingerprint is kept
in the object's metadata); changed masks make a new version of the key. The source is read by
version id and its SHA-256 checked against the index before it is used (ARC-4): a corrupted
original is refused, never masked and shown.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.error import S3Error
from minio.retention import Retention

from vigil_kit import objectstore
from vigil_kit.errors import FailedPrecondition
from vigil_media import video
from vigil_media.masks import PrivacyMasker, normalise

log = logging.getLogger(__name__)

PREFIX = "renditions/masked/"
FINGERPRINT_META = "vigil-masks"
# Object lock wants a retain-until in the future; a source at the end of its retention gets this much.
MIN_RETENTION = timedelta(minutes=1)

Polygons = Sequence[Sequence[tuple[float, float]]]


def rendition_key(key: str, version_id: str) -> str:
    return f"{PREFIX}{key}@{version_id}.ts"


def fingerprint(polygons: Polygons) -> str:
    """The masks' identity: SHA-256 of their canonical JSON (rounded to 1e-6 of the frame)."""
    canon = [[[round(x, 6), round(y, 6)] for x, y in poly] for poly in normalise(polygons)]
    return hashlib.sha256(json.dumps(canon, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    bucket: str
    key: str
    version_id: str


def read_verified(client: Minio, bucket: str, key: str, version_id: str, sha256: str) -> bytes:
    """The stored version's bytes, refused when they do not hash to the indexed SHA-256 (ARC-4)."""
    response = client.get_object(bucket, key, version_id=version_id)
    try:
        data = response.read()
    finally:
        response.close()
        response.release_conn()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise FailedPrecondition(
            f"segment {key}@{version_id} does not hash to its indexed sha256: it is not used (ARC-4)",
            rule="ARC-4",
            field="range",
        )
    return data


def put_locked(
    client: Minio,
    bucket: str,
    key: str,
    data: bytes,
    *,
    retain_until: datetime,
    content_type: str,
    metadata: dict[str, str] | None = None,
) -> str:
    """Store bytes under COMPLIANCE retention until `retain_until`; the new version id."""
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    result = client.put_object(
        bucket,
        key,
        io.BytesIO(data),
        len(data),
        content_type=content_type,
        # S3 wants a checksum on a PUT under object lock.
        metadata={
            **(metadata or {}),
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": digest,
        },
        retention=Retention(COMPLIANCE, retain_until),
    )
    return str(result.version_id)


class MaskedRenditions:
    """Makes or reuses masked renditions; at most `concurrency` are encoded at once."""

    def __init__(
        self,
        client: Minio,
        *,
        options: video.EncodeOptions = video.EncodeOptions(),
        concurrency: int = 2,
        bucket: str = objectstore.SEGMENTS_BUCKET,
    ) -> None:
        self.client = client
        self.options = options
        self.bucket = bucket
        self._slots = asyncio.Semaphore(concurrency)
        self._locks: dict[str, asyncio.Lock] = {}
        self.made = 0
        self.reused = 0

    async def for_rows(self, rows: Sequence[Any], polygons: Polygons) -> list[Stored]:
        """A masked rendition of each index row, in order."""
        mark = fingerprint(polygons)
        return list(await asyncio.gather(*(self._one(r, polygons, mark) for r in rows)))

    async def _one(self, row: Any, polygons: Polygons, mark: str) -> Stored:
        key = rendition_key(row.key, row.version_id)
        if len(self._locks) > 10_000:
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        # One maker per rendition: concurrent viewers of the same segment wait for it, then reuse it.
        async with self._locks.setdefault(key, asyncio.Lock()):
            found = await asyncio.to_thread(self._cached, key, mark)
            if found is not None:
                self.reused += 1
                return Stored(self.bucket, key, found)
            async with self._slots:
                version = await asyncio.to_thread(self._make, row, key, polygons, mark)
            self.made += 1
            return Stored(self.bucket, key, version)

    def _cached(self, key: str, mark: str) -> str | None:
        try:
            stat = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchVersion", "NoSuchObject"):
                return None
            raise
        meta = {k.lower(): v for k, v in (stat.metadata or {}).items()}
        if meta.get(f"x-amz-meta-{FINGERPRINT_META}") != mark:
            return None  # made with other masks: make it again (a new version of the key)
        return str(stat.version_id)

    def _make(self, row: Any, key: str, polygons: Polygons, mark: str) -> str:
        data = read_verified(self.client, row.bucket, row.key, row.version_id, row.sha256)
        out = io.BytesIO()
        video.transform(
            [data],
            out,
            ops=[PrivacyMasker.of(polygons)],
            container="mpegts",
            options=self.options,
            keep_timestamps=True,
        )
        now = datetime.now(UTC)
        retain = max(row.retain_until, now + MIN_RETENTION)
        version = put_locked(
            self.client,
            self.bucket,
            key,
            out.getvalue(),
            retain_until=retain,
            content_type="video/mp2t",
            metadata={FINGERPRINT_META: mark, "vigil-source": f"{row.key}@{row.version_id}"},
        )
        log.info(
            "made a masked rendition",
            extra={"key": key, "version_id": version, "source_sha256": row.sha256},
        )
        return version

    def presign(self, stored: Sequence[Stored], ttl: timedelta) -> list[str]:
        return [
            self.client.presigned_get_object(s.bucket, s.key, expires=ttl, version_id=s.version_id)
            for s in stored
        ]
