"""vigil.archive.v1.ArchiveService: the servicer (thin transport over the store and the pure domain).

The servicer is one class assembled from parts: this module holds the shared plumbing (audit-first
refusals, read authorization through roles, ownership or a sharing grant) and the index reads
(FindSegments, GetCoverage); vigil_archive.holds adds retention and holds (ARC-2, ARC-3, ARC-6),
vigil_archive.integrity adds verification and proofs (ARC-4).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from minio import Minio
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.audit.v1 import audit_record_pb2
from vigil.common.v1 import time_range_pb2
from vigil.sharing.v1 import sharing_service_pb2 as sharing_pb
from vigil_archive import access, codec, metrics, store
from vigil_archive.domain import CoverageScan
from vigil_kit import audit, db, outbox, topics
from vigil_kit.auth import Principal, current_principal
from vigil_kit.errors import InvalidArgument, Unavailable, VigilError
from vigil_kit.groupcommit import GroupCommit
from vigil_kit.migrations import outbox_table
from vigil_kit.paging import decode_token, encode_token, page_size

log = logging.getLogger(__name__)

SERVICE_NAME = "vigil.archive.v1.ArchiveService"
OWNER_TTL_S = 30.0
OWNER_CACHE_MAX = 100_000
SOURCE = "archive"
# Audited reads (FindSegments pages, manifests) committed together at most (see GroupCommit).
READ_BATCH_MAX = 64
# The relay is woken at most this often after audited reads commit: one relay round then publishes many
# pages' records instead of a round (its own read, publish and delete transactions) per page. The record
# is committed before the answer either way (ACC-1).
RELAY_WAKE_S = 0.05

_OUTBOX_INSERT = outbox_table.insert()

Clock = Callable[[], datetime]
# Asks sharing whether `principal` may take an action (default ACTION_PLAYBACK) on the device's footage in
# the window: its decision, None when no sharing is configured; raises Unavailable when it cannot be asked.
GrantCheck = Callable[..., Awaitable[sharing_pb.AuthorizeResponse | None]]

T = TypeVar("T")


class HoldSpan(Protocol):
    """What FindSegments needs of a hold to name it on the segments it covers."""

    hold_id: str
    start: datetime
    end: datetime


@dataclass
class ArchiveDeps:
    """What every part of the servicer works with."""

    sessions: async_sessionmaker[AsyncSession]
    minio: Minio | None
    clock: Clock
    notifier: Callable[[], None] | None = None
    grant_check: GrantCheck | None = None
    max_segment: timedelta = store.MAX_SEGMENT
    # Coverage reports at most this many gaps (gap_count still counts them all).
    max_gaps: int = 10_000
    extra: dict[str, object] = field(default_factory=dict)
    # SQLite file databases: audited reads run whole in one worker-thread hand-off (None: async engine).
    transactions: db.ThreadedTransactions | None = None


@dataclass
class PageQuery:
    """One keyset page of a device's index to read inside an audited read's transaction."""

    device_id: str
    start: datetime
    end: datetime
    limit: int
    after: tuple[datetime, int] | None = None
    # Also read the active holds overlapping [start, end) (FindSegments names them per segment).
    holds: bool = False


@dataclass
class AuditedRead:
    """A read whose audit record commits in the same transaction as the read, before any answer (ACC-1)."""

    record: audit_record_pb2.AuditRecord
    query: PageQuery | None = None
    # When set, the record's attribute of this name is the number of rows read (set before the commit).
    count_attribute: str = ""


@dataclass
class ReadResult:
    """An audited read's rows (store.PAGE_COLUMNS, driver values) and hold spans (store.hold_spans)."""

    rows: list[Any] = field(default_factory=list)
    holds: list[Any] = field(default_factory=list)


