"""The live state Authorize decides from: the in-memory grant index and principals' facts, kept current.

- At start (and every `index_refresh_s`, as a safety net) both are brought to the database's state; after
  the first load only requests whose stored bytes changed are decoded, so a refresh does not hold the loop.
- The deciding process applies its own approvals and revocations before their RPC returns; their events
  reach it later through the log. A request only moves forward (pending, approved, ended), so the book
  ignores an event or snapshot that would move one back: a late AccessRequested never takes out the
  grant its own process has just approved, and a late AccessApproved never files a revoked grant again
  (ACC-3). Principals' facts likewise only move to a newer update_time.
- Every process reads vigil.sharing.events.v1 (other replicas' changes) and vigil.registry.events.v1 (device
  facts) with its own group-less consumer from the end of the log: no group join, no committed offsets,
  so a restart costs nothing. It positions itself at the end of each partition BEFORE rebuilding from the
  database, so nothing published in between is missed (events are published only after their commit).
- The expiry worker ends grants at valid_until (GrantExpired + audit), once, whichever replica gets there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil.sharing.v1 import events_pb2
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil_kit import cloudevents, kafka, topics
from vigil_kit.auth import Principal
from vigil_kit.errors import VigilError
from vigil_sharing import codec, metrics, store
from vigil_sharing.devices import DeviceDirectory
from vigil_sharing.domain.index import GrantIndex
from vigil_sharing.domain.model import AccessRequest, Clock, Grant, PrincipalFacts, RequestState

log = logging.getLogger(__name__)

_REQUEST_EVENTS = {
    m.DESCRIPTOR.full_name: m
    for m in (
        events_pb2.AccessRequested,
        events_pb2.AccessApproved,
        events_pb2.AccessDenied,
        events_pb2.GrantRevoked,
        events_pb2.GrantExpired,
    )
}
_FACTS_CHANGED = events_pb2.PrincipalFactsChanged.DESCRIPTOR.full_name


# Changed requests decoded between two yields to the event loop during a load (a few ms of work each).
LOAD_CHUNK = 250

# How far along its life a request is; nothing moves one back.
_PENDING, _APPROVED, _ENDED = 0, 1, 2
_STAGE = {
    RequestState.UNSPECIFIED: _PENDING,
    RequestState.PENDING: _PENDING,
    RequestState.APPROVED: _APPROVED,
    RequestState.DENIED: _ENDED,
    RequestState.REVOKED: _ENDED,
    RequestState.EXPIRED: _ENDED,
}
# How long the book remembers that a request ended, against its own older events arriving late (they
# trail the change by the outbox relay's lag: seconds; the periodic load corrects anything older).
ENDED_MEMORY_S = 3600.0


class GrantBook:
    """The grant index and principals' facts of this process (one event loop owns them)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.index = GrantIndex()
        self._facts: dict[str, pb.PrincipalFacts] = {}
        # The stored bytes each filed grant was last loaded from; a grant applied since is absent (its
        # next load decodes it again).
        self._loaded: dict[str, bytes] = {}
        # Ids changed in this process while a load is under way: what was applied is newer than the
        # snapshot the load read, so the load leaves them as they are.
        self._touched: set[str] | None = None
        self._touched_facts: set[str] | None = None
        # Requests that ended, oldest first, with the monotonic time the book learnt it.
        self._ended: dict[str, float] = {}

    async def load(self) -> None:
        """Bring the index and the facts to the database's state.

        Runs at start and, as a safety net, every `index_refresh_s` while the service answers Authorize
        at full rate, so it must not hold the event loop: only requests whose stored bytes differ from
        what was last loaded are decoded, in chunks that yield to the loop between them, and filed or
        taken out one by one. Each grant is at every moment either as it was or as the database has it
        (ACC-3: a grant is active only while approved and valid), never half-filed.
        """
        self._touched, self._touched_facts = set(), set()
        try:
            async with self._sessions() as session:
                rows = await store.approved_payloads(session)
                facts = await store.all_principal_facts(session)
            approved = {request_id for request_id, _ in rows}
            changed = [(rid, payload) for rid, payload in rows if self._loaded.get(rid) != payload]
            for start in range(0, len(changed), LOAD_CHUNK):
                if start:
                    await asyncio.sleep(0)  # let calls in flight run between chunks
                for request_id, payload in changed[start : start + LOAD_CHUNK]:
                    if request_id in self._touched or request_id in self._ended:
                        continue
                    request = codec.from_access_request(pb.AccessRequest.FromString(payload))
                    self.index.add(Grant.from_request(request))
                    self._loaded[request_id] = payload
            for grant_id in [g for g in self._filed() if g not in approved and g not in self._touched]:
                self.index.remove(grant_id)  # no longer approved: it ended
                self._loaded.pop(grant_id, None)
                self._remember_ended(grant_id)
            kept = {k: v for k, v in self._facts.items() if k in self._touched_facts}
            self._facts = {f.principal_id: f for f in facts} | kept
        finally:
            self._touched = self._touched_facts = None
        metrics.ACTIVE_GRANTS.set(len(self.index))

    def _filed(self) -> list[str]:
        return [g.grant_id for g in self.index.grants()]

    def _stage(self, request_id: str) -> int:
        if request_id in self._ended:
            return _ENDED
        return _APPROVED if self.index.get(request_id) is not None else _PENDING

    def apply(self, request: AccessRequest) -> bool:
        """File an approved request's grant, or take out one in any other state; False (and nothing
        changes) when the book already knows the request further along its life."""
        stage = _STAGE[request.state]
        if stage < self._stage(request.request_id):
            return False
        self.index.add(Grant.from_request(request))
        self._loaded.pop(request.request_id, None)
        if self._touched is not None:
            self._touched.add(request.request_id)
        if stage == _ENDED:
            self._remember_ended(request.request_id)
        metrics.ACTIVE_GRANTS.set(len(self.index))
        return True

    def _remember_ended(self, request_id: str) -> None:
        now = time.monotonic()
        self._ended.pop(request_id, None)
        self._ended[request_id] = now
        while True:  # oldest first: stop at the first one still remembered
            oldest = next(iter(self._ended))
            if now - self._ended[oldest] < ENDED_MEMORY_S:
                break
            del self._ended[oldest]

    def set_facts(self, facts: pb.PrincipalFacts) -> bool:
        """Keep `facts` unless the book holds the principal's facts of a later update_time."""
        known = self._facts.get(facts.principal_id)
        if known is not None and known.update_time.ToNanoseconds() > facts.update_time.ToNanoseconds():
            return False
        self._facts[facts.principal_id] = facts
        if self._touched_facts is not None:
            self._touched_facts.add(facts.principal_id)
        return True

    def facts_message(self, principal_id: str) -> pb.PrincipalFacts:
        return self._facts.get(principal_id) or pb.PrincipalFacts(principal_id=principal_id)

    def facts(self, principal: Principal) -> PrincipalFacts:
        """The token's facts plus what sharing keeps (no record = no unmask right, no clearance, no contract)."""
        msg = self._facts.get(principal.id)
        if msg is None:
            return PrincipalFacts.of(principal)
        return PrincipalFacts.of(
            principal,
            unmask_right=msg.unmask_right,
            secret_clearance=msg.secret_clearance,
            contract=codec.from_contract(msg),
        )

    def apply_event(self, event: cloudevents.CloudEvent) -> None:
        if event.type in _REQUEST_EVENTS:
            msg = cloudevents.decode(event, _REQUEST_EVENTS)
            self.apply(codec.from_access_request(msg.access_request))  # type: ignore[attr-defined]
        elif event.type == _FACTS_CHANGED:
            self.set_facts(events_pb2.PrincipalFactsChanged.FromString(event.data).facts)


