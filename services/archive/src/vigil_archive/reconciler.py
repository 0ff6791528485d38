"""Reconciliation: storage's object versions under "segments/" against the index, periodically (ARC-4).

Both listings are merged in (key, version id) order by the domain's `diff_listings`, streaming: the
merge runs in a worker thread that pulls storage's listing from minio and the index's in keyset
pages from the event loop, so a bucket of millions of versions reconciles in constant memory.

- An orphan (stored, never indexed — a lost event, or an event the indexer could not read) is
  re-indexed only from its own stored header: the `x-amz-meta-vigil-*` metadata ingest wrote
  (vigil_kit.segment_header) must carry the device's Ed25519 signature, verified with the public key
  the registry holds (ARC-4); its bytes are re-hashed by version id and must match the signed size
  and hash; its retain-until is read back from storage's object lock. Anything that does not verify
  is never indexed (logged and counted); a registry that cannot be reached leaves it for the next run.
  Re-indexing goes through the Indexer (source "reconciliation"), plus OrphanReindexed and an audit
  record, in one transaction.
- A missing object (indexed, no longer stored) is confirmed with a stat by version id, then reported
  like any finding (MISSING, detected_by "reconciliation").
Objects younger than `settle` are left for a later run: ingest stores first and the archive indexes
the event after, so a young object is usually just not indexed *yet*. "_probe/" keys (the object-lock
check's probes) are not segments and are ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, Protocol

import grpc
from minio import Minio
from minio.error import S3Error
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.archive.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as registry_pb
from vigil.registry.v1 import registry_service_pb2_grpc as registry_grpc
from vigil_archive import codec, metrics, store
from vigil_archive.dayroots import run_periodically
from vigil_archive.domain import DiscrepancyKind, MergeStats, ObjectVersion, SegmentRef, diff_listings
from vigil_archive.verification import SYSTEM_ACTOR, Finding, StorageChecker, hash_version, record_and_report
from vigil_kit import objectstore
from vigil_kit.errors import VigilError, from_rpc_error
from vigil_kit.grpc_client import ServiceStub
from vigil_kit.segment_header import UploadHeader, header_from_metadata, verify

log = logging.getLogger(__name__)

DETECTED_BY = "reconciliation"
SOURCE = "reconciliation"
SEGMENTS_PREFIX = "segments/"
PROBE_PREFIX = "_probe/"
GET_DEVICE = "/vigil.registry.v1.RegistryService/GetDevice"
REINDEX_ACTION = "archive.segment.reindex"
_INDEX_PAGE = 1000
_LIST_BATCH = 1000


class RegistryUnavailable(Exception):
    """The registry could not answer now; the orphan is retried next run."""


@dataclass(frozen=True)
class DeviceFacts:
    """What re-indexing needs from the registry: the signing key and the owner unit."""

    device_id: str
    public_key: str
    owner_unit_id: str


class DeviceLookup(Protocol):
    async def get(self, device_id: str) -> DeviceFacts | None:
        """The device (None: the registry does not know it); RegistryUnavailable when it cannot tell."""
        ...


def registry_client(settings: Any) -> ServiceStub[registry_grpc.RegistryServiceStub]:
    """The archive's client of the registry (GetDevice retried on UNAVAILABLE), as the archive itself."""
    return ServiceStub.from_settings(
        registry_grpc.RegistryServiceStub,
        settings.registry_addr,
        settings,
        timeout_s=settings.registry_timeout_s,
        retry_methods=[GET_DEVICE],
    )


class RegistryLookup:
    """RegistryService.GetDevice with the archive's service token; GetDevice is retried on UNAVAILABLE."""

    def __init__(self, registry: ServiceStub[registry_grpc.RegistryServiceStub]) -> None:
        self._registry = registry

    async def get(self, device_id: str) -> DeviceFacts | None:
        stub = self._registry()
        if stub is None:
            raise RegistryUnavailable("no service token: the registry cannot be asked")
        try:
            device = await stub.GetDevice(registry_pb.GetDeviceRequest(device_id=device_id))
        except grpc.RpcError as e:
            err = from_rpc_error(e)  # type: ignore[arg-type]
            if err.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise RegistryUnavailable(str(err)) from None
        return DeviceFacts(device.device_id, device.public_key, device.owner_unit_id)

    async def close(self) -> None:
        await self._registry.close()


@dataclass
class ReconcileReport:
    matched: int = 0
    pending: int = 0
    reindexed: list[str] = field(default_factory=list)  # key@version
    skipped: dict[str, str] = field(default_factory=dict)  # key@version → why
    missing: list[Finding] = field(default_factory=list)
    truncated: bool = False


