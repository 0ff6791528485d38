"""Expiry (ARC-3): the sweeper that removes expired, unheld segment versions from storage and the index.

Each sweep walks the index by (retain_until, id) from the oldest date up to now, in keyset pages,
so rows it keeps (held, or refused by storage) never starve the rows behind them. For each page
the pure domain decides what may go (`select_expired`: the date is checked again, active holds and
the archive's own S3 legal-hold flag keep a segment — ARC-2 fails closed), storage deletes those
versions by version id in S3 multi-object deletes (≤ 1,000 per request), and then ONE transaction
per batch drops the index rows, writes the audit records and one `SegmentExpired` per segment.
Versions storage refused to delete stay indexed and are tried again by the next sweep.

Audit granularity: one record per device per batch, listing every removed version of that device
in `resources.segment_ids` (the version ids) with the batch's footage window — each removal is in
the audit log, without a record per two-second segment.

The index commit of batch N runs while storage deletes batch N+1 (the keyset cursor has already
moved past batch N, so the two never touch the same rows): storage sets the sweeper's pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from minio import Minio
from minio.deleteobjects import DeleteObject
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.archive.v1 import events_pb2
from vigil.audit.v1 import audit_record_pb2
from vigil_archive import metrics, store
from vigil_archive.api import ArchiveBase
from vigil_archive.domain import plan_delete_batches, select_expired
from vigil_kit import audit, cloudevents, topics
from vigil_kit.auth import Principal
from vigil_kit.migrations import outbox_table

log = logging.getLogger(__name__)

# The actor of what the archive does on its own (expiry).
SYSTEM_ACTOR = Principal(
    id="service:archive",
    name="vigil-archive",
    unit="",
    unit_kind="UNIT_KIND_UNSPECIFIED",
    roles=frozenset({"ROLE_SERVICE"}),
)
EXPIRE_ACTION = "archive.segment.expire"
# Storage answers that mean the version is already gone: the index row can go too.
GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion"})

# Deletes (key, version id) pairs of one bucket; returns the ones storage did not delete, with its code.
Deleter = Callable[[str, Sequence[tuple[str, str]]], Awaitable[list[tuple[str, str, str]]]]


def minio_deleter(client: Minio) -> Deleter:
    """S3 multi-object delete by version id (DeleteObjects); the per-object errors it reports."""

    def _delete(bucket: str, objects: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
        errors = client.remove_objects(bucket, [DeleteObject(key, version) for key, version in objects])
        # The iterator sends the request(s) lazily: consuming it is what deletes.
        return [(e.name or "", e.version_id or "", e.code or "") for e in errors]

    async def delete(bucket: str, objects: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
        return await asyncio.to_thread(_delete, bucket, objects)

    return delete


async def record_removal(
    base: ArchiveBase,
    s: AsyncSession,
    rows: Sequence[store.IndexedSegment],
    *,
    actor: Principal,
    now: datetime,
    action: str = EXPIRE_ACTION,
    reason: str = "",
) -> list[tuple[str, store.IndexedSegment]]:
    """Drop removed versions from the index, with their audit records and SegmentExpired events, in `s`.

    Rows another sweep already dropped are skipped (no second event). Returns (audit record id,
    row) for each row removed here. The caller calls wake(base) after committing.
    """
    present = await store.present_rows(s, [r.row_id for r in rows])
    rows = [r for r in rows if r.row_id in present]
    if not rows:
        return []
    await store.remove_segments(s, [r.row_id for r in rows], now)
    by_device: dict[str, list[store.IndexedSegment]] = {}
    for row in rows:
        by_device.setdefault(row.ref.device_id, []).append(row)
    out: list[tuple[str, store.IndexedSegment]] = []
    expire_time = _ts(now)
    events: list[dict[str, object]] = []
    ids = _event_ids(len(rows))
    for device_id, device_rows in by_device.items():
        record = audit.build_record(
            actor=actor,
            action=action,
            source_service=SOURCE,
            decision=audit.ALLOWED,
            resources={"device_ids": [device_id], "segment_ids": [r.ref.version_id for r in device_rows]},
            footage=(min(r.ref.start for r in device_rows), max(r.ref.end for r in device_rows)),
            reason=reason,
            rule_id="ARC-3",
            attributes={"segments": str(len(device_rows)), "bucket": device_rows[0].ref.bucket},
            now=now,
        )
        record_id = record.record_id
        # What audit.write_audit enqueues (key and event id = record id, subject = action).
        events.append(
            {
                "event_id": record_id,
                "topic": topics.AUDIT_RECORDS,
                "key": record_id,
                "ce_type": AUDIT_TYPE,
                "source": EVENT_SOURCE,
                "subject": action,
                "payload": record.SerializeToString(),
                "created_at": now,
            }
        )
        for row in device_rows:
            message = events_pb2.SegmentExpired(segment=segment_pb(row), expire_time=expire_time)
            events.append(
                {
                    "event_id": next(ids),
                    "topic": topics.ARCHIVE_EVENTS,
                    "key": device_id,
                    "ce_type": EXPIRED_TYPE,
                    "source": EVENT_SOURCE,
                    "subject": device_id,
                    "payload": message.SerializeToString(),
                    "created_at": now,
                }
            )
            out.append((record_id, row))
    # The outbox's own table, one multi-row INSERT per batch: the ORM path of outbox.enqueue costs
    # more per row than the rest of the sweep together. The caller wakes the relay after commit.
    await s.execute(insert(outbox_table), events)
    metrics.SEGMENTS_EXPIRED.inc(len(rows))
    return out


def _refused(
    objects: Sequence[tuple[str, str]], failed: Sequence[tuple[str, str, str]]
) -> set[tuple[str, str]]:
    """The (key, version) pairs storage did not delete. An error naming no version (some servers omit
    it) keeps every version of that key in the batch: the index must never lose a stored version."""
    errors = [(k, v) for k, v, code in failed if code not in GONE_CODES]
    exact = {(k, v) for k, v in errors if v}
    whole_keys = {k for k, v in errors if not v}
    return {(k, v) for k, v in objects if (k, v) in exact or k in whole_keys}


SOURCE = "archive"
EXPIRED_TYPE = events_pb2.SegmentExpired.DESCRIPTOR.full_name
AUDIT_TYPE = audit_record_pb2.AuditRecord.DESCRIPTOR.full_name
EVENT_SOURCE = cloudevents.source_for(SOURCE)
_RAND_74 = (1 << 74) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _event_ids(n: int) -> Iterator[str]:
    """n UUIDv7 event ids (RFC 9562, method 1: one millisecond timestamp, then a counter from a random
    start in the 74 random bits) — the same ids cloudevents.new_event_id makes, several µs cheaper each."""
    ms = time.time_ns() // 1_000_000
    base = int.from_bytes(os.urandom(10), "big") & _RAND_74 & ~((1 << 32) - 1)  # room to count up
    for i in range(n):
        r = base + i
        v = (ms << 80) | (0x7 << 76) | ((r >> 62) & 0xFFF) << 64 | (0b10 << 62) | (r & ((1 << 62) - 1))
        h = f"{v:032x}"
        yield f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _ts(t: datetime) -> Timestamp:
    # codec.ts's value, without FromDatetime's time-tuple round trip (a third of an event's cost).
    d = t - _EPOCH
    return Timestamp(seconds=d.days * 86400 + d.seconds, nanos=d.microseconds * 1000)


def segment_pb(row: store.IndexedSegment) -> pb.Segment:
    """codec.segment_to_pb's message for a row, built faster (the sweeper makes one per expired version)."""
    ref = row.ref
    return pb.Segment(
        device_id=ref.device_id,
        sequence=row.sequence,
        start_time=_ts(ref.start),
        end_time=_ts(ref.end),
        bucket=ref.bucket,
        key=ref.key,
        version_id=ref.version_id,
        size=ref.size,
        sha256=ref.sha256,
        retain_until=_ts(ref.retain_until),
        hold_ids=sorted(ref.hold_ids),
        owner_unit_id=row.owner_unit_id,
        codec=row.codec,
        container=row.container,
    )


