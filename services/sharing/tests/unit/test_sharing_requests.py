"""Access requests: validation (ACC-3, ACC-4, ACC-8), the approval policy and the request state machine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from vigil_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from vigil_sharing.domain import requests as rq
from vigil_sharing.domain.model import (
    ACTION_EXPORT,
    ACTION_LIVE_VIEW,
    ACTION_PLAYBACK,
    AUTO_APPROVER,
    FUNDING_GOVERNMENT,
    FUNDING_PRIVATE,
    PLACE_NON_PUBLIC,
    PLACE_RESIDENTIAL_HOSPITALITY,
    PLACE_ROAD_SQUARE_TUNNEL_BRIDGE,
    PLACE_TRANSPORT,
    ROLE_CONTRACTOR,
    ROLE_DEPARTMENT_ANALYST,
    ROLE_PLATFORM_ADMIN,
    ROLE_PUBLIC_SECURITY_OFFICER,
    ROLE_SERVICE,
    ROLE_UNIT_OPERATOR,
    UNIT_KIND_ENTERPRISE,
    UNIT_KIND_GOVERNMENT_DEPARTMENT,
    UNIT_KIND_PUBLIC_SECURITY_ORGAN,
    AccessRequest,
    Contract,
    DeviceFacts,
    Grant,
    Officer,
    PrincipalFacts,
    RequestState,
    Scope,
    SharingPolicy,
    TimeRange,
)

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
PLATFORM, PSB, TRANSPORT, METRO = (
    "11320200014287313E",
    "113202000142870306",
    "113202000142871537",
    "91320200554682701W",
)

ADMIN = PrincipalFacts(
    "user:admin", PLATFORM, UNIT_KIND_GOVERNMENT_DEPARTMENT, frozenset({ROLE_PLATFORM_ADMIN})
)
OFFICER = PrincipalFacts(
    "user:officer", PSB, UNIT_KIND_PUBLIC_SECURITY_ORGAN, frozenset({ROLE_PUBLIC_SECURITY_OFFICER})
)
OFFICER_2 = replace(OFFICER, id="user:officer-2")
ANALYST = PrincipalFacts(
    "user:analyst", TRANSPORT, UNIT_KIND_GOVERNMENT_DEPARTMENT, frozenset({ROLE_DEPARTMENT_ANALYST})
)
METRO_OP = PrincipalFacts("user:metro", METRO, UNIT_KIND_ENTERPRISE, frozenset({ROLE_UNIT_OPERATOR}))
SERVICE = PrincipalFacts("service:archive", PLATFORM, "", frozenset({ROLE_SERVICE}))
CONTRACTOR = PrincipalFacts(
    "user:contractor",
    "91320200000000001X",
    UNIT_KIND_ENTERPRISE,
    frozenset({ROLE_CONTRACTOR}),
    contract=Contract("C-1", Scope.of(site_ids=["S-ROAD"]), ends_at=NOW + timedelta(days=30)),
)

ROAD = DeviceFacts(
    "32021100001320000001", TRANSPORT, "S-ROAD", "320211", PLACE_ROAD_SQUARE_TUNNEL_BRIDGE, FUNDING_GOVERNMENT
)
METRO_CAM = DeviceFacts("32021100541320000002", METRO, "S-METRO", "320211", PLACE_TRANSPORT, FUNDING_PRIVATE)
METRO_CAM_2 = replace(METRO_CAM, device_id="32021100541320000003")
HOTEL = DeviceFacts(
    "32021100541320000004", METRO, "S-HOTEL", "320211", PLACE_RESIDENTIAL_HOSPITALITY, FUNDING_PRIVATE
)
SECRET = replace(ROAD, device_id="32021100001320000009", secret_related=True)
DEVICES = {d.device_id: d for d in (ROAD, METRO_CAM, METRO_CAM_2, HOTEL, SECRET)}
WINDOW = TimeRange(NOW - timedelta(days=1), NOW)
TWO_OFFICERS = (Officer("Wang Qiang", "PS-0001"), Officer("Li Na", "PS-0002"))


def make(requester: PrincipalFacts = ANALYST, **overrides: object) -> AccessRequest:
    args: dict[str, object] = {
        "request_id": "req-1",
        "requester": requester,
        "purpose": "PURPOSE_TRAFFIC_MANAGEMENT",
        "legal_basis": "congestion study, Renmin Rd",
        "scope": Scope.of(device_ids=[ROAD.device_id]),
        "actions": [ACTION_PLAYBACK],
        "footage_window": WINDOW,
        "valid_until": NOW + timedelta(days=7),
        "now": NOW,
        "devices": DEVICES,
    }
    args.update(overrides)
    return rq.create_request(**args)  # type: ignore[arg-type]


def fault(exc: pytest.ExceptionInfo[InvalidArgument]) -> tuple[str | None, str | None]:
    return exc.value.field, exc.value.rule


# ------------------------------------------------------------------ validation (ACC-3)


def test_a_valid_request_is_pending_with_its_requester_and_purpose() -> None:
    r = make()
    assert r.state is RequestState.PENDING
    assert (r.requester_id, r.requester_unit, r.purpose) == (
        "user:analyst",
        TRANSPORT,
        "PURPOSE_TRAFFIC_MANAGEMENT",
    )
    assert r.actions == {ACTION_PLAYBACK}


def test_valid_from_defaults_to_now() -> None:
    assert make().valid_from == NOW


@pytest.mark.parametrize("purpose", ["", "PURPOSE_UNSPECIFIED", "PURPOSE_CURIOSITY"])
def test_a_request_without_a_known_purpose_is_refused_under_acc3(purpose: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        make(purpose=purpose)
    assert fault(e) == ("purpose", "ACC-3")


def test_a_blank_legal_basis_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(legal_basis="   ")
    assert fault(e) == ("legal_basis", "ACC-3")


def test_an_empty_scope_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(scope=Scope())
    assert fault(e) == ("scope", "ACC-3")


def test_an_unknown_place_category_in_the_scope_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(scope=Scope.of(place_categories=["PLACE_CATEGORY_MOON"]))
    assert fault(e) == ("scope.place_categories", "ACC-3")


def test_a_division_prefix_that_is_not_digits_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(scope=Scope.of(division_prefixes=["32x"]))
    assert fault(e) == ("scope.division_prefixes", "ACC-3")


def test_a_request_without_actions_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(actions=[])
    assert fault(e) == ("actions", "ACC-3")


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(actions=["ACTION_DELETE"])
    assert fault(e) == ("actions", "ACC-3")


def test_a_footage_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(footage_window=TimeRange(NOW, NOW - timedelta(hours=1)))
    assert fault(e) == ("footage_window", "ACC-3")


def test_playback_without_a_footage_window_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(footage_window=None)
    assert fault(e) == ("footage_window", "ACC-3")


def test_live_view_needs_no_footage_window() -> None:
    assert make(actions=[ACTION_LIVE_VIEW], footage_window=None).footage_window is None


def test_valid_until_before_valid_from_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(valid_from=NOW + timedelta(days=2), valid_until=NOW + timedelta(days=1))
    assert fault(e) == ("valid_until", "ACC-3")


def test_a_request_without_valid_until_is_refused_because_every_grant_expires() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(valid_until=None)
    assert fault(e) == ("valid_until", "ACC-3")


def test_valid_until_already_past_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(valid_from=NOW - timedelta(days=3), valid_until=NOW - timedelta(days=1))
    assert fault(e) == ("valid_until", "ACC-3")


def test_validity_longer_than_the_maximum_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(valid_until=NOW + timedelta(days=91))
    assert fault(e) == ("valid_until", "ACC-3")


def test_the_maximum_validity_is_configurable() -> None:
    policy = SharingPolicy(max_validity=timedelta(days=3))
    with pytest.raises(InvalidArgument):
        make(valid_until=NOW + timedelta(days=4), policy=policy)
    assert make(valid_until=NOW + timedelta(days=3), policy=policy).state is RequestState.PENDING


def test_naive_times_are_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(valid_until=datetime(2026, 12, 5))
    assert fault(e) == ("valid_until", "ACC-3")


def test_every_fault_is_listed_in_the_violations() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(purpose="", legal_basis="", scope=Scope(), actions=[])
    assert {f for f, _ in e.value.violations} >= {"purpose", "legal_basis", "scope", "actions"}


# ------------------------------------------------------------------ ACC-4 external retrieval


def test_an_export_by_a_unit_that_does_not_own_the_devices_needs_an_approval_document() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(requester=OFFICER, actions=[ACTION_EXPORT], scope=Scope.of(device_ids=[METRO_CAM.device_id]))
    assert fault(e) == ("approval_document_ref", "ACC-4")


def test_an_external_export_with_one_officer_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(
            requester=OFFICER,
            actions=[ACTION_EXPORT],
            scope=Scope.of(device_ids=[METRO_CAM.device_id]),
            approval_document_ref="PSB-2026-113",
            officers=TWO_OFFICERS[:1],
        )
    assert fault(e) == ("officers", "ACC-4")


def test_two_officers_with_the_same_work_id_count_once() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(
            requester=OFFICER,
            actions=[ACTION_EXPORT],
            scope=Scope.of(device_ids=[METRO_CAM.device_id]),
            approval_document_ref="PSB-2026-113",
            officers=(Officer("Wang Qiang", "PS-0001"), Officer("Wang Q.", "PS-0001")),
        )
    assert fault(e) == ("officers", "ACC-4")


def test_an_external_export_with_a_document_and_two_officers_is_accepted() -> None:
    r = make(
        requester=OFFICER,
        actions=[ACTION_EXPORT],
        scope=Scope.of(device_ids=[METRO_CAM.device_id]),
        approval_document_ref="PSB-2026-113",
        officers=TWO_OFFICERS,
    )
    assert (r.approval_document_ref, r.officers) == ("PSB-2026-113", TWO_OFFICERS)


def test_an_export_scoped_by_category_counts_as_external_even_for_an_owner() -> None:
    with pytest.raises(InvalidArgument) as e:
        make(requester=METRO_OP, actions=[ACTION_EXPORT], scope=Scope.of(place_categories=[PLACE_TRANSPORT]))
    assert fault(e) == ("approval_document_ref", "ACC-4")


def test_an_owner_exporting_its_own_devices_needs_no_approval_document() -> None:
    r = make(requester=METRO_OP, actions=[ACTION_EXPORT], scope=Scope.of(device_ids=[METRO_CAM.device_id]))
    assert r.approval_document_ref == ""


def test_the_external_retrieval_rule_can_be_switched_off() -> None:
    policy = SharingPolicy(external_retrieval_rule=False)
    r = make(
        requester=OFFICER,
        actions=[ACTION_EXPORT],
        scope=Scope.of(device_ids=[METRO_CAM.device_id]),
        policy=policy,
    )
    assert r.state is RequestState.PENDING


def test_the_number_of_officers_is_configurable() -> None:
    policy = SharingPolicy(external_retrieval_min_officers=3)
    with pytest.raises(InvalidArgument) as e:
        make(
            requester=OFFICER,
            actions=[ACTION_EXPORT],
            scope=Scope.of(device_ids=[METRO_CAM.device_id]),
            approval_document_ref="PSB-2026-113",
            officers=TWO_OFFICERS,
            policy=policy,
        )
    assert fault(e) == ("officers", "ACC-4")


# ------------------------------------------------------------------ ACC-8 contractors


def test_a_contractor_with_a_current_contract_may_ask() -> None:
    assert make(requester=CONTRACTOR).state is RequestState.PENDING


def test_a_contractor_whose_contract_ended_may_not_ask() -> None:
    ended = replace(CONTRACTOR, contract=replace(CONTRACTOR.contract, ends_at=NOW))  # type: ignore[type-var]
    with pytest.raises(PermissionDenied) as e:
        make(requester=ended)
    assert e.value.rule == "ACC-8"


# ------------------------------------------------------------------ automatic approval


def officer_live(**overrides: object) -> AccessRequest:
    args: dict[str, object] = {
        "requester": OFFICER,
        "purpose": "PURPOSE_PUBLIC_ORDER",
        "actions": [ACTION_LIVE_VIEW],
        "footage_window": None,
        "scope": Scope.of(place_categories=[PLACE_ROAD_SQUARE_TUNNEL_BRIDGE]),
        "valid_until": NOW + timedelta(hours=24),
    }
    args.update(overrides)
    return make(**args)  # type: ignore[arg-type]


def test_an_officers_live_view_of_public_places_for_24_hours_is_approved_automatically() -> None:
    r = officer_live()
    assert r.state is RequestState.APPROVED
    assert r.decided_by == AUTO_APPROVER != r.requester_id


def test_an_officers_live_view_for_longer_than_24_hours_waits_for_an_approver() -> None:
    assert officer_live(valid_until=NOW + timedelta(hours=25)).state is RequestState.PENDING


def test_an_officers_live_view_of_a_non_public_place_waits_for_an_approver() -> None:
    assert officer_live(scope=Scope.of(place_categories=[PLACE_NON_PUBLIC])).state is RequestState.PENDING


def test_an_officers_live_view_scoped_by_division_only_waits_for_an_approver() -> None:
    assert officer_live(scope=Scope.of(division_prefixes=["3202"])).state is RequestState.PENDING


def test_an_officers_playback_is_not_approved_automatically() -> None:
    assert officer_live(actions=[ACTION_PLAYBACK], footage_window=WINDOW).state is RequestState.PENDING


def test_an_analysts_live_view_of_public_places_is_not_approved_automatically() -> None:
    assert officer_live(requester=ANALYST).state is RequestState.PENDING


def test_an_officers_live_view_listing_a_secret_device_is_not_approved_automatically() -> None:
    assert officer_live(scope=Scope.of(device_ids=[SECRET.device_id])).state is RequestState.PENDING


def test_automatic_approval_can_be_switched_off() -> None:
    policy = SharingPolicy(auto_approve_officer_live_view=False)
    assert officer_live(policy=policy).state is RequestState.PENDING


# ------------------------------------------------------------------ approve


def test_an_officer_approves_an_analysts_request() -> None:
    r = rq.approve(make(), OFFICER, requester=ANALYST, now=NOW, devices=DEVICES)
    assert (r.state, r.decided_by, r.decided_at) == (RequestState.APPROVED, "user:officer", NOW)


def test_a_platform_admin_approves_a_request() -> None:
    assert (
        rq.approve(make(), ADMIN, requester=ANALYST, now=NOW, devices=DEVICES).state is RequestState.APPROVED
    )


def test_the_requester_may_not_approve_their_own_request_even_as_an_officer() -> None:
    r = make(requester=OFFICER)
    with pytest.raises(PermissionDenied) as e:
        rq.approve(r, OFFICER, requester=OFFICER, now=NOW, devices=DEVICES)
    assert e.value.rule == "ACC-3"


def test_an_analyst_may_not_approve_someone_elses_request() -> None:
    other = replace(ANALYST, id="user:analyst-2")
    with pytest.raises(PermissionDenied) as e:
        rq.approve(make(), other, requester=ANALYST, now=NOW, devices=DEVICES)
    assert e.value.rule == "ACC-3"


@pytest.mark.parametrize(
    "actor",
    [
        CONTRACTOR,
        SERVICE,
        replace(OFFICER, id="user:x", roles=frozenset({ROLE_PUBLIC_SECURITY_OFFICER, ROLE_CONTRACTOR})),
    ],
)
def test_contractors_and_services_never_approve(actor: PrincipalFacts) -> None:
    with pytest.raises(PermissionDenied):
        rq.approve(make(), actor, requester=ANALYST, now=NOW, devices=DEVICES)


def test_the_owning_units_operator_approves_a_request_for_its_own_devices() -> None:
    r = make(scope=Scope.of(device_ids=[METRO_CAM.device_id, METRO_CAM_2.device_id]))
    assert rq.approve(r, METRO_OP, requester=ANALYST, now=NOW, devices=DEVICES).state is RequestState.APPROVED


def test_the_owning_unit_may_not_approve_a_request_that_reaches_another_units_device() -> None:
    r = make(scope=Scope.of(device_ids=[METRO_CAM.device_id, ROAD.device_id]))
    with pytest.raises(PermissionDenied):
        rq.approve(r, METRO_OP, requester=ANALYST, now=NOW, devices=DEVICES)


def test_the_owning_unit_may_not_approve_a_request_scoped_by_category() -> None:
    r = make(scope=Scope.of(place_categories=[PLACE_TRANSPORT]))
    with pytest.raises(PermissionDenied):
        rq.approve(r, METRO_OP, requester=ANALYST, now=NOW, devices=DEVICES)


@pytest.mark.parametrize(
    "state", [RequestState.APPROVED, RequestState.DENIED, RequestState.REVOKED, RequestState.EXPIRED]
)
def test_only_a_pending_request_can_be_approved(state: RequestState) -> None:
    with pytest.raises(FailedPrecondition) as e:
        rq.approve(make().with_(state=state), OFFICER, requester=ANALYST, now=NOW, devices=DEVICES)
    assert (e.value.rule, e.value.field) == ("ACC-3", "state")


def test_a_request_whose_validity_has_passed_cannot_be_approved() -> None:
    with pytest.raises(FailedPrecondition) as e:
        rq.approve(make(), OFFICER, requester=ANALYST, now=NOW + timedelta(days=8), devices=DEVICES)
    assert (e.value.rule, e.value.field) == ("ACC-3", "valid_until")


def sensitive_export() -> AccessRequest:
    return make(
        requester=OFFICER,
        actions=[ACTION_EXPORT],
        scope=Scope.of(device_ids=[HOTEL.device_id]),
        approval_document_ref="PSB-2026-114",
        officers=TWO_OFFICERS,
    )


def test_an_export_touching_a_sensitive_category_stays_pending_after_one_approval() -> None:
    r = rq.approve(sensitive_export(), ADMIN, requester=OFFICER, now=NOW, devices=DEVICES)
    assert (r.state, r.required_approvals, r.approver_ids) == (RequestState.PENDING, 2, ("user:admin",))


def test_the_same_approver_cannot_approve_twice() -> None:
    r = rq.approve(sensitive_export(), ADMIN, requester=OFFICER, now=NOW, devices=DEVICES)
    with pytest.raises(FailedPrecondition) as e:
        rq.approve(r, ADMIN, requester=OFFICER, now=NOW, devices=DEVICES)
    assert e.value.rule == "ACC-3"


def test_an_export_touching_a_sensitive_category_is_approved_by_a_second_approver() -> None:
    r = rq.approve(sensitive_export(), ADMIN, requester=OFFICER, now=NOW, devices=DEVICES)
    r = rq.approve(r, OFFICER_2, requester=OFFICER, now=NOW, devices=DEVICES)
    assert (r.state, r.approver_ids) == (RequestState.APPROVED, ("user:admin", "user:officer-2"))


def test_an_export_of_a_non_sensitive_category_needs_one_approver() -> None:
    r = make(
        requester=OFFICER,
        actions=[ACTION_EXPORT],
        scope=Scope.of(device_ids=[METRO_CAM.device_id]),
        approval_document_ref="PSB-2026-113",
        officers=TWO_OFFICERS,
    )
    assert rq.approve(r, ADMIN, requester=OFFICER, now=NOW, devices=DEVICES).state is RequestState.APPROVED


def test_an_export_scoped_only_by_division_counts_as_sensitive() -> None:
    r = make(
        requester=OFFICER,
        actions=[ACTION_EXPORT],
        scope=Scope.of(division_prefixes=["320211"]),
        approval_document_ref="PSB-2026-113",
        officers=TWO_OFFICERS,
    )
    assert rq.required_approvals(r, DEVICES, SharingPolicy()) == 2


def test_the_number_of_approvers_for_sensitive_exports_is_configurable() -> None:
    policy = SharingPolicy(sensitive_export_approvals=1)
    r = rq.approve(sensitive_export(), ADMIN, requester=OFFICER, now=NOW, devices=DEVICES, policy=policy)
    assert r.state is RequestState.APPROVED


def test_a_request_listing_a_secret_device_is_not_approved_for_an_uncleared_requester() -> None:
    r = make(scope=Scope.of(device_ids=[SECRET.device_id]))
    with pytest.raises(PermissionDenied) as e:
        rq.approve(r, OFFICER, requester=ANALYST, now=NOW, devices=DEVICES)
    assert e.value.rule == "ACC-6"


def test_a_request_listing_a_secret_device_is_approved_for_a_cleared_requester() -> None:
    r = make(scope=Scope.of(device_ids=[SECRET.device_id]))
    cleared = replace(ANALYST, secret_clearance=True)
    assert rq.approve(r, OFFICER, requester=cleared, now=NOW, devices=DEVICES).state is RequestState.APPROVED


# ------------------------------------------------------------------ deny, withdraw, revoke, expire


def test_an_officer_denies_a_pending_request() -> None:
    r = rq.deny(make(), OFFICER, now=NOW, reason="no legal basis shown", devices=DEVICES)
    assert (r.state, r.decided_by, r.decision_reason) == (
        RequestState.DENIED,
        "user:officer",
        "no legal basis shown",
    )


def test_the_requester_may_not_deny_their_own_request() -> None:
    with pytest.raises(PermissionDenied) as e:
        rq.deny(make(requester=OFFICER), OFFICER, now=NOW, devices=DEVICES)
    assert e.value.rule == "ACC-3"


def test_an_analyst_may_not_deny_someone_elses_request() -> None:
    with pytest.raises(PermissionDenied):
        rq.deny(make(), replace(ANALYST, id="user:analyst-2"), now=NOW, devices=DEVICES)


def test_an_approved_request_cannot_be_denied() -> None:
    approved = rq.approve(make(), OFFICER, requester=ANALYST, now=NOW, devices=DEVICES)
    with pytest.raises(FailedPrecondition) as e:
        rq.deny(approved, ADMIN, now=NOW, devices=DEVICES)
    assert e.value.rule == "ACC-3"


def test_the_requester_withdraws_a_pending_request() -> None:
    r = rq.withdraw(make(), ANALYST, now=NOW)
    assert (r.state, r.revoked_by, r.withdrawn) == (RequestState.REVOKED, "user:analyst", True)


def test_the_requester_withdraws_an_approved_grant() -> None:
    approved = rq.approve(make(), OFFICER, requester=ANALYST, now=NOW, devices=DEVICES)
    assert rq.withdraw(approved, ANALYST, now=NOW).state is RequestState.REVOKED


def test_nobody_but_the_requester_withdraws() -> None:
    with pytest.raises(PermissionDenied) as e:
        rq.withdraw(make(), OFFICER, now=NOW)
    assert e.value.rule == "ACC-3"


def test_a_denied_request_cannot_be_withdrawn() -> None:
    denied = rq.deny(make(), OFFICER, now=NOW, devices=DEVICES)
    with pytest.raises(FailedPrecondition):
        rq.withdraw(denied, ANALYST, now=NOW)


def approved_metro_grant() -> AccessRequest:
    r = make(scope=Scope.of(device_ids=[METRO_CAM.device_id]))
    return rq.approve(r, ADMIN, requester=ANALYST, now=NOW, devices=DEVICES)


@pytest.mark.parametrize(
    "actor", [ADMIN, OFFICER_2, METRO_OP, ANALYST], ids=["admin", "officer", "owner", "requester"]
)
def test_admins_officers_the_owning_unit_and_the_requester_revoke_a_grant(actor: PrincipalFacts) -> None:
    r = rq.revoke(approved_metro_grant(), actor, now=NOW, reason="case closed", devices=DEVICES)
    assert (r.state, r.revoked_by, r.revoked_at) == (RequestState.REVOKED, actor.id, NOW)


def test_the_grants_approver_revokes_it() -> None:
    approver = replace(ADMIN, id="user:admin-2")
    r = rq.approve(make(), approver, requester=ANALYST, now=NOW, devices=DEVICES)
    demoted = replace(approver, roles=frozenset({ROLE_DEPARTMENT_ANALYST}))
    assert rq.revoke(r, demoted, now=NOW, devices=DEVICES).state is RequestState.REVOKED


@pytest.mark.parametrize("actor", [replace(ANALYST, id="user:analyst-2"), CONTRACTOR, SERVICE])
def test_anyone_else_may_not_revoke_a_grant(actor: PrincipalFacts) -> None:
    with pytest.raises(PermissionDenied) as e:
        rq.revoke(approved_metro_grant(), actor, now=NOW, devices=DEVICES)
    assert e.value.rule == "ACC-3"


@pytest.mark.parametrize(
    "state", [RequestState.PENDING, RequestState.DENIED, RequestState.REVOKED, RequestState.EXPIRED]
)
def test_only_an_approved_grant_can_be_revoked(state: RequestState) -> None:
    with pytest.raises(FailedPrecondition) as e:
        rq.revoke(make().with_(state=state), ADMIN, now=NOW, devices=DEVICES)
    assert (e.value.rule, e.value.field) == ("ACC-3", "state")


def test_a_grant_expires_once_its_validity_has_passed() -> None:
    later = NOW + timedelta(days=7)
    r = rq.expire(approved_metro_grant(), now=later)
    assert (r.state, r.expired_at) == (RequestState.EXPIRED, later)


def test_a_pending_request_expires_undecided() -> None:
    assert rq.expire(make(), now=NOW + timedelta(days=7)).state is RequestState.EXPIRED


def test_a_grant_does_not_expire_before_its_validity_ends() -> None:
    with pytest.raises(FailedPrecondition) as e:
        rq.expire(approved_metro_grant(), now=NOW + timedelta(days=6))
    assert e.value.rule == "ACC-3"


@pytest.mark.parametrize("state", [RequestState.DENIED, RequestState.REVOKED, RequestState.EXPIRED])
def test_a_final_request_does_not_expire_again(state: RequestState) -> None:
    with pytest.raises(FailedPrecondition):
        rq.expire(make().with_(state=state), now=NOW + timedelta(days=8))


def test_is_expired_only_for_live_requests_past_their_validity() -> None:
    later = NOW + timedelta(days=7)
    assert rq.is_expired(make(), later) and not rq.is_expired(make(), later - timedelta(seconds=1))
    assert not rq.is_expired(make().with_(state=RequestState.DENIED), later)


def test_a_grant_carries_its_approvers_units() -> None:
    g = Grant.from_request(approved_metro_grant())
    assert (g.grant_id, g.holder_id, g.approver_units) == ("req-1", "user:analyst", frozenset({PLATFORM}))


def test_a_policy_with_an_unknown_sensitive_category_does_not_construct() -> None:
    with pytest.raises(ValueError, match="sensitive_categories"):
        SharingPolicy(sensitive_categories=frozenset({"PLACE_CATEGORY_MOON"}))
