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
    if device.state not in WATCHED_STATES:
        return None
    since = last_sign_of_life(device)
    return None if since is None else since + timeout(device)


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
    if not (is_platform_admin(caller) or caller.unit == device.owner_unit_id):
        raise PermissionDenied(
            f"REG-11: unit {caller.unit or '(none)'} may not send keepalives for device {device.device_id}",
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
    # Never move the clock backwards: a late, reordered keepalive must not shorten the window.
    last = device.last_keepalive_time
    heard = now if last is None or now > last else last
    if device.state == DeviceState.OFFLINE:
        outage = now - device.offline_since if device.offline_since is not None else None
        back = replace(device, state=DeviceState.ACTIVE, last_keepalive_time=heard, offline_since=None)
        return KeepaliveOutcome(back, went_online=True, outage=outage)
    return KeepaliveOutcome(replace(device, last_keepalive_time=heard), went_online=False)


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
