"""Expiry (ARC-3): the sweeper that removes expired, unheld segment versions from storage and the index.

Each sweep walks the index by (retain_until, id) from the oldest date up to now, in keyset pages,
so rows it keeps (held, or refused by storage) never starve the rows behind them. For each page
the ARC-3 rule decides what may go (`sweepable`: the date is checked again, active holds and the
archive's own S3 legal-hold flag keep a segment — ARC-2 fails closed; rows of held devices go
through the domain's `select_expired` itself), storage deletes those versions by version id in S3
multi-object deletes (≤ 1,000 per request, a few requests in flight), and then one transaction per
group of completed deletes drops the index rows, writes the audit records and one `SegmentExpired`
per segment. Versions storage refused to delete stay indexed and are tried again by the next sweep.

Nothing acknowledged is lost: a version is only dropped from the index after storage said it is
gone. A crash (or a failed commit) between the two leaves the row indexed; the next sweep deletes
the version again, storage answers "deleted" or a GONE_CODES error, and the row goes then — with
its one event, since the first attempt committed nothing.

Audit granularity: one record per device per transaction, listing every removed version of that
device in `resources.segment_ids` (the version ids) with the footage window — each removal is in
the audit log, without a record per two-second segment.

Index commits run while storage deletes the next batches (the keyset cursor has already moved past
committed rows, so the two never touch the same rows): storage sets the sweeper's pace. The hot
path reads and writes at the driver's level (see store.expired_rows) because SQLAlchemy's per-row
processing would cost more than the database's own work on a million-row sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from minio import Minio
from minio.deleteobjects import DeleteObject
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.archive.v1 import events_pb2
from vigil.audit.v1 import audit_record_pb2
from vigil_archive import metrics, store
from vigil_archive.api import ArchiveBase
from vigil_archive.domain import Hold, SegmentRef, select_expired
from vigil_kit import audit, cloudevents, topics
from vigil_kit.auth import Principal

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
RETENTION_REASON = "retention expired"
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
        # Blocking HTTP in a worker thread: the event loop keeps committing meanwhile.
        return await asyncio.to_thread(_delete, bucket, objects)

    return delete


# --- what may go (ARC-3) --------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1)  # naive UTC, like Expiring's times


def utc_naive(value: Any) -> datetime:
    """A UTCDateTime column's value as the driver returns it, as a naive UTC datetime.

    SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC, vigil_kit.db.UTCDateTime); PostgreSQL's
    driver returns aware datetimes.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def time_parser(dialect_name: str) -> Callable[[Any], datetime]:
    """utc_naive, or on SQLite the C parser alone: UTCDateTime always stores naive UTC there, and a
    million rows make three Python calls per row count."""
    return datetime.fromisoformat if dialect_name == "sqlite" else utc_naive


class Expiring(NamedTuple):
    """An index row the sweeper handles (times naive UTC): cheaper than IndexedSegment's SegmentRef,
    whose checks the row passed when it was indexed."""

    row_id: int
    device_id: str
    sequence: int
    start: datetime
    end: datetime
    day: str
    bucket: str
    key: str
    version_id: str
    size: int
    sha256: str
    retain_until: datetime
    owner_unit_id: str
    codec: str
    container: str
    legal_hold: bool

    @classmethod
    def from_row(cls, r: Sequence[Any], parse: Callable[[Any], datetime] = utc_naive) -> Expiring:
        """From store.expired_rows' driver tuple (store.EXPIRED_PAGE_COLUMNS); `parse` reads its times
        (time_parser's for the session's database)."""
        return cls(
            r[0], r[1], r[2], parse(r[3]), parse(r[4]), r[5], r[6], r[7], r[8], r[9], r[10],
            parse(r[11]), r[12], r[13], r[14], bool(r[15]),
        )  # fmt: skip

    @classmethod
    def from_indexed(cls, row: store.IndexedSegment) -> Expiring:
        ref = row.ref
        return cls(
            row.row_id, ref.device_id, row.sequence, utc_naive(ref.start), utc_naive(ref.end),
            store.day_of(ref.start), ref.bucket, ref.key, ref.version_id, ref.size, ref.sha256,
            utc_naive(ref.retain_until), row.owner_unit_id, row.codec, row.container, row.legal_hold,
        )  # fmt: skip

    def ref(self) -> SegmentRef:
        """The domain's value (validated), for the rows the domain decides on directly."""
        return SegmentRef(
            device_id=self.device_id,
            start=self.start.replace(tzinfo=UTC),
            end=self.end.replace(tzinfo=UTC),
            bucket=self.bucket,
            key=self.key,
            version_id=self.version_id,
            size=self.size,
            sha256=self.sha256,
            retain_until=self.retain_until.replace(tzinfo=UTC),
        )


