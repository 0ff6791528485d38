"""The device directory: loaded whole at start, unknown-device answers remembered briefly, events win."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from vigil.common.v1 import identity_pb2
from vigil.registry.v1 import events_pb2 as reg_events
from vigil.registry.v1 import registry_service_pb2 as reg_pb
from vigil_kit import cloudevents, db, migrations
from vigil_kit.cloudevents import CloudEvent
from vigil_sharing import app, codec, store
from vigil_sharing.devices import DeviceDirectory

KNOWN = "32020501501320000001"
UNKNOWN = "32020501501320000999"


def camera(
    device_id: str, updated: datetime | None = None, owner: str = "91320200554682701W"
) -> reg_pb.Device:
    device = reg_pb.Device(
        device_id=device_id,
        site_id="metro-central",
        owner_unit_id="91320200554682701W",
        owner=reg_pb.Unit(unit_id="91320200554682701W", kind=identity_pb2.UNIT_KIND_ENTERPRISE),
        site=reg_pb.SiteFacts(
            site_id="metro-central",
            division_code="320205",
            place_category=reg_pb.PLACE_CATEGORY_TRANSPORT,
            funding=reg_pb.FUNDING_GOVERNMENT,
        ),
    )
    device.owner_unit_id = owner
    if updated is not None:
        device.update_time.FromDatetime(updated)
    return device


def registry_event(message: object, key: str) -> CloudEvent:
    return CloudEvent(
        id=cloudevents.new_event_id(),
        type=message.DESCRIPTOR.full_name,  # type: ignore[attr-defined]
        source="//vigil/registry",
        time=datetime.now(UTC),
        subject=key,
        key=key,
        data=message.SerializeToString(),  # type: ignore[attr-defined]
    )


def site_marked_secret(updated: datetime) -> reg_events.SiteUpdated:
    site = reg_pb.Site(
        site_id="metro-central",
        division_code="320205",
        place_category=reg_pb.PLACE_CATEGORY_TRANSPORT,
        funding=reg_pb.FUNDING_GOVERNMENT,
        secret_related=True,
    )
    site.update_time.FromDatetime(updated)
    return reg_events.SiteUpdated(site=site, changed_fields=["secret_related"])


class FakeRegistry:
    """GetDevice from a dict (NOT_FOUND otherwise); records each device asked about."""

    def __init__(self) -> None:
        self.devices: dict[str, reg_pb.Device] = {}
        self.asked: list[str] = []

    async def GetDevice(self, request: reg_pb.GetDeviceRequest, timeout: float) -> reg_pb.Device:
        self.asked.append(request.device_id)
        found = self.devices.get(request.device_id)
        if found is None:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), "no such device"
            )
        return found


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sessions(sqlite_url: str) -> AsyncIterator[object]:
    engine = db.create_engine(sqlite_url)
    await migrations.upgrade(engine, app.MIGRATIONS)
    try:
        yield db.session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def directory(sessions, registry: FakeRegistry, clock: Clock, ttl_s: float = 1.0) -> DeviceDirectory:
    return DeviceDirectory(
        sessions,
        lambda: registry,  # type: ignore[arg-type,return-value]
        read_sessions=db.read_session_factory(sessions),
        unknown_ttl_s=ttl_s,
        monotonic=clock,
    )


async def test_load_brings_every_stored_device_into_memory(sessions, registry, clock) -> None:
    async with sessions.begin() as session:
        await store.put_device(session, codec.device_facts(camera(KNOWN)), datetime.now(UTC))
    devices = directory(sessions, registry, clock)

    assert await devices.load() == 1

    assert devices.cached(KNOWN) == codec.device_facts(camera(KNOWN))


async def test_an_unknown_device_is_asked_about_once_within_the_ttl(sessions, registry, clock) -> None:
    devices = directory(sessions, registry, clock, ttl_s=1.0)

    assert await devices.lookup(UNKNOWN) is None
    clock.now += 0.9
    assert await devices.lookup(UNKNOWN) is None

    assert registry.asked == [UNKNOWN]


async def test_an_unknown_device_is_asked_about_again_after_the_ttl(sessions, registry, clock) -> None:
    devices = directory(sessions, registry, clock, ttl_s=1.0)
    assert await devices.lookup(UNKNOWN) is None
    registry.devices[UNKNOWN] = camera(UNKNOWN)  # registered meanwhile

    clock.now += 1.0

    assert await devices.lookup(UNKNOWN) == codec.device_facts(camera(UNKNOWN))
    assert registry.asked == [UNKNOWN, UNKNOWN]


async def test_a_registry_event_makes_a_device_known_at_once_despite_an_unknown_answer(
    sessions, registry, clock
) -> None:
    devices = directory(sessions, registry, clock, ttl_s=60.0)
    assert await devices.lookup(UNKNOWN) is None
    event = CloudEvent(
        id=cloudevents.new_event_id(),
        type=reg_events.DeviceRegistered.DESCRIPTOR.full_name,
        source="//vigil/registry",
        time=datetime.now(UTC),
        subject=UNKNOWN,
        key=UNKNOWN,
        data=reg_events.DeviceRegistered(device=camera(UNKNOWN)).SerializeToString(),
    )

    devices.apply(event)

    assert await devices.lookup(UNKNOWN) == codec.device_facts(camera(UNKNOWN))
    assert registry.asked == [UNKNOWN]


async def test_with_a_zero_ttl_every_look_up_asks_the_registry(sessions, registry, clock) -> None:
    devices = directory(sessions, registry, clock, ttl_s=0)

    for _ in range(3):
        assert await devices.lookup(UNKNOWN) is None

    assert registry.asked == [UNKNOWN] * 3


async def test_unknown_answers_are_bounded(sessions, registry, clock, monkeypatch) -> None:
    monkeypatch.setattr(DeviceDirectory, "MAX_UNKNOWN", 2)
    devices = directory(sessions, registry, clock, ttl_s=60.0)
    ids = [f"3202050150132000090{i}" for i in range(3)]
    for device_id in ids:
        await devices.lookup(device_id)

    await devices.lookup(ids[0])  # the oldest answer was dropped: asked again

    assert registry.asked == [*ids, ids[0]]


T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
NEW_OWNER = "113202000142871537"


async def test_a_late_device_event_does_not_undo_a_site_marked_secret(sessions, registry, clock) -> None:
    """ACC-6: the site's update and an earlier event of its device arrive in the other order (two partitions)."""
    devices = directory(sessions, registry, clock)
    arrivals = [
        registry_event(reg_events.DeviceRegistered(device=camera(KNOWN, T0)), KNOWN),
        registry_event(site_marked_secret(T0 + timedelta(seconds=2)), "metro-central"),
        registry_event(
            reg_events.DeviceUpdated(device=camera(KNOWN, T0 + timedelta(seconds=1), NEW_OWNER)), KNOWN
        ),
    ]
    for event in arrivals:
        async with sessions.begin() as session:
            await devices.handle(session, event)

    held = devices.cached(KNOWN)
    assert held is not None and held.secret_related and held.owner_unit == NEW_OWNER
    reloaded = directory(sessions, registry, clock)  # what the table holds, as a restart reads it
    await reloaded.load()
    assert reloaded.cached(KNOWN) == held


async def test_an_event_older_than_the_registrys_answer_does_not_replace_it(
    sessions, registry, clock
) -> None:
    registry.devices[KNOWN] = camera(KNOWN, T0 + timedelta(seconds=1), NEW_OWNER)
    devices = directory(sessions, registry, clock)
    answered = await devices.lookup(KNOWN)

    devices.apply(registry_event(reg_events.DeviceRegistered(device=camera(KNOWN, T0)), KNOWN))  # late

    assert answered is not None and answered.owner_unit == NEW_OWNER
    assert devices.cached(KNOWN) == answered
