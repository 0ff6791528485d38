"""The regulation's rules one by one: each accepts what is lawful and refuses what is not."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied
from vigil_registry.domain import rules
from vigil_registry.domain.model import (
    FORBIDDEN_AREA_TYPES,
    MANDATORY_CATEGORIES,
    Actor,
    AreaType,
    ForbiddenPlace,
    Funding,
    PlaceCategory,
    PrivacyMask,
    RegistryPolicy,
    Unit,
    UnitKind,
)

ALLOWED_AREA_TYPES = [a for a in AreaType if a not in FORBIDDEN_AREA_TYPES and a != AreaType.UNSPECIFIED]


def only(violations: list[rules.Violation]) -> rules.Violation:
    assert len(violations) == 1, violations
    return violations[0]


# --- REG-1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("area", sorted(FORBIDDEN_AREA_TYPES))
def test_reg1_refuses_every_forbidden_area_type_naming_rule_and_article(area: AreaType, policy) -> None:
    v = only(rules.check_area_type(area, PlaceCategory.RESIDENTIAL_HOSPITALITY, policy))
    assert (v.rule, v.field, v.error) == ("REG-1", "device.area_type", InvalidArgument)
    assert "seed Art. 9; 799 Art. 8" in v.message
    assert area.value in v.message


@pytest.mark.parametrize("area", ALLOWED_AREA_TYPES)
def test_reg1_accepts_every_allowed_area_type(area: AreaType, policy) -> None:
    assert rules.check_area_type(area, PlaceCategory.RESIDENTIAL_HOSPITALITY, policy) == []


def test_reg1_refuses_a_forbidden_place_even_in_a_non_public_place(policy) -> None:
    assert only(rules.check_area_type(AreaType.TOILET, PlaceCategory.NON_PUBLIC, policy)).rule == "REG-1"


def test_reg1_refuses_a_device_without_an_area_type(policy) -> None:
    assert only(rules.check_area_type(AreaType.UNSPECIFIED, PlaceCategory.TRANSPORT, policy)).rule == "REG-1"


def test_reg1_city_extension_forbids_bank_counters_only_in_finance_places() -> None:
    city = RegistryPolicy(
        jurisdiction_prefixes=("3202",),
        extra_forbidden=(
            ForbiddenPlace.parse("AREA_TYPE_SERVICE_COUNTER@PLACE_CATEGORY_MEDIA_TELECOM_FINANCE"),
        ),
    )
    refused = only(rules.check_area_type(AreaType.SERVICE_COUNTER, PlaceCategory.MEDIA_TELECOM_FINANCE, city))
    assert "city list" in refused.message
    assert rules.check_area_type(AreaType.SERVICE_COUNTER, PlaceCategory.PUBLIC_SERVICES, city) == []


def test_reg1_city_extension_without_a_category_applies_everywhere() -> None:
    city = RegistryPolicy(
        jurisdiction_prefixes=("3202",), extra_forbidden=(ForbiddenPlace.parse("AREA_TYPE_LOBBY"),)
    )
    assert only(rules.check_area_type(AreaType.LOBBY, PlaceCategory.TRANSPORT, city)).rule == "REG-1"


def test_reg1_city_extension_cannot_name_an_unknown_area_type() -> None:
    with pytest.raises(ValueError, match="AREA_TYPE_POLLING"):
        ForbiddenPlace.parse("AREA_TYPE_POLLING")


# --- REG-2 ---------------------------------------------------------------------------------------


def test_reg2_all_categories_but_other_public_and_non_public_are_mandatory() -> None:
    assert {c for c in PlaceCategory if not c.mandatory} == {
        PlaceCategory.UNSPECIFIED,
        PlaceCategory.OTHER_PUBLIC,
        PlaceCategory.NON_PUBLIC,
    }
    assert len(MANDATORY_CATEGORIES) == 8
    assert rules.is_mandatory(PlaceCategory.TRANSPORT)


def test_reg2_refuses_a_site_without_a_place_category() -> None:
    v = only(rules.check_place_category(PlaceCategory.UNSPECIFIED))
    assert (v.rule, v.field) == ("REG-2", "site.place_category")


def test_reg2_accepts_any_listed_category() -> None:
    assert all(rules.check_place_category(c) == [] for c in PlaceCategory if c != PlaceCategory.UNSPECIFIED)


# --- REG-3 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("owner", ["gov", "pso"])
def test_reg3_government_departments_and_public_security_may_build_in_key_areas(world, owner: str) -> None:
    assert rules.check_builder(getattr(world, owner), world.road()) == []


@pytest.mark.parametrize("owner", ["hospital", "shop"])
def test_reg3_refuses_a_non_government_builder_in_a_key_area(world, owner: str) -> None:
    v = only(rules.check_builder(getattr(world, owner), world.road()))
    assert (v.rule, v.field, v.error) == ("REG-3", "device.owner_unit_id", PermissionDenied)
    assert "key public area" in v.message


def test_reg3_refuses_an_individual_in_a_key_area(world) -> None:
    person = Unit("91320200MA1ABCDEF0", "Resident", UnitKind.INDIVIDUAL)
    assert only(rules.check_builder(person, world.road())).rule == "REG-3"


def test_reg3_the_managing_unit_may_build_in_its_mandatory_place(world) -> None:
    assert rules.check_builder(world.hospital, world.site()) == []


@pytest.mark.parametrize("owner", ["shop", "gov"])
def test_reg3_refuses_any_other_unit_in_a_mandatory_place(world, owner: str) -> None:
    v = only(rules.check_builder(getattr(world, owner), world.site()))
    assert v.rule == "REG-3"
    assert world.hospital.unit_id in v.message


def test_reg3_refuses_another_unit_in_a_non_mandatory_public_place(world) -> None:
    square = world.site(place_category=PlaceCategory.OTHER_PUBLIC, managing_unit_id=world.shop.unit_id)
    assert only(rules.check_builder(world.other_firm, square)).rule == "REG-3"


def test_reg3_any_unit_may_build_in_a_non_public_place(world) -> None:
    office = world.site(place_category=PlaceCategory.NON_PUBLIC, managing_unit_id=world.shop.unit_id)
    assert rules.check_builder(world.other_firm, office) == []


def test_reg3_the_caller_must_belong_to_the_owner_unit(world) -> None:
    assert rules.check_caller_acts_for(world.member(world.hospital), world.hospital.unit_id) == []
    v = only(rules.check_caller_acts_for(world.member(world.shop), world.hospital.unit_id))
    assert (v.rule, v.error) == ("REG-3", PermissionDenied)


def test_reg3_a_platform_admin_may_act_for_any_unit(world) -> None:
    assert rules.check_caller_acts_for(world.admin, world.hospital.unit_id) == []


def test_reg3_a_caller_without_a_unit_acts_for_nobody(world) -> None:
    assert only(rules.check_caller_acts_for(Actor(unit=""), world.hospital.unit_id)).rule == "REG-3"


# --- REG-4 ---------------------------------------------------------------------------------------


def test_reg4_refuses_activation_near_a_military_zone_without_an_opinion(world) -> None:
    v = only(rules.check_military_opinion(world.site(near_military_zone=True)))
    assert (v.rule, v.field, v.error) == ("REG-4", "site.military_opinion_ref", FailedPrecondition)


def test_reg4_refuses_a_secret_related_site_without_an_opinion(world) -> None:
    assert (
        only(rules.check_military_opinion(world.site(secret_related=True, military_opinion_ref=" "))).rule
        == "REG-4"
    )


def test_reg4_accepts_a_flagged_site_once_the_opinion_is_recorded(world) -> None:
    site = world.site(near_military_zone=True, military_opinion_ref="JQ-2025-017")
    assert rules.check_military_opinion(site) == []


def test_reg4_does_not_apply_to_ordinary_sites(world) -> None:
    assert rules.check_military_opinion(world.site()) == []


# --- REG-5 ---------------------------------------------------------------------------------------


def test_reg5_accepts_masks_of_three_or_more_points_inside_the_frame() -> None:
    masks = (
        PrivacyMask.of((0, 0), (1, 0), (1, 1)),
        PrivacyMask.of((0.2, 0.2), (0.4, 0.2), (0.4, 0.4), (0.2, 0.4)),
    )
    assert rules.check_privacy_masks(masks) == []


def test_reg5_refuses_a_mask_with_fewer_than_three_points() -> None:
    v = only(rules.check_privacy_masks((PrivacyMask.of((0, 0), (1, 1)),)))
    assert (v.rule, v.field) == ("REG-5", "device.privacy_masks[0]")


@pytest.mark.parametrize("bad", [(1.01, 0.5), (-0.1, 0.5), (0.5, 2.0), (math.nan, 0.5), (math.inf, 0.5)])
def test_reg5_refuses_a_mask_point_outside_the_normalised_frame(bad: tuple[float, float]) -> None:
    masks = (PrivacyMask.of((0, 0), (1, 0), (1, 1)), PrivacyMask.of((0, 0), bad, (0.5, 0.5)))
    v = only(rules.check_privacy_masks(masks))
    assert v.field == "device.privacy_masks[1]"
    assert "outside the frame" in v.message


def test_reg5_refuses_a_mask_that_encloses_no_area() -> None:
    assert "no area" in only(rules.check_privacy_masks((PrivacyMask.of((0, 0), (0.5, 0.5), (1, 1)),))).message


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=3, max_size=12))
def test_reg5_any_in_frame_polygon_is_refused_only_for_lacking_area(points) -> None:
    mask = PrivacyMask.of(*points)
    found = rules.check_privacy_masks((mask,))
    assert found == [] if mask.area() > 0 else "no area" in only(found).message


def test_reg5_refuses_activation_in_a_mandatory_place_without_privacy_measures(world) -> None:
    v = only(rules.check_privacy_measures(world.device(privacy_measures="  "), world.site()))
    assert (v.rule, v.field, v.error) == ("REG-5", "device.privacy_measures", FailedPrecondition)


def test_reg5_accepts_declared_privacy_measures(world) -> None:
    assert rules.check_privacy_measures(world.device(), world.site()) == []


def test_reg5_measures_are_not_required_outside_mandatory_places(world) -> None:
    square = world.site(place_category=PlaceCategory.OTHER_PUBLIC)
    assert rules.check_privacy_measures(world.device(privacy_measures=""), square) == []


# --- REG-6 ---------------------------------------------------------------------------------------


def test_reg6_accepts_a_public_place_device_with_position_aim_range_and_sign(world) -> None:
    assert rules.check_field_of_view(world.device(), world.site()) == []


def test_reg6_refuses_activation_without_a_confirmed_notice_sign(world) -> None:
    v = only(rules.check_field_of_view(world.device(notice_sign_confirmed=False), world.site()))
    assert (v.rule, v.field, v.error) == ("REG-6", "device.notice_sign_confirmed", FailedPrecondition)


@pytest.mark.parametrize("missing", ["latitude", "longitude", "direction_deg", "capture_range_m"])
def test_reg6_refuses_activation_without_each_field_of_view_fact(world, missing: str) -> None:
    v = only(rules.check_field_of_view(world.device(**{missing: None}), world.site()))
    assert v.field == f"device.{missing}"


def test_reg6_does_not_apply_to_non_public_places(world) -> None:
    bare = world.device(notice_sign_confirmed=False, latitude=None, longitude=None, direction_deg=None)
    assert rules.check_field_of_view(bare, world.site(place_category=PlaceCategory.NON_PUBLIC)) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latitude", 91.0),
        ("longitude", -180.5),
        ("direction_deg", 360.0),
        ("direction_deg", -1.0),
        ("capture_range_m", 0.0),
    ],
)
def test_reg6_refuses_geometry_out_of_range(world, field: str, value: float) -> None:
    other = {"latitude": 0.0, "longitude": 0.0} if field in ("latitude", "longitude") else {}
    other[field] = value
    assert only(rules.check_geometry(world.device(**other))).field == f"device.{field}"


def test_reg6_refuses_latitude_without_longitude(world) -> None:
    assert only(rules.check_geometry(world.device(longitude=None))).field == "device.longitude"


def test_reg6_accepts_unset_geometry_at_registration(world) -> None:
    assert (
        rules.check_geometry(
            world.device(latitude=None, longitude=None, direction_deg=None, capture_range_m=None)
        )
        == []
    )


def test_activation_blockers_list_every_failing_rule(world) -> None:
    site = world.site(near_military_zone=True)
    device = world.device(privacy_measures="", notice_sign_confirmed=False)
    assert [v.rule for v in rules.activation_blockers(device, site)] == ["REG-4", "REG-5", "REG-6"]


# --- REG-8 ---------------------------------------------------------------------------------------


def test_reg8_accepts_dates_in_order_including_the_same_day(world) -> None:
    d = date(2024, 3, 1)
    assert (
        rules.check_project_dates(
            world.site(designed_on=d, built_on=d + timedelta(days=90), in_use_on=d + timedelta(days=90))
        )
        == []
    )


def test_reg8_refuses_building_before_design(world) -> None:
    v = only(rules.check_project_dates(world.site(designed_on=date(2024, 3, 1), built_on=date(2024, 2, 1))))
    assert (v.rule, v.field) == ("REG-8", "site.built_on")


def test_reg8_refuses_use_before_design_when_build_date_is_missing(world) -> None:
    v = only(rules.check_project_dates(world.site(designed_on=date(2024, 3, 1), in_use_on=date(2024, 1, 1))))
    assert v.field == "site.in_use_on"


def test_reg8_accepts_a_site_without_project_dates(world) -> None:
    assert rules.check_project_dates(world.site()) == []


# --- REG-9 ---------------------------------------------------------------------------------------


# The fixtures are immutable records, so sharing them across hypothesis examples is safe.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(vendor=st.text(max_size=80), model=st.text(max_size=80))
def test_reg9_any_vendor_and_model_string_is_accepted(world, vendor: str, model: str) -> None:
    device = world.device(vendor=vendor, model=model)
    site = world.site()
    member = world.member(world.hospital)
    assert (
        rules.registration_violations(
            device, site=site, owner=world.hospital, caller=member, policy=world.policy
        )
        == []
    )


# --- REG-10 (records; the id itself is in test_registry_ids) -----------------------------------------


def test_reg10_refuses_a_device_id_whose_industry_code_does_not_fit_the_owner(world) -> None:
    v = only(rules.check_device_id("32020501001320000001", world.hospital, world.policy))
    assert (v.rule, v.field) == ("REG-10", "device.device_id")
    assert "positions 9–10 (industry code) are 00" in v.message


def test_reg10_accepts_a_lawful_device_id(world) -> None:
    assert rules.check_device_id("32020501501320000001", world.hospital, world.policy) == []


def test_reg10_refuses_a_site_division_outside_the_jurisdiction(world) -> None:
    v = only(rules.check_division_code("110105", world.policy))
    assert (v.rule, v.field) == ("REG-10", "site.division_code")


@pytest.mark.parametrize("code", ["32020", "3202055", "32O205", ""])
def test_reg10_refuses_a_division_code_that_is_not_six_digits(world, code: str) -> None:
    assert only(rules.check_division_code(code, world.policy)).field == "site.division_code"


def test_reg10_accepts_a_division_inside_any_configured_prefix() -> None:
    policy = RegistryPolicy(jurisdiction_prefixes=("3202", "320581"))
    assert rules.check_division_code("320581", policy) == []
    assert rules.check_division_code("320211", policy) == []


# --- REG-11 --------------------------------------------------------------------------------------


def test_reg11_accepts_a_one_second_interval() -> None:
    assert rules.check_keepalive_params(1, 1) == []


@pytest.mark.parametrize(
    ("interval", "count", "field"),
    [(0.5, 3, "interval_s"), (math.nan, 3, "interval_s"), (60, 0, "timeout_count")],
)
def test_reg11_refuses_an_interval_below_one_second_or_a_count_below_one(interval, count, field) -> None:
    v = only(rules.check_keepalive_params(interval, count))
    assert (v.rule, v.field) == ("REG-11", f"device.keepalive_{field}")


# --- ARC-1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "days"), [("", 30), ("standard", 30), ("extended", 90), ("important", 730)]
)
def test_arc1_resolves_profiles_at_or_above_the_floor_in_mandatory_places(
    policy, profile: str, days: int
) -> None:
    assert rules.resolve_retention(profile, PlaceCategory.TRANSPORT, policy) == timedelta(days=days)


def test_arc1_refuses_a_profile_under_30_days_in_a_mandatory_place(policy) -> None:
    with pytest.raises(InvalidArgument) as err:
        rules.resolve_retention("bench", PlaceCategory.TRANSPORT, policy)
    assert (err.value.rule, err.value.field) == ("ARC-1", "device.retention_profile")
    assert "30 s" in err.value.message and "at least 30 days" in err.value.message


@pytest.mark.parametrize("category", [PlaceCategory.OTHER_PUBLIC, PlaceCategory.NON_PUBLIC])
def test_arc1_allows_a_seconds_long_profile_outside_mandatory_places(policy, category) -> None:
    assert rules.resolve_retention("bench", category, policy) == timedelta(seconds=30)


def test_arc1_refuses_an_unknown_profile(policy) -> None:
    v = only(rules.check_retention("forever", PlaceCategory.NON_PUBLIC, policy))
    assert (v.rule, v.field) == ("ARC-1", "device.retention_profile")


def test_arc1_the_default_profiles_are_standard_extended_important_and_short() -> None:
    profiles = RegistryPolicy(jurisdiction_prefixes=("3202",)).retention_profiles
    assert {k: v.days for k, v in profiles.items()} == {
        "standard": 30,
        "extended": 90,
        "important": 730,
        "short": 7,
    }


# --- units, sites, the policy -----------------------------------------------------------------------


def test_a_unit_with_a_valid_credit_code_is_accepted(world) -> None:
    assert rules.check_unit(world.hospital) == []


def test_a_unit_with_a_wrong_check_character_is_refused_naming_position_18(world) -> None:
    v = only(rules.check_unit(Unit("12320200MB0000003Y", "Hospital", UnitKind.INSTITUTION)))
    assert v.field == "unit.unit_id"
    assert "position 18" in v.message


def test_a_unit_needs_a_kind(world) -> None:
    assert only(rules.check_unit(Unit(world.shop.unit_id, "Shop", UnitKind.UNSPECIFIED))).field == "unit.kind"


def test_a_lawful_site_passes_every_site_rule(world) -> None:
    assert rules.check_site(world.site(), world.policy) == []
    assert rules.check_site(world.road(), world.policy) == []


def test_a_key_public_area_cannot_be_non_public(world) -> None:
    v = only(rules.check_site(world.road(place_category=PlaceCategory.NON_PUBLIC), world.policy))
    assert (v.rule, v.field) == ("REG-3", "site.key_public_area")


@pytest.mark.parametrize("site_id", ["Hosp 1", "-x", "", "a" * 70])
def test_a_site_id_must_be_a_slug(world, site_id: str) -> None:
    assert only(rules.check_site(world.site(site_id=site_id), world.policy)).field == "site.site_id"


def test_a_site_must_declare_its_funding(world) -> None:
    assert (
        only(rules.check_site(world.site(funding=Funding.UNSPECIFIED), world.policy)).field == "site.funding"
    )


def test_site_checks_report_every_violation_in_priority_order(world) -> None:
    site = world.site(
        place_category=PlaceCategory.UNSPECIFIED,
        division_code="110105",
        built_on=date(2020, 1, 1),
        designed_on=date(2021, 1, 1),
    )
    assert [v.rule for v in rules.check_site(site, world.policy)] == ["REG-2", "REG-10", "REG-8"]


@pytest.mark.parametrize(
    "kw",
    [
        {"jurisdiction_prefixes": ()},
        {"jurisdiction_prefixes": ("32a2",)},
        {"jurisdiction_prefixes": ("3202",), "retention_profiles": {"x": timedelta(0)}},
        {"jurisdiction_prefixes": ("3202",), "default_retention_profile": "nope"},
        {"jurisdiction_prefixes": ("3202",), "keepalive_interval_s": 0.5},
        {"jurisdiction_prefixes": ("3202",), "keepalive_timeout_count": 0},
    ],
)
def test_a_bad_policy_setting_is_refused_at_start(kw) -> None:
    with pytest.raises(ValueError):
        RegistryPolicy(**kw)


# --- registration: all rules together ---------------------------------------------------------------


def test_registration_of_a_lawful_device_finds_nothing(world) -> None:
    found = rules.registration_violations(
        world.device(),
        site=world.site(),
        owner=world.hospital,
        caller=world.member(world.hospital),
        policy=world.policy,
    )
    assert found == []


def test_registration_reports_reg1_first_even_when_other_rules_fail(world) -> None:
    device = world.device(area_type=AreaType.TOILET, device_id="123", owner_unit_id=world.shop.unit_id)
    found = rules.registration_violations(
        device, site=world.site(), owner=world.shop, caller=world.member(world.hospital), policy=world.policy
    )
    assert [v.rule for v in found] == ["REG-1", "REG-10", "REG-3", "REG-3"]


def test_raise_first_carries_the_others_of_the_same_status_as_field_violations(world) -> None:
    device = world.device(privacy_masks=(PrivacyMask.of((0, 0), (1, 1)),), direction_deg=400.0)
    found = rules.registration_violations(
        device, site=world.site(), owner=world.hospital, caller=world.admin, policy=world.policy
    )
    with pytest.raises(InvalidArgument) as err:
        rules.raise_first(found)
    assert (err.value.rule, err.value.field) == ("REG-5", "device.privacy_masks[0]")
    assert [f for f, _ in err.value.violations] == ["device.direction_deg"]


def test_registration_refuses_a_taken_id_as_already_exists(world) -> None:
    found = rules.registration_violations(
        world.device(),
        site=world.site(),
        owner=world.hospital,
        caller=world.admin,
        policy=world.policy,
        id_taken=True,
    )
    assert only(found).error is AlreadyExists


def test_registration_refuses_a_malformed_public_key(world) -> None:
    found = rules.registration_violations(
        world.device(public_key="bm90IGEga2V5"),
        site=world.site(),
        owner=world.hospital,
        caller=world.admin,
        policy=world.policy,
    )
    assert only(found).field == "device.public_key"


def test_registration_accepts_a_32_byte_public_key(world) -> None:
    import base64

    key = base64.b64encode(bytes(range(32))).decode()
    found = rules.registration_violations(
        world.device(public_key=key),
        site=world.site(),
        owner=world.hospital,
        caller=world.admin,
        policy=world.policy,
    )
    assert found == []


@pytest.mark.parametrize(
    ("duration", "ok"), [(timedelta(days=30), True), (timedelta(days=30) - timedelta(seconds=1), False)]
)
def test_arc1_the_mandatory_floor_is_exactly_30_days(duration: timedelta, ok: bool) -> None:
    policy = RegistryPolicy(
        jurisdiction_prefixes=("3202",), retention_profiles={"p": duration}, default_retention_profile="p"
    )
    assert (rules.check_retention("p", PlaceCategory.PUBLIC_SERVICES, policy) == []) is ok
