"""Device use-cases: registration, updates under REG-12, the state machine, units and sites."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from vigil_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied
from vigil_registry.domain import usecases
from vigil_registry.domain.model import AreaType, DeviceState, PlaceCategory, Site, Unit, UnitKind


@pytest.fixture
def registered(world):
    return usecases.register_device(
        world.device(),
        site=world.site(),
        owner=world.hospital,
        caller=world.member(world.hospital),
        policy=world.policy,
        clock=world.clock,
    )


@pytest.fixture
def active(world, registered):
    return usecases.activate_device(
        registered,
        site=world.site(),
        caller=world.member(world.hospital),
        policy=world.policy,
        clock=world.clock,
    ).device


def register(world, device, site=None, owner=None, caller=None, **kw):
    return usecases.register_device(
        device,
        site=site or world.site(),
        owner=owner or world.hospital,
        caller=caller or world.member(world.hospital),
        policy=world.policy,
        clock=world.clock,
        **kw,
    )


def update(world, before, after, caller=None, work_order_ref="", site=None):
    return usecases.update_device(
        before,
        after,
        site=site or world.site(),
        owner=world.hospital,
        caller=caller or world.member(world.hospital),
        policy=world.policy,
        work_order_ref=work_order_ref,
    )


# --- registration ----------------------------------------------------------------------------------


def test_register_returns_a_registered_device_with_resolved_retention_and_defaults(world, registered) -> None:
    assert registered.state == DeviceState.REGISTERED
    assert registered.retention_days == 30
    assert (registered.keepalive_interval_s, registered.keepalive_timeout_count) == (60, 3)
    assert registered.registered_at == world.clock.now


def test_register_ignores_output_only_fields_sent_by_the_client(world) -> None:
    device = register(world, world.device(state=DeviceState.ACTIVE, activated_at=world.clock.now))
    assert (device.state, device.activated_at) == (DeviceState.REGISTERED, None)


def test_register_keeps_the_devices_own_keepalive_settings(world) -> None:
    device = register(world, world.device(keepalive_interval_s=1, keepalive_timeout_count=5))
    assert (device.keepalive_interval_s, device.keepalive_timeout_count) == (1, 5)


def test_register_refuses_a_device_in_a_fitting_room(world) -> None:
    with pytest.raises(InvalidArgument) as err:
        register(world, world.device(area_type=AreaType.FITTING_ROOM))
    assert (err.value.rule, err.value.field) == ("REG-1", "device.area_type")


def test_register_refuses_a_forbidden_place_even_for_a_platform_admin(world) -> None:
    with pytest.raises(InvalidArgument) as err:
        register(world, world.device(area_type=AreaType.HOTEL_GUEST_ROOM), caller=world.admin)
    assert err.value.rule == "REG-1"


def test_register_refuses_an_enterprise_in_a_key_public_area(world) -> None:
    road = world.road()
    device = world.device(site_id=road.site_id, owner_unit_id=world.shop.unit_id)
    with pytest.raises(PermissionDenied) as err:
        register(world, device, site=road, owner=world.shop, caller=world.member(world.shop))
    assert (err.value.rule, err.value.field) == ("REG-3", "device.owner_unit_id")


def test_register_accepts_the_transport_bureau_on_a_key_road(world) -> None:
    road = world.road()
    device = world.device(
        site_id=road.site_id, owner_unit_id=world.gov.unit_id, device_id="32020501041310000001"
    )
    assert register(world, device, site=road, owner=world.gov, caller=world.member(world.gov)).state == (
        DeviceState.REGISTERED
    )


def test_register_refuses_a_caller_from_another_unit(world) -> None:
    with pytest.raises(PermissionDenied) as err:
        register(world, world.device(), caller=world.member(world.shop))
    assert err.value.rule == "REG-3"


def test_register_refuses_a_taken_device_id(world) -> None:
    with pytest.raises(AlreadyExists) as err:
        register(world, world.device(), id_taken=True)
    assert (err.value.rule, err.value.field) == ("REG-10", "device.device_id")


def test_register_refuses_a_bad_id_naming_positions(world) -> None:
    with pytest.raises(InvalidArgument) as err:
        register(world, world.device(device_id="32020501509990000001"))
    assert "positions 11–13 (type code) are 999" in err.value.message


def test_register_refuses_a_short_retention_in_a_mandatory_place(world) -> None:
    with pytest.raises(InvalidArgument) as err:
        register(world, world.device(retention_profile="bench"))
    assert err.value.rule == "ARC-1"


def test_register_accepts_a_seconds_long_retention_in_a_non_public_place(world) -> None:
    office = world.site(place_category=PlaceCategory.NON_PUBLIC)
    device = register(world, world.device(retention_profile="bench"), site=office)
    assert device.retention == timedelta(seconds=30)
    assert device.retention_days == pytest.approx(30 / 86400)


def test_register_accepts_a_device_still_missing_its_notice_sign_and_measures(world) -> None:
    device = register(
        world, world.device(notice_sign_confirmed=False, privacy_measures="", direction_deg=None)
    )
    assert device.state == DeviceState.REGISTERED


def test_register_requires_the_site_the_device_names(world) -> None:
    with pytest.raises(ValueError):
        register(world, world.device(site_id="elsewhere"))


# --- activation and the state machine ---------------------------------------------------------------


def test_activate_makes_a_lawful_device_active_from_now(world, registered) -> None:
    t = usecases.activate_device(
        registered,
        site=world.site(),
        caller=world.member(world.hospital),
        policy=world.policy,
        clock=world.clock,
    )
    assert (t.device.state, t.device.activated_at, t.changed, t.event) == (
        DeviceState.ACTIVE,
        world.clock.now,
        True,
        "DeviceActivated",
    )


def test_activate_is_refused_without_a_notice_sign(world) -> None:
    device = register(world, world.device(notice_sign_confirmed=False))
    with pytest.raises(FailedPrecondition) as err:
        usecases.activate_device(
            device, site=world.site(), caller=world.admin, policy=world.policy, clock=world.clock
        )
    assert (err.value.rule, err.value.field) == ("REG-6", "device.notice_sign_confirmed")


def test_activate_is_refused_near_a_military_zone_without_an_opinion_listing_all_blockers(
    world, registered
) -> None:
    site = world.site(near_military_zone=True)
    device = replace(registered, privacy_measures="")
    with pytest.raises(FailedPrecondition) as err:
        usecases.activate_device(
            device, site=site, caller=world.admin, policy=world.policy, clock=world.clock
        )
    assert err.value.rule == "REG-4"
    assert [f for f, _ in err.value.violations] == ["device.privacy_measures"]


def test_activate_is_refused_once_the_city_forbids_the_devices_area(world, registered) -> None:
    from vigil_registry.domain.model import ForbiddenPlace, RegistryPolicy

    stricter = RegistryPolicy(
        jurisdiction_prefixes=("3202",), extra_forbidden=(ForbiddenPlace(AreaType.ENTRANCE),)
    )
    with pytest.raises(InvalidArgument) as err:
        usecases.activate_device(
            registered, site=world.site(), caller=world.admin, policy=stricter, clock=world.clock
        )
    assert err.value.rule == "REG-1"


def test_activate_is_refused_for_a_caller_from_another_unit(world, registered) -> None:
    with pytest.raises(PermissionDenied):
        usecases.activate_device(
            registered,
            site=world.site(),
            caller=world.member(world.shop),
            policy=world.policy,
            clock=world.clock,
        )


def test_activating_an_active_device_changes_nothing(world, active) -> None:
    world.clock.advance(minutes=5)
    t = usecases.activate_device(
        active, site=world.site(), caller=world.admin, policy=world.policy, clock=world.clock
    )
    assert (t.changed, t.device) == (False, active)


def test_a_suspended_device_can_be_reactivated_from_a_fresh_start(world, active) -> None:
    suspended = usecases.suspend_device(active, caller=world.admin)
    assert (suspended.device.state, suspended.event) == (DeviceState.SUSPENDED, "DeviceSuspended")
    world.clock.advance(hours=1)
    again = usecases.activate_device(
        suspended.device, site=world.site(), caller=world.admin, policy=world.policy, clock=world.clock
    )
    assert (again.device.state, again.device.activated_at) == (DeviceState.ACTIVE, world.clock.now)


def test_suspending_a_suspended_device_changes_nothing(world, active) -> None:
    once = usecases.suspend_device(active, caller=world.admin).device
    assert usecases.suspend_device(once, caller=world.admin).changed is False


def test_decommission_needs_a_work_order(world, active) -> None:
    with pytest.raises(FailedPrecondition) as err:
        usecases.decommission_device(active, caller=world.admin, work_order_ref=" ")
    assert (err.value.rule, err.value.field) == ("REG-12", "work_order_ref")


def test_decommission_with_a_work_order_is_final(world, active) -> None:
    gone = usecases.decommission_device(active, caller=world.admin, work_order_ref="WO-1").device
    assert gone.state == DeviceState.DECOMMISSIONED
    for attempt in (
        lambda: usecases.activate_device(
            gone, site=world.site(), caller=world.admin, policy=world.policy, clock=world.clock
        ),
        lambda: usecases.suspend_device(gone, caller=world.admin),
        lambda: update(world, gone, replace(gone, name="x"), caller=world.admin),
    ):
        with pytest.raises(FailedPrecondition):
            attempt()


def test_decommissioning_twice_changes_nothing(world, active) -> None:
    gone = usecases.decommission_device(active, caller=world.admin, work_order_ref="WO-1").device
    assert usecases.decommission_device(gone, caller=world.admin, work_order_ref="").changed is False


def test_decommission_is_refused_for_a_caller_from_another_unit(world, active) -> None:
    with pytest.raises(PermissionDenied):
        usecases.decommission_device(active, caller=world.member(world.shop), work_order_ref="WO-1")


# --- updates and REG-12 ----------------------------------------------------------------------------


def test_update_renames_an_active_device(world, active) -> None:
    result = update(world, active, replace(active, name="Main entrance"))
    assert (result.device.name, result.changed_fields, result.moved) == ("Main entrance", ("name",), False)


@pytest.mark.parametrize(
    ("field", "value"), [("direction_deg", 180.0), ("latitude", 31.58), ("longitude", 120.31)]
)
def test_update_refuses_to_move_or_reaim_an_active_device_without_a_work_order(
    world, active, field, value
) -> None:
    after = replace(active, **{field: value})
    with pytest.raises(FailedPrecondition) as err:
        update(world, active, after)
    assert (err.value.rule, err.value.field) == ("REG-12", f"device.{field}")


def test_update_reaims_an_active_device_under_a_work_order(world, active) -> None:
    result = update(world, active, replace(active, direction_deg=180.0), work_order_ref="WO-7")
    assert (result.device.direction_deg, result.moved) == (180.0, True)


def test_update_refuses_to_move_a_suspended_device_without_a_work_order(world, active) -> None:
    suspended = usecases.suspend_device(active, caller=world.admin).device
    with pytest.raises(FailedPrecondition):
        update(world, suspended, replace(suspended, direction_deg=10.0))


def test_update_lets_a_registered_device_be_positioned_freely(world, registered) -> None:
    assert update(world, registered, replace(registered, direction_deg=10.0)).moved is True


def test_update_refuses_to_change_output_only_fields(world, active) -> None:
    with pytest.raises(InvalidArgument) as err:
        update(world, active, replace(active, state=DeviceState.SUSPENDED))
    assert err.value.field == "device.state"


def test_update_refuses_to_change_the_device_id(world, active) -> None:
    with pytest.raises(InvalidArgument):
        update(world, active, replace(active, device_id="32020501501320000002"))


def test_update_refuses_to_take_an_active_device_out_of_compliance(world, active) -> None:
    with pytest.raises(FailedPrecondition) as err:
        update(world, active, replace(active, notice_sign_confirmed=False))
    assert err.value.rule == "REG-6"


def test_update_refuses_a_forbidden_area_type(world, registered) -> None:
    with pytest.raises(InvalidArgument) as err:
        update(world, registered, replace(registered, area_type=AreaType.CHANGING_ROOM))
    assert err.value.rule == "REG-1"


def test_update_refuses_a_caller_from_another_unit(world, active) -> None:
    with pytest.raises(PermissionDenied):
        update(world, active, replace(active, name="x"), caller=world.member(world.shop))


def test_update_re_resolves_retention_when_the_profile_changes(world, active) -> None:
    result = update(world, active, replace(active, retention_profile="important"))
    assert result.device.retention_days == 730


# --- REG-12: what a device reports about itself --------------------------------------------------------


def reported(world, device, **kw):
    values = {
        "reported_latitude": device.latitude,
        "reported_longitude": device.longitude,
        "reported_direction_deg": device.direction_deg,
    }
    return usecases.detect_unauthorized_change(device, policy=world.policy, **(values | kw))


def test_reg12_a_device_reporting_its_recorded_position_raises_nothing(world, active) -> None:
    assert reported(world, active) is None


def test_reg12_jitter_within_tolerance_is_not_a_move(world, active) -> None:
    assert (
        reported(world, active, reported_latitude=active.latitude + 0.00002, reported_direction_deg=91.5)
        is None
    )


def test_reg12_a_reported_reaim_without_a_work_order_is_detected(world, active) -> None:
    change = reported(world, active, reported_direction_deg=135.0)
    assert (change.changed_fields, change.angle_deg, change.rule) == (("direction_deg",), 45.0, "REG-12")


def test_reg12_a_reported_move_of_tens_of_metres_is_detected(world, active) -> None:
    change = reported(world, active, reported_latitude=active.latitude + 0.001)
    assert change.changed_fields == ("latitude", "longitude")
    assert change.distance_m == pytest.approx(111.2, abs=1)


def test_reg12_bearings_wrap_around_north(world, active) -> None:
    north = replace(active, direction_deg=359.0)
    assert reported(world, north, reported_direction_deg=0.5) is None


def test_reg12_a_reported_change_under_a_work_order_is_not_an_alert(world, active) -> None:
    assert reported(world, active, reported_direction_deg=135.0, work_order_ref="WO-9") is None


def test_reg12_a_registered_device_is_not_watched_for_moves(world, registered) -> None:
    assert reported(world, registered, reported_direction_deg=135.0) is None


# --- units and sites ---------------------------------------------------------------------------------


def test_only_a_platform_admin_creates_units(world) -> None:
    assert usecases.create_unit(world.shop, caller=world.admin) == world.shop
    with pytest.raises(PermissionDenied):
        usecases.create_unit(world.shop, caller=world.member(world.shop))


def test_creating_a_unit_with_a_bad_credit_code_is_refused(world) -> None:
    with pytest.raises(InvalidArgument) as err:
        usecases.create_unit(Unit("91320200MA1ABCDEF1", "Shop", UnitKind.ENTERPRISE), caller=world.admin)
    assert err.value.field == "unit.unit_id"


def test_the_managing_unit_creates_its_site(world) -> None:
    site = world.site()
    assert (
        usecases.create_site(
            site, managing_unit=world.hospital, caller=world.member(world.hospital), policy=world.policy
        )
        == site
    )


def test_another_unit_cannot_create_a_site_it_does_not_manage(world) -> None:
    with pytest.raises(PermissionDenied):
        usecases.create_site(
            world.site(), managing_unit=world.hospital, caller=world.member(world.shop), policy=world.policy
        )


def test_creating_a_site_outside_the_jurisdiction_is_refused(world) -> None:
    with pytest.raises(InvalidArgument) as err:
        usecases.create_site(
            world.site(division_code="110105"),
            managing_unit=world.hospital,
            caller=world.admin,
            policy=world.policy,
        )
    assert (err.value.rule, err.value.field) == ("REG-10", "site.division_code")


def test_updating_a_site_reports_what_changed_and_keeps_its_id(world) -> None:
    before: Site = world.site()
    result = usecases.update_site(
        before,
        replace(before, military_opinion_ref="JQ-1"),
        managing_unit=world.hospital,
        caller=world.admin,
        policy=world.policy,
    )
    assert result.changed_fields == ("military_opinion_ref",)
    with pytest.raises(InvalidArgument):
        usecases.update_site(
            before,
            replace(before, site_id="x"),
            managing_unit=world.hospital,
            caller=world.admin,
            policy=world.policy,
        )
