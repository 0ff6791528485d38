"""The sharing domain's vocabulary: purposes, actions, scopes, requests, grants, facts, decisions, the policy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple, Protocol

# Enum values are the protobuf enum value NAMES (vigil.sharing.v1 / vigil.common.v1 / vigil.registry.v1), so
# mapping to and from the wire is a name lookup and nothing more. The registry's own enums are mirrored as
# plain strings here on purpose: the sharing domain does not import the registry package.


class Purpose(StrEnum):
    """ACC-3: the lawful purpose a request is bound to."""

    UNSPECIFIED = "PURPOSE_UNSPECIFIED"
    CRIMINAL_INVESTIGATION = "PURPOSE_CRIMINAL_INVESTIGATION"
    PUBLIC_ORDER = "PURPOSE_PUBLIC_ORDER"
    TRAFFIC_MANAGEMENT = "PURPOSE_TRAFFIC_MANAGEMENT"
    EMERGENCY_RESPONSE = "PURPOSE_EMERGENCY_RESPONSE"
    URBAN_MANAGEMENT = "PURPOSE_URBAN_MANAGEMENT"
    OTHER = "PURPOSE_OTHER"


class Action(StrEnum):
    """ACC-1/ACC-3: what a principal does with video (or, for partners, with the event stream)."""

    UNSPECIFIED = "ACTION_UNSPECIFIED"
    LIVE_VIEW = "ACTION_LIVE_VIEW"
    PLAYBACK = "ACTION_PLAYBACK"
    EXPORT = "ACTION_EXPORT"
    SUBSCRIBE_EVENTS = "ACTION_SUBSCRIBE_EVENTS"


ACTION_LIVE_VIEW = Action.LIVE_VIEW
ACTION_PLAYBACK = Action.PLAYBACK
ACTION_EXPORT = Action.EXPORT
ACTION_SUBSCRIBE_EVENTS = Action.SUBSCRIBE_EVENTS
ACTIONS = frozenset({ACTION_LIVE_VIEW, ACTION_PLAYBACK, ACTION_EXPORT, ACTION_SUBSCRIBE_EVENTS})
# Actions on recorded footage: they name a footage window, and the grant's window must contain it.
FOOTAGE_ACTIONS = frozenset({ACTION_PLAYBACK, ACTION_EXPORT})
# Actions on video (as opposed to the partner event stream).
VIDEO_ACTIONS = frozenset({ACTION_LIVE_VIEW, ACTION_PLAYBACK, ACTION_EXPORT})


class RequestState(StrEnum):
    UNSPECIFIED = "REQUEST_STATE_UNSPECIFIED"
    PENDING = "REQUEST_STATE_PENDING"
    APPROVED = "REQUEST_STATE_APPROVED"
    DENIED = "REQUEST_STATE_DENIED"
    REVOKED = "REQUEST_STATE_REVOKED"  # also a withdrawal by the requester (revoked_by == requester)
    EXPIRED = "REQUEST_STATE_EXPIRED"


TERMINAL_STATES = frozenset({RequestState.DENIED, RequestState.REVOKED, RequestState.EXPIRED})

# Role names as carried in tokens (vigil.common.v1.Role value names).
ROLE_PLATFORM_ADMIN = "ROLE_PLATFORM_ADMIN"
ROLE_PUBLIC_SECURITY_OFFICER = "ROLE_PUBLIC_SECURITY_OFFICER"
ROLE_DEPARTMENT_ANALYST = "ROLE_DEPARTMENT_ANALYST"
ROLE_UNIT_OPERATOR = "ROLE_UNIT_OPERATOR"
ROLE_AUDITOR = "ROLE_AUDITOR"
ROLE_PARTNER = "ROLE_PARTNER"
ROLE_CONTRACTOR = "ROLE_CONTRACTOR"
ROLE_SERVICE = "ROLE_SERVICE"

# Unit kinds (vigil.common.v1.UnitKind value names).
UNIT_KIND_GOVERNMENT_DEPARTMENT = "UNIT_KIND_GOVERNMENT_DEPARTMENT"
UNIT_KIND_PUBLIC_SECURITY_ORGAN = "UNIT_KIND_PUBLIC_SECURITY_ORGAN"
UNIT_KIND_ENTERPRISE = "UNIT_KIND_ENTERPRISE"
UNIT_KIND_INSTITUTION = "UNIT_KIND_INSTITUTION"
UNIT_KIND_INDIVIDUAL = "UNIT_KIND_INDIVIDUAL"
UNIT_KIND_PARTNER = "UNIT_KIND_PARTNER"

# Funding of a site's system (vigil.registry.v1.Funding value names). ACC-7 treats anything that is not
# explicitly government-funded as privately funded: an unknown funding source gets the stricter rule.
FUNDING_GOVERNMENT = "FUNDING_GOVERNMENT"
FUNDING_PRIVATE = "FUNDING_PRIVATE"
FUNDING_UNSPECIFIED = "FUNDING_UNSPECIFIED"

# Place categories (vigil.registry.v1.PlaceCategory value names; REG-2, seed Art. 7).
PLACE_ROAD_SQUARE_TUNNEL_BRIDGE = "PLACE_CATEGORY_ROAD_SQUARE_TUNNEL_BRIDGE"
PLACE_TRANSPORT = "PLACE_CATEGORY_TRANSPORT"
PLACE_ENERGY_UTILITIES = "PLACE_CATEGORY_ENERGY_UTILITIES"
PLACE_HAZARDOUS_MATERIALS = "PLACE_CATEGORY_HAZARDOUS_MATERIALS"
PLACE_MEDIA_TELECOM_FINANCE = "PLACE_CATEGORY_MEDIA_TELECOM_FINANCE"
PLACE_PUBLIC_SERVICES = "PLACE_CATEGORY_PUBLIC_SERVICES"
PLACE_RESIDENTIAL_HOSPITALITY = "PLACE_CATEGORY_RESIDENTIAL_HOSPITALITY"
PLACE_VALUABLES_TRADE = "PLACE_CATEGORY_VALUABLES_TRADE"
PLACE_OTHER_PUBLIC = "PLACE_CATEGORY_OTHER_PUBLIC"
PLACE_NON_PUBLIC = "PLACE_CATEGORY_NON_PUBLIC"
PLACE_UNSPECIFIED = "PLACE_CATEGORY_UNSPECIFIED"
PUBLIC_PLACE_CATEGORIES = frozenset(
    {
        PLACE_ROAD_SQUARE_TUNNEL_BRIDGE,
        PLACE_TRANSPORT,
        PLACE_ENERGY_UTILITIES,
        PLACE_HAZARDOUS_MATERIALS,
        PLACE_MEDIA_TELECOM_FINANCE,
        PLACE_PUBLIC_SERVICES,
        PLACE_RESIDENTIAL_HOSPITALITY,
        PLACE_VALUABLES_TRADE,
        PLACE_OTHER_PUBLIC,
    }
)
PLACE_CATEGORIES = PUBLIC_PLACE_CATEGORIES | {PLACE_NON_PUBLIC}

# The approver recorded on requests the policy approves by itself (never a person, never the requester).
AUTO_APPROVER = "policy:auto-approval"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The production clock: aware UTC now. Use-cases take `now` so that tests can move time."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open interval [start, end) of aware datetimes (footage windows, validity)."""

    start: datetime
    end: datetime

    def contains(self, other: TimeRange) -> bool:
        return self.start <= other.start and other.end <= self.end

    @property
    def ordered(self) -> bool:
        return self.start < self.end


