"""The demo city (data/demo_city.json) obeys every registry rule, so `vigil up --demo` seeds it whole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vigil_cli.demo import load_demo_city, platform_units
from vigil_cli.identity import load_directory
from vigil_registry import codec
from vigil_registry.domain import (
    Actor,
    DeviceState,
    FilingState,
    PlaceCategory,
    RegistryPolicy,
    rules,
    usecases,
)
from vigil_registry.domain import filing as filing_rules
from vigil_registry.domain.ids import parse as parse_gb28181

# What `vigil up` runs the registry with (its default jurisdiction: the demo city, 3202).
POLICY = RegistryPolicy(jurisdiction_prefixes=("3202",))
ADMIN = Actor(unit=load_directory().operator_unit.unit_id, roles=frozenset({"ROLE_PLATFORM_ADMIN"}))
CITY = load_demo_city()
UNITS = {u.unit_id: codec.unit_from_pb(u) for u in (*platform_units(load_directory()), *CITY.units)}
SITES = {s.site_id: codec.site_from_pb(s) for s in CITY.sites}
DEVICES = [codec.device_from_pb(d) for d in CITY.devices]


def now() -> datetime:
    return datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def test_the_city_has_several_units_about_ten_sites_and_about_twenty_devices() -> None:
    assert len(CITY.units) >= 5
    assert 10 <= len(CITY.sites) <= 15
    assert 20 <= len(CITY.devices) <= 30


def test_unit_site_and_device_ids_are_unique() -> None:
    assert len(UNITS) == len(CITY.units) + len(load_directory().units)
    assert len(SITES) == len(CITY.sites)
    assert len({d.device_id for d in DEVICES}) == len(DEVICES)


@pytest.mark.parametrize("unit_id", sorted(UNITS))
def test_every_unit_has_a_valid_credit_code_name_and_kind(unit_id: str) -> None:
    assert rules.check_unit(UNITS[unit_id]) == []
    usecases.create_unit(UNITS[unit_id], caller=ADMIN)


@pytest.mark.parametrize("site_id", sorted(SITES))
def test_every_site_is_lawful_and_managed_by_a_known_unit(site_id: str) -> None:
    site = SITES[site_id]
    usecases.create_site(site, managing_unit=UNITS[site.managing_unit_id], caller=ADMIN, policy=POLICY)


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.device_id)
def test_every_device_registers_and_activates(device) -> None:
    site, owner = SITES[device.site_id], UNITS[device.owner_unit_id]
    registered = usecases.register_device(
        device, site=site, owner=owner, caller=ADMIN, policy=POLICY, clock=now
    )
    assert usecases.activate_device(
        registered, site=site, caller=ADMIN, policy=POLICY, clock=now
    ).device.state == (DeviceState.ACTIVE)


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.device_id)
def test_every_device_id_carries_its_sites_division_and_keeps_alive_every_60_s(device) -> None:
    assert parse_gb28181(device.device_id).division_code == SITES[device.site_id].division_code
    assert (device.keepalive_interval_s, device.keepalive_timeout_count) == (60, 3)


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.device_id)
def test_every_device_is_fully_described_with_its_notice_sign_confirmed(device) -> None:
    assert None not in (device.latitude, device.longitude, device.direction_deg, device.capture_range_m)
    assert device.notice_sign_confirmed
    assert device.privacy_measures.strip()
    assert rules.check_privacy_masks(device.privacy_masks) == []


def test_the_city_spans_mandatory_other_public_and_non_public_places() -> None:
    categories = {s.place_category for s in SITES.values()}
    assert PlaceCategory.OTHER_PUBLIC in categories and PlaceCategory.NON_PUBLIC in categories
    assert len(categories & {c for c in PlaceCategory if c.mandatory}) >= 6


def test_the_city_shows_a_key_public_area_a_military_opinion_and_privacy_masks() -> None:
    assert any(s.key_public_area for s in SITES.values())
    assert any(s.near_military_zone and s.military_opinion_ref for s in SITES.values())
    assert sum(1 for d in DEVICES if d.privacy_masks) >= 5


def test_the_city_has_units_of_every_owner_kind_a_city_needs() -> None:
    kinds = {UNITS[d.owner_unit_id].kind.value for d in DEVICES}
    assert {
        "UNIT_KIND_GOVERNMENT_DEPARTMENT",
        "UNIT_KIND_PUBLIC_SECURITY_ORGAN",
        "UNIT_KIND_ENTERPRISE",
        "UNIT_KIND_INSTITUTION",
        "UNIT_KIND_INDIVIDUAL",
    } <= kinds


@pytest.mark.parametrize("request_", CITY.filings, ids=lambda f: f"{f.unit_id}@{f.site_id}")
def test_every_demo_filing_is_for_a_system_in_use_and_records_as_filed(request_) -> None:
    site = SITES[request_.site_id]
    active = [
        usecases.activate_device(
            usecases.register_device(
                d, site=site, owner=UNITS[d.owner_unit_id], caller=ADMIN, policy=POLICY, clock=now
            ),
            site=site,
            caller=ADMIN,
            policy=POLICY,
            clock=now,
        ).device
        for d in DEVICES
        if d.site_id == site.site_id
    ]
    today = now().date()
    filing = filing_rules.open_filing(request_.unit_id, site, active, today)
    assert filing is not None, "the unit has no system in use at the site"
    facts = filing_rules.current_facts(
        site, filing_rules.system_devices(request_.unit_id, site.site_id, active)
    )
    filed = filing_rules.record_filing(
        filing, facts, filing_number=request_.filing_number, filed_on=today, today=today
    )
    assert filed.state == FilingState.FILED


def test_the_demo_leaves_a_system_unfiled_past_its_due_date_for_the_compliance_summary() -> None:
    filed = {(f.unit_id, f.site_id) for f in CITY.filings}
    overdue = [
        s
        for s in SITES.values()
        if s.in_use_on is not None
        and s.in_use_on < now().date() - filing_rules.FILING_PERIOD
        and (s.managing_unit_id, s.site_id) not in filed
    ]
    assert overdue
