"""The registry's use-cases: create units and sites, register/update/activate/suspend/decommission devices.

Each takes plain dataclasses already loaded by the caller (the servicer looks entities up and raises
NotFound), the caller's identity, the policy and a clock, and returns the new state or raises a
vigil_kit error naming the rule and the field. Nothing here touches storage or transport.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from vigil_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied

from . import rules
from .model import (
    OUTPUT_ONLY_DEVICE_FIELDS,
    Caller,
    Clock,
    Device,
    DeviceState,
    RegistryPolicy,
    Site,
    Unit,
    is_platform_admin,
)

# Devices that are mounted and in service: moving or re-aiming one needs a work order (REG-12).
# SUSPENDED counts — a suspended camera is still on its pole, and moving it unrecorded is the same harm.
DEPLOYED_STATES = frozenset({DeviceState.ACTIVE, DeviceState.OFFLINE, DeviceState.SUSPENDED})

# REG-12 (799 Art. 23): the facts that make up "position or aim".
POSITION_FIELDS = ("site_id", "latitude", "longitude", "direction_deg")


@dataclass(frozen=True)
class Transition:
    """A use-case's result: the device after, whether anything changed, and the event to publish."""

    device: Device
    changed: bool
    event: str | None = None  # vigil.registry.v1 event message name, e.g. "DeviceActivated"


@dataclass(frozen=True)
class DeviceUpdate:
    device: Device
    changed_fields: tuple[str, ...]
    moved: bool  # position or aim changed (under a work order)


@dataclass(frozen=True)
class SiteUpdate:
    site: Site
    changed_fields: tuple[str, ...]


@dataclass(frozen=True)
class UnauthorizedChange:
    """REG-12 (799 Art. 23): a deployed device reported a new position or aim without a work order.
    The servicer publishes it as UnauthorizedChangeDetected."""

    device_id: str
    changed_fields: tuple[str, ...]
    distance_m: float | None
    angle_deg: float | None
    rule: str = "REG-12"


def _require(condition: bool, what: str) -> None:
    # A mismatch here is a servicer bug (it loaded the wrong entity), not a caller's mistake.
    if not condition:
        raise ValueError(what)


# --- units and sites -------------------------------------------------------------------------------


def create_unit(unit: Unit, *, caller: Caller) -> Unit:
    """Units are the trust roots of REG-3 (a unit's kind decides where it may build), so only a
    platform administrator creates or changes them; a unit cannot declare itself a government
    department."""
    if not is_platform_admin(caller):
        raise PermissionDenied(
            "REG-3: only a platform administrator registers units (a unit's kind decides where it may build)",
            rule="REG-3",
            field="unit",
        )
    rules.raise_first(rules.check_unit(unit))
    return unit


def update_unit(before: Unit, after: Unit, *, caller: Caller) -> Unit:
    if after.unit_id != before.unit_id:
        raise InvalidArgument("unit_id is immutable", field="unit.unit_id")
    return create_unit(after, caller=caller)


def create_site(site: Site, *, managing_unit: Unit, caller: Caller, policy: RegistryPolicy) -> Site:
    """A site under REG-2/3/8/10; the caller acts for the managing unit (or is a platform administrator)."""
    _require(
        managing_unit.unit_id == site.managing_unit_id, "managing_unit does not match site.managing_unit_id"
    )
    violations = rules.check_site(site, policy)
    violations += rules.check_caller_acts_for(caller, site.managing_unit_id, field="site.managing_unit_id")
    rules.raise_first(violations)
    return site


def update_site(
    before: Site, after: Site, *, managing_unit: Unit, caller: Caller, policy: RegistryPolicy
) -> SiteUpdate:
    """A site change: site_id is immutable; the caller acts for the current managing unit, and the new
    state satisfies every site rule (including acting for a new managing unit)."""
    if after.site_id != before.site_id:
        raise InvalidArgument("site_id is immutable", field="site.site_id")
    rules.raise_first(
        rules.check_caller_acts_for(caller, before.managing_unit_id, field="site.managing_unit_id")
    )
    create_site(after, managing_unit=managing_unit, caller=caller, policy=policy)
    return SiteUpdate(after, _changed(before, after))


# --- devices ---------------------------------------------------------------------------------------


def _with_defaults(device: Device, policy: RegistryPolicy) -> Device:
    # REG-11: proto3 sends 0 for an unset field, so 0 means "the policy default".
    if device.keepalive_interval_s and device.keepalive_timeout_count:
        return device  # nothing to fill in (and a copy of a Device is not free: bulk imports make many)
    return replace(
        device,
        keepalive_interval_s=device.keepalive_interval_s or policy.keepalive_interval_s,
        keepalive_timeout_count=device.keepalive_timeout_count or policy.keepalive_timeout_count,
    )