def sweepable(candidates: Iterable[Expiring], holds: Sequence[Hold], now: datetime) -> list[Expiring]:
    """ARC-3: the candidates to delete now, in their order — exactly select_expired's `expired`.

    A row carrying the archive's S3 legal-hold flag is kept whatever the hold rows say (fail closed).
    Rows of a device some active hold names go through `select_expired` itself. For every other row
    `select_expired` reduces to its date rule — a segment is deleted once `retain_until <= now` (S3
    object lock's rule) — because (a) no hold in `holds` names its device, so no active hold covers
    it, and (b) index rows carry no hold ids of their own (holds live in archive_holds, not on the
    row), so nothing else can hold it. The date is checked here for every row, never trusted to the
    query (ARC-2). test_archive_sweeper_rules checks the equivalence on generated rows and holds.
    """
    candidates = list(candidates)
    limit = utc_naive(now)
    held_devices = {d for h in holds if h.active_at(now) for d in h.device_ids}
    decided: set[int] | None = None
    held_rows = [c for c in candidates if c.device_id in held_devices and not c.legal_hold]
    if held_rows:
        refs = {c.ref(): c.row_id for c in held_rows}
        decided = {refs[r] for r in select_expired(refs, holds, now).expired}
    out: list[Expiring] = []
    for c in candidates:
        if c.legal_hold or c.retain_until > limit:
            continue
        if c.device_id in held_devices:
            if decided is not None and c.row_id in decided:
                out.append(c)
            continue
        out.append(c)
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


# --- what the index records --------------------------------------------------------------------------

SOURCE = "archive"
EXPIRED_TYPE = events_pb2.SegmentExpired.DESCRIPTOR.full_name
AUDIT_TYPE = audit_record_pb2.AuditRecord.DESCRIPTOR.full_name
EVENT_SOURCE = cloudevents.source_for(SOURCE)


def expired_payloads(rows: Iterable[Expiring], expire_time: datetime) -> list[bytes]:
    """Each row's serialized SegmentExpired — the same bytes as building it with codec's Segment
    (fields set one by one on a fresh message cost half of keyword construction with Timestamps).
    A removed version carries no hold ids (a held one is never removed)."""
    d = utc_naive(expire_time) - _EPOCH
    expire_s, expire_ns = d.days * 86400 + d.seconds, d.microseconds * 1000
    new = events_pb2.SegmentExpired
    out: list[bytes] = []
    for row in rows:
        message = new()
        seg = message.segment
        seg.device_id = row.device_id
        seg.sequence = row.sequence
        d = row.start - _EPOCH
        ts = seg.start_time
        ts.seconds, ts.nanos = d.days * 86400 + d.seconds, d.microseconds * 1000
        d = row.end - _EPOCH
        ts = seg.end_time
        ts.seconds, ts.nanos = d.days * 86400 + d.seconds, d.microseconds * 1000
        seg.bucket = row.bucket
        seg.key = row.key
        seg.version_id = row.version_id
        seg.size = row.size
        seg.sha256 = row.sha256
        d = row.retain_until - _EPOCH
        ts = seg.retain_until
        ts.seconds, ts.nanos = d.days * 86400 + d.seconds, d.microseconds * 1000
        seg.owner_unit_id = row.owner_unit_id
        seg.codec = row.codec
        seg.container = row.container
        ts = message.expire_time
        ts.seconds, ts.nanos = expire_s, expire_ns
        out.append(message.SerializeToString())
    return out


