"""The minio client factory and the bootstrap of Vigil's versioned, object-locked buckets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from minio import Minio
from minio.error import S3Error
from minio.versioningconfig import ENABLED, VersioningConfig

log = logging.getLogger(__name__)

SEGMENTS_BUCKET = "vigil-segments"
EVIDENCE_BUCKET = "vigil-evidence"
BUCKETS = (SEGMENTS_BUCKET, EVIDENCE_BUCKET)


class BucketSetupError(RuntimeError):
    """A bucket exists without the versioning or object lock Vigil relies on."""


def make_minio(settings: Any) -> Minio:
    """A minio client for settings.s3_endpoint (host:port) with the configured keys, TLS and region."""
    endpoint = settings.s3_endpoint.removeprefix("http://").removeprefix("https://").rstrip("/")
    return Minio(
        endpoint,
        access_key=settings.s3_access_key.get_secret_value(),
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=bool(settings.s3_secure or settings.s3_endpoint.startswith("https://")),
        region=settings.s3_region,
    )


def _bootstrap_one(client: Minio, name: str) -> bool:
    created = False
    if not client.bucket_exists(name):
        try:
            # Object lock can only be switched on at creation; it turns versioning on with it.
            client.make_bucket(name, object_lock=True)
            created = True
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
    if client.get_bucket_versioning(name).status != ENABLED:
        client.set_bucket_versioning(name, VersioningConfig(ENABLED))
    status = client.get_bucket_versioning(name).status
    if status != ENABLED:
        raise BucketSetupError(f"bucket {name}: versioning is {status!r}, not Enabled")
    try:
        client.get_object_lock_config(name)
    except S3Error as exc:
        # No lock configuration means the bucket was created without object lock, which cannot be fixed.
        raise BucketSetupError(f"bucket {name} has no object lock: {exc.code}") from exc
    return created


async def bootstrap_buckets(client: Minio, names: Iterable[str] = BUCKETS) -> list[str]:
    """Create the buckets with versioning and object lock (no default retention: objects carry their own).

    Idempotent; returns the names it created. Raises BucketSetupError for a bucket that exists
    without object lock.
    """
    created = []
    for name in names:
        if await asyncio.to_thread(_bootstrap_one, client, name):
            created.append(name)
            log.info("created bucket", extra={"bucket": name})
    return created
