"""What a partner may receive: the offered event kinds, their device, and whether a subscription covers them.

One rule for both delivery paths: the fan-out (fanout.py) decides with it what goes to a partner unit's
topic, and Subscribe (subscribe.py) decides with it again what leaves that topic for the partner, because
the embedded broker enforces no ACLs and a grant may have ended in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil.ingest.v1 import events_pb2 as ingest_events
from vigil.registry.v1 import events_pb2 as reg_events
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil_kit.cloudevents import CloudEvent
from vigil_sharing import codec, store
from vigil_sharing.devices import DeviceDirectory
from vigil_sharing.domain.index import GrantIndex
from vigil_sharing.domain.model import ACTION_SUBSCRIBE_EVENTS, Clock, DeviceFacts, Scope

log = logging.getLogger(__name__)

# Events that carry the whole Device: their own facts decide the scope (no look-up, never stale).
_WITH_DEVICE = (
    reg_events.DeviceRegistered,
    reg_events.DeviceUpdated,
    reg_events.DeviceActivated,
    reg_events.DeviceSuspended,
    reg_events.DeviceDecommissioned,
    reg_events.UnauthorizedChangeDetected,
)
# Events that name their device by id: the device cache supplies its facts.
_WITH_DEVICE_ID = (reg_events.DeviceWentOnline, reg_events.DeviceWentOffline)
_WITH_ALARM = (ingest_events.AlarmRaised,)

OFFERED: dict[str, type] = {
    m.DESCRIPTOR.full_name: m for m in (*_WITH_DEVICE, *_WITH_DEVICE_ID, *_WITH_ALARM)
}


@dataclass(frozen=True)
class Sub:
    """A subscription, compiled for matching."""

    message: pb.Subscription
    scope: Scope
    event_types: frozenset[str]
    created: datetime

    @classmethod
    def of(cls, message: pb.Subscription) -> Sub:
        return cls(
            message=message,
            scope=codec.from_scope(message.scope),
            event_types=frozenset(message.event_types),
            created=message.create_time.ToDatetime(tzinfo=codec.UTC),
        )

    @property
    def unit(self) -> str:
        return self.message.partner_unit_id

    @property
    def grant_id(self) -> str:
        return self.message.grant_id


def grant_active(sub: Sub, index: GrantIndex, now: datetime) -> bool:
    """The subscription's grant is approved, held by its unit, for SUBSCRIBE_EVENTS, and valid now."""
    grant = index.get(sub.grant_id)
    return (
        grant is not None
        and grant.holder_unit == sub.unit
        and ACTION_SUBSCRIBE_EVENTS in grant.actions
        and grant.valid_from <= now < grant.valid_until
    )


def covers(sub: Sub, index: GrantIndex, event: CloudEvent, device: DeviceFacts, now: datetime) -> bool:
    """Whether `event` about `device` belongs to `sub` now: its kind, its time, the subscription's scope and
    the grant's (both: a subscription never reaches beyond its grant, even one narrowed after the fact)."""
    if event.type not in OFFERED or (sub.event_types and event.type not in sub.event_types):
        return False
    if event.time < sub.created:  # a subscription starts when it is created; no history
        return False
    if not grant_active(sub, index, now):
        return False
    grant = index.get(sub.grant_id)
    assert grant is not None
    return sub.scope.covers(device) and grant.scope.covers(device)


def device_id_of(event: CloudEvent) -> tuple[str, DeviceFacts | None]:
    """The event's device id, and its facts when the event itself carries them."""
    cls = OFFERED.get(event.type)
    if cls is None:
        return "", None
    msg = cls.FromString(event.data)
    if isinstance(msg, _WITH_DEVICE):
        return msg.device.device_id, codec.device_facts(msg.device)
    if isinstance(msg, _WITH_ALARM):
        return msg.alarm.device_id, None
    return msg.device_id, None


class Router:
    """Decides, per event, which subscriptions cover it, from the live grant index and device cache."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        index: GrantIndex,
        devices: DeviceDirectory,
        clock: Clock,
        *,
        refresh_s: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self.index = index
        self.devices = devices
        self.clock = clock
        self.refresh_s = refresh_s
        self._subs: dict[str, Sub] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    def add(self, message: pb.Subscription) -> None:
        """A subscription created in this process counts at once (others' within refresh_s)."""
        self._subs[message.subscription_id] = Sub.of(message)

    async def subscriptions(self) -> list[Sub]:
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self._loaded_at is None or loop.time() - self._loaded_at >= self.refresh_s:
                async with self._sessions() as session:
                    rows = await all_subscriptions(session)
                self._subs.update({m.subscription_id: Sub.of(m) for m in rows})
                self._loaded_at = loop.time()
        return list(self._subs.values())

    async def device(self, event: CloudEvent) -> DeviceFacts | None:
        """The facts of the event's device; None when it names none or the registry does not know it.
        Raises Unavailable when the registry cannot tell (the caller retries: nothing is skipped)."""
        device_id, facts = device_id_of(event)
        if facts is not None or not device_id:
            return facts
        return await self.devices.lookup(device_id)

    async def matching(self, event: CloudEvent, subs: Sequence[Sub]) -> list[Sub]:
        candidates = [
            s for s in subs if (not s.event_types or event.type in s.event_types) and event.time >= s.created
        ]
        if event.type not in OFFERED or not candidates:
            return []
        device = await self.device(event)
        if device is None:
            return []
        now = self.clock()
        return [s for s in candidates if covers(s, self.index, event, device, now)]

    async def units_for(self, event: CloudEvent) -> set[str]:
        """The partner units whose topic should carry `event` (each once, however many subscriptions)."""
        return {s.unit for s in await self.matching(event, await self.subscriptions())}


async def all_subscriptions(session: AsyncSession) -> list[pb.Subscription]:
    rows = await session.scalars(select(store.subscriptions_table.c.payload))
    return [pb.Subscription.FromString(p) for p in rows]


async def unit_subscriptions(session: AsyncSession, unit: str) -> list[pb.Subscription]:
    t = store.subscriptions_table
    rows = await session.scalars(select(t.c.payload).where(t.c.partner_unit_id == unit))
    return [pb.Subscription.FromString(p) for p in rows]


def ids(subs: Iterable[Sub]) -> list[str]:
    return sorted(s.message.subscription_id for s in subs)
