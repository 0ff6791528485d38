"""Steps many real-stack tests share: principals' tokens, a registered and active device, a signed upload,
a partner's event subscription.

They go through the services' public gRPC APIs only (registry, ingest), exactly as a unit's gateway
and the platform administrator would, so a test built on them exercises the real path.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from vigil.common.v1 import identity_pb2
from vigil.ingest.v1 import ingest_service_pb2 as ipb
from vigil.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from vigil.registry.v1 import registry_service_pb2 as rpb
from vigil.registry.v1 import registry_service_pb2_grpc as rpb_grpc
from vigil.sharing.v1 import sharing_service_pb2 as spb
from vigil.sharing.v1 import sharing_service_pb2_grpc as spb_grpc
from vigil_kit.auth import TokenIssuer
from vigil_kit.grpc_client import make_channel

HOSPITAL = ("12320200MB0000003X", "First People's Hospital", "UNIT_KIND_INSTITUTION")
ADMIN_UNIT = ("11320200MB0000001T", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
PARTNER = ("91320200703815265X", "UNIT_KIND_PARTNER")
MiB = 1024 * 1024


def admin_token(issuer: TokenIssuer) -> str:
    return issuer.mint(
        sub="user:admin",
        name="admin",
        unit=ADMIN_UNIT[0],
        unit_kind=ADMIN_UNIT[1],
        roles=["ROLE_PLATFORM_ADMIN"],
    )


def gateway_token(issuer: TokenIssuer, unit: tuple[str, str, str] = HOSPITAL) -> str:
    return issuer.mint(
        sub=f"gateway:{unit[0]}",
        name="gateway",
        unit=unit[0],
        unit_kind=unit[2],
        roles=["ROLE_UNIT_OPERATOR"],
    )


def partner_token(issuer: TokenIssuer, unit: tuple[str, str] = PARTNER) -> str:
    """A partner unit's user (ROLE_PARTNER): it reads events only through a SUBSCRIBE_EVENTS grant."""
    return issuer.mint(
        sub=f"user:partner-{unit[0]}", name="partner", unit=unit[0], unit_kind=unit[1], roles=["ROLE_PARTNER"]
    )


async def partner_subscription(
    sharing_address: str,
    partner: str,
    approver: str,
    *,
    grant_devices: list[str],
    scope_devices: list[str],
    event_types: list[str],
    legal_basis: str = "status feed under a data-sharing agreement",
    valid_for: timedelta = timedelta(days=7),
) -> spb.Subscription:
    """The partner (its token) asks for ACTION_SUBSCRIBE_EVENTS on `grant_devices`, `approver` (a token of
    someone who may decide, e.g. the owning unit's operator) approves, and the partner subscribes to
    `event_types` of `scope_devices` under that grant."""
    async with (
        make_channel(sharing_address, token=partner) as partner_channel,
        make_channel(sharing_address, token=approver) as approver_channel,
    ):
        stub = spb_grpc.SharingServiceStub(partner_channel)
        valid_until = Timestamp()
        valid_until.FromDatetime(datetime.now(UTC) + valid_for)
        created = await stub.CreateAccessRequest(
            spb.CreateAccessRequestRequest(
                access_request=spb.AccessRequest(
                    purpose=spb.PURPOSE_PUBLIC_ORDER,
                    legal_basis=legal_basis,
                    scope=spb.Scope(device_ids=grant_devices),
                    actions=[spb.ACTION_SUBSCRIBE_EVENTS],
                    valid_until=valid_until,
                )
            )
        )
        await spb_grpc.SharingServiceStub(approver_channel).ApproveAccessRequest(
            spb.ApproveAccessRequestRequest(request_id=created.request_id)
        )
        return await stub.CreateSubscription(
            spb.CreateSubscriptionRequest(
                subscription=spb.Subscription(
                    grant_id=created.request_id,
                    scope=spb.Scope(device_ids=scope_devices),
                    event_types=event_types,
                )
            )
        )


def new_device_id(prefix: str = "32020501501320") -> str:
    """A fresh 20-digit device id: the session's broker and S3 keep earlier tests' events and objects."""
    return f"{prefix}{secrets.randbelow(10 ** (20 - len(prefix))):0{20 - len(prefix)}d}"


