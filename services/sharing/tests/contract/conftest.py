"""An in-process sharing service on SQLite and PostgreSQL for contract tests, with a fake registry and a movable clock.

The broker address points at a closed port on purpose: the outbox relay then never starts, so every event
and audit record the service commits stays in its outbox table, where a test reads it back exactly (the
real-broker path — relay, consumers, cross-process propagation — is integration_tests/test_sharing_flow.py).
The registry is a small in-process gRPC server answering GetDevice from a dict the test fills.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from vigil.audit.v1 import audit_record_pb2
from vigil.common.v1 import identity_pb2, time_range_pb2
from vigil.registry.v1 import registry_service_pb2 as reg_pb
from vigil.registry.v1 import registry_service_pb2_grpc as reg_grpc
from vigil.sharing.v1 import events_pb2
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil.sharing.v1 import sharing_service_pb2_grpc as pb_grpc
from vigil_kit import topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.embedded import free_port
from vigil_kit.grpc_client import make_channel
from vigil_kit.migrations import outbox_table
from vigil_kit.service import ServiceContext, run_service
from vigil_sharing import app
from vigil_sharing.api import SharingServicer
from vigil_sharing.config import Settings
from vigil_testing.calls import service_started as _started
from vigil_testing.poll import apoll_until

# The demo city's units (valid GB 32100 codes) and principals.
PSB = ("113202000142870306", "UNIT_KIND_PUBLIC_SECURITY_ORGAN")
TRANSPORT = ("113202000142871537", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
PLATFORM = ("11320200014287313E", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
METRO = ("91320200554682701W", "UNIT_KIND_ENTERPRISE")
PARTNER = ("91320200703815265X", "UNIT_KIND_PARTNER")

PRINCIPALS: dict[str, dict[str, Any]] = {
    "admin": {"unit": PLATFORM[0], "unit_kind": PLATFORM[1], "roles": ["ROLE_PLATFORM_ADMIN"]},
    "officer": {"unit": PSB[0], "unit_kind": PSB[1], "roles": ["ROLE_PUBLIC_SECURITY_OFFICER"]},
    "analyst": {"unit": TRANSPORT[0], "unit_kind": TRANSPORT[1], "roles": ["ROLE_DEPARTMENT_ANALYST"]},
    "metro": {"unit": METRO[0], "unit_kind": METRO[1], "roles": ["ROLE_UNIT_OPERATOR"]},
    "partner": {"unit": PARTNER[0], "unit_kind": PARTNER[1], "roles": ["ROLE_PARTNER"]},
}

EVENT_TYPES = {
    m.DESCRIPTOR.full_name: m
    for m in (
        events_pb2.AccessRequested,
        events_pb2.AccessApproved,
        events_pb2.AccessDenied,
        events_pb2.GrantRevoked,
        events_pb2.GrantExpired,
        events_pb2.PrincipalFactsChanged,
        events_pb2.SubscriptionCreated,
        audit_record_pb2.AuditRecord,
    )
}


def device_id(serial: int) -> str:
    """A GB/T 28181 camera id in district 320205."""
    return f"3202050150132{0}{serial:06d}"


def camera(
    serial: int, *, owner: str = METRO[0], secret: bool = False, funding: int = reg_pb.FUNDING_GOVERNMENT
) -> reg_pb.Device:
    """A registry Device at a metro station, with its site facts."""
    return reg_pb.Device(
        device_id=device_id(serial),
        site_id="metro-central",
        owner_unit_id=owner,
        state=reg_pb.DEVICE_STATE_ACTIVE,
        owner=reg_pb.Unit(unit_id=owner, kind=identity_pb2.UNIT_KIND_ENTERPRISE),
        site=reg_pb.SiteFacts(
            site_id="metro-central",
            division_code="320205",
            place_category=reg_pb.PLACE_CATEGORY_TRANSPORT,
            funding=funding,
            secret_related=secret,
        ),
    )


class FakeRegistry(reg_grpc.RegistryServiceServicer):
    """GetDevice from a dict; records who asked."""

    def __init__(self) -> None:
        self.devices: dict[str, reg_pb.Device] = {}
        self.asked: list[str] = []
        self.port = free_port()
        self.server: grpc.aio.Server | None = None

    def add(self, device: reg_pb.Device) -> str:
        self.devices[device.device_id] = device
        return device.device_id

    async def GetDevice(
        self, request: reg_pb.GetDeviceRequest, context: grpc.aio.ServicerContext
    ) -> reg_pb.Device:
        self.asked.append(request.device_id)
        found = self.devices.get(request.device_id)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no device {request.device_id}")
        return found

    async def start(self) -> None:
        self.server = grpc.aio.server()
        reg_grpc.add_RegistryServiceServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


@dataclass
class Event:
    topic: str
    key: str
    type: str
    message: Any


@dataclass
class Sharing:
    settings: Settings
    clock: FakeClock
    issuer: TokenIssuer
    registry: FakeRegistry
    context: ServiceContext | None = None
    servicer: SharingServicer | None = None
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def token(self, who: str) -> str:
        if who == "service":
            return self.issuer.mint_service("archive")
        claims = PRINCIPALS[who]
        return self.issuer.mint(sub=f"user:{who}", name=who, **claims)

    def stub(self, who: str) -> pb_grpc.SharingServiceStub:
        if who not in self.channels:
            self.channels[who] = make_channel(f"127.0.0.1:{self.settings.grpc_port}", token=self.token(who))
        return pb_grpc.SharingServiceStub(self.channels[who])

    async def events(self, *, topic: str | None = None) -> list[Event]:
        assert self.context is not None
        async with self.context.sessions() as s:
            rows = (await s.execute(select(outbox_table).order_by(outbox_table.c.id))).all()
        out = []
        for r in rows:
            cls = EVENT_TYPES.get(r.ce_type)
            if cls is None or (topic is not None and r.topic != topic):
                continue
            out.append(Event(r.topic, r.key, r.ce_type, cls.FromString(r.payload)))
        return out

    async def audits(self, action: str | None = None) -> list[audit_record_pb2.AuditRecord]:
        records = [e.message for e in await self.events(topic=topics.AUDIT_RECORDS)]
        return [r for r in records if action is None or r.action == action]


def principal(who: str) -> identity_pb2.Principal:
    claims = PRINCIPALS[who]
    return identity_pb2.Principal(
        id=f"user:{who}",
        name=who,
        unit=claims["unit"],
        unit_kind=identity_pb2.UnitKind.Value(claims["unit_kind"]),
        roles=[identity_pb2.Role.Value(r) for r in claims["roles"]],
    )


def window(start: datetime, hours: float) -> time_range_pb2.TimeRange:
    return time_range_pb2.TimeRange(start_time=_ts(start), end_time=_ts(start + timedelta(hours=hours)))


def _ts(t: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    out = Timestamp()
    out.FromDatetime(t)
    return out


def playback_request(devices: list[str], clock: FakeClock, **kw: Any) -> pb.CreateAccessRequestRequest:
    """The analyst's lawful playback request over yesterday's footage, valid for a week."""
    now = clock()
    msg = pb.AccessRequest(
        purpose=pb.PURPOSE_TRAFFIC_MANAGEMENT,
        legal_basis="congestion study, Renmin Rd",
        scope=pb.Scope(device_ids=devices),
        actions=[pb.ACTION_PLAYBACK],
        footage_window=window(now - timedelta(days=1), 24),
        valid_until=_ts(now + timedelta(days=7)),
    )
    for name, value in kw.items():
        if value is None:
            msg.ClearField(name)
        elif isinstance(value, list):
            del getattr(msg, name)[:]
            getattr(msg, name).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(msg, name).CopyFrom(value)
        else:
            setattr(msg, name, value)
    return pb.CreateAccessRequestRequest(access_request=msg)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """run_service configures process-wide JSON logging; put the test process's logging back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def fake_registry() -> AsyncIterator[FakeRegistry]:
    registry = FakeRegistry()
    await registry.start()
    try:
        yield registry
    finally:
        await registry.stop()