class Reconciler:
    """Periodic storage-vs-index reconciliation; `run_once(prefix)` is one run."""

    def __init__(
        self,
        part: Any,
        sessions: async_sessionmaker[AsyncSession],
        minio: Minio | None,
        indexer: Any,
        devices: DeviceLookup,
        clock: Callable[[], datetime],
        *,
        interval_s: float,
        settle: timedelta,
        max_discrepancies: int = 1000,
        bucket: str = objectstore.SEGMENTS_BUCKET,
    ) -> None:
        self.part = part
        self.sessions = sessions
        self.minio = minio
        self.checker = StorageChecker(minio)
        self.indexer = indexer
        self.devices = devices
        self.clock = clock
        self.interval_s = interval_s
        self.settle = settle
        self.max_discrepancies = max_discrepancies
        self.bucket = bucket
        self._stop = asyncio.Event()

    async def run_once(self, prefix: str = SEGMENTS_PREFIX) -> ReconcileReport:
        if self.minio is None:
            raise RuntimeError("reconciliation needs object storage")
        if not prefix.startswith(SEGMENTS_PREFIX):
            raise ValueError(
                f"reconciliation covers segment keys only ({SEGMENTS_PREFIX}...), got {prefix!r}"
            )
        report = ReconcileReport()
        stats = MergeStats()
        loop = asyncio.get_running_loop()
        found = await asyncio.to_thread(self._merge, loop, prefix, self.clock() - self.settle, stats, report)
        report.matched, report.pending = stats.matched, stats.pending
        for d in found:
            if d.kind is DiscrepancyKind.ORPHAN:
                await self._orphan(d.item, report)
            else:
                await self._missing(d.item, report)
        log.info(
            "reconciliation done",
            extra={
                "matched": report.matched,
                "pending": report.pending,
                "reindexed": len(report.reindexed),
                "skipped": len(report.skipped),
                "missing": len(report.missing),
            },
        )
        return report

    async def run(self) -> None:
        await run_periodically(self, self.interval_s, "reconciliation")

    async def stop(self) -> None:
        self._stop.set()
        close = getattr(self.devices, "close", None)
        if close is not None:
            await close()

    # --- the merge (in a worker thread) ----------------------------------------------------------

    def _merge(
        self,
        loop: asyncio.AbstractEventLoop,
        prefix: str,
        settled_before: datetime,
        stats: MergeStats,
        report: ReconcileReport,
    ) -> list[Any]:
        out = []
        index = _index_items(lambda after: self._index_page(prefix, after), loop)
        storage = _storage_items(self.minio, self.bucket, prefix)  # type: ignore[arg-type]
        for d in diff_listings(index, storage, settled_before=settled_before, stats=stats):
            out.append(d)
            if len(out) >= self.max_discrepancies:
                report.truncated = True  # the rest is found next run
                break
        return out

    async def _index_page(self, prefix: str, after: tuple[str, str] | None) -> list[store.IndexedSegment]:
        async with self.sessions() as s:
            return await store.index_listing(s, self.bucket, prefix, after=after, limit=_INDEX_PAGE)

    # --- what the merge found --------------------------------------------------------------------

    async def _missing(self, item: IndexedItem, report: ReconcileReport) -> None:
        ref = item.row.ref
        # The merge saw a listing; confirm by version id (the sweeper may have removed both meanwhile).
        if await self.checker.exists(ref.bucket, ref.key, ref.version_id):
            return
        async with self.sessions() as s:
            if await store.get_segment(s, ref.key, ref.version_id) is None:
                return
        finding = Finding(
            ref.device_id,
            pb.VIOLATION_KIND_MISSING,
            ref.key,
            ref.version_id,
            f"segment {ref.label()} of device {ref.device_id} is indexed but no longer stored in "
            f"{ref.bucket} (ARC-4)",
            ref.start,
        )
        report.missing.append(finding)
        async with self.sessions.begin() as s:
            await record_and_report(
                s, self.part, [finding], detected_by=DETECTED_BY, actor=SYSTEM_ACTOR, now=self.clock()
            )

    async def _orphan(self, item: ObjectVersion, report: ReconcileReport) -> None:
        label = f"{item.key}@{item.version_id}"
        try:
            ref, header, facts = await self._verified(item)
        except _Skip as e:
            report.skipped[label] = e.reason
            metrics.ORPHANS_SKIPPED.labels(reason=e.kind).inc()
            log.log(
                logging.INFO if e.kind == "registry_unavailable" else logging.ERROR,
                "orphan object not re-indexed",
                extra={"key": item.key, "version_id": item.version_id, "reason": e.reason},
            )
            return
        async with self.sessions.begin() as s:
            row = await self.indexer.index(
                s,
                ref,
                sequence=header.sequence,
                owner_unit_id=facts.owner_unit_id,
                codec_name=header.codec,
                container=header.container.extension if header.container else "",
                source=SOURCE,
            )
            if row is None:
                return  # indexed meanwhile (its event arrived)
            self.part.event(s, ref.device_id, events_pb2.OrphanReindexed(segment=codec.segment_to_pb(row)))
            self.part.audit(
                s,
                SYSTEM_ACTOR,
                REINDEX_ACTION,
                resources={"device_ids": [ref.device_id], "segments": [label]},
                rule_id="ARC-4",
                reason="stored object version was not indexed; its signed header verified",
                footage=(ref.start, ref.end),
                attributes={"source": SOURCE, "key": ref.key, "version_id": ref.version_id},
            )
        metrics.ORPHANS_REINDEXED.inc()
        report.reindexed.append(label)

    async def _verified(self, item: ObjectVersion) -> tuple[SegmentRef, UploadHeader, DeviceFacts]:
        """The orphan as an index row, after its header, signature, bytes and lock all check out."""
        assert self.minio is not None
        stat = await asyncio.to_thread(
            self.minio.stat_object, self.bucket, item.key, version_id=item.version_id
        )
        try:
            header = header_from_metadata(dict(stat.metadata or {}))
        except VigilError as e:
            raise _Skip("no_header", f"no signed segment header in its metadata: {e.message}") from None
        seg = header.segment
        if not item.key.startswith(f"{SEGMENTS_PREFIX}{seg.device_id}/"):
            raise _Skip("wrong_key", f"its header names device {seg.device_id}, not the key's")
        try:
            facts = await self.devices.get(seg.device_id)
        except RegistryUnavailable as e:
            raise _Skip("registry_unavailable", f"registry unavailable: {e}") from None
        if facts is None:
            raise _Skip("unknown_device", f"device {seg.device_id} is not registered")
        try:
            verify(facts.public_key, seg, header.signature)
        except VigilError as e:
            raise _Skip("bad_signature", e.message) from None
        read = await asyncio.to_thread(hash_version, self.minio, self.bucket, item.key, item.version_id)
        if read is None:
            raise _Skip("gone", "the version disappeared before it could be read")
        size, digest = read
        if (size, digest) != (header.size, seg.sha256):
            raise _Skip(
                "bytes_mismatch",
                f"stored bytes ({size} bytes, sha256 {digest}) differ from the signed header "
                f"({header.size} bytes, sha256 {seg.sha256})",
            )
        until = await self._retain_until(item, stat.metadata or {})
        if until is None:
            raise _Skip("no_retention", "the object carries no object-lock retention")
        try:
            ref = SegmentRef(
                device_id=seg.device_id,
                start=seg.start,
                end=seg.end,
                bucket=self.bucket,
                key=item.key,
                version_id=item.version_id,
                size=size,
                sha256=digest,
                retain_until=until,
            )
        except ValueError as e:
            raise _Skip("not_indexable", str(e)) from None
        return ref, header, facts

    async def _retain_until(self, item: ObjectVersion, headers: Any) -> datetime | None:
        """The version's object-lock retain-until: from the HEAD answer's lock headers, else GetObjectRetention.

        (The HEAD answer carries it at no extra cost; some S3 servers answer GetObjectRetention on a
        version badly, so it is only the fallback.)
        """
        text = {k.lower(): v for k, v in dict(headers).items()}.get("x-amz-object-lock-retain-until-date")
        if text:
            try:
                return datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                log.warning("unreadable retain-until header", extra={"key": item.key, "value": text[:64]})
        assert self.minio is not None
        try:
            retention = await asyncio.to_thread(
                self.minio.get_object_retention, self.bucket, item.key, version_id=item.version_id
            )
        except (S3Error, ValueError):
            return None
        return getattr(retention, "retain_until_date", None) if retention is not None else None


