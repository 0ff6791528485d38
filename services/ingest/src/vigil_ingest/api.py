"""The IngestService servicer: a signed segment stream → checks → object under lock → record, event, audit.

UploadSegment follows the order of checks in `domain/upload.py` (and the proto): header → device
known and ACTIVE → caller acts for the device's owner unit → signature (replays included) →
replay decision → backpressure → chunks (size, container, hash, parts) → store → one transaction
holding the upload record, SegmentIngested (outbox) and the audit record. A refusal or a client
that goes away before the last byte leaves nothing behind: a single PUT happens only after every
byte arrived and was checked, and a multipart upload is aborted. Once every byte has arrived and
checked out, storing and recording run shielded from cancellation, so a client that disconnects
at that moment finds its segment stored when it retries (as a replay), never half-stored.

Refusals are audited (decision denied, rule id = the error's rule or its status name) in their own
transaction. Not audited: load shedding (RESOURCE_EXHAUSTED), a registry that cannot be reached
(UNAVAILABLE) and client cancellations — none of them is a decision about the upload.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil_ingest import codec, metrics, store
from vigil_ingest.devices import DeviceDirectory
from vigil_ingest.domain import signing
from vigil_ingest.domain.signing import SegmentHeader
from vigil_ingest.domain.upload import (
    Received,
    Replay,
    UploadHeader,
    UploadLimits,
    UploadSession,
    decide_replay,
    object_key,
    object_metadata,
    retain_until,
)
from vigil_ingest.events import ACTION_ALARM, ACTION_UPLOAD, Publisher, segment_ingested
from vigil_ingest.storage import MultipartUpload, ObjectStore
from vigil_ingest.store import DeviceFacts, UploadRecord
from vigil_kit import audit, cloudevents, db, outbox
from vigil_kit.auth import Principal, current_principal
from vigil_kit.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
    VigilError,
)
from vigil_kit.groupcommit import GroupCommit

log = logging.getLogger(__name__)

SERVICE_NAME = "vigil.ingest.v1.IngestService"
ADMIN = "ROLE_PLATFORM_ADMIN"
MAX_DESCRIPTION = 1024
_DEVICE_ID = re.compile(r"[0-9]{20}")
# Refusals that are not decisions about the upload, so they are not audited (module docstring).
_NOT_AUDITED = (ResourceExhausted, Unavailable)
# Uploads whose look-ups share one read transaction, and whose records share one commit, at most.
GROUP_MAX = 64
# The outbox relay is woken at most this often after group commits, so that the commits meanwhile go out
# in one relay round: a round (read, publish, delete) per group commit cost more than publishing its rows.
# The events are committed either way; this only bounds how much later they reach the broker.
RELAY_WAKE_S = 0.02

Clock = Callable[[], datetime]
T = TypeVar("T")


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --- who may upload ---------------------------------------------------------------------------------


def authorize(principal: Principal, device: DeviceFacts, *, field: str = "header.device_id") -> None:
    """Deny by default: the device's own unit (a camera or gateway token), a platform admin, or a service.

    The token says who sends; the device's signature is what proves the bytes (ARC-4), so a gateway
    of the owner unit may send for any of that unit's devices.
    """
    if principal.has_role(ADMIN) or principal.is_service:
        return
    if principal.unit and principal.unit == device.owner_unit_id:
        return
    raise PermissionDenied(
        f"ACC-2: {principal.name or principal.id} (unit {principal.unit or 'none'}) may not send for device "
        f"{device.device_id}, which belongs to unit {device.owner_unit_id}",
        rule="ACC-2",
        field=field,
    )


def require_active(
    device_id: str, device: DeviceFacts | None, *, field: str = "header.device_id"
) -> DeviceFacts:
    if device is None:
        raise FailedPrecondition(
            f"device {device_id} is not registered: register and activate it in the registry first",
            field=field,
        )
    if not device.active:
        state = device.state.removeprefix("DEVICE_STATE_")
        raise FailedPrecondition(
            f"device {device_id} is {state}, not ACTIVE: only active devices may send footage", field=field
        )
    return device


# --- backpressure -----------------------------------------------------------------------------------


@dataclass
class Ticket:
    device_id: str
    sequence: int
    nbytes: int


class Admission:
    """Per-device concurrent uploads, one upload per (device, sequence) at a time, and a byte budget.

    The byte budget counts what each upload may buffer (its whole size for a single PUT, a part
    plus a chunk for a multipart upload), so it bounds the process's memory, not the traffic. One
    upload larger than the whole budget is still admitted when nothing else is in flight, so a
    legal segment can never be refused forever.
    """

    def __init__(self, *, per_device: int, max_bytes: int, retry_after_s: float) -> None:
        self.per_device = per_device
        self.max_bytes = max_bytes
        self.retry_after_s = retry_after_s
        self.bytes = 0
        self._by_device: dict[str, int] = {}
        self._sequences: set[tuple[str, int]] = set()

    def acquire(self, device_id: str, sequence: int, nbytes: int) -> Ticket:
        if (device_id, sequence) in self._sequences:
            raise Aborted(
                f"sequence {sequence} of device {device_id} is being uploaded by another call; retry it "
                "once that one ends (a retry of a stored segment is answered as a replay)",
                field="header.sequence",
            )
        active = self._by_device.get(device_id, 0)
        if active >= self.per_device:
            raise ResourceExhausted(
                f"device {device_id} already has {active} uploads in progress (limit {self.per_device})",
                retry_after_s=self.retry_after_s,
                field="header.device_id",
            )
        if self.bytes and self.bytes + nbytes > self.max_bytes:
            raise ResourceExhausted(
                f"ingest is at its limit of {self.max_bytes} bytes in flight; retry shortly",
                retry_after_s=self.retry_after_s,
            )
        self._by_device[device_id] = active + 1
        self._sequences.add((device_id, sequence))
        self.bytes += nbytes
        metrics.IN_FLIGHT_BYTES.set(self.bytes)
        metrics.IN_FLIGHT_UPLOADS.inc()
        return Ticket(device_id, sequence, nbytes)

    def release(self, ticket: Ticket) -> None:
        left = self._by_device.get(ticket.device_id, 1) - 1
        if left:
            self._by_device[ticket.device_id] = left
        else:
            self._by_device.pop(ticket.device_id, None)
        self._sequences.discard((ticket.device_id, ticket.sequence))
        self.bytes -= ticket.nbytes
        metrics.IN_FLIGHT_BYTES.set(self.bytes)
        metrics.IN_FLIGHT_UPLOADS.dec()


# --- the servicer -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recording:
    """A stored object's upload record, SegmentIngested and audit record, waiting for their commit."""

    principal: Principal
    upload: UploadHeader
    device: DeviceFacts
    record: UploadRecord


