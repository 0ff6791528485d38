"""REG-11 keepalive: the offline deadline, going offline and back online, outages over the limit."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil_kit.errors import FailedPrecondition, PermissionDenied
from vigil_registry.domain import keepalive
from vigil_registry.domain.model import Actor, DeviceState


@pytest.fixture
def live(world):
    """An ACTIVE device with the default 60 s × 3, activated at the clock's start."""
    return world.device(
        state=DeviceState.ACTIVE,
        activated_at=world.clock.now,
        keepalive_interval_s=60,
        keepalive_timeout_count=3,
    )


def test_the_default_timeout_is_three_missed_60_second_keepalives(live) -> None:
    assert keepalive.timeout(live) == timedelta(seconds=180)


def test_without_keepalives_the_deadline_runs_from_activation(world, live) -> None:
    assert keepalive.offline_deadline(live) == world.clock.now + timedelta(seconds=180)


def test_a_keepalive_moves_the_deadline(world, live) -> None:
    heard = keepalive.apply_keepalive(live, world.clock.advance(seconds=100)).device
    assert keepalive.offline_deadline(heard) == world.clock.now + timedelta(seconds=180)


def test_a_keepalive_heard_before_activation_does_not_shorten_the_first_window(world, live) -> None:
    early = replace(live, last_keepalive_time=world.clock.now - timedelta(hours=1))
    assert keepalive.offline_deadline(early) == world.clock.now + timedelta(seconds=180)


def test_the_device_stays_online_until_the_deadline(world, live) -> None:
    assert keepalive.mark_offline(live, world.clock.now + timedelta(seconds=179.999)) is None
    assert not keepalive.is_overdue(live, world.clock.now + timedelta(seconds=179.999))


def test_the_device_goes_offline_at_the_deadline_with_the_deadline_as_outage_start(world, live) -> None:
    deadline = world.clock.now + timedelta(seconds=180)
    gone = keepalive.mark_offline(live, deadline + timedelta(seconds=7))
    assert (gone.state, gone.offline_since) == (DeviceState.OFFLINE, deadline)


# The fixtures are immutable here (the clock is not moved), so sharing them across examples is safe.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(interval=st.integers(1, 600), count=st.integers(1, 10))
def test_offline_after_exactly_interval_times_count_of_silence(
    world, live, interval: int, count: int
) -> None:
    device = replace(live, keepalive_interval_s=interval, keepalive_timeout_count=count)
    start = live.activated_at
    assert (
        keepalive.mark_offline(
            device, start + timedelta(seconds=interval * count) - timedelta(microseconds=1)
        )
        is None
    )
    assert (
        keepalive.mark_offline(device, start + timedelta(seconds=interval * count)).state
        == DeviceState.OFFLINE
    )


@pytest.mark.parametrize("state", [DeviceState.REGISTERED, DeviceState.SUSPENDED, DeviceState.DECOMMISSIONED])
def test_devices_that_are_not_active_are_never_marked_offline(world, live, state) -> None:
    assert keepalive.mark_offline(replace(live, state=state), world.clock.now + timedelta(days=9)) is None


def test_an_offline_device_is_back_online_on_the_next_keepalive(world, live) -> None:
    gone = keepalive.mark_offline(live, world.clock.advance(seconds=300))
    back = keepalive.apply_keepalive(gone, world.clock.advance(seconds=20))
    assert (back.device.state, back.went_online, back.device.offline_since) == (
        DeviceState.ACTIVE,
        True,
        None,
    )
    assert back.outage == timedelta(seconds=140)
    assert keepalive.offline_deadline(back.device) == world.clock.now + timedelta(seconds=180)


def test_a_keepalive_on_an_online_device_is_not_a_status_change(world, live) -> None:
    assert keepalive.apply_keepalive(live, world.clock.advance(seconds=10)).went_online is False


def test_a_late_reordered_keepalive_never_moves_the_last_keepalive_backwards(world, live) -> None:
    recent = keepalive.apply_keepalive(live, world.clock.advance(seconds=100)).device
    stale = keepalive.apply_keepalive(recent, world.clock.now - timedelta(seconds=50)).device
    assert stale.last_keepalive_time == world.clock.now


def test_a_registered_device_has_its_keepalive_recorded_without_a_state_change(world, live) -> None:
    early = keepalive.apply_keepalive(replace(live, state=DeviceState.REGISTERED), world.clock.now).device
    assert (early.state, early.last_keepalive_time) == (DeviceState.REGISTERED, world.clock.now)


def test_a_decommissioned_devices_keepalive_is_refused(world, live) -> None:
    with pytest.raises(FailedPrecondition) as err:
        keepalive.apply_keepalive(replace(live, state=DeviceState.DECOMMISSIONED), world.clock.now)
    assert err.value.rule == "REG-11"


def test_keepalives_are_accepted_from_the_owner_unit_and_admins(world, live) -> None:
    keepalive.authorize_keepalive(live, world.member(world.hospital))
    keepalive.authorize_keepalive(live, world.admin)


def test_keepalives_from_another_unit_are_refused(world, live) -> None:
    with pytest.raises(PermissionDenied) as err:
        keepalive.authorize_keepalive(live, Actor(unit=world.shop.unit_id))
    assert err.value.rule == "REG-11"


def test_an_outage_of_three_days_is_within_the_limit_and_a_moment_longer_is_not(world, live) -> None:
    gone = keepalive.mark_offline(live, world.clock.now + timedelta(seconds=180))
    since = gone.offline_since
    assert keepalive.outage(gone, since + timedelta(days=3)) == timedelta(days=3)
    assert not keepalive.outage_over_limit(gone, since + timedelta(days=3), world.policy)
    assert keepalive.outage_over_limit(gone, since + timedelta(days=3, seconds=1), world.policy)


def test_an_online_device_has_no_outage(world, live) -> None:
    assert keepalive.outage(live, world.clock.now + timedelta(days=30)) is None
    assert not keepalive.outage_over_limit(live, world.clock.now + timedelta(days=30), world.policy)


@pytest.mark.parametrize("state", list(DeviceState))
@pytest.mark.parametrize("activated, heard", [(0, None), (None, 5), (0, 5), (10, 5), (None, None)])
def test_the_deadline_is_interval_times_count_after_the_last_sign_of_life_of_an_active_device(
    world, live, state, activated, heard
):
    # Held against last_sign_of_life and timeout, which offline_deadline (via deadline_of) does not use.
    at = {None: None} | {k: world.clock.now + timedelta(seconds=k) for k in (0, 5, 10)}
    device = replace(live, state=state, activated_at=at[activated], last_keepalive_time=at[heard])
    since = keepalive.last_sign_of_life(device)
    expected = since + keepalive.timeout(device) if state == DeviceState.ACTIVE and since else None
    assert keepalive.offline_deadline(device) == expected
