"""What sharing knows of devices: an in-memory cache over the sharing_devices table, fed by registry events,
with a registry GetDevice call on a miss (a device registered a moment ago is known at once).

The whole table is loaded into memory at start, so Authorize answers from memory rather than reading the
database per call. A device the registry does not know is simply unknown (decide() denies it); that answer
is remembered for `unknown_ttl_s` only (a second by default), so a flood of calls about an unheard-of
device costs one registry call a second, not one per call. A device first heard of within that second —
registered just after someone asked about it — is known as soon as its registry event arrives (memory is
consulted first), or the next look-up after the second has passed. Denying meanwhile is the safe side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import grpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil.registry.v1 import events_pb2 as reg_events
from vigil.registry.v1 import registry_service_pb2 as reg_pb
from vigil.registry.v1 import registry_service_pb2_grpc as reg_grpc
from vigil_kit import cloudevents
from vigil_kit.cloudevents import CloudEvent
from vigil_kit.errors import Unavailable
from vigil_sharing import codec, metrics, store
from vigil_sharing.domain.model import DeviceFacts, newer_facts

log = logging.getLogger(__name__)

# Registry events that carry a whole Device.
DEVICE_EVENTS = (
    reg_events.DeviceRegistered,
    reg_events.DeviceUpdated,
    reg_events.DeviceActivated,
    reg_events.DeviceSuspended,
    reg_events.DeviceDecommissioned,
)
_DEVICE_TYPES = {m.DESCRIPTOR.full_name: m for m in DEVICE_EVENTS}
_SITE_UPDATED = reg_events.SiteUpdated.DESCRIPTOR.full_name


class DeviceDirectory:
    """Device facts by id: memory, then the database, then the registry."""

    # Unknown-device answers remembered at most (the oldest are dropped first beyond it).
    MAX_UNKNOWN = 10_000

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: Callable[[], reg_grpc.RegistryServiceStub | None],
        *,
        timeout_s: float = 2.0,
        read_sessions: async_sessionmaker[AsyncSession] | None = None,
        unknown_ttl_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._reads = read_sessions or sessions
        self._registry = registry
        self._timeout_s = timeout_s
        self._memory: dict[str, DeviceFacts] = {}
        self._unknown_ttl_s = unknown_ttl_s
        self._monotonic = monotonic
        # device id → monotonic time until which "the registry does not know it" is the answer
        self._unknown: dict[str, float] = {}

    async def load(self) -> int:
        """Every device of the table into memory (at start); returns how many."""
        async with self._reads() as session:
            devices = await store.all_devices(session)
        for facts in devices:
            self._keep(facts)  # an event applied meanwhile may be newer
        return len(devices)

    def cached(self, device_id: str) -> DeviceFacts | None:
        return self._memory.get(device_id)

    def _keep(self, facts: DeviceFacts) -> DeviceFacts:
        """Memory holds the newer of what it had and `facts` (newer_facts), which it returns."""
        kept = self._memory[facts.device_id] = newer_facts(self._memory.get(facts.device_id), facts)
        return kept

    async def lookup(self, device_id: str) -> DeviceFacts | None:
        """The device's facts, or None when the registry does not know it. Unavailable when it cannot tell."""
        found = self._memory.get(device_id)
        if found is not None:
            return found
        if not device_id or len(device_id) > 32:
            return None
        if self._unknown and self._still_unknown(device_id):
            return None
        async with self._reads() as session:
            found = await store.get_device(session, device_id)
        if found is None:
            found = await self._ask_registry(device_id)
            if found is None:
                self._remember_unknown(device_id)
                return None
            found = self._keep(found)  # an event may have brought newer facts while the registry answered
            try:
                async with self._sessions.begin() as session:
                    await store.put_device(session, found, datetime.now(UTC))
            except IntegrityError:  # a concurrent lookup of the same device wrote it first (PostgreSQL)
                pass
            return found
        return self._keep(found)

    def _still_unknown(self, device_id: str) -> bool:
        until = self._unknown.get(device_id)
        if until is None:
            return False
        if self._monotonic() < until:
            return True
        self._unknown.pop(device_id, None)
        return False

    def _remember_unknown(self, device_id: str) -> None:
        if self._unknown_ttl_s <= 0:
            return
        self._unknown.pop(device_id, None)
        self._unknown[device_id] = self._monotonic() + self._unknown_ttl_s
        while len(self._unknown) > self.MAX_UNKNOWN:
            del self._unknown[next(iter(self._unknown))]

    async def lookup_many(self, device_ids: list[str]) -> dict[str, DeviceFacts]:
        out: dict[str, DeviceFacts] = {}
        for device_id in sorted(set(device_ids)):
            facts = await self.lookup(device_id)
            if facts is not None:
                out[device_id] = facts
        return out

    async def _ask_registry(self, device_id: str) -> DeviceFacts | None:
        stub = self._registry()
        if stub is None:
            raise Unavailable("the registry cannot be asked: no service token is configured")
        metrics.REGISTRY_LOOKUPS.inc()
        try:
            device = await stub.GetDevice(
                reg_pb.GetDeviceRequest(device_id=device_id), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            log.warning("registry GetDevice failed", extra={"device_id": device_id, "code": e.code().name})
            raise Unavailable(f"the registry could not be asked about device {device_id}") from None
        return codec.device_facts(device)

    # ------------------------------------------------------------------ events

    async def handle(self, session: AsyncSession, event: CloudEvent) -> None:
        """IdempotentConsumer handler on vigil.registry.events.v1: keep the table (and memory) current."""
        now = datetime.now(UTC)
        for facts in await self._facts_of(session, event):
            await store.put_device(session, self._keep(facts), now)

    def apply(self, event: CloudEvent) -> None:
        """Memory only (another replica's consumer writes the table): device events and site changes."""
        if event.type in _DEVICE_TYPES:
            self._keep(codec.device_facts(cloudevents.decode(event, _DEVICE_TYPES).device))  # type: ignore[attr-defined]
        elif event.type == _SITE_UPDATED:
            site = reg_events.SiteUpdated.FromString(event.data).site
            for facts in list(self._memory.values()):
                if facts.site_id == site.site_id:
                    self._keep(_with_site(facts, site))

    async def _facts_of(self, session: AsyncSession, event: CloudEvent) -> list[DeviceFacts]:
        if event.type in _DEVICE_TYPES:
            msg = cloudevents.decode(event, _DEVICE_TYPES)
            return [codec.device_facts(msg.device)]  # type: ignore[attr-defined]
        if event.type == _SITE_UPDATED:
            site = reg_events.SiteUpdated.FromString(event.data).site
            return [_with_site(d, site) for d in await store.devices_at_site(session, site.site_id)]
        return []


def _with_site(facts: DeviceFacts, site: reg_pb.Site) -> DeviceFacts:
    return replace(
        facts,
        division_code=site.division_code,
        place_category=reg_pb.PlaceCategory.Name(site.place_category),
        funding=reg_pb.Funding.Name(site.funding),
        secret_related=site.secret_related,
        site_time=codec.from_ts(site, "update_time"),
    )