def ts_payload(seed: int, packets: int = 64) -> bytes:
    """MPEG-TS-shaped bytes (a sync byte every 188) whose content depends on `seed`."""
    body = hashlib.sha256(str(seed).encode()).digest() * 6
    return b"".join(b"\x47" + bytes([i % 256]) + body[:186] for i in range(packets))


async def register_active_device(
    registry_address: str,
    token: str,
    device_id: str,
    public_key_b64: str,
    *,
    unit: tuple[str, str, str] = HOSPITAL,
    site_id: str = "hosp-1",
    retention_profile: str = "",
    place_category: int = rpb.PLACE_CATEGORY_PUBLIC_SERVICES,
    funding: int = rpb.FUNDING_GOVERNMENT,
) -> None:
    """The unit and site (created once; ALREADY_EXISTS is fine), the device registered and activated.

    A short `retention_profile` (a name from the registry's RETENTION_PROFILES_DAYS) needs a place
    category outside the mandatory ones (ARC-1), e.g. rpb.PLACE_CATEGORY_NON_PUBLIC.
    """
    async with make_channel(registry_address, token=token, default_timeout_s=30) as channel:
        stub = rpb_grpc.RegistryServiceStub(channel)
        # One after the other: a gRPC aio call starts as soon as it is made, and the site needs the unit.
        for call in (
            lambda: stub.CreateUnit(
                rpb.CreateUnitRequest(
                    unit=rpb.Unit(unit_id=unit[0], name=unit[1], kind=identity_pb2.UnitKind.Value(unit[2]))
                )
            ),
            lambda: stub.CreateSite(
                rpb.CreateSiteRequest(
                    site=rpb.Site(
                        site_id=site_id,
                        name=unit[1],
                        division_code="320205",
                        place_category=place_category,
                        managing_unit_id=unit[0],
                        funding=funding,
                    )
                )
            ),
        ):
            try:
                await call()
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
        device = rpb.Device(
            device_id=device_id,
            site_id=site_id,
            owner_unit_id=unit[0],
            name="Entrance",
            area_type=rpb.AREA_TYPE_ENTRANCE,
            latitude=31.57,
            longitude=120.3,
            direction_deg=90,
            capture_range_m=20,
            notice_sign_confirmed=True,
            privacy_measures="ward windows masked",
            public_key=public_key_b64,
            retention_profile=retention_profile,
        )
        await stub.RegisterDevice(rpb.RegisterDeviceRequest(device=device))
        await stub.ActivateDevice(rpb.ActivateDeviceRequest(device_id=device_id))


@dataclass
class Uploader:
    """Signs and uploads segments for one device through ingest, as its gateway does."""

    ingest_address: str
    token: str
    device_id: str
    key: object  # vigil_ingest.domain.signing.DeviceKey

    def header(
        self, data: bytes, start: datetime, sequence: int, duration: timedelta = timedelta(seconds=2)
    ) -> ipb.SegmentHeader:
        from vigil_ingest.domain.signing import SegmentHeader, sign

        digest = hashlib.sha256(data).hexdigest()
        segment = SegmentHeader.of(
            device_id=self.device_id, sequence=sequence, start=start, duration=duration, sha256=digest
        )
        header = ipb.SegmentHeader(
            device_id=self.device_id,
            sequence=sequence,
            container=ipb.CONTAINER_MPEG_TS,
            codec="h264",
            size=len(data),
            sha256=digest,
            signature=sign(self.key.private_key, segment),  # type: ignore[attr-defined]
        )
        header.start_time.FromDatetime(start)
        header.duration.FromTimedelta(duration)
        return header

    async def upload(
        self, data: bytes, start: datetime, sequence: int, duration: timedelta = timedelta(seconds=2)
    ) -> ipb.UploadSegmentResponse:
        header = self.header(data, start, sequence, duration)

        def messages() -> Iterator[ipb.UploadSegmentRequest]:
            yield ipb.UploadSegmentRequest(header=header)
            for i in range(0, len(data), MiB):
                yield ipb.UploadSegmentRequest(chunk=data[i : i + MiB])

        async with make_channel(self.ingest_address, token=self.token, default_timeout_s=30) as channel:
            return await ipb_grpc.IngestServiceStub(channel).UploadSegment(messages())
