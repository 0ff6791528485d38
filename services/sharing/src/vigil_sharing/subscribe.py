"""Subscribe: a partner unit's event stream over gRPC, read from its partner topic, resumable from a cursor.

- Only a ROLE_PARTNER principal of the subscription's unit may stream it; anything else is refused
  (deny by default). Every call is an audit record (`sharing.subscription.stream`), refusals included.
- Scope is enforced here again, per event, with the fan-out's rule (partner.py): the embedded broker has
  no ACLs, and a grant may have ended since the fan-out copied an event.
- The stream ends with PERMISSION_DENIED (ACC-3) within one poll (`poll_s`) of the grant being revoked or
  expiring; the grant index is updated on revocation in this process at once, elsewhere within 1 s.
- Cursor: the position after the event it came with, in every partition of the partner topic (opaque
  base64url JSON). Resuming from it continues exactly after that event: nothing missed, nothing repeated.
  The fan-out is at least once, so the topic itself may hold a second copy of an event (same ce_id); the
  stream skips ids it has delivered, and on resume first reads back `window` records per partition before
  the cursor to learn the ids delivered just before it (a copy follows its original within one
  uncommitted fan-out batch, far fewer records than the window).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil_kit import audit, cloudevents, kafka, topics
from vigil_kit.auth import Principal
from vigil_kit.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable, VigilError
from vigil_sharing import codec
from vigil_sharing.domain.model import Clock
from vigil_sharing.fanout import PARTNER_PARTITIONS
from vigil_sharing.partner import Router, Sub, grant_active, ids, unit_subscriptions

log = logging.getLogger(__name__)

ACTION = "sharing.subscription.stream"
SOURCE = "sharing"
ROLE_PARTNER = "ROLE_PARTNER"
RESUME_WINDOW = 1000
SEEN_MAX = 50_000


@dataclass(frozen=True)
class Cursor:
    """Next offset to read in each partition of a unit's partner topic."""

    unit: str
    positions: dict[int, int]

    def encode(self) -> str:
        body = {"v": 1, "u": self.unit, "p": {str(p): o for p, o in sorted(self.positions.items())}}
        raw = json.dumps(body, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, unit: str) -> Cursor:
        try:
            body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            cursor = cls(str(body["u"]), {int(p): int(o) for p, o in dict(body["p"]).items()})
        except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            raise InvalidArgument("cursor is not one this service issued", field="cursor") from None
        if cursor.unit != unit or any(o < 0 for o in cursor.positions.values()):
            raise InvalidArgument("cursor belongs to another unit's stream", field="cursor")
        return cursor