class _Skip(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class IndexedItem:
    """An index row as the merge sees it: (key, version id) plus the row."""

    key: str
    version_id: str
    row: store.IndexedSegment


def _index_items(
    fetch: Callable[[tuple[str, str] | None], Awaitable[list[store.IndexedSegment]]],
    loop: asyncio.AbstractEventLoop,
) -> Iterator[IndexedItem]:
    """The index's listing, page by page from the event loop (called from the merge's thread)."""
    after: tuple[str, str] | None = None
    while True:
        page = asyncio.run_coroutine_threadsafe(fetch(after), loop).result()
        for row in page:
            yield IndexedItem(row.ref.key, row.ref.version_id, row)
        if len(page) < _INDEX_PAGE:
            return
        after = (page[-1].ref.key, page[-1].ref.version_id)


def _storage_items(client: Minio, bucket: str, prefix: str) -> Iterator[ObjectVersion]:
    """Storage's object versions under the prefix in (key, version id) order, delete markers and probes left out.

    S3 lists keys in order but each key's versions newest first; one key's few versions are sorted here.
    """
    listing = client.list_objects(bucket, prefix=prefix, recursive=True, include_version=True)
    for key, versions in groupby(listing, key=lambda o: o.object_name):
        if key.startswith(PROBE_PREFIX) or f"/{PROBE_PREFIX}" in key:
            continue
        items = [
            ObjectVersion(
                key=key,
                version_id=o.version_id,
                size=o.size or 0,
                last_modified=o.last_modified,
                is_latest=bool(o.is_latest),
            )
            for o in versions
            if not o.is_delete_marker and o.version_id
        ]
        yield from sorted(items, key=lambda v: v.version_id)


__all__ = ["DeviceFacts", "DeviceLookup", "Reconciler", "RegistryLookup", "RegistryUnavailable"]
