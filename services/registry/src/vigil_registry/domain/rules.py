"""The regulation's rules for units, sites and devices, each citing its REQUIREMENTS id and article.

Every check returns a list of Violations (empty = lawful) rather than raising, so that one function
can say everything wrong with a record (the compliance summary, a bulk import's per-line report) and
the use-cases can raise the first. `Violation.to_error()` gives the vigil_kit error whose gRPC status
names the rule (ErrorInfo.reason) and the field.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise

from vigil_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied, VigilError
from vigil_kit.identifiers import validate_uscc

from . import ids
from .model import (
    MANDATORY_RETENTION_FLOOR,
    AreaType,
    Caller,
    Device,
    Funding,
    PlaceCategory,
    PrivacyMask,
    RegistryPolicy,
    Site,
    Unit,
    UnitKind,
    is_platform_admin,
)

ART_REG1 = "seed Art. 9; 799 Art. 8"
ART_REG2 = "seed Art. 7; 799 Art. 7"
ART_REG3 = "seed Art. 8; 799 Art. 7"
ART_REG4 = "seed Art. 7; 799 Art. 10"
ART_REG5 = "seed Art. 9 ¶2"
ART_REG6 = "799 Art. 13"
ART_REG8 = "seed Art. 10"
ART_ARC1 = "799 Art. 17"

# REG-3 (seed Art. 8 ¶1): key areas are built by "the relevant departments of the municipal and
# district governments". A public security organ is itself a department of the people's government,
# so both kinds qualify; enterprises, institutions, individuals and partners do not.
GOVERNMENT_KINDS = frozenset({UnitKind.GOVERNMENT_DEPARTMENT, UnitKind.PUBLIC_SECURITY_ORGAN})

_SITE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_DIVISION = re.compile(r"^[0-9]{6}$")
ED25519_KEY_BYTES = 32


@dataclass(frozen=True)
class Violation:
    """One broken rule: its id (None for plain validation), the field at fault, and why."""

    rule: str | None
    field: str
    message: str
    error: type[VigilError] = InvalidArgument

    def to_error(self, others: Iterable[Violation] = ()) -> VigilError:
        """The error to raise; `others` of the same kind travel as extra field violations."""
        extra = [
            (o.field, f"[{o.rule}] {o.message}" if o.rule else o.message)
            for o in others
            if o.error is self.error
        ]
        return self.error(self.message, rule=self.rule, field=self.field, violations=extra)


def raise_first(violations: Sequence[Violation]) -> None:
    """Raise the first violation (the checks list them in priority order); no-op when lawful."""
    if violations:
        first = violations[0]
        raise first.to_error(violations[1:])


# --- REG-1 -----------------------------------------------------------------------------------------


def check_area_type(area_type: AreaType, category: PlaceCategory, policy: RegistryPolicy) -> list[Violation]:
    """REG-1 (seed Art. 9; 799 Art. 8): no device in a forbidden place, whoever asks; consent does
    not override it. The city's additions (policy.extra_forbidden) may be limited to one category."""
    if area_type == AreaType.UNSPECIFIED:
        return [
            Violation(
                "REG-1",
                "device.area_type",
                f"REG-1 ({ART_REG1}): the device's area type is required, so that forbidden places can be refused",
            )
        ]
    for place in policy.forbidden:
        if place.area_type == area_type and place.place_category in (None, category):
            where = f" in {category.value}" if place.place_category else ""
            return [
                Violation(
                    "REG-1",
                    "device.area_type",
                    f"REG-1 ({place.article}): installing a device in {area_type.value}{where} is forbidden; "
                    "consent does not override this",
                )
            ]
    return []


# --- REG-2 -----------------------------------------------------------------------------------------


def check_place_category(category: PlaceCategory) -> list[Violation]:
    """REG-2 (seed Art. 7; 799 Art. 7): every site carries one of the seed's place categories."""
    if category == PlaceCategory.UNSPECIFIED:
        return [
            Violation(
                "REG-2",
                "site.place_category",
                f"REG-2 ({ART_REG2}): a site needs a place category (one of the seed's list, or non-public)",
            )
        ]
    return []