class PartnerStreams:
    """Serves Subscribe calls (one group-less consumer per stream)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        router: Router,
        bootstrap: str,
        notifier: Callable[[], None],
        clock: Clock,
        poll_s: float = 0.2,
        window: int = RESUME_WINDOW,
    ) -> None:
        self.sessions = sessions
        self.router = router
        self.bootstrap = bootstrap
        self.notifier = notifier
        self.clock = clock
        self.poll_s = poll_s
        self.window = window

    async def _audit(
        self,
        caller: Principal,
        decision: str,
        subs: list[Sub],
        *,
        subscription_id: str = "",
        resumed: bool = False,
        reason: str = "",
        rule_id: str = "",
    ) -> None:
        record = audit.build_record(
            actor=caller,
            action=ACTION,
            source_service=SOURCE,
            decision=decision,
            resources={
                "grant_ids": sorted({s.grant_id for s in subs}),
                "device_ids": sorted({d for s in subs for d in s.scope.device_ids}),
                "site_ids": sorted({d for s in subs for d in s.scope.site_ids}),
            },
            reason=reason,
            rule_id=rule_id,
            attributes={
                "subscription_ids": ",".join(ids(subs)) or subscription_id,
                "resumed": str(resumed).lower(),
            },
            now=self.clock(),
        )
        async with self.sessions.begin() as session:
            audit.write_audit(session, record, notifier=self.notifier)

    async def _authorize(
        self, request: pb.SubscribeRequest, caller: Principal
    ) -> tuple[list[Sub], Cursor | None]:
        if not caller.has_role(ROLE_PARTNER) or not caller.unit:
            raise PermissionDenied("only a partner unit's principals stream its subscriptions", rule="ACC-2")
        async with self.sessions() as session:
            mine = [Sub.of(m) for m in await unit_subscriptions(session, caller.unit)]
        if request.subscription_id:
            mine = [s for s in mine if s.message.subscription_id == request.subscription_id]
            if not mine:
                raise NotFound(f"no subscription {request.subscription_id}", field="subscription_id")
        elif not mine:
            raise PermissionDenied(f"unit {caller.unit} has no subscription", rule="ACC-3")
        now = self.clock()
        if not any(grant_active(s, self.router.index, now) for s in mine):
            raise PermissionDenied(
                "the grant of the subscription is not active (revoked, expired or not yet valid)",
                rule="ACC-3",
                field="subscription_id",
            )
        cursor = Cursor.decode(request.cursor, caller.unit) if request.cursor else None
        return mine, cursor

    async def stream(self, request: pb.SubscribeRequest, caller: Principal) -> AsyncIterator[pb.PartnerEvent]:
        try:
            subs, cursor = await self._authorize(request, caller)
        except VigilError as e:
            try:
                await self._audit(
                    caller,
                    audit.DENIED,
                    [],
                    subscription_id=request.subscription_id,
                    resumed=bool(request.cursor),
                    reason=str(e),
                    rule_id=e.rule or "",
                )
            except Exception:
                log.exception("could not record a refused Subscribe")
            raise
        await self._audit(caller, audit.ALLOWED, subs, resumed=cursor is not None)
        topic = topics.partner_topic(caller.unit)
        await kafka.ensure_topics(self.bootstrap, {topic: PARTNER_PARTITIONS})
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            async for event in self._follow(consumer, topic, caller.unit, subs, cursor):
                yield event
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            await consumer.topics()  # refreshes metadata
            found = consumer.partitions_for_topic(topic)
            if found:
                return [TopicPartition(topic, p) for p in sorted(found)]
            if loop.time() > deadline:
                raise Unavailable(f"the partner topic {topic} has no partitions yet")
            await asyncio.sleep(0.1)

    async def _follow(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        unit: str,
        subs: list[Sub],
        cursor: Cursor | None,
    ) -> AsyncIterator[pb.PartnerEvent]:
        parts = await self._partitions(consumer, topic)
        consumer.assign(parts)
        if cursor is None:
            await consumer.seek_to_end(*parts)
            positions = {tp.partition: await consumer.position(tp) for tp in parts}
        else:
            positions = {tp.partition: cursor.positions.get(tp.partition, 0) for tp in parts}
            for tp in parts:
                consumer.seek(tp, max(0, positions[tp.partition] - self.window))
        delivered_below = dict(positions)  # records before the cursor: remember their ids, deliver nothing
        seen: OrderedDict[str, None] = OrderedDict()

        def remember(event_id: str) -> None:
            seen[event_id] = None
            if len(seen) > SEEN_MAX:
                seen.popitem(last=False)

        poll_ms = int(self.poll_s * 1000)
        while True:
            now = self.clock()
            if not any(grant_active(s, self.router.index, now) for s in subs):
                raise PermissionDenied(
                    "the subscription's grant was revoked or has expired; the stream ends", rule="ACC-3"
                )
            batch = await consumer.getmany(*parts, timeout_ms=poll_ms, max_records=500)
            for tp, records in batch.items():
                for record in records:
                    p = tp.partition
                    try:
                        event = cloudevents.from_record(record)
                    except cloudevents.CloudEventError:
                        positions[p] = max(positions[p], record.offset + 1)
                        continue
                    if record.offset < delivered_below.get(p, 0):
                        remember(event.id)
                        continue
                    deliver = event.id not in seen and bool(await self.router.matching(event, subs))
                    positions[p] = max(positions[p], record.offset + 1)
                    if not deliver:
                        continue
                    remember(event.id)
                    yield pb.PartnerEvent(
                        ce_id=event.id,
                        ce_type=event.type,
                        ce_source=event.source,
                        ce_time=codec.ts(event.time),
                        subject=event.subject,
                        data=event.data,
                        cursor=Cursor(unit, dict(positions)).encode(),
                    )
