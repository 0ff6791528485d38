"""An in-process registry on real SQLite for contract tests, with a movable clock and the outbox readable.

The broker address points at a closed port on purpose: the outbox relay then never starts, so every
event and audit record the registry commits stays in its outbox table, where a test reads it back
exactly (the real-broker path is covered by integration_tests/test_registry_flow.py).
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
from vigil.registry.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil.registry.v1 import registry_service_pb2_grpc as pb_grpc
from vigil_kit import topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.embedded import free_port
from vigil_kit.grpc_client import make_channel
from vigil_kit.migrations import outbox_table
from vigil_kit.service import ServiceContext, run_service
from vigil_registry import app
from vigil_registry.config import Settings
from vigil_registry.status import OfflineDetector
from vigil_testing.calls import service_started as _started
from vigil_testing.poll import apoll_until

# Units of the demo city (valid GB 32100 check characters).
GOV = ("11320200MB0000001T", "City Transport Bureau", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
PSO = ("11320200MB0000002X", "City Public Security Bureau", "UNIT_KIND_PUBLIC_SECURITY_ORGAN")
HOSPITAL = ("12320200MB0000003X", "First People's Hospital", "UNIT_KIND_INSTITUTION")
SHOP = ("91320200MA1ABCDEF0", "Corner Shop Ltd", "UNIT_KIND_ENTERPRISE")

PRINCIPALS: dict[str, dict[str, Any]] = {
    "admin": {"unit": GOV[0], "unit_kind": GOV[2], "roles": ["ROLE_PLATFORM_ADMIN"]},
    "officer": {"unit": PSO[0], "unit_kind": PSO[2], "roles": ["ROLE_PUBLIC_SECURITY_OFFICER"]},
    "auditor": {"unit": PSO[0], "unit_kind": PSO[2], "roles": ["ROLE_AUDITOR"]},
    "hospital": {"unit": HOSPITAL[0], "unit_kind": HOSPITAL[2], "roles": ["ROLE_UNIT_OPERATOR"]},
    "shop": {"unit": SHOP[0], "unit_kind": SHOP[2], "roles": ["ROLE_UNIT_OPERATOR"]},
    "gov": {"unit": GOV[0], "unit_kind": GOV[2], "roles": ["ROLE_UNIT_OPERATOR"]},
    "analyst": {"unit": GOV[0], "unit_kind": GOV[2], "roles": ["ROLE_DEPARTMENT_ANALYST"]},
}

EVENT_TYPES = {
    m.DESCRIPTOR.full_name: m
    for m in (
        events_pb2.UnitCreated,
        events_pb2.UnitUpdated,
        events_pb2.SiteCreated,
        events_pb2.SiteUpdated,
        events_pb2.DeviceRegistered,
        events_pb2.DeviceUpdated,
        events_pb2.DeviceActivated,
        events_pb2.DeviceSuspended,
        events_pb2.DeviceDecommissioned,
        events_pb2.UnauthorizedChangeDetected,
        events_pb2.DeviceWentOnline,
        events_pb2.DeviceWentOffline,
        audit_record_pb2.AuditRecord,
    )
}


class FakeClock:
    """The registry's clock, standing still until a test moves it (real time is never read)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


def device_id(serial: int = 1, *, industry: str = "50", division: str = "320205", network: str = "0") -> str:
    return f"{division}01{industry}132{network}{serial:06d}"


@dataclass
class Event:
    topic: str
    key: str
    type: str
    message: Any


@dataclass
class Registry:
    """The running registry, its clock, and readers for what it committed."""

    settings: Settings
    clock: FakeClock
    issuer: TokenIssuer
    context: ServiceContext | None = None
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def stub(self, who: str = "admin") -> pb_grpc.RegistryServiceStub:
        if who not in self.channels:
            claims = PRINCIPALS[who]
            token = self.issuer.mint(sub=f"user:{who}", name=who, **claims)
            self.channels[who] = make_channel(f"127.0.0.1:{self.settings.grpc_port}", token=token)
        return pb_grpc.RegistryServiceStub(self.channels[who])

    async def events(self, *, topic: str | None = None, type_: type | None = None) -> list[Event]:
        assert self.context is not None
        async with self.context.sessions() as s:
            rows = (await s.execute(select(outbox_table).order_by(outbox_table.c.id))).all()
        out = []
        for r in rows:
            cls = EVENT_TYPES.get(r.ce_type)
            if cls is None:
                continue
            if topic is not None and r.topic != topic:
                continue
            if type_ is not None and cls is not type_:
                continue
            out.append(Event(r.topic, r.key, r.ce_type, cls.FromString(r.payload)))
        return out

    async def audits(self, action: str | None = None) -> list[audit_record_pb2.AuditRecord]:
        records = [e.message for e in await self.events(topic=topics.AUDIT_RECORDS)]
        return [r for r in records if action is None or r.action == action]

    def detector(self) -> OfflineDetector:
        assert self.context is not None
        return next(w for name, w in self.context.workers if name == "offline-detector")


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
    return FakeClock(datetime(2025, 6, 1, 8, 0, tzinfo=UTC))


