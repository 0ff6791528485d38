"""Access requests: validation of a new request, the approval policy and the request state machine.

States (ACC-3): PENDING → APPROVED | DENIED | REVOKED (withdrawn) | EXPIRED; APPROVED → REVOKED | EXPIRED.
DENIED, REVOKED and EXPIRED are final. Who may move a request:

- approve / deny (PENDING only): platform administrators, public security officers, and the owning unit's
  operators for requests confined to their own devices — never the requester (ACC-3: an approver decides;
  a grant one grants oneself is no approval). Exports touching sensitive categories need two approvers.
- withdraw (PENDING or APPROVED): the requester only; recorded as REVOKED with revoked_by = the requester.
- revoke (APPROVED only): the requester, the request's approvers, the owning unit of any device it lists,
  public security officers and platform administrators. Revocation only narrows access, so the set is wide.
- expire: anyone (the service's timer) once `valid_until` has passed.

Contractors (ACC-8) and service accounts never approve, deny or revoke: an approval is a person's decision.

`devices` arguments are the facts of the request's listed device ids that the caller could resolve; rules
that depend on devices read them conservatively (an unknown device is never "own" and always "sensitive").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from vigil_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from vigil_sharing.domain.model import (
    ACTION_EXPORT,
    ACTION_LIVE_VIEW,
    ACTIONS,
    AUTO_APPROVER,
    DEFAULT_POLICY,
    FOOTAGE_ACTIONS,
    PLACE_CATEGORIES,
    PUBLIC_PLACE_CATEGORIES,
    ROLE_CONTRACTOR,
    ROLE_PLATFORM_ADMIN,
    ROLE_PUBLIC_SECURITY_OFFICER,
    ROLE_SERVICE,
    UNIT_KIND_PUBLIC_SECURITY_ORGAN,
    AccessRequest,
    Action,
    Approval,
    DeviceFacts,
    Officer,
    PrincipalFacts,
    Purpose,
    RequestState,
    Scope,
    SharingPolicy,
    TimeRange,
)

RULE = "ACC-3"
MAX_TEXT = 2000
_NO_DEVICES: Mapping[str, DeviceFacts] = {}


# ------------------------------------------------------------------ facts about a scope


def owned_by(scope: Scope, unit: str, devices: Mapping[str, DeviceFacts]) -> bool:
    """Whether every device the scope can reach is owned by `unit`.

    Only a scope that lists its devices can be known to stay inside one unit's devices (a site, a
    division or a category may gain other owners' devices later), and every listed device must be known.
    """
    if not scope.device_ids:
        return False
    for device_id in scope.device_ids:
        facts = devices.get(device_id)
        if facts is None or facts.owner_unit != unit:
            return False
    return True


def touches_sensitive(scope: Scope, devices: Mapping[str, DeviceFacts], policy: SharingPolicy) -> bool:
    """Whether the scope may reach a sensitive place category (conservatively: yes unless shown otherwise).

    Bounded by categories: exactly when one of them is sensitive. Bounded by listed devices: when one is
    sensitive or unknown. Bounded only by sites or divisions: yes, since what they contain can change.
    """
    if scope.place_categories:
        return bool(scope.place_categories & policy.sensitive_categories)
    if scope.device_ids:
        for device_id in scope.device_ids:
            facts = devices.get(device_id)
            if facts is None or facts.place_category in policy.sensitive_categories:
                return True
        return False
    return True


def confined_to_public_places(scope: Scope, devices: Mapping[str, DeviceFacts]) -> bool:
    """Whether every device the scope can reach is in a public place (same conservative reading)."""
    if scope.place_categories:
        return scope.place_categories <= PUBLIC_PLACE_CATEGORIES
    if scope.device_ids:
        return all(
            (f := devices.get(d)) is not None and f.place_category in PUBLIC_PLACE_CATEGORIES
            for d in scope.device_ids
        )
    return False


def lists_secret_devices(scope: Scope, devices: Mapping[str, DeviceFacts]) -> list[str]:
    return sorted(d for d in scope.device_ids if (f := devices.get(d)) is not None and f.secret_related)


def is_external_retrieval(
    actions: Iterable[str], scope: Scope, unit: str, devices: Mapping[str, DeviceFacts]
) -> bool:
    """ACC-4: an export by a unit that does not own (every one of) the devices."""
    return ACTION_EXPORT in set(actions) and not owned_by(scope, unit, devices)


def required_approvals(
    request: AccessRequest, devices: Mapping[str, DeviceFacts], policy: SharingPolicy
) -> int:
    """Approval policy: exports touching sensitive categories need `sensitive_export_approvals`; others one."""
    if ACTION_EXPORT in request.actions and touches_sensitive(request.scope, devices, policy):
        return policy.sensitive_export_approvals
    return 1


# ------------------------------------------------------------------ a new request


def _aware(t: datetime | None) -> bool:
    return t is not None and t.tzinfo is not None and t.utcoffset() is not None


def create_request(
    *,
    request_id: str,
    requester: PrincipalFacts,
    purpose: str,
    legal_basis: str,
    scope: Scope,
    actions: Iterable[str],
    valid_until: datetime | None,
    now: datetime,
    footage_window: TimeRange | None = None,
    valid_from: datetime | None = None,
    approval_document_ref: str = "",
    officers: Iterable[Officer] = (),
    agreement_ref: str = "",
    devices: Mapping[str, DeviceFacts] = _NO_DEVICES,
    policy: SharingPolicy = DEFAULT_POLICY,
) -> AccessRequest:
    """Validate a new request (ACC-3, ACC-4, ACC-8) and return it PENDING — or APPROVED when the policy
    approves it by itself (a public security officer's live view of public places, up to 24 h).

    Raises PermissionDenied for a requester who may not ask at all, InvalidArgument listing every fault.
    """
    if ROLE_CONTRACTOR in requester.roles:
        # ACC-8: a contractor's account ends with its contract; nothing can be asked for after that.
        contract = requester.contract
        if contract is None or now >= contract.ends_at:
            raise PermissionDenied("the contractor has no current contract", rule="ACC-8")
    officers = tuple(officers)
    actions_in = list(actions)
    faults: list[tuple[str, str, str]] = []  # (field, message, rule)

    # ACC-3: a lawful purpose and its legal basis.
    try:
        purpose_v = Purpose(purpose)
    except ValueError:
        purpose_v = Purpose.UNSPECIFIED
    if purpose_v is Purpose.UNSPECIFIED:
        faults.append(
            (
                "purpose",
                f"a purpose is required (one of {', '.join(p for p in Purpose if p != Purpose.UNSPECIFIED)})",
                RULE,
            )
        )
    if not legal_basis.strip():
        faults.append(("legal_basis", "a legal basis is required", RULE))
    elif len(legal_basis) > MAX_TEXT:
        faults.append(("legal_basis", f"the legal basis is longer than {MAX_TEXT} characters", RULE))

    # ACC-3: a scope (devices / sites / areas / categories).
    if scope.empty:
        faults.append(
            ("scope", "the scope is empty: name devices, sites, division prefixes or place categories", RULE)
        )
    if any(not d.strip() for d in scope.device_ids):
        faults.append(("scope.device_ids", "a device id is empty", RULE))
    if any(not s.strip() for s in scope.site_ids):
        faults.append(("scope.site_ids", "a site id is empty", RULE))
    for p in scope.division_prefixes:
        if not (p.isascii() and p.isdigit() and 1 <= len(p) <= 12):
            faults.append(
                ("scope.division_prefixes", f"{p!r} is not a 1–12 digit division-code prefix", RULE)
            )
    unknown_categories = sorted(scope.place_categories - PLACE_CATEGORIES)
    if unknown_categories:
        faults.append(("scope.place_categories", f"unknown place categories {unknown_categories}", RULE))

    # ACC-3: actions.
    action_set: set[Action] = set()
    for a in actions_in:
        if a in ACTIONS:
            action_set.add(Action(a))
        else:
            faults.append(("actions", f"unknown action {a!r}", RULE))
    if not actions_in:
        faults.append(("actions", "at least one action is required", RULE))

    # ACC-3 / ACC-1: recorded footage is asked for by window; a window runs forwards.
    if footage_window is None:
        if action_set & FOOTAGE_ACTIONS:
            faults.append(("footage_window", "playback and export need a footage window", RULE))
    elif not (_aware(footage_window.start) and _aware(footage_window.end)):
        faults.append(("footage_window", "footage window times need a time zone", RULE))
    elif not footage_window.ordered:
        faults.append(("footage_window", "the footage window must end after it starts", RULE))

    # ACC-3: a grant expires — within the city's maximum validity.
    if valid_from is None:
        valid_from = now
    if not _aware(valid_from):
        faults.append(("valid_from", "valid_from needs a time zone", RULE))
    elif valid_until is None:
        faults.append(("valid_until", "valid_until is required: every grant expires", RULE))
    elif not _aware(valid_until):
        faults.append(("valid_until", "valid_until needs a time zone", RULE))
    elif valid_until <= valid_from:
        faults.append(("valid_until", "valid_until must be after valid_from", RULE))
    elif valid_until <= now:
        faults.append(("valid_until", "valid_until is already past", RULE))
    elif valid_until - valid_from > policy.max_validity:
        faults.append(("valid_until", f"a grant may be valid for at most {policy.max_validity}", RULE))

    # ACC-4 (one city's rule, configurable): an export by a unit that does not own the devices needs an
    # approval document and at least N officers with their work ids.
    if policy.external_retrieval_rule and is_external_retrieval(action_set, scope, requester.unit, devices):
        if not approval_document_ref.strip():
            faults.append(
                (
                    "approval_document_ref",
                    "an external retrieval needs an approval document reference",
                    "ACC-4",
                )
            )
        for i, o in enumerate(officers):
            if not o.name.strip() or not o.work_id.strip():
                faults.append((f"officers[{i}]", "each officer needs a name and a work id", "ACC-4"))
        work_ids = {o.work_id.strip() for o in officers if o.name.strip() and o.work_id.strip()}
        if len(work_ids) < policy.external_retrieval_min_officers:
            faults.append(
                (
                    "officers",
                    f"an external retrieval needs at least {policy.external_retrieval_min_officers} officers "
                    f"with distinct work ids (got {len(work_ids)})",
                    "ACC-4",
                )
            )
    if len(approval_document_ref) > MAX_TEXT or len(agreement_ref) > MAX_TEXT:
        faults.append(("approval_document_ref", f"references are at most {MAX_TEXT} characters", RULE))

    if faults:
        field, message, rule = faults[0]
        raise InvalidArgument(message, rule=rule, field=field, violations=[(f, m) for f, m, _ in faults])

    assert valid_until is not None
    request = AccessRequest(
        request_id=request_id,
        requester_id=requester.id,
        requester_unit=requester.unit,
        requester_name=requester.name,
        purpose=purpose_v,
        legal_basis=legal_basis.strip(),
        scope=scope,
        actions=frozenset(action_set),
        footage_window=footage_window,
        valid_from=valid_from,
        valid_until=valid_until,
        created_at=now,
        approval_document_ref=approval_document_ref.strip(),
        officers=officers,
        agreement_ref=agreement_ref.strip(),
    )
    if auto_approvable(request, requester, devices, policy):
        return request.with_(
            state=RequestState.APPROVED,
            approvals=(Approval(AUTO_APPROVER, "", now),),
            decided_by=AUTO_APPROVER,
            decided_at=now,
            decision_reason="approved automatically: a public security officer's live view of public places",
        )
    return request


def auto_approvable(
    request: AccessRequest,
    requester: PrincipalFacts,
    devices: Mapping[str, DeviceFacts],
    policy: SharingPolicy,
) -> bool:
    """Approval policy: a public security officer's live view of public places is approved automatically
    for up to `auto_approve_max_validity` (24 h). ACC-6: never when it lists a secret-related device the
    officer is not cleared for; ACC-7 still applies at decision time (privately funded devices need an
    agreement on record)."""
    return (
        policy.auto_approve_officer_live_view
        and ROLE_PUBLIC_SECURITY_OFFICER in requester.roles
        and requester.unit_kind == UNIT_KIND_PUBLIC_SECURITY_ORGAN
        and ROLE_CONTRACTOR not in requester.roles
        and request.actions == {ACTION_LIVE_VIEW}
        and request.valid_until - request.valid_from <= policy.auto_approve_max_validity
        and confined_to_public_places(request.scope, devices)
        and (requester.secret_clearance or not lists_secret_devices(request.scope, devices))
    )


# ------------------------------------------------------------------ who may act


def may_decide(
    actor: PrincipalFacts, request: AccessRequest, devices: Mapping[str, DeviceFacts], policy: SharingPolicy
) -> bool:
    """Whether `actor` is one of the request's possible approvers (ignoring that the requester never is)."""
    if actor.has_role(ROLE_CONTRACTOR, ROLE_SERVICE):
        return False
    if actor.has_role(ROLE_PLATFORM_ADMIN, ROLE_PUBLIC_SECURITY_OFFICER):
        return True
    # The owning unit decides about its own devices, and only when the request stays inside them.
    return bool(actor.roles & policy.owner_approver_roles) and owned_by(request.scope, actor.unit, devices)


def may_revoke(
    actor: PrincipalFacts, request: AccessRequest, devices: Mapping[str, DeviceFacts], policy: SharingPolicy
) -> bool:
    if actor.id == request.requester_id:
        return True
    if actor.has_role(ROLE_CONTRACTOR, ROLE_SERVICE):
        return False
    if actor.has_role(ROLE_PLATFORM_ADMIN, ROLE_PUBLIC_SECURITY_OFFICER) or actor.id in request.approver_ids:
        return True
    # The owning unit of any listed device may take its devices back.
    return bool(actor.roles & policy.owner_approver_roles) and any(
        (f := devices.get(d)) is not None and f.owner_unit == actor.unit for d in request.scope.device_ids
    )


def _require_state(request: AccessRequest, allowed: Iterable[RequestState], verb: str) -> None:
    allowed = tuple(allowed)
    if request.state not in allowed:
        raise FailedPrecondition(
            f"cannot {verb} request {request.request_id}: it is {request.state.value}, "
            f"not {' or '.join(s.value for s in allowed)}",
            rule=RULE,
            field="state",
            violations=[("state", request.state.value)],
        )


def _require_not_lapsed(request: AccessRequest, now: datetime, verb: str) -> None:
    if now >= request.valid_until:
        raise FailedPrecondition(
            f"cannot {verb} request {request.request_id}: its validity ended at {request.valid_until.isoformat()}",
            rule=RULE,
            field="valid_until",
        )


# ------------------------------------------------------------------ transitions


def approve(
    request: AccessRequest,
    approver: PrincipalFacts,
    *,
    requester: PrincipalFacts,
    now: datetime,
    devices: Mapping[str, DeviceFacts] = _NO_DEVICES,
    policy: SharingPolicy = DEFAULT_POLICY,
) -> AccessRequest:
    """Record `approver`'s approval; the request becomes APPROVED once it has the approvals it needs."""
    _require_state(request, (RequestState.PENDING,), "approve")
    _require_not_lapsed(request, now, "approve")
    if approver.id == request.requester_id:
        raise PermissionDenied("the requester may not approve their own request", rule=RULE)
    if not may_decide(approver, request, devices, policy):
        raise PermissionDenied(
            "only platform administrators, public security officers or the owning unit (for its own devices) approve",
            rule=RULE,
        )
    if approver.id in request.approver_ids:
        raise FailedPrecondition(
            f"{approver.id} has already approved request {request.request_id}", rule=RULE
        )
    # ACC-6 (seed Art. 5): secret-related devices only for cleared principals.
    secret = lists_secret_devices(request.scope, devices)
    if secret and not requester.secret_clearance:
        raise PermissionDenied(
            f"the requester is not cleared for secret-related devices {secret}",
            rule="ACC-6",
            field="scope.device_ids",
        )
    approvals = (*request.approvals, Approval(approver.id, approver.unit, now))
    required = required_approvals(request, devices, policy)
    if len(approvals) < required:
        return request.with_(approvals=approvals, required_approvals=required)
    return request.with_(
        approvals=approvals,
        required_approvals=required,
        state=RequestState.APPROVED,
        decided_by=approver.id,
        decided_at=now,
    )


def deny(
    request: AccessRequest,
    actor: PrincipalFacts,
    *,
    now: datetime,
    reason: str = "",
    devices: Mapping[str, DeviceFacts] = _NO_DEVICES,
    policy: SharingPolicy = DEFAULT_POLICY,
) -> AccessRequest:
    """An approver refuses a pending request (the requester withdraws instead)."""
    _require_state(request, (RequestState.PENDING,), "deny")
    if actor.id == request.requester_id:
        raise PermissionDenied("the requester withdraws their own request; they do not deny it", rule=RULE)
    if not may_decide(actor, request, devices, policy):
        raise PermissionDenied("only the request's possible approvers deny it", rule=RULE)
    return request.with_(
        state=RequestState.DENIED, decided_by=actor.id, decided_at=now, decision_reason=reason.strip()
    )


def withdraw(
    request: AccessRequest, actor: PrincipalFacts, *, now: datetime, reason: str = ""
) -> AccessRequest:
    """The requester takes back a pending request or gives up a grant."""
    if actor.id != request.requester_id:
        raise PermissionDenied("only the requester withdraws a request", rule=RULE)
    _require_state(request, (RequestState.PENDING, RequestState.APPROVED), "withdraw")
    return request.with_(
        state=RequestState.REVOKED,
        revoked_by=actor.id,
        revoked_at=now,
        revoke_reason=reason.strip() or "withdrawn",
    )


def revoke(
    request: AccessRequest,
    actor: PrincipalFacts,
    *,
    now: datetime,
    reason: str = "",
    devices: Mapping[str, DeviceFacts] = _NO_DEVICES,
    policy: SharingPolicy = DEFAULT_POLICY,
) -> AccessRequest:
    """ACC-3: a grant can be revoked — by its requester, its approvers, the owning unit, officers, admins."""
    _require_state(request, (RequestState.APPROVED,), "revoke")
    if not may_revoke(actor, request, devices, policy):
        raise PermissionDenied(
            "only the requester, the approvers, the owning unit, public security officers or administrators revoke",
            rule=RULE,
        )
    return request.with_(
        state=RequestState.REVOKED, revoked_by=actor.id, revoked_at=now, revoke_reason=reason.strip()
    )


def is_expired(request: AccessRequest, now: datetime) -> bool:
    return request.state in (RequestState.PENDING, RequestState.APPROVED) and now >= request.valid_until


def expire(request: AccessRequest, *, now: datetime) -> AccessRequest:
    """ACC-3: a grant expires. A pending request whose validity has passed expires undecided."""
    _require_state(request, (RequestState.PENDING, RequestState.APPROVED), "expire")
    if now < request.valid_until:
        raise FailedPrecondition(
            f"request {request.request_id} is valid until {request.valid_until.isoformat()}",
            rule=RULE,
            field="valid_until",
        )
    return request.with_(state=RequestState.EXPIRED, expired_at=now)
