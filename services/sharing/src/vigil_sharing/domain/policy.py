"""The access decision: decide(action, device, footage window, principal, now, grants) → allow or deny, and why.

The order of the rules is the order of their strength: what no one may override (unknown device, ACC-6
secrets, ACC-8 contracts) comes first; then what a principal has without a grant (its own unit's devices);
then grants (ACC-3), each bounded by ACC-7. Anything else is denied (ACC-2: deny by default).

Platform administrators and auditors get nothing here without a grant: ACC-2 separates managing the system
(and reading its logs) from viewing, copying or forwarding video, and least privilege keeps them apart.
An administrator who needs footage asks for it like anyone else, and never approves their own request.
"""

from __future__ import annotations

from datetime import datetime

from vigil_sharing.domain.index import GrantIndex
from vigil_sharing.domain.model import (
    ACTION_SUBSCRIBE_EVENTS,
    ACTIONS,
    DEFAULT_POLICY,
    FOOTAGE_ACTIONS,
    FUNDING_GOVERNMENT,
    ROLE_CONTRACTOR,
    ROLE_PUBLIC_SECURITY_OFFICER,
    ROLE_UNIT_OPERATOR,
    UNIT_KIND_PUBLIC_SECURITY_ORGAN,
    Decision,
    DeviceFacts,
    PrincipalFacts,
    SharingPolicy,
    TimeRange,
)

# Rule ids decisions cite.
RULE_DEFAULT_DENY = "ACC-2"  # deny by default; also the owners' own-device access
RULE_GRANT = "ACC-3"
RULE_FOOTAGE_LOGGED = "ACC-1"
RULE_SECRET = "ACC-6"
RULE_FUNDING = "ACC-7"
RULE_CONTRACT = "ACC-8"

_UNKNOWN_DEVICE = Decision(False, "unknown device: deny by default", RULE_DEFAULT_DENY)
_NO_WINDOW = Decision(
    False, "playback and export name the footage window they read (it is logged)", RULE_FOOTAGE_LOGGED
)
_BAD_WINDOW = Decision(False, "the footage window ends before it starts", RULE_GRANT)

# Near misses, ranked: when no grant allows, the deny cites the most specific rule that stopped a grant.
_MISS_VALIDITY, _MISS_WINDOW, _MISS_FUNDING = 1, 2, 3