@dataclass
class Removal:
    """A removal's records, built before its transaction (pure Python, off the write lock): one audit
    record per device listing its versions, one SegmentExpired outbox row per version, in order."""

    rows: list[Expiring]
    outbox: list[tuple[Any, ...]]  # store.insert_outbox_rows' tuples
    done: list[tuple[str, Expiring]]  # (audit record id, row)


def prepare_removal(
    rows: Sequence[Expiring],
    payloads: Sequence[bytes],
    *,
    actor: Principal,
    now: datetime,
    created: Any,
    action: str = EXPIRE_ACTION,
    reason: str = "",
) -> Removal:
    """The records of removing `rows` (`created` is `now` as the driver takes it: store.driver_time)."""
    by_device: dict[str, list[tuple[Expiring, bytes]]] = {}
    for row, payload in zip(rows, payloads, strict=True):
        by_device.setdefault(row.device_id, []).append((row, payload))
    done: list[tuple[str, Expiring]] = []
    outbox: list[tuple[Any, ...]] = []
    ids = cloudevents.new_event_ids(len(rows))
    actor_pb = actor.to_proto()  # once, not per device
    for device_id, device_rows in by_device.items():
        record = audit.build_record(
            actor=actor_pb,
            action=action,
            source_service=SOURCE,
            decision=audit.ALLOWED,
            resources={"device_ids": [device_id], "segment_ids": [r.version_id for r, _ in device_rows]},
            footage=(
                min(r.start for r, _ in device_rows).replace(tzinfo=UTC),
                max(r.end for r, _ in device_rows).replace(tzinfo=UTC),
            ),
            reason=reason,
            rule_id="ARC-3",
            attributes={"segments": str(len(device_rows)), "bucket": device_rows[0][0].bucket},
            now=now,
        )
        record_id = record.record_id
        # What audit.write_audit enqueues (key and event id = record id, subject = action).
        outbox.append(
            (
                record_id, topics.AUDIT_RECORDS, record_id, AUDIT_TYPE, EVENT_SOURCE, action,
                record.SerializeToString(), created,
            )
        )  # fmt: skip
        for row, payload in device_rows:
            outbox.append(
                (next(ids), topics.ARCHIVE_EVENTS, device_id, EXPIRED_TYPE, EVENT_SOURCE, device_id, payload, created)
            )  # fmt: skip
            done.append((record_id, row))
    return Removal(list(rows), outbox, done)


def apply_removal(
    conn: Connection,
    removal: Removal,
    payloads: Sequence[bytes],
    *,
    actor: Principal,
    now: datetime,
    action: str = EXPIRE_ACTION,
    reason: str = "",
) -> list[tuple[str, Expiring]]:
    """Drop the rows from the index and write the removal's records, in `conn`'s transaction; (audit
    record id, row) of each row removed here. Rows another sweep already dropped get no second event:
    when some are missing, the records are built again for the rows this transaction removed.

    Synchronous, so that the sweeper's transaction runs whole in one hand-off to the database's
    worker thread on SQLite (ArchiveBase.run_transaction) instead of a hand-off per statement."""
    if not removal.rows:
        return []
    gone = store.delete_segment_rows(conn, [r.row_id for r in removal.rows])
    if not gone:
        return []
    if len(gone) < len(removal.rows):
        present = {g[0] for g in gone}
        kept = [(r, p) for r, p in zip(removal.rows, payloads, strict=True) if r.row_id in present]
        removal = prepare_removal(
            [r for r, _ in kept],
            [p for _, p in kept],
            actor=actor,
            now=now,
            created=removal.outbox[0][-1],
            action=action,
            reason=reason,
        )
    store.mark_days_dirty_on(conn, sorted({(g[1], g[2]) for g in gone}), now)
    store.insert_outbox_rows(conn, removal.outbox)
    metrics.SEGMENTS_EXPIRED.inc(len(removal.done))
    return removal.done