class ArchiveBase:
    """Plumbing shared by the servicer's parts: audit records, events, refusals, read authorization."""

    def __init__(self, deps: ArchiveDeps) -> None:
        self.deps = deps
        self.sessions = deps.sessions
        # Reads that must not queue behind writers (SQLite: DEFERRED transactions on the WAL snapshot).
        self.read_sessions = db.read_session_factory(deps.sessions)
        self.clock = deps.clock
        # device → (owner unit, when looked up): a device's owner is read on every call and changes
        # rarely (a transfer shows in the next segment indexed), so it is kept for OWNER_TTL_S.
        self._owners: dict[str, tuple[str, float]] = {}
        self._engine = deps.sessions.kw["bind"]
        self._reads: GroupCommit[AuditedRead, ReadResult] = GroupCommit(
            self._commit_reads, READ_BATCH_MAX, name="archive-audited-reads"
        )
        # Reads come many a second: one relay round then publishes many pages' records (outbox.CoalescedWake).
        self._wake_relay = (
            outbox.CoalescedWake(deps.notifier, RELAY_WAKE_S) if deps.notifier is not None else (lambda: None)
        )

    # --- hooks the parts extend (each calls super()) -------------------------------------------------

    async def after_index(self, s: AsyncSession, row: store.IndexedSegment) -> None:
        """Called in the indexing transaction of each newly indexed segment."""

    def workers(self, settings: Any, indexer: Any) -> list[tuple[str, Any]]:
        """The background workers the parts run (name, worker with run()/stop())."""
        return []

    # --- audit and events --------------------------------------------------------------------------

    def audit_record(
        self,
        p: Principal,
        action: str,
        *,
        resources: Mapping[str, Iterable[str]],
        decision: str = audit.ALLOWED,
        **kw: object,
    ) -> audit_record_pb2.AuditRecord:
        """One audit record of this service (empty resource ids left out)."""
        return audit.build_record(
            actor=p,
            action=action,
            source_service=SOURCE,
            decision=decision,
            resources={k: [i for i in v if i] for k, v in resources.items()},
            now=self.clock(),
            **kw,  # type: ignore[arg-type]
        )

    def audit(
        self,
        s: AsyncSession,
        p: Principal,
        action: str,
        *,
        resources: Mapping[str, Iterable[str]],
        decision: str = audit.ALLOWED,
        **kw: object,
    ) -> str:
        """Write one audit record in the caller's transaction (the access is logged first, ACC-1)."""
        record = self.audit_record(p, action, resources=resources, decision=decision, **kw)
        return audit.write_audit(s, record, notifier=self.deps.notifier)

    async def audited_read(self, read: AuditedRead) -> ReadResult:
        """Run the read and commit its audit record in one transaction; returns once both are done (ACC-1).

        Concurrent reads share a transaction (GroupCommit); on a SQLite file it runs whole in one
        worker-thread hand-off (db.ThreadedTransactions) instead of a hand-off per statement.
        """
        return await self._reads.submit(read)

    async def _commit_reads(self, reads: Sequence[AuditedRead]) -> list[ReadResult]:
        max_segment = self.deps.max_segment

        def work(conn: Connection) -> list[ReadResult]:
            results = []
            for read in reads:
                q, result = read.query, ReadResult()
                if q is not None:
                    result.rows = store.page_rows(
                        conn,
                        q.device_id,
                        q.start,
                        q.end,
                        limit=q.limit,
                        after=q.after,
                        max_segment=max_segment,
                    )
                    if q.holds and result.rows:
                        result.holds = store.hold_spans(conn, q.device_id, q.start, q.end)
                if read.count_attribute:
                    read.record.attributes[read.count_attribute] = str(len(result.rows))
                results.append(result)
            # The rows audit.write_audit would add (topic, key and event id = record id), in one statement.
            now = datetime.now(UTC)
            conn.execute(_OUTBOX_INSERT, [audit.audit_row(read.record, now) for read in reads])
            return results

        results = await self.run_transaction(work)
        self._wake_relay()
        return results

    async def run_transaction(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` in one write transaction, committed when this returns: on a SQLite file in
        one worker-thread hand-off (db.ThreadedTransactions), else through the async engine's run_sync."""
        if self.deps.transactions is not None:
            return await self.deps.transactions.run(work)
        async with self._engine.begin() as conn:
            return await conn.run_sync(work)

    def event(self, s: AsyncSession, key: str, message: object) -> str:
        """Publish an archive event through the outbox, in the caller's transaction."""
        return outbox.enqueue(
            s,
            topic=topics.ARCHIVE_EVENTS,
            key=key,
            message=message,  # type: ignore[arg-type]
            source_service=SOURCE,
            subject=key,
            notifier=self.deps.notifier,
        )

    @contextlib.asynccontextmanager
    async def refusals_audited(
        self, p: Principal, action: str, resources: Mapping[str, Iterable[str]], **kw: object
    ) -> AsyncIterator[None]:
        """On a refusal: commit a DENIED audit record (rule id, code, field) in its own transaction, re-raise."""
        try:
            yield
        except VigilError as e:
            metrics.REFUSALS.labels(rule=e.rule or e.code.name).inc()
            attributes = {"code": e.code.name}
            if e.field:
                attributes["field"] = e.field
            async with self.sessions.begin() as s:
                self.audit(
                    s,
                    p,
                    action,
                    resources=resources,
                    decision=audit.DENIED,
                    rule_id=e.rule or "",
                    reason=e.message,
                    attributes=attributes,
                    **kw,
                )
            raise

    # --- read authorization ------------------------------------------------------------------------

    async def authorize_read(self, p: Principal, device_id: str, start: datetime, end: datetime) -> str:
        """Why `p` may read the device's index in [start, end): "role", "owner" or "grant:<id>".

        Roles and ownership are decided here; otherwise sharing's Authorize decides (a playback grant
        for that device and window), and without a sharing connection the answer is no (ACC-2).
        """
        if not device_id:
            raise InvalidArgument("device_id is required", field="device_id")
        # Roles first: they need no look-up of the device's owner.
        basis = access.read_basis(p, None) or access.read_basis(p, await self.owner_of(device_id))
        if basis is not None:
            return basis
        if self.deps.grant_check is not None:
            try:
                answer = await self.deps.grant_check(p, device_id, start, end)
            except Unavailable:
                answer = None  # deny by default: an unreachable sharing service grants nothing
            if answer is not None and answer.allowed:
                return f"grant:{answer.grant_id}"
        raise access.deny_read(p, device_id)

    async def owner_of(self, device_id: str) -> str | None:
        """The device's owner unit as the index knows it (None: nothing of it is indexed)."""
        cached = self._owners.get(device_id)
        if cached is not None and time.monotonic() - cached[1] < OWNER_TTL_S:
            return cached[0]
        async with self.read_sessions() as s:
            owner = await store.device_owner(s, device_id)
        if owner is not None:
            if len(self._owners) >= OWNER_CACHE_MAX:
                self._owners.clear()
            self._owners[device_id] = (owner, time.monotonic())
        return owner

    # --- shared request reading --------------------------------------------------------------------

    def read_range(
        self, msg: time_range_pb2.TimeRange, has_range: bool, *, default: timedelta = codec.DEFAULT_WINDOW
    ) -> tuple[datetime, datetime]:
        return codec.read_range(msg, has_range=has_range, now=self.clock(), default=default)


class IndexReads(ArchiveBase):
    """FindSegments and GetCoverage (ARC-5)."""

    async def FindSegments(self, request: pb.FindSegmentsRequest, context: object) -> pb.FindSegmentsResponse:
        p = current_principal()
        resources = {"device_ids": [request.device_id]}
        async with self.refusals_audited(p, "archive.segments.find", resources):
            start, end = self.read_range(request.range, request.HasField("range"))
            limit = page_size(request.page_size)
            after = _decode_cursor(request.page_token, request.device_id, start, end)
            basis = await self.authorize_read(p, request.device_id, start, end)
            record = self.audit_record(
                p,
                "archive.segments.find",
                resources=resources,
                footage=(start, end),
                grant_id=basis.removeprefix("grant:") if basis.startswith("grant:") else "",
                attributes={"basis": basis.split(":")[0], "page_size": str(limit)},
            )
            # The page is read in the transaction that commits its audit record: the answer leaves only
            # after the record is committed.
            page = await self.audited_read(
                AuditedRead(record, PageQuery(request.device_id, start, end, limit + 1, after, holds=True))
            )
        rows = page.rows
        more = len(rows) > limit
        if more:
            del rows[limit:]
        token = (
            _encode_cursor(request.device_id, start, end, codec.driver_datetime(rows[-1][3]), rows[-1][0])
            if more
            else ""
        )
        response = pb.FindSegmentsResponse(next_page_token=token)
        codec.add_segments(response.segments, rows, holds=page.holds)
        return response

    async def GetCoverage(self, request: pb.GetCoverageRequest, context: object) -> pb.Coverage:
        p = current_principal()
        resources = {"device_ids": [request.device_id]}
        async with self.refusals_audited(p, "archive.coverage.get", resources):
            if not request.device_id:
                raise InvalidArgument("device_id is required", field="device_id")
            now = self.clock()
            if request.HasField("range"):
                start, end = self.read_range(request.range, True)
            else:
                async with self.read_sessions() as s:
                    earliest = await store.earliest_start(s, request.device_id)
                start, end = (earliest or now - codec.DEFAULT_WINDOW), now
                if end <= start:
                    start = end - codec.DEFAULT_WINDOW
            basis = await self.authorize_read(p, request.device_id, start, end)
            scan = CoverageScan(request.device_id, start, end, max_gaps=self.deps.max_gaps)
            async with self.read_sessions() as s:
                async for seg in store.stream_segments(
                    s, request.device_id, start, end, max_segment=self.deps.max_segment
                ):
                    scan.add(seg.ref)
            result = scan.result()
            async with self.sessions.begin() as s:
                self.audit(
                    s,
                    p,
                    "archive.coverage.get",
                    resources=resources,
                    footage=(start, end),
                    attributes={"basis": basis.split(":")[0]},
                )
        return codec.coverage_to_pb(result)


def _encode_cursor(device_id: str, start: datetime, end: datetime, last_start: datetime, last_id: int) -> str:
    # The token binds the query it continues: reused with another device or range it is refused.
    return encode_token(
        "|".join([device_id, start.isoformat(), end.isoformat(), last_start.isoformat(), str(last_id)])
    )


def _covering(holds: list[HoldSpan], row: Any) -> list[str]:
    return [h.hold_id for h in holds if h.start < row.end_time and row.start_time < h.end]


def _decode_cursor(token: str, device_id: str, start: datetime, end: datetime) -> tuple[datetime, int] | None:
    if not token:
        return None
    try:
        dev, t0, t1, after_start, after_id = decode_token(token).split("|")
        if (dev, t0, t1) != (device_id, start.isoformat(), end.isoformat()):
            raise ValueError("token was issued for another query")
        return datetime.fromisoformat(after_start), int(after_id)
    except (ValueError, VigilError) as exc:
        raise InvalidArgument(f"page_token does not continue this query: {exc}", field="page_token") from None


class ArchiveUnavailable(Unavailable):
    """Object storage could not be reached for a call that needs it."""
