"""The registry as a real process on the real broker, on SQLite and PostgreSQL: register → activate →
keepalives → keepalives stop → DeviceWentOffline arrives on Kafka within 2 s after the deadline (REG-11)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from datetime import UTC, datetime

import grpc

from vigil.common.v1 import identity_pb2
from vigil.registry.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil.registry.v1 import registry_service_pb2_grpc as pb_grpc
from vigil_kit import cloudevents, topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.grpc_client import make_channel
from vigil_kit.kafka import create_consumer

HOSPITAL = ("12320200MB0000003X", "First People's Hospital", "UNIT_KIND_INSTITUTION")
ADMIN_UNIT = "11320200MB0000001T"
INTERVAL_S, COUNT = 1.0, 2


async def test_a_silent_device_goes_offline_on_kafka_within_two_seconds_of_its_deadline(
    vigil_service, issuer: TokenIssuer, kafka_broker, database_url: str
) -> None:
    registry = vigil_service("registry", DATABASE_URL=database_url, JURISDICTION_PREFIXES='["3202"]')
    admin_token = issuer.mint(
        sub="user:admin",
        name="admin",
        unit=ADMIN_UNIT,
        unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
        roles=["ROLE_PLATFORM_ADMIN"],
    )
    gateway_token = issuer.mint(
        sub="gateway:hosp",
        name="gateway",
        unit=HOSPITAL[0],
        unit_kind=HOSPITAL[2],
        roles=["ROLE_UNIT_OPERATOR"],
    )
    # A fresh serial per run: the session broker keeps earlier runs' events on the same topic.
    device_id = f"3202050150132{'0'}{secrets.randbelow(10**6):06d}"
    consumer = await create_consumer(
        kafka_broker.address, [topics.DEVICE_STATUS], f"registry-flow-{uuid.uuid4()}"
    )
    admin = make_channel(registry.address, token=admin_token)
    gateway = make_channel(registry.address, token=gateway_token)
    try:
        stub = pb_grpc.RegistryServiceStub(admin)
        await stub.CreateUnit(
            pb.CreateUnitRequest(
                unit=pb.Unit(
                    unit_id=HOSPITAL[0], name=HOSPITAL[1], kind=identity_pb2.UnitKind.Value(HOSPITAL[2])
                )
            )
        )
        await stub.CreateSite(
            pb.CreateSiteRequest(
                site=pb.Site(
                    site_id="hosp-1",
                    name="First People's Hospital",
                    division_code="320205",
                    place_category=pb.PLACE_CATEGORY_PUBLIC_SERVICES,
                    managing_unit_id=HOSPITAL[0],
                    funding=pb.FUNDING_GOVERNMENT,
                )
            )
        )
        await stub.RegisterDevice(
            pb.RegisterDeviceRequest(
                device=pb.Device(
                    device_id=device_id,
                    site_id="hosp-1",
                    owner_unit_id=HOSPITAL[0],
                    name="Entrance",
                    area_type=pb.AREA_TYPE_ENTRANCE,
                    latitude=31.57,
                    longitude=120.3,
                    direction_deg=90,
                    capture_range_m=20,
                    notice_sign_confirmed=True,
                    privacy_measures="ward windows masked",
                    keepalive_interval_s=INTERVAL_S,
                    keepalive_timeout_count=COUNT,
                )
            )
        )
        await stub.ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id))

        keepalives = pb_grpc.RegistryServiceStub(gateway)
        last: pb.KeepaliveResponse | None = None
        for _ in range(3):
            last = await keepalives.Keepalive(pb.KeepaliveRequest(device_id=device_id))
            await asyncio.sleep(INTERVAL_S / 2)  # the device's own cadence, not synchronisation
        assert last is not None and last.state == pb.DEVICE_STATE_ACTIVE
        deadline = last.offline_deadline.ToDatetime(tzinfo=UTC)

        offline = await _wait_for_offline(consumer, device_id, timeout_s=15)
        arrived = datetime.now(UTC)
    finally:
        await admin.close()
        await gateway.close()
        await consumer.stop()

    assert offline.offline_time.ToDatetime(tzinfo=UTC) == deadline
    lag = (arrived - deadline).total_seconds()
    assert 0 <= lag <= 2.0, f"DeviceWentOffline arrived {lag:.2f} s after the deadline\n{registry.log_tail()}"
    got = await _get(registry.address, admin_token, device_id)
    assert got.state == pb.DEVICE_STATE_OFFLINE


async def _wait_for_offline(consumer, device_id: str, timeout_s: float) -> events_pb2.DeviceWentOffline:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        batches = await consumer.getmany(timeout_ms=100)
        for records in batches.values():
            for record in records:
                event = cloudevents.from_record(record)
                if event.key != device_id or event.type != events_pb2.DeviceWentOffline.DESCRIPTOR.full_name:
                    continue
                return cloudevents.decode(event, [events_pb2.DeviceWentOffline])  # type: ignore[return-value]
    raise AssertionError(f"no DeviceWentOffline for {device_id} within {timeout_s} s")


async def _get(address: str, token: str, device_id: str) -> pb.Device:
    async with make_channel(address, token=token) as channel:
        try:
            return await pb_grpc.RegistryServiceStub(channel).GetDevice(
                pb.GetDeviceRequest(device_id=device_id)
            )
        except grpc.aio.AioRpcError as e:  # pragma: no cover - a diagnostic, not an expectation
            raise AssertionError(f"GetDevice failed: {e.code()} {e.details()}") from e