async def remove_expired(
    s: AsyncSession,
    rows: Sequence[Expiring],
    *,
    actor: Principal,
    now: datetime,
    action: str = EXPIRE_ACTION,
    reason: str = "",
) -> list[tuple[str, Expiring]]:
    """Drop removed versions from the index, with their audit records and SegmentExpired events, in `s`.

    Rows another sweep already dropped are skipped (no second event). Returns (audit record id, row)
    for each row removed here. The caller wakes the relay after committing.
    """
    if not rows:
        return []
    payloads = expired_payloads(rows, now)
    removal = prepare_removal(
        rows, payloads, actor=actor, now=now, created=store.driver_time(s, now), action=action, reason=reason
    )
    return await s.run_sync(
        lambda sync: apply_removal(
            sync.connection(), removal, payloads, actor=actor, now=now, action=action, reason=reason
        )
    )


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
    """remove_expired for IndexedSegment rows (DeleteSegment's path): the same records and events."""
    by_id = {r.row_id: r for r in rows}
    done = await remove_expired(
        s, [Expiring.from_indexed(r) for r in rows], actor=actor, now=now, action=action, reason=reason
    )
    return [(record_id, by_id[row.row_id]) for record_id, row in done]


def wake(base: ArchiveBase) -> None:
    """Wake the outbox relay after a commit of rows remove_expired wrote."""
    if base.deps.notifier is not None:
        base.deps.notifier()


# --- the worker --------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What one sweep did."""

    scanned: int = 0
    expired: int = 0
    kept: int = 0
    failed: int = 0
    batches: int = 0
    commits: int = 0


