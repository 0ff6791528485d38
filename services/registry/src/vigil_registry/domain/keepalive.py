"""REG-11 keepalive (GB/T 28181 §9.6.1): offline deadlines, going offline/online, outages over the limit."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from vigil_kit.errors import FailedPrecondition, PermissionDenied

from .model import Caller, Device, DeviceState, RegistryPolicy, is_platform_admin

# States whose keepalives are watched: only these can go offline.
WATCHED_STATES = frozenset({DeviceState.ACTIVE})


def timeout(device: Device) -> timedelta:
    """REG-11: interval × count (default 60 s × 3 = 180 s)."""
    return timedelta(seconds=device.keepalive_interval_s * device.keepalive_timeout_count)


def last_sign_of_life(device: Device) -> datetime | None:
    """REG-11: the later of activation and the last keepalive — a keepalive heard before the device
    was (re)activated does not shorten its first window."""
    times = [t for t in (device.activated_at, device.last_keepalive_time) if t is not None]
    return max(times) if times else None


def offline_deadline(device: Device) -> datetime | None:
    """REG-11: when an ACTIVE device goes offline if nothing more is heard; None if it is not watched."""
    return deadline_of(
        device.state,
        device.keepalive_interval_s,
        device.keepalive_timeout_count,
        device.activated_at,
        device.last_keepalive_time,
    )


def deadline_of(
    state: DeviceState,
    interval_s: float,
    count: int,
    activated_at: datetime | None,
    last_keepalive_time: datetime | None,
) -> datetime | None:
    """offline_deadline from the few facts it reads (the keepalive path holds light rows, not Devices)."""
    if state not in WATCHED_STATES:
        return None
    if activated_at is None or last_keepalive_time is None:
        since = activated_at or last_keepalive_time
    else:
        since = max(activated_at, last_keepalive_time)
    return None if since is None else since + timedelta(seconds=interval_s * count)


def is_overdue(device: Device, now: datetime) -> bool:
    """REG-11: true once now has reached the deadline (offline *after* interval × count of silence)."""
    deadline = offline_deadline(device)
    return deadline is not None and now >= deadline


def mark_offline(device: Device, now: datetime) -> Device | None:
    """REG-11: the device gone OFFLINE if its deadline has passed (offline_since = the deadline itself,
    not the moment a sweeper noticed), else None. Emits DeviceWentOffline."""
    deadline = offline_deadline(device)
    if deadline is None or now < deadline:
        return None
    return replace(device, state=DeviceState.OFFLINE, offline_since=deadline)


@dataclass(frozen=True)
class KeepaliveOutcome:
    device: Device
    went_online: bool  # OFFLINE → ACTIVE: emit DeviceWentOnline
    outage: timedelta | None = None  # how long it was offline, when it came back


def authorize_keepalive(device: Device, caller: Caller) -> None:
    """REG-11: without a device key, keepalives come from a platform administrator or the device's own
    unit (a gateway authenticates as its unit)."""
    authorize_keepalive_for(device.device_id, device.owner_unit_id, caller)


def authorize_keepalive_for(device_id: str, owner_unit_id: str, caller: Caller) -> None:
    """authorize_keepalive from the two facts it reads."""
    if not (caller.unit == owner_unit_id or is_platform_admin(caller)):
        raise PermissionDenied(
            f"REG-11: unit {caller.unit or '(none)'} may not send keepalives for device {device_id}",
            rule="REG-11",
            field="device_id",
        )


def apply_keepalive(device: Device, now: datetime) -> KeepaliveOutcome:
    """REG-11: record a keepalive at `now`. An OFFLINE device is back ACTIVE on the next keepalive;
    REGISTERED and SUSPENDED devices have it recorded without a state change; a DECOMMISSIONED device's
    keepalive is refused (it should not be running)."""
    if device.state == DeviceState.DECOMMISSIONED:
        raise FailedPrecondition(
            f"REG-11: device {device.device_id} is decommissioned; its keepalives are not accepted",
            rule="REG-11",
            field="device_id",
        )
    heard = heard_at(device.last_keepalive_time, now)
    if device.state == DeviceState.OFFLINE:
        outage = now - device.offline_since if device.offline_since is not None else None
        back = replace(device, state=DeviceState.ACTIVE, last_keepalive_time=heard, offline_since=None)
        return KeepaliveOutcome(back, went_online=True, outage=outage)
    return KeepaliveOutcome(replace(device, last_keepalive_time=heard), went_online=False)


# States in which a keepalive records its time and nothing else (apply_keepalive: no state change, no
# event); with a caller authorize_keepalive accepts, that is all a keepalive does to such a device.
TIME_ONLY_STATES = frozenset({DeviceState.ACTIVE, DeviceState.REGISTERED, DeviceState.SUSPENDED})


def heard_at(last_keepalive_time: datetime | None, now: datetime) -> datetime:
    """REG-11: the last keepalive time after one heard at `now`. Never moves the clock backwards: a late,
    reordered keepalive must not shorten the window."""
    return now if last_keepalive_time is None or now > last_keepalive_time else last_keepalive_time


def outage(device: Device, now: datetime) -> timedelta | None:
    """How long an OFFLINE device has been offline at `now` (None when it is not offline)."""
    if device.state != DeviceState.OFFLINE or device.offline_since is None:
        return None
    return max(now - device.offline_since, timedelta(0))


def outage_over_limit(device: Device, now: datetime, policy: RegistryPolicy) -> bool:
    """REG-11 (one city's rule, configurable): an outage longer than policy.outage_limit (3 days) is
    non-compliant."""
    current = outage(device, now)
    return current is not None and current > policy.outage_limit