@pytest.fixture
async def registry(tmp_path, issuer: TokenIssuer, clock: FakeClock) -> AsyncIterator[Registry]:
    settings = Settings(
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        metrics_port=0,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}",
        # Nothing listens here: the relay never starts and the outbox keeps every row (module docstring).
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        auth_public_keys=[issuer.public_key_pem.decode()],
        readiness_interval_s=5,
        shutdown_grace_s=0.5,
        retention_profiles_days={"standard": 30, "extended": 90, "short": 7, "hours": 0.25},
        keepalive_batch_window_s=0.02,
    )
    reg = Registry(settings=settings, clock=clock, issuer=issuer)

    async def build(ctx: ServiceContext) -> list:
        reg.context = ctx
        return await functools.partial(app.build, clock=clock)(ctx)

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_service(settings, build=build, migrations_dir=app.MIGRATIONS, needs_s3=False, stop=stop)
    )
    try:
        await apoll_until(
            lambda: _started(task, settings.grpc_port), timeout=30, interval=0.02, what="registry listening"
        )
        yield reg
    finally:
        for channel in reg.channels.values():
            await channel.close()
        stop.set()
        await asyncio.wait_for(task, 20)
        if reg.context is not None:
            await reg.context.engine.dispose()


# --- lawful records ----------------------------------------------------------------------------------


def unit_msg(unit: tuple[str, str, str]) -> pb.Unit:
    from vigil.common.v1 import identity_pb2

    return pb.Unit(unit_id=unit[0], name=unit[1], kind=identity_pb2.UnitKind.Value(unit[2]))


def hospital_site(**kw: Any) -> pb.Site:
    base = pb.Site(
        site_id="hosp-1",
        name="First People's Hospital",
        division_code="320205",
        address="1 Hospital Road",
        latitude=31.57,
        longitude=120.30,
        place_category=pb.PLACE_CATEGORY_PUBLIC_SERVICES,
        managing_unit_id=HOSPITAL[0],
        funding=pb.FUNDING_GOVERNMENT,
    )
    base.MergeFrom(pb.Site(**kw))
    return base


def camera(serial: int = 1, **kw: Any) -> pb.Device:
    """A lawful, activatable camera at the hospital entrance owned by the hospital."""
    base = pb.Device(
        device_id=device_id(serial),
        site_id="hosp-1",
        owner_unit_id=HOSPITAL[0],
        name=f"Entrance camera {serial}",
        area_type=pb.AREA_TYPE_ENTRANCE,
        latitude=31.5701,
        longitude=120.3001,
        direction_deg=90.0,
        capture_range_m=25.0,
        notice_sign_confirmed=True,
        privacy_masks=[
            pb.PrivacyMask(points=[pb.Point(x=0.1, y=0.1), pb.Point(x=0.3, y=0.1), pb.Point(x=0.3, y=0.4)])
        ],
        privacy_measures="Ward windows masked; access logged",
        vendor="Any Vendor Co.",
        model="X-1",
    )
    for name, value in kw.items():
        if value is None:
            base.ClearField(name)
        else:
            setattr(base, name, value)
    return base


async def seed_city(reg: Registry) -> None:
    """The four units and the hospital site."""
    admin = reg.stub("admin")
    for unit in (GOV, PSO, HOSPITAL, SHOP):
        await admin.CreateUnit(pb.CreateUnitRequest(unit=unit_msg(unit)))
    await admin.CreateSite(pb.CreateSiteRequest(site=hospital_site()))


@pytest.fixture
async def city(registry: Registry) -> Registry:
    await seed_city(registry)
    return registry