class Sweeper:
    """Worker: a sweep at start and every `interval_s`; `run_once()` sweeps now (tests, benchmarks).

    `concurrency` multi-object deletes are in flight at once; one transaction commits up to
    `commit_rows` removed rows (the deletes completed since the last commit).
    """

    def __init__(
        self,
        base: ArchiveBase,
        *,
        deleter: Deleter,
        batch_size: int = 1000,
        interval_s: float = 60.0,
        concurrency: int = 4,
        commit_rows: int = 5000,
    ) -> None:
        if not 1 <= batch_size <= 1000:
            raise ValueError(f"batch_size must be 1..1000 (S3 DeleteObjects), got {batch_size}")
        if concurrency < 1 or commit_rows < 1:
            raise ValueError("concurrency and commit_rows must be positive")
        self.base = base
        self.deleter = deleter
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.concurrency = concurrency
        self.commit_rows = commit_rows
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()

    async def run_once(self) -> SweepReport:
        """One sweep over everything expired by now; sweeps never overlap within a process."""
        async with self._lock:
            report = SweepReport()
            try:
                await self._sweep(report)
            except BaseExceptionGroup as group:
                # The first real failure (a storage or database error), not the group around it.
                errors = [e for e in group.exceptions if not isinstance(e, asyncio.CancelledError)]
                raise (errors or list(group.exceptions))[0] from None
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

    async def _sweep(self, report: SweepReport) -> None:
        base = self.base
        now = base.clock()
        # Pages are read in read-only transactions (on SQLite a snapshot, not a turn at the write lock).
        async with base.read_sessions() as s:
            holds = await store.list_holds(s)  # the active ones
            parse = time_parser(s.get_bind().dialect.name)
        # Deletes in flight hold a slot until their rows are handed to the committer; the queue holds
        # at most a transaction's worth beyond that, so memory stays bounded when storage is fast.
        slots = asyncio.Semaphore(self.concurrency)
        done: asyncio.Queue[tuple[list[Expiring], list[bytes]] | None] = asyncio.Queue(
            maxsize=max(1, self.commit_rows // self.batch_size)
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._committer(done, now, report))
            deletes: list[asyncio.Task[None]] = []
            cursor: tuple[Any, int] | None = None
            while True:
                async with base.read_sessions() as s:
                    page = await store.expired_page(s, now, limit=self.batch_size, after=cursor)
                if not page:
                    break
                cursor = (page[-1][11], page[-1][0])
                report.scanned += len(page)
                expired = sweepable([Expiring.from_row(r, parse) for r in page], holds, now)
                report.kept += len(page) - len(expired)
                by_bucket: dict[str, list[Expiring]] = {}
                for row in expired:
                    by_bucket.setdefault(row.bucket, []).append(row)
                for bucket, batch in by_bucket.items():
                    await slots.acquire()
                    deletes.append(tg.create_task(self._delete(bucket, batch, now, slots, done, report)))
                    report.batches += 1
                deletes = [t for t in deletes if not t.done()]
            for task in deletes:
                await task
            await done.put(None)

    async def _delete(
        self,
        bucket: str,
        batch: list[Expiring],
        now: datetime,
        slots: asyncio.Semaphore,
        done: asyncio.Queue[tuple[list[Expiring], list[bytes]] | None],
        report: SweepReport,
    ) -> None:
        try:
            objects = [(r.key, r.version_id) for r in batch]
            request = asyncio.ensure_future(self.deleter(bucket, objects))
            await asyncio.sleep(0)  # let the request go out before the CPU work below
            # The batch's events are built while storage works; a version it refuses drops its payload.
            payloads = expired_payloads(batch, now)
            failed = await request
            refused = _refused(objects, failed)
            if refused:
                report.failed += len(refused)
                metrics.SWEEP_STORAGE_FAILURES.inc(len(refused))
                log.warning(
                    "storage refused to delete expired versions; they stay indexed for the next sweep",
                    extra={
                        "bucket": bucket,
                        "count": len(refused),
                        "first": [f"{k}@{v}:{c}" for k, v, c in failed[:10]],
                    },
                )
                kept = [
                    (r, p)
                    for r, p in zip(batch, payloads, strict=True)
                    if (r.key, r.version_id) not in refused
                ]
                batch, payloads = [r for r, _ in kept], [p for _, p in kept]
            if batch:
                await done.put((batch, payloads))
        finally:
            slots.release()

    async def _committer(
        self,
        done: asyncio.Queue[tuple[list[Expiring], list[bytes]] | None],
        now: datetime,
        report: SweepReport,
    ) -> None:
        """One transaction per group of completed deletes (up to commit_rows rows) until the end mark.

        A group's records are built while the previous group's transaction runs in the database's
        thread; transactions still run one at a time, in order.
        """
        async with self.base.sessions() as s:
            created = store.driver_time(s, now)
        previous: asyncio.Task[None] | None = None
        try:
            finished = False
            while not finished:
                item = await done.get()
                if item is None:
                    break
                rows, payloads = list(item[0]), list(item[1])
                while len(rows) < self.commit_rows and not done.empty():
                    more = done.get_nowait()
                    if more is None:
                        finished = True
                        break
                    rows.extend(more[0])
                    payloads.extend(more[1])
                removal = prepare_removal(
                    rows, payloads, actor=SYSTEM_ACTOR, now=now, created=created, reason=RETENTION_REASON
                )
                if previous is not None:
                    await previous
                previous = asyncio.create_task(self._transaction(removal, payloads, now, report))
            if previous is not None:
                await previous
                previous = None
        finally:
            if previous is not None and not previous.done():
                previous.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await previous

    async def _transaction(
        self, removal: Removal, payloads: list[bytes], now: datetime, report: SweepReport
    ) -> None:
        removed = await self.base.run_transaction(
            lambda conn: apply_removal(
                conn, removal, payloads, actor=SYSTEM_ACTOR, now=now, reason=RETENTION_REASON
            )
        )
        wake(self.base)
        report.expired += len(removed)
        report.commits += 1

    async def run(self) -> None:
        self._stop.clear()
        while not self._stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    def stop(self) -> None:
        self._stop.set()