def wake(base: ArchiveBase) -> None:
    """Wake the outbox relay after a commit of rows record_removal wrote."""
    if base.deps.notifier is not None:
        base.deps.notifier()


@dataclass
class SweepReport:
    """What one sweep did."""

    scanned: int = 0
    expired: int = 0
    kept: int = 0
    failed: int = 0
    batches: int = 0


class Sweeper:
    """Worker: a sweep at start and every `interval_s`; `run_once()` sweeps now (tests, benchmarks)."""

    def __init__(
        self,
        base: ArchiveBase,
        *,
        deleter: Deleter,
        batch_size: int = 1000,
        interval_s: float = 60.0,
    ) -> None:
        if not 1 <= batch_size <= 1000:
            raise ValueError(f"batch_size must be 1..1000 (S3 DeleteObjects), got {batch_size}")
        self.base = base
        self.deleter = deleter
        self.batch_size = batch_size
        self.interval_s = interval_s
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()

    async def run_once(self) -> SweepReport:
        """One sweep over everything expired by now; sweeps never overlap within a process."""
        async with self._lock:
            return await self._sweep()

    async def _sweep(self) -> SweepReport:
        base = self.base
        now = base.clock()
        report = SweepReport()
        async with base.sessions() as s:
            holds = await store.list_holds(s)  # the active ones
        cursor: tuple[datetime, int] | None = None
        commit: asyncio.Task[int] | None = None
        try:
            while True:
                async with base.sessions() as s:
                    rows = await store.expired_candidates(s, now, limit=self.batch_size, after=cursor)
                if not rows:
                    break
                cursor = (rows[-1].ref.retain_until, rows[-1].row_id)
                report.scanned += len(rows)
                by_object = {r.ref.object_id: r for r in rows}
                # A version carrying the archive's S3 legal hold is kept even if no hold row says so.
                selection = select_expired((r.ref for r in rows if not r.legal_hold), holds, now)
                report.kept += len(rows) - len(selection.expired)
                for batch in plan_delete_batches(selection.expired, max_keys=self.batch_size):
                    failed = await self.deleter(batch.bucket, batch.objects)
                    refused = _refused(batch.objects, failed)
                    if refused:
                        report.failed += len(refused)
                        metrics.SWEEP_STORAGE_FAILURES.inc(len(refused))
                        log.warning(
                            "storage refused to delete expired versions; they stay indexed for the next sweep",
                            extra={
                                "bucket": batch.bucket,
                                "count": len(refused),
                                "first": [f"{k}@{v}:{c}" for k, v, c in failed[:10]],
                            },
                        )
                    removed = [
                        by_object[seg.object_id]
                        for seg in batch.segments
                        if (seg.key, seg.version_id) not in refused
                    ]
                    if commit is not None:
                        report.expired += await commit
                    commit = asyncio.create_task(self._commit(removed, now))
                    report.batches += 1
            if commit is not None:
                report.expired += await commit
                commit = None
        finally:
            if commit is not None and not commit.done():
                commit.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await commit
        metrics.SWEEP_LAST_RUN.set(time.time())
        if report.expired or report.failed:
            log.info(
                "expiry sweep",
                extra={
                    "expired": report.expired,
                    "kept": report.kept,
                    "failed": report.failed,
                    "batches": report.batches,
                },
            )
        return report

    async def _commit(self, rows: list[store.IndexedSegment], now: datetime) -> int:
        if not rows:
            return 0
        async with self.base.sessions.begin() as s:
            done = await record_removal(
                self.base, s, rows, actor=SYSTEM_ACTOR, now=now, reason="retention expired"
            )
        wake(self.base)
        return len(done)

    async def run(self) -> None:
        self._stop.clear()
        while not self._stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    def stop(self) -> None:
        self._stop.set()
