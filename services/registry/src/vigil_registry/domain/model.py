"""The registry's domain vocabulary: units, sites, devices, masks, filings, the policy and the clock."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

# Enum values are the protobuf enum value NAMES of vigil.registry.v1, so that mapping to and from the
# wire is `pb.AreaType.Value(area.value)` / `AreaType(pb.AreaType.Name(n))` and nothing more.


class UnitKind(StrEnum):
    UNSPECIFIED = "UNIT_KIND_UNSPECIFIED"
    GOVERNMENT_DEPARTMENT = "UNIT_KIND_GOVERNMENT_DEPARTMENT"
    PUBLIC_SECURITY_ORGAN = "UNIT_KIND_PUBLIC_SECURITY_ORGAN"
    ENTERPRISE = "UNIT_KIND_ENTERPRISE"
    INSTITUTION = "UNIT_KIND_INSTITUTION"
    INDIVIDUAL = "UNIT_KIND_INDIVIDUAL"
    PARTNER = "UNIT_KIND_PARTNER"


class PlaceCategory(StrEnum):
    """REG-2 (seed Art. 7; 799 Art. 7): the seed's list of places, plus 'other public' and 'non-public'."""

    UNSPECIFIED = "PLACE_CATEGORY_UNSPECIFIED"
    ROAD_SQUARE_TUNNEL_BRIDGE = "PLACE_CATEGORY_ROAD_SQUARE_TUNNEL_BRIDGE"  # Art. 7 (1)
    TRANSPORT = "PLACE_CATEGORY_TRANSPORT"  # (2)
    ENERGY_UTILITIES = "PLACE_CATEGORY_ENERGY_UTILITIES"  # (3)
    HAZARDOUS_MATERIALS = "PLACE_CATEGORY_HAZARDOUS_MATERIALS"  # (4)
    MEDIA_TELECOM_FINANCE = "PLACE_CATEGORY_MEDIA_TELECOM_FINANCE"  # (5)
    PUBLIC_SERVICES = "PLACE_CATEGORY_PUBLIC_SERVICES"  # (6)
    RESIDENTIAL_HOSPITALITY = "PLACE_CATEGORY_RESIDENTIAL_HOSPITALITY"  # (7)
    VALUABLES_TRADE = "PLACE_CATEGORY_VALUABLES_TRADE"  # (8)
    OTHER_PUBLIC = "PLACE_CATEGORY_OTHER_PUBLIC"  # (9): public, but the seed does not name it
    NON_PUBLIC = "PLACE_CATEGORY_NON_PUBLIC"

    @property
    def mandatory(self) -> bool:
        """REG-2 (seed Art. 7 "shall be built"): items (1)–(8) are mandatory; (9) and non-public are not."""
        return self not in _NOT_MANDATORY

    @property
    def public(self) -> bool:
        return self not in (PlaceCategory.NON_PUBLIC, PlaceCategory.UNSPECIFIED)


_NOT_MANDATORY = frozenset({PlaceCategory.UNSPECIFIED, PlaceCategory.OTHER_PUBLIC, PlaceCategory.NON_PUBLIC})
MANDATORY_CATEGORIES = frozenset(c for c in PlaceCategory if c.mandatory)


class AreaType(StrEnum):
    """Where in a place a device looks. The last eight are forbidden (REG-1)."""

    UNSPECIFIED = "AREA_TYPE_UNSPECIFIED"
    ENTRANCE = "AREA_TYPE_ENTRANCE"
    LOBBY = "AREA_TYPE_LOBBY"
    CORRIDOR = "AREA_TYPE_CORRIDOR"
    ROADWAY = "AREA_TYPE_ROADWAY"
    INTERSECTION = "AREA_TYPE_INTERSECTION"
    PLATFORM = "AREA_TYPE_PLATFORM"
    VEHICLE_INTERIOR = "AREA_TYPE_VEHICLE_INTERIOR"
    PARKING = "AREA_TYPE_PARKING"
    PERIMETER = "AREA_TYPE_PERIMETER"
    SERVICE_COUNTER = "AREA_TYPE_SERVICE_COUNTER"
    STOREFRONT = "AREA_TYPE_STOREFRONT"
    OPEN_AREA = "AREA_TYPE_OPEN_AREA"
    OTHER_PUBLIC = "AREA_TYPE_OTHER_PUBLIC"
    HOTEL_GUEST_ROOM = "AREA_TYPE_HOTEL_GUEST_ROOM"
    DORMITORY_ROOM = "AREA_TYPE_DORMITORY_ROOM"
    PUBLIC_BATH = "AREA_TYPE_PUBLIC_BATH"
    TOILET = "AREA_TYPE_TOILET"
    CHANGING_ROOM = "AREA_TYPE_CHANGING_ROOM"
    NURSING_ROOM = "AREA_TYPE_NURSING_ROOM"
    FITTING_ROOM = "AREA_TYPE_FITTING_ROOM"
    PRIVATE_SPACE_VIEW = "AREA_TYPE_PRIVATE_SPACE_VIEW"