class IngestServicer:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        devices: DeviceDirectory,
        objects: ObjectStore,
        publisher: Publisher,
        limits: UploadLimits,
        admission: Admission,
        min_lock: timedelta = timedelta(hours=1),
        max_snapshot_bytes: int = 4 * 1024 * 1024,
        clock: Clock = _utc_now,
        transactions: db.ThreadedTransactions | None = None,
    ) -> None:
        self.sessions = sessions
        self._engine = sessions.kw["bind"]
        self.transactions = transactions
        self._wake_relay = outbox.CoalescedWake(publisher.notify, RELAY_WAKE_S)
        self.devices = devices
        self.objects = objects
        self.publisher = publisher
        self.limits = limits
        self.admission = admission
        self.min_lock = min_lock
        self.max_snapshot_bytes = max_snapshot_bytes
        self.clock = clock
        # SQLite (the default database) takes its one write lock for every transaction, reads
        # included, and a connection that finds it taken sleeps in SQLite's busy handler (1, 2, 5 …
        # 100 ms): with many uploads at once those sleeps, not the work, set the pace. Taking turns
        # on an asyncio lock first hands the database from one upload to the next without them.
        self._db = asyncio.Lock()
        # Group commit (vigil_kit.groupcommit): the uploads that queue behind a transaction share the
        # next one — their look-ups one read, their records one commit — instead of a transaction each:
        # per upload, the database's hand-offs, lock turns and commit were most of ingest's own work.
        self._lookups: GroupCommit[tuple[str, int], tuple[DeviceFacts | None, UploadRecord | None]] = (
            GroupCommit(self._lookup_batch, GROUP_MAX, name="ingest-lookups")
        )
        self._recordings: GroupCommit[_Recording, BaseException | None] = GroupCommit(
            self._record_batch, GROUP_MAX, name="ingest-group-commit"
        )

    # --- UploadSegment ---------------------------------------------------------------------------

    async def UploadSegment(
        self, request_iterator: AsyncIterator[pb.UploadSegmentRequest], context: Any
    ) -> pb.UploadSegmentResponse:
        principal = current_principal()
        started = time.monotonic()
        upload: UploadHeader | None = None
        try:
            response = await self._upload(principal, request_iterator.__aiter__())
        except asyncio.CancelledError:
            metrics.UPLOADS.labels(outcome="cancelled").inc()
            raise
        except VigilError as err:
            upload = getattr(err, "_ingest_upload", None)
            metrics.UPLOADS.labels(outcome=err.code.name).inc()
            metrics.UPLOAD_SECONDS.labels(outcome="refused").observe(time.monotonic() - started)
            if not isinstance(err, _NOT_AUDITED):
                await self._audit_refusal(principal, err, upload)
            log.info(
                "upload refused",
                extra={
                    "device_id": upload.device_id if upload else "",
                    "code": err.code.name,
                    "rule": err.rule or "",
                    "error": err.message,
                },
            )
            raise
        outcome = "replayed" if response.replayed else "stored"
        metrics.UPLOADS.labels(outcome=outcome).inc()
        metrics.UPLOAD_SECONDS.labels(outcome=outcome).observe(time.monotonic() - started)
        if not response.replayed:
            metrics.UPLOADED_BYTES.inc(response.segment.size)
        return response

    async def _upload(
        self, principal: Principal, messages: AsyncIterator[pb.UploadSegmentRequest]
    ) -> pb.UploadSegmentResponse:
        session = UploadSession(limits=self.limits)
        first = await anext(messages, None)
        if first is None or first.WhichOneof("message") != "header":
            session.finish()  # raises: the header is missing
        upload = codec.upload_header(first.header)
        try:
            now = self.clock()
            session.header(upload, now=now)
            # The cached device facts and any stored upload of this sequence in one read; the
            # device directory (which may ask the registry) only when the cache cannot say yes.
            cached, stored = await self._lookups.submit((upload.device_id, upload.sequence))
            if cached is not None and cached.active:
                metrics.DEVICE_LOOKUPS.labels(source="cache").inc()
                device = cached
            else:
                device = require_active(upload.device_id, await self.devices.lookup(upload.device_id))
            authorize(principal, device)
            signing.verify(device.public_key, upload.segment, upload.signature)
            if decide_replay(upload.segment, stored.sha256 if stored else None) is Replay.REPLAY:
                assert stored is not None
                return pb.UploadSegmentResponse(segment=codec.stored_segment(stored), replayed=True)
            until = retain_until(upload.segment, device.retention_days, now=now, min_remaining=self.min_lock)
            assert session.plan is not None
            reserve = min(upload.size, session.plan.buffer_bytes) + self.limits.max_chunk_bytes
            ticket = self.admission.acquire(upload.device_id, upload.sequence, reserve)
            try:
                return await self._receive_and_store(principal, session, upload, device, messages, until)
            finally:
                self.admission.release(ticket)
        except VigilError as err:
            err._ingest_upload = upload  # type: ignore[attr-defined]  # for the refusal's audit record
            raise

    async def _receive_and_store(
        self,
        principal: Principal,
        session: UploadSession,
        upload: UploadHeader,
        device: DeviceFacts,
        messages: AsyncIterator[pb.UploadSegmentRequest],
        until: datetime,
    ) -> pb.UploadSegmentResponse:
        assert upload.container is not None
        key = object_key(upload.segment, upload.container)
        metadata = object_metadata(upload)
        multipart: MultipartUpload | None = None

        async def start_multipart() -> MultipartUpload:
            return await self.objects.start_multipart(
                key, retain_until=until, content_type=upload.container.content_type, metadata=metadata
            )

        handed_off = False
        try:
            async for message in messages:
                kind = message.WhichOneof("message")
                if kind == "chunk":
                    for part in session.chunk(message.chunk):
                        multipart = multipart or await start_multipart()
                        await self.objects.put_part(multipart, part)
                elif kind == "header":
                    session.header(upload, now=self.clock())  # raises: a repeated header
                else:
                    raise InvalidArgument("an upload message must hold a header or a chunk", field="message")
            received = session.finish()
            if received.multipart:
                multipart = multipart or await start_multipart()
            # Every byte arrived and checked out: store and record even if the client goes away now
            # (_store aborts the multipart upload itself if storing fails).
            handed_off = True
            return await asyncio.shield(
                self._store(principal, upload, device, received, key, metadata, until, multipart)
            )
        except BaseException:
            if multipart is not None and not handed_off:
                await self.objects.abort_multipart(multipart)
            raise

    async def _store(
        self,
        principal: Principal,
        upload: UploadHeader,
        device: DeviceFacts,
        received: Received,
        key: str,
        metadata: dict[str, str],
        until: datetime,
        multipart: MultipartUpload | None,
    ) -> pb.UploadSegmentResponse:
        assert upload.container is not None
        if multipart is None:
            (whole,) = received.parts
            obj = await self.objects.put(
                key,
                whole.data,
                sha256_b64=received.sha256_b64,
                retain_until=until,
                content_type=upload.container.content_type,
                metadata=metadata,
            )
        else:
            try:
                for part in received.parts:
                    await self.objects.put_part(multipart, part)
                obj = await self.objects.complete_multipart(multipart)
            except BaseException:
                await self.objects.abort_multipart(multipart)
                raise
        segment = upload.segment
        record = UploadRecord(
            device_id=segment.device_id,
            sequence=segment.sequence,
            sha256=received.sha256,
            size=received.size,
            bucket=obj.bucket,
            object_key=obj.key,
            version_id=obj.version_id,
            start_ns=segment.start_ns,
            duration_ns=segment.duration_ns,
            container=upload.container.value,
            codec=upload.codec,
            retain_until=until,
            retention_days=device.retention_days,
            ingest_time=self.clock(),
            event_id=cloudevents.new_event_id(),
        )
        failure = await self._recordings.submit(_Recording(principal, upload, device, record))
        if isinstance(failure, IntegrityError):
            # Another ingest process stored this (device, sequence) first. Its record wins; the
            # object just written stays (it is locked) and the archive's reconciliation sees it.
            log.warning(
                "sequence stored concurrently by another process",
                extra={
                    "device_id": segment.device_id,
                    "sequence": segment.sequence,
                    "version_id": obj.version_id,
                },
            )
            async with self._db, self.sessions() as s:
                first = await store.get_upload(s, segment.device_id, segment.sequence)
            assert first is not None
            decide_replay(segment, first.sha256)
            return pb.UploadSegmentResponse(segment=codec.stored_segment(first), replayed=True)
        if failure is not None:
            raise failure
        return pb.UploadSegmentResponse(segment=codec.stored_segment(record), replayed=False)

    async def _lookup_batch(
        self, keys: Sequence[tuple[str, int]]
    ) -> list[tuple[DeviceFacts | None, UploadRecord | None]]:
        """Each upload's cached device facts and stored record of its sequence, in one read."""
        async with self._db:
            devices, stored = await self._transaction(lambda conn: store.lookup(conn, keys))
        return [(devices.get(device_id), stored.get((device_id, seq))) for device_id, seq in keys]

    async def _transaction(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` in one transaction, committed when this returns.

        On a SQLite file the whole transaction runs in one hand-off to the kit's transaction thread
        (vigil_kit.db.ThreadedTransactions): the async driver's thread round trip per statement, cursor
        and commit, and the ORM's unit of work, had been most of ingest's own CPU per segment. Elsewhere
        (PostgreSQL, in-memory SQLite) the same synchronous work runs on the async engine's connection.
        """
        if self.transactions is not None:
            return await self.transactions.run(work)
        async with self._engine.begin() as conn:
            return await conn.run_sync(work)

    async def _record_batch(self, batch: Sequence[_Recording]) -> list[BaseException | None]:
        """The records of uploads stored meanwhile, in one transaction: each upload's row, its
        SegmentIngested and its audit record. An upload whose row conflicts (another process stored
        its sequence first) must not fail the others: then each is recorded alone, and the conflict
        goes back to its own caller as the IntegrityError it met."""
        try:
            # The rows are built before the transaction (protobuf encoding needs no lock); then the
            # upload rows and the outbox rows go in as one executemany each, and commit together.
            records = [r.record for r in batch]
            rows = [row for r in batch for row in self._outbox_rows(r)]
            async with self._db:
                await self._transaction(lambda conn: store.record_uploads(conn, records, rows))
            self._wake_relay()
            return [None] * len(batch)
        except IntegrityError as e:
            if len(batch) == 1:
                return [e]
        except Exception:
            if len(batch) == 1:
                raise
            log.exception("a group of upload records failed; recording them one by one")
        out: list[BaseException | None] = []
        for one in batch:
            try:
                out += await self._record_batch([one])
            except Exception as e:  # this upload's own failure: its caller hears it (INTERNAL)
                out.append(e)
        return out

    def _outbox_rows(self, r: _Recording) -> tuple[dict[str, Any], dict[str, Any]]:
        """The upload's SegmentIngested and its audit record (AUD-1), as outbox rows."""
        record, upload, segment = r.record, r.upload, r.upload.segment
        uploader = r.principal.to_proto()
        event = self.publisher.segment_ingested_row(
            segment_ingested(record, upload, owner_unit_id=r.device.owner_unit_id, uploader=uploader),
            event_id=record.event_id,
        )
        audit_record = audit.build_record(
            actor=uploader,
            action=ACTION_UPLOAD,
            source_service=self.publisher.source,
            decision=audit.ALLOWED,
            resources={"device_ids": [segment.device_id], "segment_ids": [record.version_id]},
            footage=(segment.start, segment.end),
            attributes=_upload_attributes(upload, key=record.object_key, version_id=record.version_id),
            now=record.ingest_time,
        )
        return event, self.publisher.audit_row(audit_record)

    async def _audit_refusal(
        self, principal: Principal, err: VigilError, upload: UploadHeader | None
    ) -> None:
        resources = {"device_ids": [upload.device_id]} if upload else {}
        footage = (upload.segment.start, upload.segment.end) if upload else None
        attributes = _upload_attributes(upload) if upload else {}
        if err.field:
            attributes["field"] = err.field
        try:
            async with self._db, self.sessions.begin() as s:
                self.publisher.audit(
                    s,
                    actor=principal,
                    action=ACTION_UPLOAD,
                    decision=audit.DENIED,
                    resources=resources,
                    reason=err.message[:500],
                    footage=footage,
                    rule_id=err.rule or err.code.name,
                    attributes=attributes,
                    now=self.clock(),
                )
        except Exception:
            # The refusal stands either way; losing its record is logged, not turned into INTERNAL.
            log.error("could not record a refused upload", exc_info=True)

    # --- ReportAlarm -----------------------------------------------------------------------------

    async def ReportAlarm(self, request: pb.ReportAlarmRequest, context: Any) -> pb.ReportAlarmResponse:
        principal = current_principal()
        try:
            response = await self._alarm(principal, request)
        except VigilError as err:
            metrics.ALARMS.labels(outcome=err.code.name).inc()
            if not isinstance(err, _NOT_AUDITED):
                async with self.sessions.begin() as s:
                    self.publisher.audit(
                        s,
                        actor=principal,
                        action=ACTION_ALARM,
                        decision=audit.DENIED,
                        resources={"device_ids": [request.device_id]} if request.device_id else {},
                        reason=err.message[:500],
                        rule_id=err.rule or err.code.name,
                        attributes={"kind": pb.AlarmKind.Name(request.kind)}
                        if request.kind in pb.AlarmKind.values()
                        else {},
                        now=self.clock(),
                    )
            raise
        metrics.ALARMS.labels(outcome="raised").inc()
        return response

    async def _alarm(self, principal: Principal, request: pb.ReportAlarmRequest) -> pb.ReportAlarmResponse:
        now = self.clock()
        if not _DEVICE_ID.fullmatch(request.device_id):
            raise InvalidArgument(
                f"device_id must be 20 digits (GB/T 28181), got {request.device_id!r}", field="device_id"
            )
        if request.kind == pb.ALARM_KIND_UNSPECIFIED or request.kind not in pb.AlarmKind.values():
            raise InvalidArgument(
                "kind is required: motion, tamper, video loss or storage full", field="kind"
            )
        if not request.HasField("alarm_time"):
            raise InvalidArgument("alarm_time is required", field="alarm_time")
        alarm_time = codec.from_ts(request.alarm_time)
        if alarm_time > now + self.limits.max_clock_skew:
            raise InvalidArgument(
                "alarm_time lies in the future: check the device's clock", field="alarm_time"
            )
        if len(request.description) > MAX_DESCRIPTION:
            raise InvalidArgument(f"description is at most {MAX_DESCRIPTION} characters", field="description")
        snapshot = bytes(request.snapshot_jpeg)
        if snapshot:
            if len(snapshot) > self.max_snapshot_bytes:
                raise InvalidArgument(
                    f"snapshot_jpeg is {len(snapshot)} bytes; at most {self.max_snapshot_bytes}",
                    field="snapshot_jpeg",
                )
            if not (snapshot[:3] == b"\xff\xd8\xff" and snapshot[-2:] == b"\xff\xd9"):
                raise InvalidArgument(
                    "snapshot_jpeg is not a JPEG (FF D8 FF ... FF D9)", field="snapshot_jpeg"
                )
        device = require_active(
            request.device_id, await self.devices.lookup(request.device_id), field="device_id"
        )
        authorize(principal, device, field="device_id")
        alarm_id = cloudevents.new_event_id()
        alarm = pb.Alarm(
            alarm_id=alarm_id,
            device_id=request.device_id,
            kind=request.kind,
            alarm_time=request.alarm_time,
            description=request.description,
            owner_unit_id=device.owner_unit_id,
            site_id=device.site_id,
            division_code=device.division_code,
            receive_time=codec.ts(now),
        )
        if snapshot:
            sha = hashlib.sha256(snapshot).hexdigest()
            # Kept as long as the device's footage: a snapshot is footage too (ARC-1).
            anchor = SegmentHeader(
                device_id=request.device_id,
                sequence=0,
                start_ns=signing.datetime_to_ns(alarm_time, field="alarm_time"),
                duration_ns=1,
                sha256=sha,
            )
            until = retain_until(anchor, device.retention_days, now=now, min_remaining=self.min_lock)
            key = f"alarms/{request.device_id}/{alarm_time:%Y/%m/%d}/{alarm_id}.jpg"
            obj = await asyncio.shield(self.objects.put_snapshot(key, snapshot, retain_until=until))
            alarm.snapshot.CopyFrom(
                pb.ObjectRef(
                    bucket=obj.bucket, key=obj.key, version_id=obj.version_id, size=len(snapshot), sha256=sha
                )
            )
        async with self.sessions.begin() as s:
            self.publisher.alarm_raised(s, alarm, principal)
            self.publisher.audit(
                s,
                actor=principal,
                action=ACTION_ALARM,
                resources={"device_ids": [request.device_id]},
                attributes={"alarm_id": alarm_id, "kind": pb.AlarmKind.Name(request.kind)},
                now=now,
            )
        return pb.ReportAlarmResponse(alarm=alarm)


def _upload_attributes(upload: UploadHeader, **extra: str) -> dict[str, str]:
    attributes = {
        "sequence": str(upload.sequence),
        "sha256": upload.sha256,
        "size": str(upload.size),
        "container": upload.container.value if upload.container else "",
        "codec": upload.codec,
    }
    attributes.update({k: v for k, v in extra.items() if v})
    return attributes