def is_mandatory(category: PlaceCategory) -> bool:
    """REG-2 (seed Art. 7 "shall be built"): items (1)–(8) of the seed's list are mandatory."""
    return category.mandatory


# --- REG-3 -----------------------------------------------------------------------------------------


def check_builder(owner: Unit, site: Site) -> list[Violation]:
    """REG-3 (seed Art. 8; 799 Art. 7): who may build in this place.

    Key public areas (trunk roads, key intersections, bridges, tunnels, key areas): only a government
    department (a public security organ counts, see GOVERNMENT_KINDS). Every other public place: only
    the unit that manages it ("other units and individuals are not allowed to build ... in public
    places"). Non-public places are outside Art. 8; any unit may own devices there.
    """
    if site.key_public_area:
        if owner.kind not in GOVERNMENT_KINDS:
            return [
                Violation(
                    "REG-3",
                    "device.owner_unit_id",
                    f"REG-3 ({ART_REG3}): site {site.site_id} is a key public area; only a government "
                    f"department may build there, and {owner.unit_id} is {owner.kind.value}",
                    PermissionDenied,
                )
            ]
        return []
    if site.place_category.public and owner.unit_id != site.managing_unit_id:
        return [
            Violation(
                "REG-3",
                "device.owner_unit_id",
                f"REG-3 ({ART_REG3}): only the managing unit {site.managing_unit_id} may build in public "
                f"place {site.site_id}, not {owner.unit_id}",
                PermissionDenied,
            )
        ]
    return []


def check_caller_acts_for(
    caller: Caller, unit_id: str, *, field: str = "device.owner_unit_id"
) -> list[Violation]:
    """REG-3: the caller must belong to the unit it acts for, unless a platform administrator."""
    if is_platform_admin(caller) or caller.unit == unit_id:
        return []
    return [
        Violation(
            "REG-3",
            field,
            f"REG-3 ({ART_REG3}): the caller's unit {caller.unit or '(none)'} may not act for unit {unit_id}",
            PermissionDenied,
        )
    ]


# --- REG-4 -----------------------------------------------------------------------------------------


def check_military_opinion(site: Site) -> list[Violation]:
    """REG-4 (seed Art. 7 ¶3; 799 Art. 10): near a military zone or a secret-related unit, no device
    goes active until the military facility management unit's opinion is recorded."""
    if (site.near_military_zone or site.secret_related) and not site.military_opinion_ref.strip():
        why = (
            "near a military restricted or administrative zone"
            if site.near_military_zone
            else "secret-related"
        )
        return [
            Violation(
                "REG-4",
                "site.military_opinion_ref",
                f"REG-4 ({ART_REG4}): site {site.site_id} is {why}; record the military facility management "
                "unit's opinion (military_opinion_ref) before activating devices",
                FailedPrecondition,
            )
        ]
    return []


# --- REG-5 -----------------------------------------------------------------------------------------


def check_privacy_masks(masks: Sequence[PrivacyMask]) -> list[Violation]:
    """REG-5 (seed Art. 9 ¶2): masks are polygons of at least 3 points in normalised [0, 1] frame
    coordinates, enclosing some area (a degenerate polygon would mask nothing)."""
    out: list[Violation] = []
    for i, mask in enumerate(masks):
        f = f"device.privacy_masks[{i}]"
        if len(mask.points) < 3:
            out.append(Violation("REG-5", f, f"REG-5 ({ART_REG5}): a mask needs at least 3 points"))
            continue
        bad = [
            (j, p)
            for j, p in enumerate(mask.points)
            if not (math.isfinite(p.x) and math.isfinite(p.y) and 0 <= p.x <= 1 and 0 <= p.y <= 1)
        ]
        if bad:
            j, p = bad[0]
            out.append(
                Violation(
                    "REG-5", f, f"REG-5 ({ART_REG5}): point {j} ({p.x}, {p.y}) lies outside the frame [0, 1]"
                )
            )
        elif mask.area() <= 0:
            out.append(Violation("REG-5", f, f"REG-5 ({ART_REG5}): the mask's points enclose no area"))
    return out


