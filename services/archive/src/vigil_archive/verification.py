"""ARC-4 re-checks of stored segments: read a version back from storage, list its key's versions, report findings.

Shared by VerifySegments, the scrubber and reconciliation. A re-check reads the indexed object
*version* (never the key: S3 accepts a new PUT over a locked key, and a plain DELETE only adds a
delete marker), streaming its bytes through SHA-256 in 1 MiB pieces, and lists the key's versions to
see whether a newer one sits on top; the pure `domain.classify` decides what is wrong. Each finding
is recorded once per (object, kind) — a scrubber passing again does not flood the log — and a new
one is published as `IntegrityViolation`, written as an audit record ("archive.integrity.violation")
and counted, all in the caller's transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from minio import Minio
from minio.error import S3Error
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.archive.v1 import events_pb2
from vigil_archive import codec, metrics, store
from vigil_archive.domain import Observation, SegmentRef, Violation, ViolationKind, classify
from vigil_kit.auth import Principal
from vigil_kit.errors import Unavailable

log = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
VIOLATION_ACTION = "archive.integrity.violation"

# The archive's own actor for what its workers find (the scrubber, reconciliation).
SYSTEM_ACTOR = Principal(
    id="service:archive",
    name="archive",
    unit="",
    unit_kind="UNIT_KIND_UNSPECIFIED",
    roles=frozenset({"ROLE_SERVICE"}),
)

PROTO_KIND = {
    ViolationKind.MISSING_OBJECT: pb.VIOLATION_KIND_MISSING,
    ViolationKind.NEWER_VERSION: pb.VIOLATION_KIND_NEWER_VERSION,
    ViolationKind.SIZE_MISMATCH: pb.VIOLATION_KIND_SIZE_MISMATCH,
    ViolationKind.HASH_MISMATCH: pb.VIOLATION_KIND_HASH_MISMATCH,
}

# Storage answers meaning "that version is not there" (a bogus version id is refused as an argument;
# a version that is a delete marker answers 405).
_MISSING_CODES = frozenset({"NoSuchVersion", "NoSuchKey", "InvalidArgument", "MethodNotAllowed"})


def kind_name(kind: int) -> str:
    """How the findings table names a proto ViolationKind: "HASH_MISMATCH", "MISSING", ..."""
    return pb.ViolationKind.Name(kind).removeprefix("VIOLATION_KIND_")


@dataclass(frozen=True)
class Finding:
    """One integrity finding, ready to record and report."""

    device_id: str
    kind: int  # pb.ViolationKind
    key: str
    version_id: str
    detail: str
    start: datetime | None = None
    rule: str = "ARC-4"

    def to_pb(self) -> pb.Finding:
        msg = pb.Finding(kind=self.kind, key=self.key, version_id=self.version_id, detail=self.detail)
        if self.start is not None:
            msg.start_time.CopyFrom(codec.ts(self.start))
        return msg

    @classmethod
    def of(cls, violation: Violation) -> Finding | None:
        kind = PROTO_KIND.get(violation.kind)
        if kind is None:
            return None  # a kind the wire cannot carry (the retention check is not made here)
        seg = violation.segment
        return cls(seg.device_id, kind, seg.key, seg.version_id, violation.message, seg.start, violation.rule)


class StorageChecker:
    """Reads indexed versions back from object storage (blocking minio calls run in threads)."""

    def __init__(self, minio: Minio | None) -> None:
        self.minio = minio

    def _client(self) -> Minio:
        if self.minio is None:
            raise Unavailable("object storage is not configured: nothing can be re-hashed")
        return self.minio

    async def observe(self, seg: SegmentRef, *, detected_by: str) -> Observation:
        """What storage holds for the segment's version and key (ARC-4)."""
        client = self._client()
        latest = await asyncio.to_thread(_latest_version, client, seg.bucket, seg.key)
        read = await asyncio.to_thread(hash_version, client, seg.bucket, seg.key, seg.version_id)
        metrics.INTEGRITY_CHECKED.labels(detected_by=detected_by).inc()
        if read is None:
            return Observation.missing(latest_version_id=latest)
        size, digest = read
        metrics.INTEGRITY_BYTES_HASHED.labels(detected_by=detected_by).inc(size)
        return Observation(found=True, size=size, sha256=digest, latest_version_id=latest)

    async def check(self, seg: SegmentRef, *, detected_by: str) -> list[Finding]:
        """The findings about one segment; empty when storage holds exactly what the index says."""
        seen = await self.observe(seg, detected_by=detected_by)
        return [f for v in classify(seg, seen) if (f := Finding.of(v)) is not None]

    async def exists(self, bucket: str, key: str, version_id: str) -> bool:
        """Whether the version is stored (a stat, no bytes read)."""
        return await asyncio.to_thread(_stat_exists, self._client(), bucket, key, version_id)


