"""Partner subscriptions on the real stack (registry + sharing as processes, the real broker): a partner with
an approved SUBSCRIBE_EVENTS grant subscribes to one device; keepalives stop → it receives that device's
DeviceWentOffline only; the sharing service is SIGKILLed mid-stream and restarted → the stream resumes from
the last cursor with no gap and no duplicate; the grant is revoked → the stream ends and cannot restart."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from vigil.common.v1 import identity_pb2
from vigil.registry.v1 import events_pb2 as reg_events
from vigil.registry.v1 import registry_service_pb2 as reg_pb
from vigil.registry.v1 import registry_service_pb2_grpc as reg_grpc
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil.sharing.v1 import sharing_service_pb2_grpc as pb_grpc
from vigil_kit.auth import TokenIssuer
from vigil_kit.grpc_client import make_channel
from vigil_testing.services import start_together

HOSPITAL = ("12320200MB0000003X", "First People's Hospital", "UNIT_KIND_INSTITUTION")
PSB = ("113202000142870306", "UNIT_KIND_PUBLIC_SECURITY_ORGAN")
PLATFORM = ("11320200014287313E", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
PARTNER = ("91320200703815265X", "UNIT_KIND_PARTNER")
OFFLINE = reg_events.DeviceWentOffline.DESCRIPTOR.full_name
ONLINE = reg_events.DeviceWentOnline.DESCRIPTOR.full_name
TYPES = {OFFLINE: reg_events.DeviceWentOffline, ONLINE: reg_events.DeviceWentOnline}
# The fan-out's faust group joins ~13 s after a start, and after a SIGKILL waits out the dead member too.
DELIVERY_S = 120


def _ts(t: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(t)
    return out


def _device(serial: int) -> reg_pb.Device:
    return reg_pb.Device(
        device_id=f"3202050150132{0}{serial:06d}",
        site_id="hosp-1",
        owner_unit_id=HOSPITAL[0],
        name=f"Entrance {serial}",
        area_type=reg_pb.AREA_TYPE_ENTRANCE,
        latitude=31.57,
        longitude=120.3,
        direction_deg=90,
        capture_range_m=20,
        notice_sign_confirmed=True,
        privacy_measures="ward windows masked",
        keepalive_interval_s=1.0,
        keepalive_timeout_count=2,
    )


async def _next(stream: Any, timeout: float = DELIVERY_S) -> tuple[str, str, pb.PartnerEvent]:
    """(type, device id, event) of the stream's next event."""
    event = await asyncio.wait_for(stream.read(), timeout)
    assert event is not grpc.aio.EOF, "the stream ended"
    return event.ce_type, TYPES[event.ce_type].FromString(event.data).device_id, event