def check_privacy_measures(device: Device, site: Site) -> list[Violation]:
    """REG-5 (seed Art. 9 ¶2): a device in a mandatory place declares its privacy measures before it
    goes active."""
    if site.place_category.mandatory and not device.privacy_measures.strip():
        return [
            Violation(
                "REG-5",
                "device.privacy_measures",
                f"REG-5 ({ART_REG5}): a device in mandatory category {site.place_category.value} must declare "
                "its privacy measures before activation",
                FailedPrecondition,
            )
        ]
    return []


# --- REG-6 -----------------------------------------------------------------------------------------


def check_geometry(device: Device) -> list[Violation]:
    """REG-6 (799 Art. 13): position, direction and capture range, when given, are real values."""
    out: list[Violation] = []

    def bad(field: str, value: float | None, low: float, high: float, high_open: bool = False) -> None:
        if value is None:
            return
        ok = math.isfinite(value) and low <= value and (value < high if high_open else value <= high)
        if not ok:
            bound = f"[{low}, {high}{')' if high_open else ']'}"
            out.append(Violation("REG-6", field, f"REG-6 ({ART_REG6}): {field} {value} is outside {bound}"))

    bad("device.latitude", device.latitude, -90, 90)
    bad("device.longitude", device.longitude, -180, 180)
    bad("device.direction_deg", device.direction_deg, 0, 360, high_open=True)
    if device.capture_range_m is not None and not (
        math.isfinite(device.capture_range_m) and device.capture_range_m > 0
    ):
        out.append(
            Violation(
                "REG-6",
                "device.capture_range_m",
                f"REG-6 ({ART_REG6}): capture range {device.capture_range_m} must be a positive distance",
            )
        )
    if (device.latitude is None) != (device.longitude is None):
        out.append(
            Violation(
                "REG-6", "device.longitude", f"REG-6 ({ART_REG6}): latitude and longitude are given together"
            )
        )
    return out


def check_field_of_view(device: Device, site: Site) -> list[Violation]:
    """REG-6 (799 Art. 13): a public-place device records its position, direction and capture range and
    has a confirmed "monitored area" notice sign before it goes active."""
    if not site.place_category.public:
        return []
    out: list[Violation] = []
    missing = [
        f
        for f, v in (
            ("device.latitude", device.latitude),
            ("device.longitude", device.longitude),
            ("device.direction_deg", device.direction_deg),
            ("device.capture_range_m", device.capture_range_m),
        )
        if v is None
    ]
    out += [
        Violation(
            "REG-6",
            f,
            f"REG-6 ({ART_REG6}): a public-place device records {f.removeprefix('device.')} before activation",
            FailedPrecondition,
        )
        for f in missing
    ]
    if not device.notice_sign_confirmed:
        out.append(
            Violation(
                "REG-6",
                "device.notice_sign_confirmed",
                f"REG-6 ({ART_REG6}): a public-place device cannot go active without a confirmed "
                '"monitored area" notice sign',
                FailedPrecondition,
            )
        )
    return out


def activation_blockers(device: Device, site: Site) -> list[Violation]:
    """REG-4, REG-5, REG-6: everything that keeps a device from going (or staying) active."""
    return (
        check_military_opinion(site)
        + check_privacy_measures(device, site)
        + check_field_of_view(device, site)
    )


# --- REG-8 -----------------------------------------------------------------------------------------


def check_project_dates(site: Site) -> list[Violation]:
    """REG-8 (seed Art. 10): a new, renovated or expanded project's video system is designed, built and
    put into use with the main project; the recorded dates run in that order (any may be absent)."""
    steps = [
        ("site.designed_on", site.designed_on),
        ("site.built_on", site.built_on),
        ("site.in_use_on", site.in_use_on),
    ]
    present = [(f, d) for f, d in steps if d is not None]
    for (f1, d1), (f2, d2) in pairwise(present):
        if d2 < d1:
            return [
                Violation(
                    "REG-8",
                    f2,
                    f"REG-8 ({ART_REG8}): {f2.removeprefix('site.')} {d2.isoformat()} is before "
                    f"{f1.removeprefix('site.')} {d1.isoformat()}",
                )
            ]
    return []


