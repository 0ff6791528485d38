"""REG-11 keepalives and status: group-committed keepalives, and the offline detector worker.

Keepalives. `apply` handles one batch in one transaction: it locks the batch's device rows, runs the
domain (authorize_keepalive, apply_keepalive, REG-12 detect_unauthorized_change), writes the batch's
rows (time-only keepalives as one UPDATE … IN per 500 ids, see apply; the rest as one executemany
UPDATE), and enqueues DeviceWentOnline / UnauthorizedChangeDetected (with their audit records) in the
same transaction. StreamKeepalives feeds it windows of at most
`keepalive_batch_window_s` (or `keepalive_batch_max` keepalives, whichever comes first), so a gateway's
thousands of devices cost one commit per window instead of one per keepalive.

What a crash can lose: the keepalives of a stream that were received but not yet committed — the
open window and the batch being committed, at most about 2 × keepalive_batch_max (with the defaults,
100 ms of traffic). None of them was acknowledged: a stream's summary is sent only after its last
batch commits, and a unary Keepalive answers after its commit. A lost keepalive can at worst let a
device look offline one interval early, which its next keepalive corrects.

Offline detection. An in-memory heap of offline deadlines (interval × count from the later of
activation and the last keepalive) is loaded from the database when the detector starts and updated
after every commit that changes a deadline (keepalive, activation, update, suspension,
decommissioning). The detector sleeps until the next deadline (never more than
`offline_check_max_sleep_s`), re-checks each due device against its locked row, and marks it OFFLINE
with a DeviceWentOffline event and an audit record in one transaction — an urgent one, which the
process's SQLite write gate admits before the requests' writers queued there (a burst of activations
would otherwise hold the detection back by their commits, one after another). One registry process runs the
detector (the deployment runs one replica of the registry).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil.registry.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_kit import audit, db
from vigil_kit.auth import Principal
from vigil_kit.errors import NotFound, VigilError
from vigil_registry import codec, metrics
from vigil_registry.domain import keepalive, usecases
from vigil_registry.domain.model import Clock, Device, DeviceState, RegistryPolicy
from vigil_registry.events import SYSTEM_ACTOR, Publisher, went_offline, went_online
from vigil_registry.store import RegistryStore

log = logging.getLogger(__name__)

# Rejections listed in a stream's summary (all are counted).
MAX_LISTED_REJECTIONS = 100
# Devices marked offline per transaction when many fall due together (a gateway's outage).
OFFLINE_CHUNK = 500


class DeadlineTracker:
    """REG-11 offline deadlines of the ACTIVE devices: a min-heap with lazy updates.

    A keepalive only moves a deadline later, so it just updates `current`; a popped heap entry older
    than `current` is pushed again with the newer deadline. Anything that moves a deadline earlier (or
    adds one) pushes at once and wakes the detector.
    """

    def __init__(self) -> None:
        self.heap: list[tuple[datetime, str]] = []
        self.current: dict[str, datetime] = {}
        self.wake = asyncio.Event()

    def track(self, device: Device) -> None:
        self.track_deadline(device.device_id, keepalive.offline_deadline(device))

    def track_deadline(self, device_id: str, deadline: datetime | None) -> None:
        """A device's offline deadline is now `deadline` (None: it is not watched)."""
        if deadline is None:
            self.current.pop(device_id, None)
            return
        before = self.current.get(device_id)
        self.current[device_id] = deadline
        if before is None or deadline < before:
            heapq.heappush(self.heap, (deadline, device_id))
            if self.heap[0] == (deadline, device_id):
                self.wake.set()

    def untrack(self, device_id: str) -> None:
        self.current.pop(device_id, None)

    def _settle(self) -> None:
        # Drop stale tops; re-push tops whose deadline has moved later.
        while self.heap:
            deadline, device_id = self.heap[0]
            now_deadline = self.current.get(device_id)
            if now_deadline == deadline:
                return
            heapq.heappop(self.heap)
            if now_deadline is not None and now_deadline > deadline:
                heapq.heappush(self.heap, (now_deadline, device_id))

    def next_deadline(self) -> datetime | None:
        self._settle()
        return self.heap[0][0] if self.heap else None

    def due(self, now: datetime, limit: int) -> list[str]:
        out: list[str] = []
        while len(out) < limit:
            self._settle()
            if not self.heap or self.heap[0][0] > now:
                break
            _, device_id = heapq.heappop(self.heap)
            self.current.pop(device_id, None)
            out.append(device_id)
        return out

    def __len__(self) -> int:
        return len(self.current)


