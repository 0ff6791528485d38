"""decide(): each ACC rule both ways, and the matrix of demo principals × actions × devices."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from vigil_sharing.domain.index import GrantIndex
from vigil_sharing.domain.model import (
    ACTION_EXPORT,
    ACTION_LIVE_VIEW,
    ACTION_PLAYBACK,
    ACTION_SUBSCRIBE_EVENTS,
    ACTIONS,
    FUNDING_GOVERNMENT,
    FUNDING_PRIVATE,
    FUNDING_UNSPECIFIED,
    PLACE_ENERGY_UTILITIES,
    PLACE_ROAD_SQUARE_TUNNEL_BRIDGE,
    PLACE_TRANSPORT,
    ROLE_AUDITOR,
    ROLE_CONTRACTOR,
    ROLE_DEPARTMENT_ANALYST,
    ROLE_PARTNER,
    ROLE_PLATFORM_ADMIN,
    ROLE_PUBLIC_SECURITY_OFFICER,
    ROLE_UNIT_OPERATOR,
    UNIT_KIND_ENTERPRISE,
    UNIT_KIND_GOVERNMENT_DEPARTMENT,
    UNIT_KIND_PARTNER,
    UNIT_KIND_PUBLIC_SECURITY_ORGAN,
    Action,
    Contract,
    DeviceFacts,
    Grant,
    PrincipalFacts,
    Purpose,
    RequestState,
    Scope,
    SharingPolicy,
    TimeRange,
)
from vigil_sharing.domain.policy import decide

T0 = datetime(2026, 11, 28, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
PLATFORM, PSB, TRANSPORT = "11320200014287313E", "113202000142870306", "113202000142871537"
METRO, PARTNER_UNIT, AUDIT = "91320200554682701W", "91320200703815265X", "11320200014286927N"
CONTRACTOR_UNIT = "91320200000000001X"

ADMIN = PrincipalFacts(
    "user:admin", PLATFORM, UNIT_KIND_GOVERNMENT_DEPARTMENT, frozenset({ROLE_PLATFORM_ADMIN})
)
OFFICER = PrincipalFacts(
    "user:officer", PSB, UNIT_KIND_PUBLIC_SECURITY_ORGAN, frozenset({ROLE_PUBLIC_SECURITY_OFFICER})
)
ANALYST = PrincipalFacts(
    "user:analyst", TRANSPORT, UNIT_KIND_GOVERNMENT_DEPARTMENT, frozenset({ROLE_DEPARTMENT_ANALYST})
)
METRO_OP = PrincipalFacts("user:metro", METRO, UNIT_KIND_ENTERPRISE, frozenset({ROLE_UNIT_OPERATOR}))
PARTNER = PrincipalFacts("user:partner", PARTNER_UNIT, UNIT_KIND_PARTNER, frozenset({ROLE_PARTNER}))
AUDITOR = PrincipalFacts("user:auditor", AUDIT, UNIT_KIND_GOVERNMENT_DEPARTMENT, frozenset({ROLE_AUDITOR}))
CONTRACTOR = PrincipalFacts(
    "user:contractor",
    CONTRACTOR_UNIT,
    UNIT_KIND_ENTERPRISE,
    frozenset({ROLE_CONTRACTOR}),
    contract=Contract("C-7", Scope.of(site_ids=["S-ROAD"]), ends_at=T0 + timedelta(days=30)),
)
PRINCIPALS = {
    "admin": ADMIN,
    "officer": OFFICER,
    "analyst": ANALYST,
    "unit operator": METRO_OP,
    "partner": PARTNER,
    "auditor": AUDITOR,
    "contractor": CONTRACTOR,
}

ROAD = DeviceFacts(
    "32021100001320000001", TRANSPORT, "S-ROAD", "320211", PLACE_ROAD_SQUARE_TUNNEL_BRIDGE, FUNDING_GOVERNMENT
)
METRO_CAM = DeviceFacts("32021100541320000002", METRO, "S-METRO", "320211", PLACE_TRANSPORT, FUNDING_PRIVATE)
SECRET = DeviceFacts(
    "32021100001320000009", TRANSPORT, "S-GRID", "320211", PLACE_ENERGY_UTILITIES, FUNDING_GOVERNMENT, True
)
OTHER = DeviceFacts(
    "32021400001320000005", TRANSPORT, "S-FAR", "320214", PLACE_ROAD_SQUARE_TUNNEL_BRIDGE, FUNDING_GOVERNMENT
)
DEVICES: dict[str, DeviceFacts | None] = {
    "in scope": ROAD,
    "privately funded": METRO_CAM,
    "secret": SECRET,
    "out of scope": OTHER,
    "unknown": None,
}

GRANT_WINDOW = TimeRange(T0 - timedelta(days=2), T0)
READ = TimeRange(T0 - timedelta(days=1), T0 - timedelta(hours=23))


def grant(
    holder: PrincipalFacts,
    scope: Scope,
    actions: set[Action],
    grant_id: str = "g-1",
    **overrides: object,
) -> Grant:
    args: dict[str, object] = {
        "grant_id": grant_id,
        "holder_id": holder.id,
        "holder_unit": holder.unit,
        "purpose": Purpose.TRAFFIC_MANAGEMENT,
        "actions": frozenset(actions),
        "scope": scope,
        "footage_window": GRANT_WINDOW,
        "valid_from": T0,
        "valid_until": T0 + timedelta(days=7),
        "approver_ids": ("user:officer-2",),
        "approver_units": frozenset({PSB}),
    }
    args.update(overrides)
    return Grant(**args)  # type: ignore[arg-type]


def check(
    principal: PrincipalFacts,
    action: str,
    device: DeviceFacts | None,
    *grants: Grant,
    window: TimeRange | None = READ,
    now: datetime = NOW,
    policy: SharingPolicy | None = None,
):
    kw = {"policy": policy} if policy is not None else {}
    return decide(action, device, window, principal, now, GrantIndex(grants), **kw)


ROAD_PLAYBACK = grant(ANALYST, Scope.of(device_ids=[ROAD.device_id]), {ACTION_PLAYBACK})


# ------------------------------------------------------------------ ACC-2 deny by default


@pytest.mark.parametrize("principal", list(PRINCIPALS.values()), ids=list(PRINCIPALS))
def test_an_unknown_device_is_denied_to_everyone(principal: PrincipalFacts) -> None:
    d = check(principal, ACTION_LIVE_VIEW, None, ROAD_PLAYBACK)
    assert (d.allow, d.rule) == (False, "ACC-2")


def test_an_unknown_action_is_denied() -> None:
    d = check(ANALYST, "ACTION_DELETE", ROAD, ROAD_PLAYBACK)
    assert (d.allow, d.rule) == (False, "ACC-2")


def test_without_a_grant_an_analyst_is_denied() -> None:
    d = check(ANALYST, ACTION_PLAYBACK, ROAD)
    assert (d.allow, d.rule, d.grant_id) == (False, "ACC-2", "")


def test_a_platform_admin_without_a_grant_sees_no_video() -> None:
    assert not check(ADMIN, ACTION_LIVE_VIEW, ROAD).allow


def test_a_platform_admin_with_a_grant_sees_its_video() -> None:
    g = grant(ADMIN, Scope.of(device_ids=[ROAD.device_id]), {ACTION_LIVE_VIEW})
    assert check(ADMIN, ACTION_LIVE_VIEW, ROAD, g).allow


def test_a_unit_operator_sees_its_own_units_device_without_a_grant() -> None:
    d = check(METRO_OP, ACTION_PLAYBACK, METRO_CAM)
    assert (d.allow, d.rule) == (True, "ACC-2")


def test_a_unit_operator_does_not_see_another_units_device() -> None:
    assert not check(METRO_OP, ACTION_PLAYBACK, ROAD).allow


def test_an_analyst_of_the_owning_unit_is_not_an_operator() -> None:
    assert not check(ANALYST, ACTION_PLAYBACK, ROAD).allow


def test_an_owner_does_not_subscribe_to_events_without_a_grant() -> None:
    assert not check(METRO_OP, ACTION_SUBSCRIBE_EVENTS, METRO_CAM).allow


# ------------------------------------------------------------------ ACC-1 the footage read is stated


def test_playback_without_a_footage_window_is_denied() -> None:
    d = check(ANALYST, ACTION_PLAYBACK, ROAD, ROAD_PLAYBACK, window=None)
    assert (d.allow, d.rule) == (False, "ACC-1")


def test_playback_with_a_reversed_window_is_denied() -> None:
    d = check(ANALYST, ACTION_PLAYBACK, ROAD, ROAD_PLAYBACK, window=TimeRange(READ.end, READ.start))
    assert not d.allow


# ------------------------------------------------------------------ ACC-3 grants


def test_a_grant_allows_its_action_on_a_device_in_its_scope() -> None:
    d = check(ANALYST, ACTION_PLAYBACK, ROAD, ROAD_PLAYBACK)
    assert (d.allow, d.rule, d.grant_id) == (True, "ACC-3", "g-1")


def test_a_grant_does_not_allow_an_action_it_does_not_name() -> None:
    assert not check(ANALYST, ACTION_EXPORT, ROAD, ROAD_PLAYBACK).allow


def test_a_grant_does_not_allow_a_device_outside_its_scope() -> None:
    assert not check(ANALYST, ACTION_PLAYBACK, OTHER, ROAD_PLAYBACK).allow


def test_a_grant_does_not_allow_footage_outside_its_window() -> None:
    d = check(ANALYST, ACTION_PLAYBACK, ROAD, ROAD_PLAYBACK, window=TimeRange(T0 - timedelta(hours=1), NOW))
    assert (d.allow, d.rule) == (False, "ACC-3")


def test_a_grant_allows_footage_exactly_its_window() -> None:
    assert check(ANALYST, ACTION_PLAYBACK, ROAD, ROAD_PLAYBACK, window=GRANT_WINDOW).allow


def test_a_grant_is_not_valid_before_valid_from() -> None:
    d = check(ANALYST, ACTION_PLAYBACK, ROAD, ROAD_PLAYBACK, now=T0 - timedelta(seconds=1))
    assert (d.allow, d.rule) == (False, "ACC-3")


def test_a_grant_is_not_valid_from_valid_until_on() -> None:
    assert not check(ANALYST, ACTION_PLAYBACK, ROAD, ROAD_PLAYBACK, now=T0 + timedelta(days=7)).allow


def test_a_grant_that_is_not_approved_allows_nothing() -> None:
    pending = replace(ROAD_PLAYBACK, state=RequestState.PENDING)
    assert not check(ANALYST, ACTION_PLAYBACK, ROAD, pending).allow


def test_another_principals_grant_allows_nothing() -> None:
    colleague = replace(ANALYST, id="user:analyst-2")
    assert not check(colleague, ACTION_PLAYBACK, ROAD, ROAD_PLAYBACK).allow


def test_a_grant_held_in_another_unit_does_not_follow_a_principal_who_moved() -> None:
    moved = replace(ANALYST, unit=AUDIT)
    assert not check(moved, ACTION_PLAYBACK, ROAD, ROAD_PLAYBACK).allow


@pytest.mark.parametrize(
    "scope",
    [
        Scope.of(site_ids=["S-ROAD"]),
        Scope.of(division_prefixes=["3202"]),
        Scope.of(division_prefixes=["320211", "3203"]),
        Scope.of(place_categories=[PLACE_ROAD_SQUARE_TUNNEL_BRIDGE]),
        Scope.of(division_prefixes=["320211"], place_categories=[PLACE_ROAD_SQUARE_TUNNEL_BRIDGE]),
    ],
    ids=["site", "division", "two divisions", "category", "division and category"],
)
def test_a_grant_scoped_by_site_division_or_category_covers_a_matching_device(scope: Scope) -> None:
    assert check(ANALYST, ACTION_PLAYBACK, ROAD, grant(ANALYST, scope, {ACTION_PLAYBACK})).allow


@pytest.mark.parametrize(
    "scope",
    [
        Scope.of(site_ids=["S-FAR"]),
        Scope.of(division_prefixes=["320214"]),
        Scope.of(place_categories=[PLACE_TRANSPORT]),
        Scope.of(division_prefixes=["320211"], place_categories=[PLACE_TRANSPORT]),
        Scope.of(device_ids=[ROAD.device_id], site_ids=["S-FAR"]),
    ],
    ids=["site", "division", "category", "division but not category", "device but not site"],
)
def test_a_grant_scoped_by_site_division_or_category_excludes_a_device_that_does_not_match(
    scope: Scope,
) -> None:
    assert not check(ANALYST, ACTION_PLAYBACK, ROAD, grant(ANALYST, scope, {ACTION_PLAYBACK})).allow


def test_live_view_under_a_grant_needs_no_footage_window() -> None:
    g = grant(ANALYST, Scope.of(device_ids=[ROAD.device_id]), {ACTION_LIVE_VIEW}, footage_window=None)
    assert check(ANALYST, ACTION_LIVE_VIEW, ROAD, g, window=None).allow


def test_a_subscribe_grant_is_held_by_the_partners_whole_unit() -> None:
    g = grant(
        PARTNER, Scope.of(place_categories=[PLACE_ROAD_SQUARE_TUNNEL_BRIDGE]), {ACTION_SUBSCRIBE_EVENTS}
    )
    colleague = replace(PARTNER, id="user:partner-2")
    assert check(colleague, ACTION_SUBSCRIBE_EVENTS, ROAD, g).allow


def test_a_subscribe_grant_does_not_reach_another_unit() -> None:
    g = grant(
        PARTNER, Scope.of(place_categories=[PLACE_ROAD_SQUARE_TUNNEL_BRIDGE]), {ACTION_SUBSCRIBE_EVENTS}
    )
    stranger = replace(PARTNER, id="user:other", unit=METRO)
    assert not check(stranger, ACTION_SUBSCRIBE_EVENTS, ROAD, g).allow


def test_a_unit_wide_subscribe_grant_does_not_extend_video_to_colleagues() -> None:
    scope = Scope.of(place_categories=[PLACE_ROAD_SQUARE_TUNNEL_BRIDGE])
    g = grant(PARTNER, scope, {ACTION_SUBSCRIBE_EVENTS, ACTION_LIVE_VIEW})
    assert not check(replace(PARTNER, id="user:partner-2"), ACTION_LIVE_VIEW, ROAD, g).allow


# ------------------------------------------------------------------ REG-5 / ACC-5 unmasked video


def test_unmasked_video_is_allowed_only_with_the_unmask_right() -> None:
    assert check(replace(ANALYST, unmask_right=True), ACTION_PLAYBACK, ROAD, ROAD_PLAYBACK).unmasked_allowed


def test_without_the_unmask_right_video_is_masked() -> None:
    d = check(ANALYST, ACTION_PLAYBACK, ROAD, ROAD_PLAYBACK)
    assert d.allow and not d.unmasked_allowed


def test_an_owner_without_the_unmask_right_sees_masked_video() -> None:
    assert not check(METRO_OP, ACTION_EXPORT, METRO_CAM).unmasked_allowed


def test_a_deny_never_allows_unmasked_video() -> None:
    assert not check(replace(ANALYST, unmask_right=True), ACTION_EXPORT, ROAD, ROAD_PLAYBACK).unmasked_allowed


# ------------------------------------------------------------------ ACC-6 secrets


def test_a_secret_device_is_denied_to_an_uncleared_principal_even_under_a_grant() -> None:
    g = grant(ANALYST, Scope.of(device_ids=[SECRET.device_id]), {ACTION_PLAYBACK})
    d = check(ANALYST, ACTION_PLAYBACK, SECRET, g)
    assert (d.allow, d.rule) == (False, "ACC-6")


def test_a_secret_device_is_allowed_to_a_cleared_principal_under_a_grant() -> None:
    g = grant(ANALYST, Scope.of(device_ids=[SECRET.device_id]), {ACTION_PLAYBACK})
    assert check(replace(ANALYST, secret_clearance=True), ACTION_PLAYBACK, SECRET, g).allow


def test_a_secret_device_is_denied_to_its_uncleared_owner() -> None:
    owner = replace(METRO_OP, unit=TRANSPORT)
    d = check(owner, ACTION_LIVE_VIEW, SECRET)
    assert (d.allow, d.rule) == (False, "ACC-6")


def test_a_secret_device_is_shown_to_its_cleared_owner() -> None:
    owner = replace(METRO_OP, unit=TRANSPORT, secret_clearance=True)
    assert check(owner, ACTION_LIVE_VIEW, SECRET).allow


# ------------------------------------------------------------------ ACC-7 funding


def test_a_government_funded_device_is_shared_under_a_plain_grant() -> None:
    g = grant(OFFICER, Scope.of(device_ids=[ROAD.device_id]), {ACTION_PLAYBACK})
    assert check(OFFICER, ACTION_PLAYBACK, ROAD, g).allow


def test_a_privately_funded_device_is_not_shared_under_a_grant_without_an_agreement() -> None:
    g = grant(OFFICER, Scope.of(device_ids=[METRO_CAM.device_id]), {ACTION_PLAYBACK})
    d = check(OFFICER, ACTION_PLAYBACK, METRO_CAM, g)
    assert (d.allow, d.rule) == (False, "ACC-7")


def test_a_device_of_unknown_funding_is_treated_as_privately_funded() -> None:
    unknown = replace(ROAD, funding=FUNDING_UNSPECIFIED)
    g = grant(OFFICER, Scope.of(device_ids=[ROAD.device_id]), {ACTION_PLAYBACK})
    assert check(OFFICER, ACTION_PLAYBACK, unknown, g).rule == "ACC-7"


def test_a_privately_funded_device_is_shared_under_a_grant_citing_an_agreement() -> None:
    g = grant(
        OFFICER, Scope.of(device_ids=[METRO_CAM.device_id]), {ACTION_PLAYBACK}, agreement_ref="AGR-2026-07"
    )
    assert check(OFFICER, ACTION_PLAYBACK, METRO_CAM, g).allow


def test_a_privately_funded_device_is_shared_under_a_grant_its_owner_approved() -> None:
    g = grant(
        OFFICER,
        Scope.of(device_ids=[METRO_CAM.device_id]),
        {ACTION_PLAYBACK},
        approver_units=frozenset({METRO}),
    )
    assert check(OFFICER, ACTION_PLAYBACK, METRO_CAM, g).allow


def test_by_default_an_officer_needs_a_grant_even_for_government_funded_devices() -> None:
    assert not check(OFFICER, ACTION_LIVE_VIEW, ROAD).allow


def test_a_city_may_give_officers_standing_live_view_of_government_funded_devices() -> None:
    policy = SharingPolicy(police_default_actions=frozenset({ACTION_LIVE_VIEW}))
    d = check(OFFICER, ACTION_LIVE_VIEW, ROAD, policy=policy)
    assert (d.allow, d.rule, d.grant_id) == (True, "ACC-7", "")


def test_standing_police_access_does_not_reach_privately_funded_devices() -> None:
    policy = SharingPolicy(police_default_actions=frozenset({ACTION_LIVE_VIEW}))
    assert not check(OFFICER, ACTION_LIVE_VIEW, METRO_CAM, policy=policy).allow


def test_standing_police_access_does_not_reach_secret_devices() -> None:
    policy = SharingPolicy(police_default_actions=frozenset({ACTION_LIVE_VIEW}))
    assert check(OFFICER, ACTION_LIVE_VIEW, SECRET, policy=policy).rule == "ACC-6"


def test_standing_police_access_covers_only_the_configured_actions() -> None:
    policy = SharingPolicy(police_default_actions=frozenset({ACTION_LIVE_VIEW}))
    assert not check(OFFICER, ACTION_EXPORT, ROAD, policy=policy).allow


def test_standing_police_access_is_for_officers_of_the_public_security_organ_only() -> None:
    policy = SharingPolicy(police_default_actions=frozenset({ACTION_LIVE_VIEW}))
    assert not check(ANALYST, ACTION_LIVE_VIEW, ROAD, policy=policy).allow


# ------------------------------------------------------------------ ACC-8 contractors


def test_a_contractor_sees_live_video_of_a_device_within_the_contract() -> None:
    d = check(CONTRACTOR, ACTION_LIVE_VIEW, ROAD)
    assert (d.allow, d.rule) == (True, "ACC-8")


def test_a_contractor_is_denied_a_device_outside_the_contract() -> None:
    d = check(CONTRACTOR, ACTION_LIVE_VIEW, OTHER)
    assert (d.allow, d.rule) == (False, "ACC-8")


def test_a_contractors_access_ends_with_the_contract() -> None:
    d = check(CONTRACTOR, ACTION_LIVE_VIEW, ROAD, now=T0 + timedelta(days=30))
    assert (d.allow, d.rule) == (False, "ACC-8")


def test_a_contractor_without_a_contract_is_denied() -> None:
    d = check(replace(CONTRACTOR, contract=None), ACTION_LIVE_VIEW, ROAD)
    assert (d.allow, d.rule) == (False, "ACC-8")


def test_a_contractor_does_not_play_back_under_the_contract_alone() -> None:
    assert not check(CONTRACTOR, ACTION_PLAYBACK, ROAD).allow


def test_a_contractors_grant_inside_the_contract_allows() -> None:
    g = grant(CONTRACTOR, Scope.of(device_ids=[ROAD.device_id]), {ACTION_PLAYBACK})
    assert check(CONTRACTOR, ACTION_PLAYBACK, ROAD, g).allow


def test_a_contractors_grant_does_not_reach_beyond_the_contract() -> None:
    g = grant(CONTRACTOR, Scope.of(division_prefixes=["3202"]), {ACTION_PLAYBACK})
    d = check(CONTRACTOR, ACTION_PLAYBACK, OTHER, g)
    assert (d.allow, d.rule) == (False, "ACC-8")


def test_a_contractors_grant_ends_with_the_contract() -> None:
    g = grant(CONTRACTOR, Scope.of(device_ids=[ROAD.device_id]), {ACTION_PLAYBACK})
    assert not check(CONTRACTOR, ACTION_PLAYBACK, ROAD, g, now=T0 + timedelta(days=30, seconds=1)).allow


# ------------------------------------------------------------------ the matrix


MATRIX_GRANTS = (
    # The analyst's playback of three devices: only the government-funded, non-secret one is shared.
    grant(
        ANALYST,
        Scope.of(device_ids=[ROAD.device_id, METRO_CAM.device_id, SECRET.device_id]),
        {ACTION_PLAYBACK},
        grant_id="g-analyst",
    ),
    # The officer's district-wide grant: not the privately funded camera (no agreement), not the secret one.
    grant(
        OFFICER,
        Scope.of(division_prefixes=["320211"]),
        {ACTION_LIVE_VIEW, ACTION_PLAYBACK, ACTION_EXPORT},
        grant_id="g-officer",
    ),
    # The partner's event stream of transport places, under a recorded agreement with the private owner.
    grant(
        PARTNER,
        Scope.of(place_categories=[PLACE_TRANSPORT]),
        {ACTION_SUBSCRIBE_EVENTS},
        grant_id="g-partner",
        agreement_ref="AGR-2026-07",
        footage_window=None,
    ),
)
# Everything not listed here is denied.
MATRIX_ALLOWED = {
    ("officer", ACTION_LIVE_VIEW, "in scope"): "g-officer",
    ("officer", ACTION_PLAYBACK, "in scope"): "g-officer",
    ("officer", ACTION_EXPORT, "in scope"): "g-officer",
    ("analyst", ACTION_PLAYBACK, "in scope"): "g-analyst",
    ("unit operator", ACTION_LIVE_VIEW, "privately funded"): "",  # its own unit's device (ACC-2)
    ("unit operator", ACTION_PLAYBACK, "privately funded"): "",
    ("unit operator", ACTION_EXPORT, "privately funded"): "",
    ("partner", ACTION_SUBSCRIBE_EVENTS, "privately funded"): "g-partner",
    ("contractor", ACTION_LIVE_VIEW, "in scope"): "",  # within contract C-7 (ACC-8)
}
MATRIX_INDEX = GrantIndex(MATRIX_GRANTS)
MATRIX = [(p, a, d) for p in PRINCIPALS for a in sorted(ACTIONS) for d in DEVICES]


@pytest.mark.parametrize(("who", "action", "device"), MATRIX, ids=["-".join(c) for c in MATRIX])
def test_matrix_every_principal_action_and_device_is_denied_unless_a_grant_or_a_documented_rule_allows(
    who: str, action: str, device: str
) -> None:
    d = decide(action, DEVICES[device], READ, PRINCIPALS[who], NOW, MATRIX_INDEX)
    expected = MATRIX_ALLOWED.get((who, action, device))
    assert (d.allow, d.grant_id if d.allow else None) == (expected is not None, expected), d.reason
    if device == "secret":
        assert d.rule == "ACC-6"
    if device == "unknown":
        assert d.rule == "ACC-2"