# --- REG-9 -----------------------------------------------------------------------------------------
# REG-9 (seed Art. 11): no designated brands. Vendor, model and installer are free text and nothing
# here restricts them to a list — the rule is the absence of a check, pinned by a test.


# --- REG-10 ----------------------------------------------------------------------------------------


def check_device_id(device_id: str, owner: Unit | None, policy: RegistryPolicy) -> list[Violation]:
    """REG-10 (GB/T 28181): 20 digits, division in the jurisdiction, industry code fitting the owner's
    kind, camera type 131/132, network digit 0–8. One violation listing every position at fault."""
    faults = ids.id_faults(
        device_id,
        jurisdiction_prefixes=policy.jurisdiction_prefixes,
        allowed_types=ids.CAMERA_TYPE_CODES,
        owner_kind=owner.kind if owner is not None else None,
        industry_ranges=policy.industry_ranges,
    )
    if faults:
        return [
            Violation(
                "REG-10", "device.device_id", f"REG-10 (GB/T 28181): {device_id!r}: {'; '.join(faults)}"
            )
        ]
    return []


def check_division_code(division_code: str, policy: RegistryPolicy) -> list[Violation]:
    """REG-10: a site's 6-digit administrative division code lies within the platform's jurisdiction."""
    if not _DIVISION.match(division_code):
        return [
            Violation("REG-10", "site.division_code", f"division code {division_code!r} must be 6 digits")
        ]
    if not ids.in_jurisdiction(division_code, policy.jurisdiction_prefixes):
        return [
            Violation(
                "REG-10",
                "site.division_code",
                f"REG-10: division code {division_code} is outside the platform's jurisdiction "
                f"({', '.join(policy.jurisdiction_prefixes)})",
            )
        ]
    return []


# --- REG-11 ----------------------------------------------------------------------------------------


def check_keepalive_params(interval_s: float, count: int) -> list[Violation]:
    """REG-11 (GB/T 28181 §9.6.1): the keepalive interval is at least 1 s; the timeout count at least 1."""
    out: list[Violation] = []
    if not (math.isfinite(interval_s) and interval_s >= 1):
        out.append(
            Violation(
                "REG-11",
                "device.keepalive_interval_s",
                f"REG-11: keepalive interval {interval_s} s is below 1 s",
            )
        )
    if count < 1:
        out.append(
            Violation(
                "REG-11",
                "device.keepalive_timeout_count",
                f"REG-11: keepalive timeout count {count} is below 1",
            )
        )
    return out


# --- ARC-1 -----------------------------------------------------------------------------------------


def resolve_retention(profile: str, category: PlaceCategory, policy: RegistryPolicy) -> timedelta:
    """ARC-1 (799 Art. 17): the device's retention from its profile ("" = the policy default).
    InvalidArgument for an unknown profile or one under 30 days in a mandatory category."""
    raise_first(check_retention(profile, category, policy))
    return policy.retention_profiles[profile or policy.default_retention_profile]


def check_retention(profile: str, category: PlaceCategory, policy: RegistryPolicy) -> list[Violation]:
    """ARC-1 (799 Art. 17): footage of mandatory places is kept at least 30 days; configuring less is
    refused. Shorter profiles are for non-mandatory places only."""
    name = profile or policy.default_retention_profile
    if name not in policy.retention_profiles:
        return [
            Violation(
                "ARC-1",
                "device.retention_profile",
                f"ARC-1: unknown retention profile {name!r} (known: {', '.join(sorted(policy.retention_profiles))})",
            )
        ]
    duration = policy.retention_profiles[name]
    if category.mandatory and duration < MANDATORY_RETENTION_FLOOR:
        return [
            Violation(
                "ARC-1",
                "device.retention_profile",
                f"ARC-1 ({ART_ARC1}): profile {name!r} keeps footage {_human(duration)}; a device in mandatory "
                f"category {category.value} keeps it at least 30 days",
            )
        ]
    return []


def _human(d: timedelta) -> str:
    if d >= timedelta(days=1) and d % timedelta(days=1) == timedelta(0):
        return f"{d.days} days"
    return f"{d.total_seconds():g} s"


# --- plain validation ------------------------------------------------------------------------------


