"""The device cache: registry events kept in ingest's database, with a GetDevice fallback to the registry.

Uploads need a device's state, public key, retention and owner unit on every call; asking the
registry each time would couple ingest's availability to the registry's. So the cache is fed by
`vigil.registry.events.v1` (an idempotent consumer, group "ingest-devices"), and the registry is
asked only when the cache does not know the device or says it is not active — a device registered
or activated a moment ago, whose event has not arrived yet, can upload at once. What the registry
answers is written back to the cache; facts carry the registry's update_time, so an older event
arriving later never overwrites them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vigil.registry.v1 import events_pb2 as registry_events
from vigil.registry.v1 import registry_service_pb2 as registry_pb
from vigil.registry.v1 import registry_service_pb2_grpc as registry_grpc
from vigil_ingest import codec, metrics, store
from vigil_ingest.store import DeviceFacts
from vigil_kit import cloudevents, topics
from vigil_kit.cloudevents import CloudEvent
from vigil_kit.consumer import IdempotentConsumer
from vigil_kit.errors import NotFound, Unavailable, from_rpc_error
from vigil_kit.grpc_client import make_channel

log = logging.getLogger(__name__)

CONSUMER_GROUP = "ingest-devices"
GET_DEVICE = "/vigil.registry.v1.RegistryService/GetDevice"

_DEVICE_EVENTS = (
    registry_events.DeviceRegistered,
    registry_events.DeviceUpdated,
    registry_events.DeviceActivated,
    registry_events.DeviceSuspended,
    registry_events.DeviceDecommissioned,
)
_EVENT_TYPES = {m.DESCRIPTOR.full_name: m for m in (*_DEVICE_EVENTS, registry_events.SiteUpdated)}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DeviceDirectory:
    """Device facts for uploads: the cache first, the registry when the cache cannot say yes."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        registry: registry_grpc.RegistryServiceStub | None,
        registry_timeout_s: float = 3.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.sessions = sessions
        self.registry = registry
        self.registry_timeout_s = registry_timeout_s
        self.clock = clock

    async def lookup(self, device_id: str) -> DeviceFacts | None:
        """The device's facts, or None when neither the cache nor the registry knows it.

        UNAVAILABLE (retryable) when the cache does not know the device and the registry cannot be
        reached: the device may well exist, so "unknown" would be a wrong, final answer.
        """
        async with self.sessions() as session:
            cached = await store.get_device(session, device_id)
        if cached is not None and cached.active:
            metrics.DEVICE_LOOKUPS.labels(source="cache").inc()
            return cached
        try:
            fresh = await self._ask_registry(device_id)
        except Unavailable:
            if cached is not None:
                # The cache's "not active" stands; the registry could not contradict it.
                return cached
            raise
        if fresh is None:
            return cached
        async with self.sessions.begin() as session:
            await store.put_device(session, fresh, now=self.clock())
        return fresh

    async def _ask_registry(self, device_id: str) -> DeviceFacts | None:
        if self.registry is None:
            metrics.DEVICE_LOOKUPS.labels(source="registry_error").inc()
            raise Unavailable("the registry is not configured and the device is not in ingest's cache")
        try:
            device = await self.registry.GetDevice(
                registry_pb.GetDeviceRequest(device_id=device_id), timeout=self.registry_timeout_s
            )
        except grpc.aio.AioRpcError as e:
            err = from_rpc_error(e)
            if isinstance(err, NotFound):
                metrics.DEVICE_LOOKUPS.labels(source="registry_not_found").inc()
                return None
            metrics.DEVICE_LOOKUPS.labels(source="registry_error").inc()
            log.warning("registry lookup failed", extra={"device_id": device_id, "code": e.code().name})
            raise Unavailable(
                f"cannot check device {device_id} with the registry ({e.code().name}); retry shortly",
                retry_after_s=1.0,
            ) from None
        metrics.DEVICE_LOOKUPS.labels(source="registry").inc()
        return codec.device_facts(device)

    # --- the consumer side ---------------------------------------------------------------------

    async def apply_event(self, session: AsyncSession, event: CloudEvent) -> None:
        """IdempotentConsumer handler: keep the cache in step with the registry's device events."""
        cls = _EVENT_TYPES.get(event.type)
        if cls is None:
            return  # units, sites created, unauthorized-change alerts: nothing ingest keeps
        message = cloudevents.decode(event, _EVENT_TYPES)
        metrics.CACHE_EVENTS.labels(type=cls.DESCRIPTOR.name).inc()
        if isinstance(message, registry_events.SiteUpdated):
            site = message.site
            await session.execute(
                update(store.device_cache)
                .where(store.device_cache.c.site_id == site.site_id)
                .values(division_code=site.division_code)
            )
            return
        await store.put_device(session, codec.device_facts(message.device), now=self.clock())

    def consumer(self, engine: AsyncEngine, bootstrap: str) -> IdempotentConsumer:
        return IdempotentConsumer(
            engine,
            bootstrap=bootstrap,
            topics=[topics.REGISTRY_EVENTS],
            group_id=CONSUMER_GROUP,
            name=CONSUMER_GROUP,
            handler=self.apply_event,
        )


def registry_stub(
    target: str, token: str, timeout_s: float
) -> tuple[grpc.aio.Channel, registry_grpc.RegistryServiceStub]:
    """A channel to the registry carrying ingest's own service token; GetDevice is retried on UNAVAILABLE."""
    channel = make_channel(target, token=token, default_timeout_s=timeout_s, retry_methods=[GET_DEVICE])
    return channel, registry_grpc.RegistryServiceStub(channel)