@dataclass(frozen=True, slots=True)
class Scope:
    """ACC-3: which devices a request or grant covers.

    Each non-empty dimension narrows the scope (a device is in scope only when it matches every dimension
    given); an empty dimension does not constrain. This is the least-privilege reading (ACC-2): a scope
    never covers more than each of its criteria allows, so {division "320211", category TRANSPORT} means
    transport devices in district 320211 and not everything in either. A scope with no dimension at all
    covers nothing and is refused as a request.
    """

    device_ids: frozenset[str] = frozenset()
    site_ids: frozenset[str] = frozenset()
    division_prefixes: tuple[str, ...] = ()
    place_categories: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        device_ids: Iterable[str] = (),
        site_ids: Iterable[str] = (),
        division_prefixes: Iterable[str] = (),
        place_categories: Iterable[str] = (),
    ) -> Scope:
        return cls(
            frozenset(device_ids),
            frozenset(site_ids),
            tuple(sorted(set(division_prefixes))),
            frozenset(place_categories),
        )

    @property
    def empty(self) -> bool:
        return not (self.device_ids or self.site_ids or self.division_prefixes or self.place_categories)

    def covers(self, device: DeviceFacts) -> bool:
        """The reference (unindexed) matcher; the grant index pre-computes the same test."""
        if self.empty:
            return False
        if self.device_ids and device.device_id not in self.device_ids:
            return False
        if self.site_ids and device.site_id not in self.site_ids:
            return False
        if self.place_categories and device.place_category not in self.place_categories:
            return False
        return not self.division_prefixes or device.division_code.startswith(self.division_prefixes)


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What sharing knows of a device (fed by registry events): enough for ACC-2, ACC-6 and ACC-7."""

    device_id: str
    owner_unit: str
    site_id: str
    division_code: str
    place_category: str
    funding: str
    secret_related: bool = False
    owner_unit_kind: str = ""
    # The registry's update_time these facts are as of: the device's own fields (owner, site_id), and the
    # site's (division, category, funding, secret flag). None where not known. See newer_facts.
    device_time: datetime | None = None
    site_time: datetime | None = None

    @property
    def government_funded(self) -> bool:
        return self.funding == FUNDING_GOVERNMENT

    @property
    def public_place(self) -> bool:
        return self.place_category in PUBLIC_PLACE_CATEGORIES


def _not_older(incoming: datetime | None, current: datetime | None) -> bool:
    return current is None or (incoming is not None and incoming >= current)


def newer_facts(current: DeviceFacts | None, incoming: DeviceFacts) -> DeviceFacts:
    """What sharing holds of a device once `incoming` arrives, whatever order its sources arrive in.

    Device events (one Kafka partition per device), site updates (the site's partition), registry answers
    and the two feeds of each process arrive in no common order, and an older one must not undo a newer
    one: a site marked secret-related (ACC-6) must stay so when an earlier event of one of its devices is
    read after the site's update. The device's own fields are taken from the newer side by device_time;
    the site's fields from the newer side by site_time while both sides name the same site (a device
    moved to another site takes its new site's facts with it). Ties go to `incoming`; a side without a
    time is older than one with it.
    """
    if current is None:
        return incoming
    device = incoming if _not_older(incoming.device_time, current.device_time) else current
    other = current if device is incoming else incoming
    if other.site_id != device.site_id or _not_older(device.site_time, other.site_time):
        return device
    return replace(
        device,
        division_code=other.division_code,
        place_category=other.place_category,
        funding=other.funding,
        secret_related=other.secret_related,
        site_time=other.site_time,
    )


@dataclass(frozen=True, slots=True)
class Contract:
    """ACC-8: an operation-and-maintenance contract; the contractor's access is bounded by it and ends with it.

    `actions` is what the contract itself authorises on devices in its scope (maintenance needs to see the
    picture: live view); any grant the contractor holds is further bounded by the same scope and end date.
    """

    contract_id: str
    scope: Scope
    ends_at: datetime
    actions: frozenset[Action] = frozenset({ACTION_LIVE_VIEW})


class TokenPrincipal(Protocol):
    """vigil_kit.auth.Principal satisfies this; the domain needs only these facts from the token."""

    @property
    def id(self) -> str: ...

    @property
    def unit(self) -> str: ...

    @property
    def unit_kind(self) -> str: ...

    @property
    def roles(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class PrincipalFacts:
    """Who is asking: the token's facts plus what sharing keeps that tokens do not carry.

    `unmask_right` (REG-5 / ACC-5): may see video without privacy masks. `secret_clearance` (ACC-6): may see
    devices flagged secret-related. `contract` (ACC-8): a contractor's contract, or None.
    """

    id: str
    unit: str
    unit_kind: str = ""
    roles: frozenset[str] = frozenset()
    name: str = ""
    unmask_right: bool = False
    secret_clearance: bool = False
    contract: Contract | None = None

    @classmethod
    def of(
        cls,
        principal: TokenPrincipal,
        *,
        unmask_right: bool = False,
        secret_clearance: bool = False,
        contract: Contract | None = None,
    ) -> PrincipalFacts:
        return cls(
            id=principal.id,
            unit=principal.unit,
            unit_kind=principal.unit_kind,
            roles=frozenset(principal.roles),
            name=getattr(principal, "name", ""),
            unmask_right=unmask_right,
            secret_clearance=secret_clearance,
            contract=contract,
        )

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)


@dataclass(frozen=True, slots=True)
class Officer:
    """ACC-4: an officer present at an external retrieval, recorded with their work id."""

    name: str
    work_id: str


@dataclass(frozen=True, slots=True)
class Approval:
    """One approver's decision on a request (exports touching sensitive categories need two)."""

    principal_id: str
    unit: str
    at: datetime


@dataclass(frozen=True)
class AccessRequest:
    """ACC-3: a purpose-bound request for access; once approved, its grant (grant id = request id)."""

    request_id: str
    requester_id: str
    requester_unit: str
    purpose: Purpose
    legal_basis: str
    scope: Scope
    actions: frozenset[Action]
    footage_window: TimeRange | None
    valid_from: datetime
    valid_until: datetime
    created_at: datetime
    state: RequestState = RequestState.PENDING
    requester_name: str = ""
    # ACC-4: external retrieval (an export by a unit that does not own the devices).
    approval_document_ref: str = ""
    officers: tuple[Officer, ...] = ()
    # ACC-7: the recorded sharing agreement with a private owner, where privately funded devices are asked for.
    agreement_ref: str = ""
    approvals: tuple[Approval, ...] = ()
    required_approvals: int = 1
    decided_by: str = ""  # the approver whose approval completed it, or who denied it
    decided_at: datetime | None = None
    decision_reason: str = ""
    revoked_by: str = ""
    revoked_at: datetime | None = None
    revoke_reason: str = ""
    expired_at: datetime | None = None

    def with_(self, **changes: object) -> AccessRequest:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def withdrawn(self) -> bool:
        return self.state is RequestState.REVOKED and self.revoked_by == self.requester_id

    @property
    def approver_ids(self) -> tuple[str, ...]:
        return tuple(a.principal_id for a in self.approvals)


@dataclass(frozen=True, slots=True)
class Grant:
    """What decide() needs of an approved request. Held by the requester; its SUBSCRIBE_EVENTS action is
    held by the requester's whole unit (a partner's event stream is its unit's topic)."""

    grant_id: str
    holder_id: str
    holder_unit: str
    purpose: Purpose
    actions: frozenset[Action]
    scope: Scope
    footage_window: TimeRange | None
    valid_from: datetime
    valid_until: datetime
    state: RequestState = RequestState.APPROVED
    agreement_ref: str = ""
    approver_ids: tuple[str, ...] = ()
    approver_units: frozenset[str] = frozenset()

    @classmethod
    def from_request(cls, request: AccessRequest) -> Grant:
        return cls(
            grant_id=request.request_id,
            holder_id=request.requester_id,
            holder_unit=request.requester_unit,
            purpose=request.purpose,
            actions=request.actions,
            scope=request.scope,
            footage_window=request.footage_window,
            valid_from=request.valid_from,
            valid_until=request.valid_until,
            state=request.state,
            agreement_ref=request.agreement_ref,
            approver_ids=request.approver_ids,
            approver_units=frozenset(a.unit for a in request.approvals),
        )

    def records_agreement_with(self, owner_unit: str) -> bool:
        """ACC-7: an agreement is on record when the grant cites one or the owning unit itself approved it."""
        return bool(self.agreement_ref) or owner_unit in self.approver_units


class Decision(NamedTuple):
    """decide()'s answer. `rule` is the REQUIREMENTS id the decision rests on.

    A NamedTuple rather than a frozen dataclass: it is built on the hot path and a tuple is built in a
    fraction of the time, while staying immutable."""

    allow: bool
    reason: str
    rule: str
    grant_id: str = ""
    unmasked_allowed: bool = False


@dataclass(frozen=True)
class SharingPolicy:
    """The per-city knobs of the sharing rules; built from Settings at start. Construction validates them."""

    # ACC-3: the longest a grant may be valid.
    max_validity: timedelta = timedelta(days=90)
    # ACC-4 (one city's rule): external retrieval needs an approval document and this many officers.
    external_retrieval_rule: bool = True
    external_retrieval_min_officers: int = 2
    # Approval policy: public security officers' live view of public places is approved automatically.
    auto_approve_officer_live_view: bool = True
    auto_approve_max_validity: timedelta = timedelta(hours=24)
    # Approval policy: exports touching these categories need `sensitive_export_approvals` approvers.
    sensitive_categories: frozenset[str] = frozenset(
        {PLACE_RESIDENTIAL_HOSPITALITY, PLACE_MEDIA_TELECOM_FINANCE, PLACE_VALUABLES_TRADE, PLACE_NON_PUBLIC}
    )
    sensitive_export_approvals: int = 2
    # Which roles of the owning unit may approve requests for the unit's own devices.
    owner_approver_roles: frozenset[str] = frozenset({ROLE_UNIT_OPERATOR})
    # ACC-2: what a unit's operators may do with the devices their unit owns, without a grant.
    owner_actions: frozenset[Action] = frozenset({ACTION_LIVE_VIEW, ACTION_PLAYBACK, ACTION_EXPORT})
    # ACC-7: actions public security officers get WITHOUT a grant on government-funded devices. Empty by
    # default: "shareable by default" is read as "no owner agreement needed", not "no purpose needed" — every
    # view still has a purpose-bound, logged grant (ACC-1, ACC-3). A city may set e.g. {LIVE_VIEW}.
    police_default_actions: frozenset[Action] = frozenset()

    def __post_init__(self) -> None:
        if self.max_validity <= timedelta(0):
            raise ValueError("max_validity must be positive")
        if self.external_retrieval_min_officers < 0:
            raise ValueError("external_retrieval_min_officers must not be negative")
        if self.auto_approve_max_validity <= timedelta(0):
            raise ValueError("auto_approve_max_validity must be positive")
        if self.sensitive_export_approvals < 1:
            raise ValueError("sensitive_export_approvals must be at least 1")
        for name in (
            "sensitive_categories",
            "owner_approver_roles",
            "owner_actions",
            "police_default_actions",
        ):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        unknown = self.sensitive_categories - PLACE_CATEGORIES
        if unknown:
            raise ValueError(f"sensitive_categories: unknown place categories {sorted(unknown)}")
        for name in ("owner_actions", "police_default_actions"):
            bad = getattr(self, name) - ACTIONS
            if bad:
                raise ValueError(f"{name}: unknown actions {sorted(bad)}")
        object.__setattr__(self, "owner_actions", frozenset(Action(a) for a in self.owner_actions))
        object.__setattr__(
            self, "police_default_actions", frozenset(Action(a) for a in self.police_default_actions)
        )


DEFAULT_POLICY = SharingPolicy()