def hash_version(client: Minio, bucket: str, key: str, version_id: str) -> tuple[int, str] | None:
    """(size, sha256) of the version's bytes, streamed in 1 MiB pieces; None when the version is not stored."""
    try:
        response = client.get_object(bucket, key, version_id=version_id)
    except S3Error as e:
        if e.code in _MISSING_CODES:
            return None
        raise
    try:
        h = hashlib.sha256()
        size = 0
        for piece in response.stream(READ_CHUNK):
            h.update(piece)
            size += len(piece)
        return size, h.hexdigest()
    finally:
        response.close()
        response.release_conn()


def _latest_version(client: Minio, bucket: str, key: str) -> str | None:
    """The newest stored version of exactly this key (delete markers skipped: they hide, not replace).

    A HEAD of the key answers for the newest version directly; only when the key's newest entry is a
    delete marker (or nothing) does it list the key's versions — listing is slow on large buckets.
    """
    try:
        return client.stat_object(bucket, key).version_id
    except S3Error as e:
        if e.code not in _MISSING_CODES:
            raise
    for obj in client.list_objects(bucket, prefix=key, recursive=True, include_version=True):
        # S3 lists a key's versions newest first; the prefix may also match longer keys.
        if obj.object_name == key and not obj.is_delete_marker:
            return obj.version_id
    return None


def _stat_exists(client: Minio, bucket: str, key: str, version_id: str) -> bool:
    try:
        client.stat_object(bucket, key, version_id=version_id)
    except S3Error as e:
        if e.code in _MISSING_CODES:
            return False
        raise
    return True


def report(
    s: AsyncSession,
    part: object,
    finding: Finding,
    *,
    detected_by: str,
    actor: Principal,
    now: datetime,
) -> None:
    """Publish a newly recorded finding: IntegrityViolation + audit record + metric (caller's transaction).

    `part` is the servicer part (ArchiveBase) whose audit()/event() write through the outbox.
    """
    part.event(  # type: ignore[attr-defined]
        s,
        finding.device_id,
        events_pb2.IntegrityViolation(
            device_id=finding.device_id,
            finding=finding.to_pb(),
            detected_by=detected_by,
            detect_time=codec.ts(now),
        ),
    )
    part.audit(  # type: ignore[attr-defined]
        s,
        actor,
        VIOLATION_ACTION,
        resources={"device_ids": [finding.device_id], "segments": [f"{finding.key}@{finding.version_id}"]},
        rule_id=finding.rule,
        reason=finding.detail,
        attributes={
            "kind": kind_name(finding.kind),
            "detected_by": detected_by,
            "key": finding.key,
            "version_id": finding.version_id,
        },
    )
    metrics.INTEGRITY_VIOLATIONS.labels(kind=kind_name(finding.kind), detected_by=detected_by).inc()
    log.warning(
        "integrity violation",
        extra={
            "kind": kind_name(finding.kind),
            "device_id": finding.device_id,
            "key": finding.key,
            "version_id": finding.version_id,
            "detected_by": detected_by,
        },
    )


async def record_and_report(
    s: AsyncSession,
    part: object,
    findings: list[Finding],
    *,
    detected_by: str,
    actor: Principal,
    now: datetime,
) -> int:
    """Record each finding once per (object, kind); report the new ones. Returns how many were new."""
    new = 0
    for f in findings:
        added = await store.record_finding(
            s,
            device_id=f.device_id,
            key=f.key,
            version_id=f.version_id,
            kind=kind_name(f.kind),
            detail=f.detail,
            detected_by=detected_by,
            now=now,
        )
        if added:
            report(s, part, f, detected_by=detected_by, actor=actor, now=now)
            new += 1
    return new
