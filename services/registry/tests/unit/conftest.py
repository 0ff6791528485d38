"""Fixtures for the registry's domain tests: a demo jurisdiction, its units, a lawful site and device."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from vigil_registry.domain.model import (
    ROLE_PLATFORM_ADMIN,
    Actor,
    AreaType,
    Device,
    Funding,
    PlaceCategory,
    PrivacyMask,
    RegistryPolicy,
    Site,
    Unit,
    UnitKind,
)


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


def device_id(
    *, division="320205", grassroots="01", industry="50", type_code="132", network="0", serial="000001"
):
    return f"{division}{grassroots}{industry}{type_code}{network}{serial}"


@dataclass
class World:
    """A small city (jurisdiction 3202): units of every kind, and factories for lawful records."""

    policy: RegistryPolicy
    clock: FakeClock
    # Credit codes with valid GB 32100 check characters.
    gov = Unit("11320200MB0000001T", "City Transport Bureau", UnitKind.GOVERNMENT_DEPARTMENT)
    pso = Unit("11320200MB0000002X", "City Public Security Bureau", UnitKind.PUBLIC_SECURITY_ORGAN)
    hospital = Unit("12320200MB0000003X", "First People's Hospital", UnitKind.INSTITUTION)
    shop = Unit("91320200MA1ABCDEF0", "Corner Shop Ltd", UnitKind.ENTERPRISE)
    other_firm = Unit("91320200MA1ABCDEG3", "Other Firm Ltd", UnitKind.ENTERPRISE)

    admin = Actor(unit="", roles=frozenset({ROLE_PLATFORM_ADMIN}))

    @staticmethod
    def member(unit: Unit) -> Actor:
        return Actor(unit=unit.unit_id, roles=frozenset({"ROLE_UNIT_OPERATOR"}))

    def site(self, **kw) -> Site:
        """A hospital (mandatory category PUBLIC_SERVICES) managed by the hospital."""
        base = Site(
            site_id="hosp-1",
            name="First People's Hospital",
            division_code="320205",
            place_category=PlaceCategory.PUBLIC_SERVICES,
            managing_unit_id=self.hospital.unit_id,
            funding=Funding.GOVERNMENT,
            address="1 Hospital Road",
            latitude=31.57,
            longitude=120.30,
        )
        return replace(base, **kw)

    def road(self, **kw) -> Site:
        """A key public area (trunk road) managed by the transport bureau."""
        fields = {
            "site_id": "road-1",
            "name": "Ring Road / Main Street",
            "place_category": PlaceCategory.ROAD_SQUARE_TUNNEL_BRIDGE,
            "key_public_area": True,
            "managing_unit_id": self.gov.unit_id,
        }
        return self.site(**(fields | kw))

    def device(self, **kw) -> Device:
        """A lawful, activatable camera at the hospital entrance owned by the hospital."""
        base = Device(
            device_id=device_id(),
            site_id="hosp-1",
            owner_unit_id=self.hospital.unit_id,
            name="Entrance camera",
            area_type=AreaType.ENTRANCE,
            latitude=31.5701,
            longitude=120.3001,
            direction_deg=90.0,
            capture_range_m=25.0,
            notice_sign_confirmed=True,
            privacy_masks=(PrivacyMask.of((0.1, 0.1), (0.3, 0.1), (0.3, 0.4)),),
            privacy_measures="Windows of the ward block masked; footage access logged",
            vendor="Any Vendor Co.",
            model="X-1",
        )
        return replace(base, **kw)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 6, 1, 8, 0, tzinfo=UTC))


@pytest.fixture
def policy() -> RegistryPolicy:
    return RegistryPolicy(
        jurisdiction_prefixes=("3202",),
        retention_profiles={
            "standard": timedelta(days=30),
            "extended": timedelta(days=90),
            "important": timedelta(days=730),
            "bench": timedelta(seconds=30),
        },
    )


@pytest.fixture
def world(policy: RegistryPolicy, clock: FakeClock) -> World:
    return World(policy=policy, clock=clock)