class Funding(StrEnum):
    UNSPECIFIED = "FUNDING_UNSPECIFIED"
    GOVERNMENT = "FUNDING_GOVERNMENT"
    PRIVATE = "FUNDING_PRIVATE"


class DeviceState(StrEnum):
    UNSPECIFIED = "DEVICE_STATE_UNSPECIFIED"
    REGISTERED = "DEVICE_STATE_REGISTERED"
    ACTIVE = "DEVICE_STATE_ACTIVE"
    OFFLINE = "DEVICE_STATE_OFFLINE"
    SUSPENDED = "DEVICE_STATE_SUSPENDED"
    DECOMMISSIONED = "DEVICE_STATE_DECOMMISSIONED"


class FilingState(StrEnum):
    UNSPECIFIED = "FILING_STATE_UNSPECIFIED"
    DUE = "FILING_STATE_DUE"
    FILED = "FILING_STATE_FILED"
    OVERDUE = "FILING_STATE_OVERDUE"
    CHANGE_PENDING = "FILING_STATE_CHANGE_PENDING"


# Role names as carried in tokens (vigil.common.v1.Role value names).
ROLE_PLATFORM_ADMIN = "ROLE_PLATFORM_ADMIN"


class Caller(Protocol):
    """Who is asking. vigil_kit.auth.Principal satisfies this; the domain needs only these two facts."""

    @property
    def unit(self) -> str: ...

    @property
    def roles(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class Actor:
    """A plain Caller, for tests, the CLI's local checks and seed loading."""

    unit: str
    roles: frozenset[str] = frozenset()


def is_platform_admin(caller: Caller) -> bool:
    return ROLE_PLATFORM_ADMIN in caller.roles


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The production clock: aware UTC now. Use-cases take a Clock so that tests can move time."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Point:
    """A point in normalised frame coordinates: (0, 0) top-left, (1, 1) bottom-right."""

    x: float
    y: float


@dataclass(frozen=True)
class PrivacyMask:
    """REG-5: a polygon blanked in every export for principals not entitled to unmasked video."""

    points: tuple[Point, ...]

    @classmethod
    def of(cls, *xy: tuple[float, float]) -> PrivacyMask:
        return cls(tuple(Point(float(x), float(y)) for x, y in xy))

    def area(self) -> float:
        """Shoelace area (0 for a degenerate polygon, which masks nothing)."""
        pts = self.points
        twice = sum(a.x * b.y - b.x * a.y for a, b in zip(pts, pts[1:] + pts[:1], strict=True))
        return abs(twice) / 2.0


@dataclass(frozen=True)
class Unit:
    unit_id: str  # unified social credit code (GB 32100)
    name: str
    kind: UnitKind


@dataclass(frozen=True)
class Site:
    site_id: str
    name: str
    division_code: str
    place_category: PlaceCategory
    managing_unit_id: str
    funding: Funding = Funding.UNSPECIFIED
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    key_public_area: bool = False
    near_military_zone: bool = False
    military_opinion_ref: str = ""
    secret_related: bool = False
    # REG-8: project dates for new, renovated or expanded projects (None = not a project site / unknown).
    designed_on: date | None = None
    built_on: date | None = None
    in_use_on: date | None = None


@dataclass(frozen=True)
class Device:
    device_id: str
    site_id: str
    owner_unit_id: str
    name: str
    area_type: AreaType
    latitude: float | None = None
    longitude: float | None = None
    direction_deg: float | None = None
    capture_range_m: float | None = None
    notice_sign_confirmed: bool = False
    privacy_masks: tuple[PrivacyMask, ...] = ()
    privacy_measures: str = ""
    vendor: str = ""  # REG-9: free text
    model: str = ""  # REG-9: free text
    public_key: str = ""  # base64 of the raw 32-byte Ed25519 key; only needed to upload
    retention_profile: str = ""  # "" = the policy's default profile
    # REG-11: 0 = unset; registration fills in the policy's defaults (60 s × 3).
    keepalive_interval_s: float = 0.0
    keepalive_timeout_count: int = 0
    # Output-only: set by the use-cases, never taken from a request.
    state: DeviceState = DeviceState.REGISTERED
    retention: timedelta | None = None  # resolved from retention_profile (ARC-1)
    last_keepalive_time: datetime | None = None
    activated_at: datetime | None = None
    offline_since: datetime | None = None
    registered_at: datetime | None = None

    @property
    def retention_days(self) -> float | None:
        """Resolved retention in days; fractional for the short (sub-day) profiles of non-mandatory places."""
        return None if self.retention is None else self.retention / timedelta(days=1)

    @property
    def type_code(self) -> str:
        """GB/T 28181 positions 11–13 of the device id."""
        return self.device_id[10:13]


# Fields a client may never set through Register/Update; the use-cases own them.
OUTPUT_ONLY_DEVICE_FIELDS = (
    "state",
    "retention",
    "last_keepalive_time",
    "activated_at",
    "offline_since",
    "registered_at",
)


@dataclass(frozen=True)
class FilingFacts:
    """REG-7 (799 Art. 14): the facts a filing records; a change to any of them reopens the filing."""

    device_count: int
    device_types: tuple[tuple[str, int], ...]  # (GB/T 28181 type code, count), sorted
    location: tuple[str, str]  # (division code, address)
    retention_days: tuple[float, ...]  # distinct resolved retention periods, sorted


@dataclass(frozen=True)
class Filing:
    """A unit's system at a site, as filed (or due to be filed) with the county public security organ."""

    unit_id: str
    site_id: str
    in_use_on: date
    due_on: date
    state: FilingState = FilingState.DUE
    filing_number: str = ""
    filed_on: date | None = None
    filed_facts: FilingFacts | None = None
    changes: tuple[str, ...] = ()  # which filed facts changed (set while CHANGE_PENDING)


@dataclass(frozen=True)
class ForbiddenPlace:
    """REG-1: an area type refused everywhere, or only within one place category (a city's extension)."""

    area_type: AreaType
    place_category: PlaceCategory | None = None
    article: str = "seed Art. 9; 799 Art. 8"

    @classmethod
    def parse(cls, text: str) -> ForbiddenPlace:
        """'AREA_TYPE_X' or 'AREA_TYPE_X@PLACE_CATEGORY_Y' (the form settings use)."""
        area, _, category = text.strip().partition("@")
        try:
            return cls(AreaType(area), PlaceCategory(category) if category else None, article="city list")
        except ValueError as e:
            raise ValueError(f"forbidden place {text!r}: {e}") from None


# REG-1 (seed Art. 9; 799 Art. 8): the absolute list. Consent does not override it.
FORBIDDEN_AREA_TYPES = frozenset(
    {
        AreaType.HOTEL_GUEST_ROOM,
        AreaType.DORMITORY_ROOM,
        AreaType.PUBLIC_BATH,
        AreaType.TOILET,
        AreaType.CHANGING_ROOM,
        AreaType.NURSING_ROOM,
        AreaType.FITTING_ROOM,
        AreaType.PRIVATE_SPACE_VIEW,
    }
)

# ARC-1 (799 Art. 17): footage of mandatory places is kept at least 30 days. Not configurable.
MANDATORY_RETENTION_FLOOR = timedelta(days=30)

DEFAULT_RETENTION_PROFILES: Mapping[str, timedelta] = MappingProxyType(
    {
        "standard": timedelta(days=30),  # ARC-1 floor
        "extended": timedelta(days=90),  # anti-terrorism key targets, banks, schools (unverified)
        "important": timedelta(days=730),  # "important public-safety material" (two cities' rule)
        "short": timedelta(days=7),  # non-mandatory places only
    }
)

# REG-10: GB/T 28181 industry code (positions 9–10) ranges by the owner's kind, inclusive.
DEFAULT_INDUSTRY_RANGES: Mapping[UnitKind, tuple[int, int]] = MappingProxyType(
    {
        UnitKind.GOVERNMENT_DEPARTMENT: (0, 39),
        UnitKind.PUBLIC_SECURITY_ORGAN: (0, 39),
        UnitKind.ENTERPRISE: (40, 79),
        UnitKind.INSTITUTION: (40, 79),
        UnitKind.INDIVIDUAL: (80, 89),
        UnitKind.PARTNER: (90, 99),
    }
)


@dataclass(frozen=True)
class RegistryPolicy:
    """The per-city knobs the rules read; built from the registry's Settings at start.

    Construction validates the knobs (ValueError with one clear line) so a bad setting stops the
    service instead of silently weakening a rule.
    """

    # REG-10: administrative division prefixes of the platform's jurisdiction (e.g. ("3202",)).
    jurisdiction_prefixes: tuple[str, ...]
    # REG-1: a city's additions to the forbidden list.
    extra_forbidden: tuple[ForbiddenPlace, ...] = ()
    # ARC-1: retention profiles, name → minimum retention.
    retention_profiles: Mapping[str, timedelta] = field(default_factory=lambda: DEFAULT_RETENTION_PROFILES)
    default_retention_profile: str = "standard"
    # REG-11 (GB/T 28181 §9.6.1) defaults for devices that do not set their own.
    keepalive_interval_s: float = 60.0
    keepalive_timeout_count: int = 3
    # REG-11: an outage longer than this is non-compliant (one city's rule: 3 days).
    outage_limit: timedelta = timedelta(days=3)
    # REG-12: how far a device's self-reported position/aim may drift before it counts as a move.
    position_tolerance_m: float = 5.0
    direction_tolerance_deg: float = 2.0
    industry_ranges: Mapping[UnitKind, tuple[int, int]] = field(
        default_factory=lambda: DEFAULT_INDUSTRY_RANGES
    )
    forbidden: frozenset[ForbiddenPlace] = field(init=False)

    def __post_init__(self) -> None:
        prefixes = tuple(self.jurisdiction_prefixes)
        if not prefixes:
            raise ValueError("jurisdiction_prefixes: at least one division-code prefix is required")
        for p in prefixes:
            if not (p.isdigit() and p.isascii() and 1 <= len(p) <= 6):
                raise ValueError(f"jurisdiction_prefixes: {p!r} is not a 1–6 digit division-code prefix")
        object.__setattr__(self, "jurisdiction_prefixes", prefixes)
        if not self.retention_profiles:
            raise ValueError("retention_profiles: at least one profile is required")
        for name, duration in self.retention_profiles.items():
            if not name or duration <= timedelta(0):
                raise ValueError(f"retention_profiles: {name!r} must have a positive duration")
        if self.default_retention_profile not in self.retention_profiles:
            raise ValueError(f"default_retention_profile {self.default_retention_profile!r} is not a profile")
        object.__setattr__(self, "retention_profiles", MappingProxyType(dict(self.retention_profiles)))
        if not (math.isfinite(self.keepalive_interval_s) and self.keepalive_interval_s >= 1):
            raise ValueError("keepalive_interval_s must be at least 1 second")
        if self.keepalive_timeout_count < 1:
            raise ValueError("keepalive_timeout_count must be at least 1")
        if self.outage_limit <= timedelta(0):
            raise ValueError("outage_limit must be positive")
        base = frozenset(ForbiddenPlace(a) for a in FORBIDDEN_AREA_TYPES)
        object.__setattr__(self, "extra_forbidden", tuple(self.extra_forbidden))
        object.__setattr__(self, "forbidden", base | frozenset(self.extra_forbidden))