def decide(
    action: str,
    device: DeviceFacts | None,
    footage_window: TimeRange | None,
    principal: PrincipalFacts,
    now: datetime,
    grants_index: GrantIndex,
    policy: SharingPolicy = DEFAULT_POLICY,
) -> Decision:
    """Whether `principal` may perform `action` on `device` now, reading `footage_window`. Never raises for
    a deny; the caller logs every decision before acting on it (ACC-1) and denies if it cannot."""
    if action not in ACTIONS:
        return Decision(False, f"unknown action {action!r}: deny by default", RULE_DEFAULT_DENY)
    # ACC-2 (799 Art. 16, deny by default): a device no one has heard of is denied, whoever asks.
    if device is None:
        return _UNKNOWN_DEVICE
    reads_footage = action in FOOTAGE_ACTIONS
    if reads_footage:
        # ACC-1 (799 Art. 16): the log records the content accessed — devices and time range — so recorded
        # footage is only ever read for a stated window.
        if footage_window is None:
            return _NO_WINDOW
        if not footage_window.start < footage_window.end:
            return _BAD_WINDOW
    # ACC-6 (seed Art. 5): secret-related devices never go beyond cleared principals — not to owners, not
    # to administrators, not under any grant.
    if device.secret_related and not principal.secret_clearance:
        return Decision(
            False,
            f"device {device.device_id} is secret-related and the principal is not cleared",
            RULE_SECRET,
        )
    roles = principal.roles
    if ROLE_CONTRACTOR in roles:
        # ACC-8: an operation-and-maintenance account is scoped to its contract and expires with it; the
        # contract bounds every grant the contractor holds as well.
        contract = principal.contract
        if contract is None:
            return Decision(False, "no contract on record for this contractor", RULE_CONTRACT)
        if now >= contract.ends_at:
            return Decision(False, f"contract {contract.contract_id} has ended", RULE_CONTRACT)
        if not contract.scope.covers(device):
            return Decision(
                False, f"device {device.device_id} is outside contract {contract.contract_id}", RULE_CONTRACT
            )
        if action in contract.actions:
            return Decision(
                True,
                f"within contract {contract.contract_id}",
                RULE_CONTRACT,
                unmasked_allowed=principal.unmask_right,
            )
    # ACC-2 (799 Art. 16: roles and grants govern viewing): a unit's operators run the unit's own system;
    # that is their role, not a sharing.
    if device.owner_unit == principal.unit and ROLE_UNIT_OPERATOR in roles and action in policy.owner_actions:
        return Decision(
            True,
            "the principal's unit owns the device",
            RULE_DEFAULT_DENY,
            unmasked_allowed=principal.unmask_right,
        )
    private = device.funding != FUNDING_GOVERNMENT and device.owner_unit != principal.unit
    # ACC-7 (seed Art. 4): government-funded systems are shareable with the public security organ by
    # default. Standing access without a grant only where the city configured it (see SharingPolicy).
    if (
        not private
        and action in policy.police_default_actions
        and ROLE_PUBLIC_SECURITY_OFFICER in roles
        and principal.unit_kind == UNIT_KIND_PUBLIC_SECURITY_ORGAN
    ):
        return Decision(
            True,
            "government-funded system shared with the public security organ by default",
            RULE_FUNDING,
            unmasked_allowed=principal.unmask_right,
        )

    # ACC-3: an approved, purpose-bound, unexpired grant covering the action, the device and the footage
    # (ACC-1, 799 Art. 16: the footage read is the footage logged, so it must lie inside the grant's window).
    if action == ACTION_SUBSCRIBE_EVENTS:
        bucket = grants_index.by_unit.get(principal.unit)
        unmask = False
    else:
        bucket = grants_index.by_holder.get(principal.id)
        unmask = principal.unmask_right
    candidates = bucket.candidates(device) if bucket is not None else ()
    miss = 0
    miss_grant = ""
    unit = principal.unit
    for e in candidates:
        if action not in e.actions or not e.approved or e.holder_unit != unit or not e.covers(device):
            continue
        if not e.valid_from <= now < e.valid_until:
            if miss < _MISS_VALIDITY:
                miss, miss_grant = _MISS_VALIDITY, e.grant_id
            continue
        if reads_footage and (
            e.window_start is None
            or footage_window.start < e.window_start  # type: ignore[union-attr]
            or footage_window.end > e.window_end  # type: ignore[operator,union-attr]
        ):
            if miss < _MISS_WINDOW:
                miss, miss_grant = _MISS_WINDOW, e.grant_id
            continue
        # ACC-7: privately funded systems are shared only under a recorded agreement — one the grant cites,
        # or the owning unit's own approval of it.
        if private and not (e.agreement_ref or device.owner_unit in e.approver_units):
            miss, miss_grant = _MISS_FUNDING, e.grant_id
            continue
        # REG-5 / ACC-5: unmasked video only for principals with the right; an event stream has no video.
        return e.allow_unmasked if unmask else e.allow_masked
    return _denied(miss, miss_grant, action, device)


def _denied(miss: int, grant_id: str, action: str, device: DeviceFacts) -> Decision:
    if miss == _MISS_FUNDING:
        return Decision(
            False,
            f"device {device.device_id} is privately funded and grant {grant_id} records no sharing agreement",
            RULE_FUNDING,
        )
    if miss == _MISS_WINDOW:
        return Decision(False, f"the footage window is outside grant {grant_id}'s footage window", RULE_GRANT)
    if miss == _MISS_VALIDITY:
        return Decision(False, f"grant {grant_id} is not valid at this time", RULE_GRANT)
    return Decision(
        False,
        f"no approved grant covers {action} on device {device.device_id}: deny by default",
        RULE_DEFAULT_DENY,
    )