@dataclass
class KeepaliveResult:
    device_id: str
    # The device after the keepalive, when it went through the domain on a Device (see apply).
    device: Device | None = None
    # What the keepalive left, either way (the unary Keepalive's answer).
    state: DeviceState | None = None
    last_keepalive_time: datetime | None = None
    offline_deadline: datetime | None = None
    went_online: bool = False
    unauthorized_change: bool = False
    error: VigilError | None = None


@dataclass
class StreamTotals:
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    went_online: int = 0
    unauthorized_changes: int = 0
    rejections: list[pb.KeepaliveRejection] = field(default_factory=list)


class StatusService:
    """Keepalives (unary and streamed) and the offline detector's transactions."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: RegistryStore,
        publisher: Publisher,
        policy: RegistryPolicy,
        clock: Clock,
        tracker: DeadlineTracker,
        batch_window_s: float = 0.1,
        batch_max: int = 2000,
    ) -> None:
        self.sessions = sessions
        # REG-11's deadline: marking devices offline does not queue behind a burst of requests' writes.
        self.urgent_sessions = db.urgent_session_factory(sessions)
        self.read_sessions = db.read_session_factory(sessions)
        self.store = store
        self.publisher = publisher
        self.policy = policy
        self.clock = clock
        self.tracker = tracker
        self.batch_window_s = batch_window_s
        self.batch_max = batch_max

    # --- keepalives ------------------------------------------------------------------------------

    async def apply(
        self, principal: Principal, requests: Sequence[pb.KeepaliveRequest]
    ) -> list[KeepaliveResult]:
        """One batch, one transaction (see the module docstring).

        Most keepalives only record their time: a device in keepalive.TIME_ONLY_STATES, from a caller
        authorize_keepalive accepts, reporting no position or aim (nothing for REG-12 to compare). Those
        take the light path (the view's few fields, keepalive.heard_at, one UPDATE per 500 ids); every
        other keepalive goes through the domain on a Device (apply_keepalive, detect_unauthorized_change).
        """
        now = self.clock()
        results: list[KeepaliveResult] = []
        changed: dict[str, Device] = {}
        heard: dict[str, datetime] = {}
        deadlines: dict[str, datetime | None] = {}  # the offline deadlines `heard` leaves
        async with self.sessions.begin() as s:
            views = await self.store.keepalive_views(s, [r.device_id for r in requests])
            for req in requests:
                device_id = req.device_id
                result = KeepaliveResult(device_id)
                results.append(result)
                view = views.get(device_id)
                if view is None:
                    result.error = NotFound(f"device {device_id!r} is not registered", field="device_id")
                    continue
                if (
                    view.state in keepalive.TIME_ONLY_STATES
                    and device_id not in changed
                    and not _reports_position(req)
                ):
                    try:
                        keepalive.authorize_keepalive_for(device_id, view.owner_unit_id, principal)
                    except VigilError as e:
                        result.error = e
                        continue
                    heard[device_id] = last = keepalive.heard_at(
                        heard.get(device_id, view.last_keepalive_time), now
                    )
                    result.state, result.last_keepalive_time = view.state, last
                    result.offline_deadline = deadlines[device_id] = keepalive.deadline_of(
                        view.state,
                        view.keepalive_interval_s,
                        view.keepalive_timeout_count,
                        view.activated_at,
                        last,
                    )
                    continue
                device = changed.get(device_id)
                if device is None:
                    device = view.device
                    if device_id in heard:
                        device = replace(device, last_keepalive_time=heard.pop(device_id))
                        del deadlines[device_id]
                try:
                    keepalive.authorize_keepalive(device, principal)
                    outcome = keepalive.apply_keepalive(device, now)
                except VigilError as e:
                    result.error = e
                    continue
                changed[device_id] = result.device = outcome.device
                result.state = outcome.device.state
                result.last_keepalive_time = outcome.device.last_keepalive_time
                result.offline_deadline = keepalive.offline_deadline(outcome.device)
                if outcome.went_online:
                    result.went_online = True
                    self._online(s, principal, device, outcome.device, view.division_code, now)
                change = usecases.detect_unauthorized_change(
                    outcome.device,
                    reported_latitude=codec._opt(req, "reported_latitude"),
                    reported_longitude=codec._opt(req, "reported_longitude"),
                    reported_direction_deg=codec._opt(req, "reported_direction_deg"),
                    policy=self.policy,
                )
                if change is not None:
                    result.unauthorized_change = True
                    await self._unauthorized(s, principal, req, change, now)
            await self.store.touch_keepalives(s, heard, now)
            await self.store.write_keepalive_state(s, list(changed.values()), now)
            refused = [r for r in results if r.error is not None]
            if refused:
                self._refused(s, principal, refused, now)
        for device_id, deadline in deadlines.items():
            self.tracker.track_deadline(device_id, deadline)
        for device in changed.values():
            self.tracker.track(device)
        metrics.KEEPALIVES.labels(outcome="accepted").inc(len(results) - len(refused))
        if refused:
            metrics.KEEPALIVES.labels(outcome="rejected").inc(len(refused))
        return results

    def _online(
        self, s: AsyncSession, p: Principal, before: Device, after: Device, division: str, now: datetime
    ) -> None:
        self.publisher.status_event(
            s, after.device_id, went_online(after, division, offline_since=before.offline_since, now=now)
        )
        self.publisher.audit(
            s,
            actor=p,
            action="registry.device.online",
            resources={"device_ids": [after.device_id], "site_ids": [after.site_id]},
            reason="REG-11: keepalive heard from an offline device",
            now=now,
        )

    async def _unauthorized(
        self,
        s: AsyncSession,
        p: Principal,
        req: pb.KeepaliveRequest,
        change: usecases.UnauthorizedChange,
        now: datetime,
    ) -> None:
        record = await self.store.get_device_record(s, req.device_id)
        msg = events_pb2.UnauthorizedChangeDetected(
            device_id=req.device_id,
            changed_fields=list(change.changed_fields),
            distance_m=change.distance_m,
            angle_deg=change.angle_deg,
            reported_latitude=codec._opt(req, "reported_latitude"),
            reported_longitude=codec._opt(req, "reported_longitude"),
            reported_direction_deg=codec._opt(req, "reported_direction_deg"),
            detect_time=codec.ts(now),
            reporter=p.to_proto(),
        )
        if record is not None:
            msg.device.CopyFrom(codec.device_to_pb(record))
        self.publisher.registry_event(s, req.device_id, msg)
        self.publisher.audit(
            s,
            actor=p,
            action="registry.device.unauthorized_change",
            resources={"device_ids": [req.device_id]},
            rule_id="REG-12",
            reason=f"REG-12 (799 Art. 23): reported {', '.join(change.changed_fields)} differ from the record "
            "with no work order",
            now=now,
        )

    def _refused(self, s: AsyncSession, p: Principal, refused: list[KeepaliveResult], now: datetime) -> None:
        # One denied record per batch: a misconfigured gateway must not flood the audit log.
        first = refused[0].error
        assert first is not None
        self.publisher.audit(
            s,
            actor=p,
            action="registry.device.keepalive",
            decision=audit.DENIED,
            resources={"device_ids": sorted({r.device_id for r in refused})[:MAX_LISTED_REJECTIONS]},
            rule_id=first.rule or "",
            reason=first.message,
            attributes={"refused": str(len(refused))},
            now=now,
        )

    async def keepalive(self, principal: Principal, req: pb.KeepaliveRequest) -> pb.KeepaliveResponse:
        (result,) = await self.apply(principal, [req])
        if result.error is not None:
            raise result.error
        assert result.state is not None
        return pb.KeepaliveResponse(
            state=pb.DeviceState.Value(result.state.value),
            last_keepalive_time=codec.ts(result.last_keepalive_time),
            offline_deadline=codec.ts(result.offline_deadline),
            went_online=result.went_online,
            unauthorized_change_detected=result.unauthorized_change,
        )

    async def stream(
        self, principal: Principal, requests: AsyncIterator[pb.KeepaliveRequest]
    ) -> pb.StreamKeepalivesResponse:
        """Group-commit a gateway's stream in windows; answer once everything received is committed."""
        totals = StreamTotals()
        pending: list[pb.KeepaliveRequest] = []
        arrived = asyncio.Event()
        full = asyncio.Event()
        room = asyncio.Event()
        room.set()
        finished = False

        async def read() -> None:
            nonlocal finished
            try:
                async for req in requests:
                    pending.append(req)
                    totals.received += 1
                    arrived.set()
                    if len(pending) >= self.batch_max:
                        full.set()
                        if len(pending) >= 4 * self.batch_max:
                            # Backpressure: the database is behind; stop reading until a batch commits.
                            room.clear()
                            await room.wait()
            finally:
                finished = True
                arrived.set()
                full.set()

        reader = asyncio.create_task(read(), name="keepalive-stream-reader")
        try:
            while True:
                await arrived.wait()
                if not finished and len(pending) < self.batch_max:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(full.wait(), self.batch_window_s)
                batch = pending[: self.batch_max]
                del pending[: len(batch)]
                if not pending:
                    arrived.clear()
                if len(pending) < self.batch_max:
                    full.clear()
                room.set()
                if batch:
                    self._count(totals, await self.apply(principal, batch))
                if finished and not pending:
                    break
            await reader  # re-raises a broken stream
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        return pb.StreamKeepalivesResponse(
            received=totals.received,
            accepted=totals.accepted,
            rejected=totals.rejected,
            rejections=totals.rejections,
            went_online=totals.went_online,
            unauthorized_changes=totals.unauthorized_changes,
        )

    @staticmethod
    def _count(totals: StreamTotals, results: list[KeepaliveResult]) -> None:
        for r in results:
            if r.error is None:
                totals.accepted += 1
                totals.went_online += r.went_online
                totals.unauthorized_changes += r.unauthorized_change
                continue
            totals.rejected += 1
            if len(totals.rejections) < MAX_LISTED_REJECTIONS:
                totals.rejections.append(
                    pb.KeepaliveRejection(
                        device_id=r.device_id,
                        code=r.error.code.name,
                        rule=r.error.rule or "",
                        message=r.error.message,
                    )
                )

    # --- offline ---------------------------------------------------------------------------------

    async def load_deadlines(self) -> int:
        async with self.read_sessions() as s:  # a snapshot: no turn at the write lock
            watched = await self.store.watched_devices(s)
        for device in watched:
            self.tracker.track(device)
        return len(watched)

    async def mark_offline(self, device_ids: Sequence[str]) -> list[Device]:
        """REG-11: verify each due device against its locked row; mark the overdue ones OFFLINE with a
        DeviceWentOffline event and an audit record, in one transaction. Others are re-tracked."""
        now = self.clock()
        marked: list[Device] = []
        still: list[Device] = []
        async with self.urgent_sessions.begin() as s:
            views = await self.store.keepalive_views(s, device_ids)
            for view in views.values():
                off = keepalive.mark_offline(view.device, now)
                if off is None:
                    still.append(view.device)
                    continue
                marked.append(off)
                self.publisher.status_event(s, off.device_id, went_offline(off, view.division_code, now))
                self.publisher.audit(
                    s,
                    actor=SYSTEM_ACTOR,
                    action="registry.device.offline",
                    resources={"device_ids": [off.device_id], "site_ids": [off.site_id]},
                    reason=f"REG-11: no keepalive for {off.keepalive_timeout_count} × "
                    f"{off.keepalive_interval_s:g} s",
                    attributes={"offline_time": off.offline_since.isoformat() if off.offline_since else ""},
                    now=now,
                )
            await self.store.write_keepalive_state(s, marked, now)
        for device in still:
            self.tracker.track(device)
        if marked:
            metrics.WENT_OFFLINE.inc(len(marked))
            for d in marked:
                if d.offline_since is not None:
                    metrics.OFFLINE_DETECTION_LAG.observe(max(0.0, (now - d.offline_since).total_seconds()))
        return marked


def _reports_position(req: pb.KeepaliveRequest) -> bool:
    """Whether a keepalive reports the device's position or aim (REG-12 compares them with the record)."""
    return (
        req.HasField("reported_latitude")
        or req.HasField("reported_longitude")
        or req.HasField("reported_direction_deg")
    )


class OfflineDetector:
    """The worker: wakes at the next deadline (at most every max_sleep_s) and marks due devices offline."""

    def __init__(self, status: StatusService, *, max_sleep_s: float = 0.2) -> None:
        self.status = status
        self.max_sleep_s = max_sleep_s
        self._stop = asyncio.Event()

    async def run(self) -> None:
        self._stop.clear()
        loaded = await self.status.load_deadlines()
        log.info("offline detector started", extra={"watched_devices": loaded})
        tracker = self.status.tracker
        while not self._stop.is_set():
            now = self.status.clock()
            due = tracker.due(now, OFFLINE_CHUNK)
            if due:
                try:
                    await self.status.mark_offline(due)
                except Exception:
                    # Put them back so the next round retries; let the supervisor restart us with backoff.
                    for device_id in due:
                        tracker.current.setdefault(device_id, now)
                        heapq.heappush(tracker.heap, (now, device_id))
                    raise
                continue
            nxt = tracker.next_deadline()
            sleep = self.max_sleep_s
            if nxt is not None:
                sleep = min(sleep, max(0.0, (nxt - self.status.clock()).total_seconds()))
            tracker.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(tracker.wake, self._stop), sleep)

    def stop(self) -> None:
        self._stop.set()


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
