"""Segment and snapshot objects in `vigil-segments`: locked PUTs, multipart uploads, aborts — off the event loop.

Every write carries object-lock COMPLIANCE retention (ARC-2: storage itself refuses an early delete)
and the SHA-256 checksum headers S3 wants with object lock (`x-amz-sdk-checksum-algorithm: SHA256`,
`x-amz-checksum-sha256`: base64 of the digest), which also has S3/MinIO verify the bytes it stores.
minio-py passes `x-amz-*` keys of `metadata` through as headers.

Large segments stream up as a multipart upload. minio-py's public `put_object` can only upload a
stream it reads itself and sends no per-part checksums, so this module drives the multipart calls
(`_create_multipart_upload`, `_upload_part`, `_complete_multipart_upload`, `_abort_multipart_upload`)
directly, part by part as the session fills them. Some S3 servers (moto) ignore object-lock headers
on CreateMultipartUpload, so after completion the version's retention is read back and set when
missing — a completed object is never left unlocked.

Every blocking call runs on a bounded thread pool (`s3_threads`), so a slow S3 server holds at most
that many threads and the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.datatypes import Part as S3Part
from minio.retention import Retention

from vigil_ingest.domain.upload import Part
from vigil_kit.objectstore import SEGMENTS_BUCKET

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_MODE = "x-amz-object-lock-mode"
LOCK_UNTIL = "x-amz-object-lock-retain-until-date"


def checksum_headers(sha256_b64: str) -> dict[str, str]:
    return {"x-amz-sdk-checksum-algorithm": "SHA256", "x-amz-checksum-sha256": sha256_b64}


def s3_time(t: datetime) -> str:
    """S3's ISO 8601 form of a retain-until date (whole seconds: retain_until() rounds up already)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    version_id: str


@dataclass
class MultipartUpload:
    """A multipart upload in progress: its id and the parts stored so far."""

    key: str
    upload_id: str
    retain_until: datetime
    parts: list[S3Part] = field(default_factory=list)


class ObjectStore:
    """The blocking minio client behind an executor of `threads` threads."""

    def __init__(self, client: Minio, *, bucket: str = SEGMENTS_BUCKET, threads: int = 16) -> None:
        self.client = client
        self.bucket = bucket
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingest-s3")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- single PUT ------------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        data: bytes,
        *,
        sha256_b64: str,
        retain_until: datetime,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> StoredObject:
        """One PUT of the whole object, locked until `retain_until`; returns its version id."""

        def call() -> StoredObject:
            result = self.client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
                metadata={**metadata, **checksum_headers(sha256_b64)},
                retention=Retention(COMPLIANCE, retain_until),
            )
            return StoredObject(self.bucket, key, result.version_id or "")

        return await self._run(call)

    # --- multipart -------------------------------------------------------------------------------

    async def start_multipart(
        self, key: str, *, retain_until: datetime, content_type: str, metadata: Mapping[str, str]
    ) -> MultipartUpload:
        headers = {
            **metadata,
            "Content-Type": content_type,
            LOCK_MODE: COMPLIANCE,
            LOCK_UNTIL: s3_time(retain_until),
            "x-amz-checksum-algorithm": "SHA256",
        }
        upload_id = await self._run(self.client._create_multipart_upload, self.bucket, key, headers)
        return MultipartUpload(key=key, upload_id=upload_id, retain_until=retain_until)

    async def put_part(self, upload: MultipartUpload, part: Part) -> None:
        headers = checksum_headers(part.checksum_sha256_b64())
        etag = await self._run(
            self.client._upload_part,
            self.bucket,
            upload.key,
            part.data,
            headers,
            upload.upload_id,
            part.number,
        )
        upload.parts.append(S3Part(part.number, etag))

    async def complete_multipart(self, upload: MultipartUpload) -> StoredObject:
        def call() -> StoredObject:
            result = self.client._complete_multipart_upload(
                self.bucket, upload.key, upload.upload_id, sorted(upload.parts, key=lambda p: p.part_number)
            )
            version = result.version_id or ""
            stat = self.client.stat_object(self.bucket, upload.key, version_id=version or None)
            if stat.metadata.get(LOCK_MODE) != COMPLIANCE:
                # The server dropped the lock headers of CreateMultipartUpload: lock the version now.
                self.client.set_object_retention(
                    self.bucket,
                    upload.key,
                    Retention(COMPLIANCE, upload.retain_until),
                    version_id=version or None,
                )
            return StoredObject(self.bucket, upload.key, version)

        return await self._run(call)

    async def abort_multipart(self, upload: MultipartUpload) -> None:
        """Abort, so no object and no stored parts remain; never raises (logged instead)."""
        try:
            await asyncio.shield(
                self._run(self.client._abort_multipart_upload, self.bucket, upload.key, upload.upload_id)
            )
        except Exception:
            log.warning("could not abort a multipart upload", exc_info=True, extra={"key": upload.key})

    # --- snapshots -------------------------------------------------------------------------------

    async def put_snapshot(self, key: str, data: bytes, *, retain_until: datetime) -> StoredObject:
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
        return await self.put(
            key, data, sha256_b64=digest, retain_until=retain_until, content_type="image/jpeg", metadata={}
        )
