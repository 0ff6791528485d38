"""Retention and legal holds (ARC-2, ARC-3, ARC-6): DeleteSegment, PlaceHold, ReleaseHold, ListHolds, GetStorageStatus.

Storage first, then the index: a hold's S3 legal holds (and an important hold's longer retention)
are set before the hold is recorded, so a crash in between leaves footage kept longer, never less;
a release clears S3 legal holds no other active hold needs before the index forgets them. The
sweeper (vigil_archive.sweeper) and the object-lock check (vigil_archive.objectlock) run as this
part's workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.error import S3Error
from minio.retention import Retention
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.archive.v1 import events_pb2
from vigil_archive import access, codec, store
from vigil_archive.api import ArchiveBase, ArchiveUnavailable
from vigil_archive.domain import (
    active_holds_covering,
    important_retain_until,
    may_delete,
    new_hold,
    plan_extensions,
    release_hold,
)
from vigil_archive.objectlock import NOT_CHECKED, ObjectLockCheck
from vigil_archive.sweeper import Sweeper, minio_deleter, record_removal, wake
from vigil_kit import cloudevents
from vigil_kit.auth import current_principal
from vigil_kit.errors import FailedPrecondition, InvalidArgument, NotFound, VigilError
from vigil_kit.objectstore import SEGMENTS_BUCKET
from vigil_kit.paging import decode_token, encode_token, page_size

log = logging.getLogger(__name__)

T = TypeVar("T")


class Holds(ArchiveBase):
    """The servicer's retention part."""

    sweeper: Sweeper | None = None
    lock_check: ObjectLockCheck | None = None
    hold_concurrency: int = 8

    # --- hooks ---------------------------------------------------------------------------------------

    def workers(self, settings: Any, indexer: Any) -> list[tuple[str, Any]]:
        out = super().workers(settings, indexer)
        self.hold_concurrency = getattr(settings, "hold_storage_concurrency", self.hold_concurrency)
        client = self.deps.minio
        if client is None:
            return out
        self.lock_check = ObjectLockCheck(
            client,
            SEGMENTS_BUCKET,
            probe_retention=timedelta(seconds=settings.object_lock_probe_s),
            clean_interval_s=settings.object_lock_clean_interval_s,
        )
        self.sweeper = Sweeper(
            self,
            deleter=minio_deleter(client),
            batch_size=settings.sweep_batch_size,
            interval_s=settings.sweep_interval_s,
        )
        return [*out, ("object-lock-check", self.lock_check), ("expiry-sweeper", self.sweeper)]

    async def after_index(self, s: AsyncSession, row: store.IndexedSegment) -> None:
        """A segment indexed inside an active hold's range gets its S3 legal hold (and an important
        hold's longer retention) in the indexing transaction (ARC-6)."""
        await super().after_index(s, row)
        holds = await store.active_holds_covering(s, row.ref.device_id, row.ref.start, row.ref.end)
        if not holds:
            return
        client = self._client()
        bucket, key, version = row.ref.object_id
        until = important_retain_until(row.ref) if any(h.important for h in holds) else None
        if until is not None and until > row.ref.retain_until:
            await asyncio.to_thread(
                client.set_object_retention, bucket, key, Retention(COMPLIANCE, until), version_id=version
            )
            await store.extend_retention(s, [(row.row_id, until)])
        await asyncio.to_thread(client.enable_object_legal_hold, bucket, key, version_id=version)
        await store.set_legal_hold(s, [row.row_id], True)

    # --- DeleteSegment (ARC-2) -----------------------------------------------------------------------

    async def DeleteSegment(
        self, request: pb.DeleteSegmentRequest, context: object
    ) -> pb.DeleteSegmentResponse:
        p = current_principal()
        action = "archive.segment.delete"
        resources: dict[str, list[str]] = {"segment_ids": [request.version_id]}
        async with self.refusals_audited(p, action, resources):
            if not request.key:
                raise InvalidArgument("key is required", field="key")
            async with self.sessions() as s:
                row = await store.get_segment(s, request.key, request.version_id)
                if row is not None:
                    resources.update(device_ids=[row.ref.device_id], segment_ids=[row.ref.version_id])
                    holds = await store.active_holds_covering(
                        s, row.ref.device_id, row.ref.start, row.ref.end
                    )
            if row is None:
                raise NotFound(
                    f"no indexed segment {request.key}@{request.version_id or '(newest)'}", field="key"
                )
            access.require_deleter(p, row.owner_unit_id)
            now = self.clock()
            decision = may_delete(row.ref, holds, now)
            if decision.refusal is not None:
                r = decision.refusal
                raise FailedPrecondition(
                    r.message, rule="ARC-2", field="key", violations=r.violations, metadata=r.metadata
                )
            if row.legal_hold:
                # Fail closed: the archive's S3 legal hold is still on though no active hold names it.
                raise FailedPrecondition(
                    f"segment {row.ref.label()} still carries an S3 legal hold (ARC-2)",
                    rule="ARC-2",
                    field="key",
                )
            bucket, key, version = row.ref.object_id
            try:
                await asyncio.to_thread(self._client().remove_object, bucket, key, version_id=version)
            except S3Error as exc:
                if exc.code not in ("NoSuchKey", "NoSuchVersion"):
                    # Storage still locks it (its clock, or a lock the index does not know of): ARC-2.
                    raise FailedPrecondition(
                        f"storage refused to delete {row.ref.label()}: {exc.code} (ARC-2)",
                        rule="ARC-2",
                        field="key",
                    ) from None
            async with self.sessions.begin() as s:
                done = await record_removal(
                    self, s, [row], actor=p, now=now, action=action, reason=request.reason
                )
            wake(self)
        record_id = done[0][0] if done else ""
        return pb.DeleteSegmentResponse(segment=codec.segment_to_pb(row), audit_record_id=record_id)

    # --- holds (ARC-3, ARC-6) ------------------------------------------------------------------------

    async def PlaceHold(self, request: pb.PlaceHoldRequest, context: object) -> pb.Hold:
        p = current_principal()
        action = "archive.hold.place"
        resources = {"device_ids": list(request.device_ids)}
        async with self.refusals_audited(p, action, resources):
            access.require_hold_role(p)
            start, end = _hold_range(request)
            now = self.clock()
            hold = new_hold(
                hold_id=cloudevents.new_event_id(),
                device_ids=request.device_ids,
                start=start,
                end=end,
                case_reference=request.case_reference,
                reason=request.reason,
                placed_by=p.id,
                now=now,
                important=request.important,
            )
            async with self.sessions() as s:
                covered = await store.covered_segments(
                    s, hold.device_ids, hold.start, hold.end, max_segment=self.deps.max_segment
                )
            extensions = plan_extensions([r.ref for r in covered], [hold], now)
            by_object = {r.ref.object_id: r for r in covered}
            client = self._client()
            # Storage first: a longer retention, then the legal hold, on every covered version.
            await self._each(
                extensions,
                lambda e: asyncio.to_thread(
                    client.set_object_retention,
                    e.segment.bucket,
                    e.segment.key,
                    Retention(COMPLIANCE, e.retain_until),
                    version_id=e.segment.version_id,
                ),
            )
            await self._each(
                [r for r in covered if not r.legal_hold],
                lambda r: asyncio.to_thread(
                    client.enable_object_legal_hold, r.ref.bucket, r.ref.key, version_id=r.ref.version_id
                ),
            )
            async with self.sessions.begin() as s:
                await store.insert_hold(s, hold, len(covered))
                await store.set_legal_hold(s, [r.row_id for r in covered], True)
                await store.extend_retention(
                    s, [(by_object[e.segment.object_id].row_id, e.retain_until) for e in extensions]
                )
                message = codec.hold_to_pb(hold, len(covered))
                self.audit(
                    s,
                    p,
                    action,
                    resources={"device_ids": sorted(hold.device_ids), "hold_ids": [hold.hold_id]},
                    footage=(hold.start, hold.end),
                    reason=hold.reason,
                    attributes={
                        "case_reference": hold.case_reference,
                        "important": str(hold.important).lower(),
                        "covered_segments": str(len(covered)),
                        "extended_segments": str(len(extensions)),
                    },
                )
                self.event(s, hold.hold_id, events_pb2.HoldPlaced(hold=message))
        return message

    async def ReleaseHold(self, request: pb.ReleaseHoldRequest, context: object) -> pb.Hold:
        p = current_principal()
        action = "archive.hold.release"
        resources = {"hold_ids": [request.hold_id]}
        async with self.refusals_audited(p, action, resources):
            access.require_hold_role(p)
            if not request.hold_id:
                raise InvalidArgument("hold_id is required", field="hold_id")
            async with self.sessions() as s:
                hold = await store.get_hold(s, request.hold_id)
                if hold is None:
                    raise NotFound(f"no hold {request.hold_id}", field="hold_id")
                now = self.clock()
                released = release_hold(hold, released_by=p.id, now=now)
                covered = await store.covered_segments(
                    s, hold.device_ids, hold.start, hold.end, max_segment=self.deps.max_segment
                )
                others = [
                    h for h in await store.list_holds(s) if h.hold_id != hold.hold_id and h.active_at(now)
                ]
                count = await store.covered_count(s, hold.hold_id)
            # Never shortens an extension (object lock cannot, and ARC-6 does not ask it): only the
            # legal holds that no other active hold needs are cleared.
            freed = [r for r in covered if r.legal_hold and not active_holds_covering(r.ref, others, now)]
            client = self._client()
            await self._each(
                freed,
                lambda r: asyncio.to_thread(
                    client.disable_object_legal_hold, r.ref.bucket, r.ref.key, version_id=r.ref.version_id
                ),
                missing_ok=True,
            )
            async with self.sessions.begin() as s:
                await store.release_hold(s, released)
                await store.set_legal_hold(s, [r.row_id for r in freed], False)
                message = codec.hold_to_pb(released, count)
                self.audit(
                    s,
                    p,
                    action,
                    resources={"device_ids": sorted(hold.device_ids), "hold_ids": [hold.hold_id]},
                    footage=(hold.start, hold.end),
                    reason=request.reason,
                    attributes={"case_reference": hold.case_reference, "released_segments": str(len(freed))},
                )
                self.event(s, hold.hold_id, events_pb2.HoldReleased(hold=message))
        return message

    async def ListHolds(self, request: pb.ListHoldsRequest, context: object) -> pb.ListHoldsResponse:
        p = current_principal()
        action = "archive.holds.list"
        resources = {"device_ids": [request.device_id]}
        async with self.refusals_audited(p, action, resources):
            access.require_hold_reader(p)
            limit = page_size(request.page_size)
            query = f"{request.device_id}|{int(request.include_released)}"
            after = ""
            if request.page_token:
                try:
                    bound, after = decode_token(request.page_token).rsplit("|", 1)
                    if bound != query or not after:
                        raise ValueError("token was issued for another query")
                except (ValueError, VigilError) as exc:
                    raise InvalidArgument(
                        f"page_token does not continue this query: {exc}", field="page_token"
                    ) from None
            async with self.sessions.begin() as s:
                holds = await store.list_holds(
                    s,
                    device_id=request.device_id,
                    include_released=request.include_released,
                    limit=limit + 1,
                    after=after,
                )
                counts = await store.hold_covered_counts(s, [h.hold_id for h in holds[:limit]])
                self.audit(s, p, action, resources=resources, attributes={"page_size": str(limit)})
        more = len(holds) > limit
        holds = holds[:limit]
        token = encode_token(f"{query}|{holds[-1].hold_id}") if more else ""
        return pb.ListHoldsResponse(
            holds=[codec.hold_to_pb(h, counts.get(h.hold_id, 0)) for h in holds], next_page_token=token
        )

    # --- storage status (ARC-2) ----------------------------------------------------------------------

    async def GetStorageStatus(
        self, request: pb.GetStorageStatusRequest, context: object
    ) -> pb.StorageStatus:
        p = current_principal()
        status = self.lock_check.status if self.lock_check is not None else NOT_CHECKED
        async with self.sessions.begin() as s:
            self.audit(
                s,
                p,
                "archive.storage.status",
                resources={},
                attributes={"object_lock_enforced": str(status.enforced).lower()},
            )
        msg = pb.StorageStatus(object_lock_enforced=status.enforced, detail=status.detail)
        if status.checked_at is not None:
            msg.checked_at.CopyFrom(codec.ts(status.checked_at))
        return msg

    # --- helpers -------------------------------------------------------------------------------------

    def _client(self) -> Minio:
        if self.deps.minio is None:
            raise ArchiveUnavailable("object storage is not configured")
        return self.deps.minio

    async def _each(
        self,
        items: Sequence[T] | Iterable[T],
        call: Callable[[T], Awaitable[Any]],
        *,
        missing_ok: bool = False,
    ) -> None:
        """Run a storage call per item, a few at a time; any failure fails the whole request."""
        limit = asyncio.Semaphore(self.hold_concurrency)

        async def one(item: T) -> None:
            async with limit:
                try:
                    await call(item)
                except S3Error as exc:
                    if missing_ok and exc.code in ("NoSuchKey", "NoSuchVersion"):
                        return
                    raise ArchiveUnavailable(f"object storage refused a hold operation: {exc.code}") from exc

        await asyncio.gather(*(one(i) for i in items))


def _hold_range(request: pb.PlaceHoldRequest) -> tuple[datetime, datetime]:
    """A hold needs both ends of its range (a hold without an end would keep footage forever)."""
    r = request.range
    if not request.HasField("range") or not r.HasField("start_time") or not r.HasField("end_time"):
        raise InvalidArgument("a hold needs range.start_time and range.end_time", field="range")
    codec.check_bounds(r)
    return codec.from_ts(r.start_time), codec.from_ts(r.end_time)


__all__ = ["Holds"]