def register_device(
    device: Device,
    *,
    site: Site,
    owner: Unit,
    caller: Caller,
    policy: RegistryPolicy,
    clock: Clock,
    id_taken: bool = False,
) -> Device:
    """RegisterDevice: every registration-time rule (rules.registration_violations), raising the first
    violation — with any others of the same status as extra field violations. Returns the device as
    stored: REGISTERED, retention resolved (ARC-1), keepalive defaults filled in, output-only fields
    reset (a client cannot register a device as already ACTIVE)."""
    rules.raise_first(
        registration_violations(
            device, site=site, owner=owner, caller=caller, policy=policy, id_taken=id_taken
        )
    )
    return registered(device, site=site, policy=policy, clock=clock)


def registration_violations(
    device: Device,
    *,
    site: Site,
    owner: Unit,
    caller: Caller,
    policy: RegistryPolicy,
    id_taken: bool = False,
) -> list[rules.Violation]:
    """Every violation RegisterDevice would refuse `device` for (all of them, in priority order; empty =
    lawful): what ImportDevices reports for each device of a batch."""
    _require(device.site_id == site.site_id, "site does not match device.site_id")
    _require(device.owner_unit_id == owner.unit_id, "owner does not match device.owner_unit_id")
    return rules.registration_violations(
        _with_defaults(device, policy),
        site=site,
        owner=owner,
        caller=caller,
        policy=policy,
        id_taken=id_taken,
    )


def registered(device: Device, *, site: Site, policy: RegistryPolicy, clock: Clock) -> Device:
    """A lawful device (registration_violations empty) as stored: REGISTERED, retention resolved (ARC-1),
    keepalive defaults filled in, output-only fields reset (a client cannot register it as ACTIVE)."""
    device = _with_defaults(device, policy)
    return replace(
        device,
        state=DeviceState.REGISTERED,
        retention=rules.resolve_retention(device.retention_profile, site.place_category, policy),
        last_keepalive_time=None,
        activated_at=None,
        offline_since=None,
        registered_at=clock(),
    )


def update_device(
    before: Device,
    after: Device,
    *,
    site: Site,
    owner: Unit,
    caller: Caller,
    policy: RegistryPolicy,
    work_order_ref: str = "",
) -> DeviceUpdate:
    """UpdateDevice: `after` is `before` with the field mask applied (by the servicer); `site` and `owner`
    are those `after` names.

    Refused: a decommissioned device; changing device_id or output-only fields; a caller who does not
    act for the current owner (REG-3); moving or re-aiming a deployed device without a work order
    (REG-12, 799 Art. 23); a result that fails any registration rule; and, for an ACTIVE device, a
    result that would have blocked its activation (REG-4/5/6) — a device cannot be edited out of
    compliance while it runs.
    """
    _require(after.site_id == site.site_id, "site does not match the updated device.site_id")
    _require(after.owner_unit_id == owner.unit_id, "owner does not match the updated device.owner_unit_id")
    if before.state == DeviceState.DECOMMISSIONED:
        raise FailedPrecondition(
            f"device {before.device_id} is decommissioned and can no longer change", field="device.state"
        )
    if after.device_id != before.device_id:
        raise InvalidArgument("device_id is immutable", rule="REG-10", field="device.device_id")
    for name in OUTPUT_ONLY_DEVICE_FIELDS:
        if getattr(after, name) != getattr(before, name):
            raise InvalidArgument(f"{name} is output-only", field=f"device.{name}")
    rules.raise_first(rules.check_caller_acts_for(caller, before.owner_unit_id))
    moved = tuple(f for f in POSITION_FIELDS if getattr(after, f) != getattr(before, f))
    if moved and before.state in DEPLOYED_STATES and not work_order_ref.strip():
        raise FailedPrecondition(
            f"REG-12 (799 Art. 23): moving or re-aiming deployed device {before.device_id} "
            f"({', '.join(moved)}) needs an approved work order (work_order_ref)",
            rule="REG-12",
            field=f"device.{moved[0]}",
            violations=[(f"device.{f}", "changed without a work order") for f in moved[1:]],
        )
    after = _with_defaults(after, policy)
    rules.raise_first(
        rules.registration_violations(after, site=site, owner=owner, caller=caller, policy=policy)
    )
    if before.state == DeviceState.ACTIVE:
        rules.raise_first(rules.activation_blockers(after, site))
    after = replace(
        after, retention=rules.resolve_retention(after.retention_profile, site.place_category, policy)
    )
    return DeviceUpdate(after, _changed(before, after), moved=bool(moved))


