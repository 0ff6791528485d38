"""Sharing on the real stack (registry + two sharing replicas as processes, the real broker): the analyst
requests playback → cannot approve it → an officer approves → Authorize allows that device and no other →
revoked on one replica → denied on the other within 1 s (ACC-3, vigil.sharing.events.v1)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from vigil.common.v1 import identity_pb2, time_range_pb2
from vigil.registry.v1 import registry_service_pb2 as reg_pb
from vigil.registry.v1 import registry_service_pb2_grpc as reg_grpc
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil.sharing.v1 import sharing_service_pb2_grpc as pb_grpc
from vigil_kit.auth import TokenIssuer
from vigil_kit.errors import from_rpc_error
from vigil_kit.grpc_client import make_channel
from vigil_testing.poll import apoll_until

HOSPITAL = ("12320200MB0000003X", "First People's Hospital", "UNIT_KIND_INSTITUTION")
PSB = ("113202000142870306", "UNIT_KIND_PUBLIC_SECURITY_ORGAN")
TRANSPORT = ("113202000142871537", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
PLATFORM = ("11320200014287313E", "UNIT_KIND_GOVERNMENT_DEPARTMENT")


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
    )


async def test_a_grant_allows_only_its_device_and_a_revocation_reaches_another_replica_within_a_second(
    vigil_service, issuer: TokenIssuer, tmp_path
) -> None:
    registry = vigil_service("registry")
    shared_db = f"sqlite+aiosqlite:///{tmp_path / 'sharing-shared.db'}"
    sharing_env = {
        "DATABASE_URL": shared_db,
        "REGISTRY_ADDR": registry.address,
        "SERVICE_TOKEN": issuer.mint_service("sharing"),
    }
    first = vigil_service("sharing", **sharing_env)
    second = vigil_service("sharing", **sharing_env)

    def token(who: str, unit: tuple[str, str], role: str) -> str:
        return issuer.mint(sub=f"user:{who}", name=who, unit=unit[0], unit_kind=unit[1], roles=[role])

    admin = make_channel(registry.address, token=token("admin", PLATFORM, "ROLE_PLATFORM_ADMIN"))
    analyst_1 = make_channel(first.address, token=token("analyst", TRANSPORT, "ROLE_DEPARTMENT_ANALYST"))
    analyst_2 = make_channel(second.address, token=token("analyst", TRANSPORT, "ROLE_DEPARTMENT_ANALYST"))
    officer = make_channel(first.address, token=token("officer", PSB, "ROLE_PUBLIC_SECURITY_OFFICER"))
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
        granted, other = _device(serial), _device(serial + 1)
        for device in (granted, other):
            await reg.RegisterDevice(reg_pb.RegisterDeviceRequest(device=device))
            await reg.ActivateDevice(reg_pb.ActivateDeviceRequest(device_id=device.device_id))

        now = datetime.now(UTC)
        footage = time_range_pb2.TimeRange(start_time=_ts(now - timedelta(days=1)), end_time=_ts(now))
        analyst = pb_grpc.SharingServiceStub(analyst_1)
        created = await analyst.CreateAccessRequest(
            pb.CreateAccessRequestRequest(
                access_request=pb.AccessRequest(
                    purpose=pb.PURPOSE_TRAFFIC_MANAGEMENT,
                    legal_basis="congestion study, Renmin Rd",
                    scope=pb.Scope(device_ids=[granted.device_id]),
                    actions=[pb.ACTION_PLAYBACK],
                    footage_window=footage,
                    valid_until=_ts(now + timedelta(days=7)),
                )
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as own:
            await analyst.ApproveAccessRequest(pb.ApproveAccessRequestRequest(request_id=created.request_id))
        assert (own.value.code(), from_rpc_error(own.value).rule) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "ACC-3",
        )
        approved = await pb_grpc.SharingServiceStub(officer).ApproveAccessRequest(
            pb.ApproveAccessRequestRequest(request_id=created.request_id)
        )
        assert approved.state == pb.REQUEST_STATE_APPROVED

        read = time_range_pb2.TimeRange(
            start_time=_ts(now - timedelta(hours=3)), end_time=_ts(now - timedelta(hours=1))
        )

        def playback(device: reg_pb.Device) -> pb.AuthorizeRequest:
            return pb.AuthorizeRequest(
                action=pb.ACTION_PLAYBACK, device_id=device.device_id, footage_window=read
            )

        assert (await analyst.Authorize(playback(granted))).allowed
        denied = await analyst.Authorize(playback(other))
        assert not denied.allowed and denied.rule == "ACC-2"
        unknown = await analyst.Authorize(
            pb.AuthorizeRequest(action=pb.ACTION_LIVE_VIEW, device_id="32020501501320999999")
        )
        assert not unknown.allowed and "unknown device" in unknown.reason

        # The other replica learns of the approval from vigil.sharing.events.v1 too.
        elsewhere = pb_grpc.SharingServiceStub(analyst_2)

        async def allowed_elsewhere() -> bool:
            return (await elsewhere.Authorize(playback(granted))).allowed

        await apoll_until(
            allowed_elsewhere, timeout=10, interval=0.05, what="the grant on the second replica"
        )

        await pb_grpc.SharingServiceStub(officer).RevokeGrant(
            pb.RevokeGrantRequest(grant_id=created.request_id)
        )
        revoked_at = time.monotonic()
        assert not (await analyst.Authorize(playback(granted))).allowed  # at once where it was revoked

        async def denied_elsewhere() -> bool:
            return not (await elsewhere.Authorize(playback(granted))).allowed

        await apoll_until(
            denied_elsewhere, timeout=5, interval=0.02, what="the revocation on the second replica"
        )
        lag = time.monotonic() - revoked_at
        assert lag <= 1.0, (
            f"the second replica still allowed {lag:.2f} s after the revocation\n{second.log_tail()}"
        )
    finally:
        for channel in (admin, analyst_1, analyst_2, officer):
            await channel.close()
