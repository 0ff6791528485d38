"""The minio client factory and the bootstrap of Vigil's versioned, object-locked buckets."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import certifi
import urllib3
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
    # minio's own connection pool, sized by settings.s3_connections instead of its fixed 10 (timeouts,
    # certificate checks and retries as minio sets them).
    timeout = 300
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        maxsize=getattr(settings, "s3_connections", 32),
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=5, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(
        endpoint,
        access_key=settings.s3_access_key.get_secret_value(),
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=bool(settings.s3_secure or settings.s3_endpoint.startswith("https://")),
        region=settings.s3_region,
        http_client=http,
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


# What urllib.parse.quote leaves unchanged (its always-safe set, plus "/" in keys).
_KEEPS_KEY = re.compile(r"[A-Za-z0-9_.~/-]*\Z").match
_KEEPS_VERSION = re.compile(r"[A-Za-z0-9_.~-]*\Z").match


class Presigner:
    """Presigned GET URLs by version id, byte-for-byte what `Minio.presigned_get_object` makes, faster.

    minio-py derives the SigV4 signing key and rebuilds its URL machinery for every URL; a playback
    manifest presigns hundreds at one instant. `get_many` computes what is shared by all of them once
    (date, scope, credential, signing key) and per URL only the canonical request's hash and one HMAC
    (AWS Signature Version 4, query-string authentication). A unit test holds it to minio's output.
    It never asks the server for the bucket's region: it uses the configured one, as the services do.
    """

    def __init__(self, client: Minio) -> None:
        base = client._base_url  # the endpoint, scheme and region the client was made with
        if base.virtual_style_flag or base.accelerate_host_flag or base.dualstack_host_flag:
            raise ValueError("Presigner builds path-style URLs only (Vigil's S3 endpoints are path-style)")
        self._origin = f"{'https' if base.is_https else 'http'}://{base.host}"
        self._host = base.host
        self._region = base.region or "us-east-1"
        self._provider = client._provider

    def get(
        self, bucket: str, key: str, *, version_id: str, expires: timedelta, now: datetime | None = None
    ) -> str:
        return self.get_many(bucket, [(key, version_id)], expires=expires, now=now)[0]

    def get_many(
        self,
        bucket: str,
        objects: Iterable[tuple[str, str]],
        *,
        expires: timedelta,
        now: datetime | None = None,
    ) -> list[str]:
        """One presigned GET URL per (key, version id), all signed at `now` (UTC; default: the present)."""
        import hashlib
        import hmac
        from urllib.parse import quote

        seconds = int(expires.total_seconds())
        if not 1 <= seconds <= 604_800:
            raise ValueError("expires must be between 1 second and 7 days")
        at = now or datetime.now(UTC)
        if at.tzinfo is not None:
            at = at.astimezone(UTC)  # a naive `now` is UTC already, as minio takes it
        amz_date = at.strftime("%Y%m%dT%H%M%SZ")
        day = at.strftime("%Y%m%d")
        credentials = self._provider.retrieve()
        scope = f"{day}/{self._region}/s3/aws4_request"
        signing_key = b"AWS4" + credentials.secret_key.encode()
        for part in (day, self._region, "s3", "aws4_request"):
            signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
        auth = (
            f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={quote(credentials.access_key + '/' + scope, safe='')}"
            f"&X-Amz-Date={amz_date}&X-Amz-Expires={seconds}&X-Amz-SignedHeaders=host"
        )
        prefix = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n"
        suffix = f"\nhost:{self._host}\n\nhost\nUNSIGNED-PAYLOAD"
        signer = hmac.new(signing_key, digestmod=hashlib.sha256)  # copied per URL: no key set-up each time
        sha256 = hashlib.sha256
        bucket_path = f"/{bucket}/"
        out = []
        for key, version_id in objects:
            # Segment keys and version ids are almost always made of characters quote() keeps as they
            # are: the regex check is much cheaper than quoting them.
            path = bucket_path + (key if _KEEPS_KEY(key) else quote(key, safe="/"))
            if version_id:
                version = version_id if _KEEPS_VERSION(version_id) else quote(version_id, safe="")
                query = f"versionId={version}&{auth}"
                # Canonical query: the parameters sorted; "X-Amz-*" sorts before "versionId" (ASCII).
                canonical_query = f"{auth}&versionId={version}"
            else:
                query = canonical_query = auth
            canonical = f"GET\n{path}\n{canonical_query}{suffix}"
            mac = signer.copy()
            mac.update((prefix + sha256(canonical.encode()).hexdigest()).encode())
            out.append(f"{self._origin}{path}?{query}&X-Amz-Signature={mac.hexdigest()}")
        return out