class LocalSync:
    """Worker: keeps this process's grant index and device cache current from the event log."""

    def __init__(
        self, book: GrantBook, devices: DeviceDirectory, *, bootstrap: str, refresh_s: float = 30.0
    ) -> None:
        self.book = book
        self.devices = devices
        self.bootstrap = bootstrap
        self.refresh_s = refresh_s
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        # No group: every process reads every event from the end (the kit's client adds broker security).
        consumer = await kafka.create_consumer(self.bootstrap, (), None, auto_offset_reset="latest")
        try:
            await self._position_at_end(consumer)
            await self.book.load()  # after positioning: what is published from here on is read
            self.ready.set()
            loop = asyncio.get_running_loop()
            next_refresh = loop.time() + self.refresh_s
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=500)
                for records in batch.values():
                    for record in records:
                        self._apply(record)
                if loop.time() >= next_refresh:
                    await self.book.load()
                    next_refresh = loop.time() + self.refresh_s
        finally:
            await consumer.stop()

    async def _position_at_end(self, consumer: AIOKafkaConsumer) -> None:
        await consumer.topics()  # fetches metadata
        parts = [
            TopicPartition(t, p)
            for t in (topics.SHARING_EVENTS, topics.REGISTRY_EVENTS)
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)

    def _apply(self, record: object) -> None:
        try:
            event = cloudevents.from_record(record)
            if event.topic == topics.SHARING_EVENTS:
                self.book.apply_event(event)
            else:
                self.devices.apply(event)
        except Exception:  # one bad record must not stop the index from following the log
            log.exception("could not apply an event to the local state")


class ExpiryWorker:
    """Ends requests and grants whose validity has passed (ACC-3: a grant expires)."""

    def __init__(
        self, expire_one: Callable[[str], object], list_lapsed: Callable[[], object], *, interval_s: float
    ) -> None:
        self._expire_one = expire_one
        self._list_lapsed = list_lapsed
        self.interval_s = interval_s
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                for request_id in await self._list_lapsed():  # type: ignore[misc]
                    try:
                        await self._expire_one(request_id)  # type: ignore[misc]
                    except VigilError:
                        pass  # another replica (or a revocation) got there first
            except Exception:
                log.exception("expiry round failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)


def lapsed(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> Callable[[], object]:
    async def find() -> list[str]:
        async with sessions() as session:
            return await store.lapsed_request_ids(session, clock())

    return find