def activate_device(
    device: Device, *, site: Site, caller: Caller, policy: RegistryPolicy, clock: Clock
) -> Transition:
    """ActivateDevice: REGISTERED or SUSPENDED → ACTIVE. Always refused while REG-4, REG-5 or REG-6
    fail (all blockers listed), and re-checks REG-1 and ARC-1 against the current policy (a city may
    have extended its forbidden list since registration). Activating an active device is a no-op."""
    _require(device.site_id == site.site_id, "site does not match device.site_id")
    rules.raise_first(rules.check_caller_acts_for(caller, device.owner_unit_id))
    if device.state == DeviceState.DECOMMISSIONED:
        raise FailedPrecondition(f"device {device.device_id} is decommissioned", field="device.state")
    if device.state in (DeviceState.ACTIVE, DeviceState.OFFLINE):
        return Transition(device, changed=False)
    rules.raise_first(
        rules.check_area_type(device.area_type, site.place_category, policy)
        + rules.check_retention(device.retention_profile, site.place_category, policy)
        + rules.activation_blockers(device, site)
    )
    now = clock()
    return Transition(
        replace(device, state=DeviceState.ACTIVE, activated_at=now, offline_since=None),
        changed=True,
        event="DeviceActivated",
    )


def suspend_device(device: Device, *, caller: Caller) -> Transition:
    """SuspendDevice: any live state → SUSPENDED (keepalives stop being watched). Idempotent."""
    rules.raise_first(rules.check_caller_acts_for(caller, device.owner_unit_id))
    if device.state == DeviceState.DECOMMISSIONED:
        raise FailedPrecondition(f"device {device.device_id} is decommissioned", field="device.state")
    if device.state == DeviceState.SUSPENDED:
        return Transition(device, changed=False)
    return Transition(
        replace(device, state=DeviceState.SUSPENDED, offline_since=None),
        changed=True,
        event="DeviceSuspended",
    )


def decommission_device(device: Device, *, caller: Caller, work_order_ref: str) -> Transition:
    """DecommissionDevice: → DECOMMISSIONED (terminal). REG-12 (799 Art. 23): an unexplained
    decommission is an alert, so it needs a work order reference."""
    rules.raise_first(rules.check_caller_acts_for(caller, device.owner_unit_id))
    if device.state == DeviceState.DECOMMISSIONED:
        return Transition(device, changed=False)
    if not work_order_ref.strip():
        raise FailedPrecondition(
            f"REG-12 (799 Art. 23): decommissioning device {device.device_id} needs an approved work order "
            "(work_order_ref)",
            rule="REG-12",
            field="work_order_ref",
        )
    return Transition(
        replace(device, state=DeviceState.DECOMMISSIONED, offline_since=None),
        changed=True,
        event="DeviceDecommissioned",
    )


# --- REG-12: what the device itself reports --------------------------------------------------------

_EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def angle_between(a: float, b: float) -> float:
    """Smallest difference between two bearings in degrees (359° and 1° are 2° apart)."""
    d = abs(a - b) % 360
    return min(d, 360 - d)


def detect_unauthorized_change(
    device: Device,
    *,
    reported_latitude: float | None,
    reported_longitude: float | None,
    reported_direction_deg: float | None,
    policy: RegistryPolicy,
    work_order_ref: str = "",
) -> UnauthorizedChange | None:
    """REG-12 (799 Art. 23): compare a deployed device's self-reported position and aim with the record.
    Drift within policy tolerance (GPS jitter, PTZ wobble) is not a move; a change beyond it with no
    open work order is an UnauthorizedChange. Facts not reported, or not recorded, are not compared."""
    if device.state not in DEPLOYED_STATES or work_order_ref.strip():
        return None
    changed: list[str] = []
    dist = angle = None
    if None not in (reported_latitude, reported_longitude, device.latitude, device.longitude):
        dist = distance_m(device.latitude, device.longitude, reported_latitude, reported_longitude)  # type: ignore[arg-type]
        if dist > policy.position_tolerance_m:
            changed += ["latitude", "longitude"]
    if reported_direction_deg is not None and device.direction_deg is not None:
        angle = angle_between(device.direction_deg, reported_direction_deg)
        if angle > policy.direction_tolerance_deg:
            changed.append("direction_deg")
    if not changed:
        return None
    return UnauthorizedChange(device.device_id, tuple(changed), distance_m=dist, angle_deg=angle)


def _changed(before: Any, after: Any) -> tuple[str, ...]:
    return tuple(f.name for f in fields(before) if getattr(before, f.name) != getattr(after, f.name))