@pytest.fixture
async def sharing(
    database_url: str, issuer: TokenIssuer, clock: FakeClock, fake_registry: FakeRegistry
) -> AsyncIterator[Sharing]:
    settings = Settings(
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        metrics_port=0,
        database_url=database_url,
        # Nothing listens here: the relay never starts and the outbox keeps every row (module docstring).
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        auth_public_keys=[issuer.public_key_pem.decode()],
        service_token=issuer.mint_service("sharing"),
        registry_addr=f"127.0.0.1:{fake_registry.port}",
        readiness_interval_s=5,
        shutdown_grace_s=0.5,
    )
    svc = Sharing(settings=settings, clock=clock, issuer=issuer, registry=fake_registry)

    async def build(ctx: ServiceContext) -> list:
        svc.context = ctx
        bindings = await functools.partial(app.build, clock=clock)(ctx)
        svc.servicer = bindings[0].servicer
        return bindings

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_service(settings, build=build, migrations_dir=app.MIGRATIONS, needs_s3=False, stop=stop)
    )
    try:
        await apoll_until(
            lambda: _started(task, settings.grpc_port), timeout=30, interval=0.02, what="sharing listening"
        )
        yield svc
    finally:
        for channel in svc.channels.values():
            await channel.close()
        stop.set()
        await asyncio.wait_for(task, 20)
        if svc.context is not None:
            await svc.context.engine.dispose()