def check_public_key(public_key: str) -> list[Violation]:
    """ARC-4: an upload key, when given, is base64 of a raw 32-byte Ed25519 public key."""
    if not public_key:
        return []
    try:
        raw = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != ED25519_KEY_BYTES:
        return [
            Violation(
                "ARC-4",
                "device.public_key",
                "ARC-4: public_key must be base64 of the raw 32-byte Ed25519 public key",
            )
        ]
    return []


def check_unit(unit: Unit) -> list[Violation]:
    """A unit: a valid unified social credit code (GB 32100 check character; it is a filed fact of
    REG-7's dossier), a name and a kind."""
    out: list[Violation] = []
    try:
        validate_uscc(unit.unit_id)
    except ValueError as e:
        out.append(Violation("REG-7", "unit.unit_id", f"GB 32100: {e}"))
    if not unit.name.strip():
        out.append(Violation(None, "unit.name", "a unit needs a name"))
    if unit.kind == UnitKind.UNSPECIFIED:
        out.append(Violation(None, "unit.kind", "a unit needs a kind"))
    return out


def check_site(site: Site, policy: RegistryPolicy) -> list[Violation]:
    """Every rule a site must satisfy on its own (REG-2, REG-3, REG-8, REG-10), in priority order."""
    out: list[Violation] = []
    if not _SITE_ID.match(site.site_id):
        out.append(
            Violation(
                None, "site.site_id", f"site id {site.site_id!r} must be a lowercase slug such as 'hosp-1'"
            )
        )
    if not site.name.strip():
        out.append(Violation(None, "site.name", "a site needs a name"))
    out += check_place_category(site.place_category)
    if site.key_public_area and not site.place_category.public:
        out.append(
            Violation(
                "REG-3",
                "site.key_public_area",
                f"REG-3 ({ART_REG3}): a key public area cannot be in a non-public place",
            )
        )
    out += check_division_code(site.division_code, policy)
    if not site.managing_unit_id:
        out.append(
            Violation("REG-3", "site.managing_unit_id", "REG-3: a site names the unit that manages it")
        )
    if site.funding == Funding.UNSPECIFIED:
        out.append(Violation("ACC-7", "site.funding", "ACC-7: a site declares government or private funding"))
    for f, v, bound in (("site.latitude", site.latitude, 90), ("site.longitude", site.longitude, 180)):
        if v is not None and not (math.isfinite(v) and -bound <= v <= bound):
            out.append(Violation(None, f, f"{f} {v} is outside [-{bound}, {bound}]"))
    out += check_project_dates(site)
    return out


def registration_violations(
    device: Device,
    *,
    site: Site,
    owner: Unit,
    caller: Caller,
    policy: RegistryPolicy,
    id_taken: bool = False,
) -> list[Violation]:
    """Every registration-time rule, ALL violations, in priority order (the use-case raises the first).

    Order: REG-1 first — it is absolute and the refusal the compliance report must count; then the
    id (REG-10, structure then uniqueness); who may build (REG-3: owner eligibility, then the caller's membership); the shape of
    masks (REG-5) and geometry (REG-6); keepalive (REG-11); retention (ARC-1); the upload key.
    REG-4/5/6 facts that are merely missing do not block registration, only activation.
    """
    out = check_area_type(device.area_type, site.place_category, policy)
    out += check_device_id(device.device_id, owner, policy)
    if id_taken:
        out.append(
            Violation(
                "REG-10",
                "device.device_id",
                f"REG-10: device id {device.device_id} is already registered; ids are unique",
                AlreadyExists,
            )
        )
    out += check_builder(owner, site)
    out += check_caller_acts_for(caller, device.owner_unit_id)
    if not device.name.strip():
        out.append(Violation(None, "device.name", "a device needs a name"))
    out += check_privacy_masks(device.privacy_masks)
    out += check_geometry(device)
    # 0 = unset: the policy's default applies (proto3 sends 0 for a field left out).
    out += check_keepalive_params(
        device.keepalive_interval_s or policy.keepalive_interval_s,
        device.keepalive_timeout_count or policy.keepalive_timeout_count,
    )
    out += check_retention(device.retention_profile, site.place_category, policy)
    out += check_public_key(device.public_key)
    return out