async def test_a_partner_gets_only_its_devices_status_resumes_after_a_crash_and_nothing_after_revocation(
    vigil_service, issuer: TokenIssuer
) -> None:
    registry = vigil_service("registry", start=False)
    sharing = vigil_service(
        "sharing", start=False, REGISTRY_ADDR=registry.address, SERVICE_TOKEN=issuer.mint_service("sharing")
    )
    start_together(registry, sharing)

    def token(who: str, unit: tuple[str, str], role: str) -> str:
        return issuer.mint(sub=f"user:{who}", name=who, unit=unit[0], unit_kind=unit[1], roles=[role])

    admin = make_channel(registry.address, token=token("admin", PLATFORM, "ROLE_PLATFORM_ADMIN"))
    partner_channel = make_channel(sharing.address, token=token("partner", PARTNER, "ROLE_PARTNER"))
    officer_channel = make_channel(
        sharing.address, token=token("officer", PSB, "ROLE_PUBLIC_SECURITY_OFFICER")
    )
    partner = pb_grpc.SharingServiceStub(partner_channel)
    streams: list[Any] = []
    try:
        reg = reg_grpc.RegistryServiceStub(admin)
        await reg.CreateUnit(
            reg_pb.CreateUnitRequest(
                unit=reg_pb.Unit(
                    unit_id=HOSPITAL[0], name=HOSPITAL[1], kind=identity_pb2.UNIT_KIND_INSTITUTION
                )
            )
        )
        await reg.CreateSite(
            reg_pb.CreateSiteRequest(
                site=reg_pb.Site(
                    site_id="hosp-1",
                    name="First People's Hospital",
                    division_code="320205",
                    place_category=reg_pb.PLACE_CATEGORY_PUBLIC_SERVICES,
                    managing_unit_id=HOSPITAL[0],
                    funding=reg_pb.FUNDING_GOVERNMENT,
                )
            )
        )
        serial = secrets.randbelow(10**5)
        granted, other = _device(serial).device_id, _device(serial + 1).device_id
        for serial_n in (serial, serial + 1):
            await reg.RegisterDevice(reg_pb.RegisterDeviceRequest(device=_device(serial_n)))
            await reg.ActivateDevice(reg_pb.ActivateDeviceRequest(device_id=_device(serial_n).device_id))

        now = datetime.now(UTC)
        created = await partner.CreateAccessRequest(
            pb.CreateAccessRequestRequest(
                access_request=pb.AccessRequest(
                    purpose=pb.PURPOSE_PUBLIC_ORDER,
                    legal_basis="hospital entrance status feed, agreement 2026-17",
                    scope=pb.Scope(device_ids=[granted, other]),
                    actions=[pb.ACTION_SUBSCRIBE_EVENTS],
                    valid_until=_ts(now + timedelta(days=7)),
                )
            )
        )
        await pb_grpc.SharingServiceStub(officer_channel).ApproveAccessRequest(
            pb.ApproveAccessRequestRequest(request_id=created.request_id)
        )
        sub = await partner.CreateSubscription(
            pb.CreateSubscriptionRequest(
                subscription=pb.Subscription(
                    grant_id=created.request_id,
                    scope=pb.Scope(device_ids=[granted]),
                    event_types=[OFFLINE, ONLINE],
                )
            )
        )

        # Both devices go silent after activation (1 s × 2) → offline; only `granted` is in scope.
        stream = partner.Subscribe(pb.SubscribeRequest(subscription_id=sub.subscription_id))
        streams.append(stream)
        kind, device, first = await _next(stream)
        assert (kind, device) == (OFFLINE, granted)

        sharing.kill()
        with pytest.raises(grpc.aio.AioRpcError):
            await asyncio.wait_for(stream.read(), 10)
        # While sharing is down both devices come back and go silent again (registry events keep flowing).
        gateway = make_channel(registry.address, token=token("admin", PLATFORM, "ROLE_PLATFORM_ADMIN"))
        try:
            for device_id in (granted, other):
                await reg_grpc.RegistryServiceStub(gateway).Keepalive(
                    reg_pb.KeepaliveRequest(device_id=device_id)
                )
        finally:
            await gateway.close()
        sharing.start()

        resumed = partner.Subscribe(
            pb.SubscribeRequest(subscription_id=sub.subscription_id, cursor=first.cursor)
        )
        streams.append(resumed)
        got = [await _next(resumed) for _ in range(2)]
        assert [(k, d) for k, d, _ in got] == [(ONLINE, granted), (OFFLINE, granted)]
        assert first.ce_id not in {e.ce_id for _, _, e in got}

        await pb_grpc.SharingServiceStub(officer_channel).RevokeGrant(
            pb.RevokeGrantRequest(grant_id=created.request_id)
        )
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while True:  # nothing else was due; the stream must end, not deliver
                extra = await asyncio.wait_for(resumed.read(), 5)
                raise AssertionError(f"delivered after the last expected event: {extra}")
        assert ended.value.code() == grpc.StatusCode.PERMISSION_DENIED, sharing.log_tail()
        again = partner.Subscribe(
            pb.SubscribeRequest(subscription_id=sub.subscription_id, cursor=got[-1][2].cursor)
        )
        streams.append(again)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await asyncio.wait_for(again.read(), 10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        for s in streams:
            s.cancel()
        for channel in (admin, partner_channel, officer_channel):
            await channel.close()
