"""Mapping between the sharing domain (dataclasses) and vigil.sharing.v1 / vigil.registry.v1 messages."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from vigil.common.v1 import identity_pb2, time_range_pb2
from vigil.registry.v1 import registry_service_pb2 as reg_pb
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil_kit.auth import Principal
from vigil_sharing.domain.model import (
    AccessRequest,
    Action,
    Approval,
    Contract,
    DeviceFacts,
    Officer,
    Purpose,
    RequestState,
    Scope,
    TimeRange,
)


def ts(t: datetime | None) -> Timestamp | None:
    if t is None:
        return None
    out = Timestamp()
    out.FromDatetime(t.astimezone(UTC))
    return out


def from_ts(msg: object, field: str) -> datetime | None:
    """The aware UTC datetime in `msg.field`, or None when the field is unset."""
    if not msg.HasField(field):  # type: ignore[attr-defined]
        return None
    return getattr(msg, field).ToDatetime(tzinfo=UTC)


def time_range(window: TimeRange | None) -> time_range_pb2.TimeRange | None:
    if window is None:
        return None
    return time_range_pb2.TimeRange(start_time=ts(window.start), end_time=ts(window.end))


def from_time_range(msg: object, field: str) -> TimeRange | None:
    if not msg.HasField(field):  # type: ignore[attr-defined]
        return None
    tr = getattr(msg, field)
    start = from_ts(tr, "start_time")
    end = from_ts(tr, "end_time")
    if start is None or end is None:
        # A window with a missing end is no window; the domain refuses it as such (field "footage_window").
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return TimeRange(start or epoch, end or epoch)
    return TimeRange(start, end)


def scope(s: Scope) -> pb.Scope:
    return pb.Scope(
        device_ids=sorted(s.device_ids),
        site_ids=sorted(s.site_ids),
        division_prefixes=list(s.division_prefixes),
        place_categories=[reg_pb.PlaceCategory.Value(c) for c in sorted(s.place_categories)],
    )


def from_scope(msg: pb.Scope) -> Scope:
    return Scope.of(
        device_ids=msg.device_ids,
        site_ids=msg.site_ids,
        division_prefixes=msg.division_prefixes,
        place_categories=[reg_pb.PlaceCategory.Name(c) for c in msg.place_categories],
    )


def access_request(r: AccessRequest, requester: identity_pb2.Principal | None = None) -> pb.AccessRequest:
    msg = pb.AccessRequest(
        request_id=r.request_id,
        requester=requester
        or identity_pb2.Principal(id=r.requester_id, name=r.requester_name, unit=r.requester_unit),
        purpose=pb.Purpose.Value(r.purpose.value),
        legal_basis=r.legal_basis,
        scope=scope(r.scope),
        actions=[pb.Action.Value(a.value) for a in sorted(r.actions)],
        footage_window=time_range(r.footage_window),
        valid_from=ts(r.valid_from),
        valid_until=ts(r.valid_until),
        approval_document_ref=r.approval_document_ref,
        officers=[pb.Officer(name=o.name, work_id=o.work_id) for o in r.officers],
        agreement_ref=r.agreement_ref,
        state=pb.RequestState.Value(r.state.value),
        approvals=[
            pb.Approval(principal_id=a.principal_id, unit=a.unit, approve_time=ts(a.at)) for a in r.approvals
        ],
        required_approvals=r.required_approvals,
        decided_by=r.decided_by,
        decide_time=ts(r.decided_at),
        decision_reason=r.decision_reason,
        revoked_by=r.revoked_by,
        revoke_time=ts(r.revoked_at),
        revoke_reason=r.revoke_reason,
        expire_time=ts(r.expired_at),
        create_time=ts(r.created_at),
    )
    return msg


def from_access_request(msg: pb.AccessRequest) -> AccessRequest:
    """A stored request back into the domain (the database keeps the message as its record)."""
    valid_from = from_ts(msg, "valid_from")
    valid_until = from_ts(msg, "valid_until")
    created = from_ts(msg, "create_time")
    assert valid_from is not None and valid_until is not None and created is not None
    return AccessRequest(
        request_id=msg.request_id,
        requester_id=msg.requester.id,
        requester_unit=msg.requester.unit,
        requester_name=msg.requester.name,
        purpose=Purpose(pb.Purpose.Name(msg.purpose)),
        legal_basis=msg.legal_basis,
        scope=from_scope(msg.scope),
        actions=frozenset(Action(pb.Action.Name(a)) for a in msg.actions),
        footage_window=from_time_range(msg, "footage_window"),
        valid_from=valid_from,
        valid_until=valid_until,
        created_at=created,
        state=RequestState(pb.RequestState.Name(msg.state)),
        approval_document_ref=msg.approval_document_ref,
        officers=tuple(Officer(o.name, o.work_id) for o in msg.officers),
        agreement_ref=msg.agreement_ref,
        approvals=tuple(
            Approval(a.principal_id, a.unit, a.approve_time.ToDatetime(tzinfo=UTC)) for a in msg.approvals
        ),
        required_approvals=msg.required_approvals or 1,
        decided_by=msg.decided_by,
        decided_at=from_ts(msg, "decide_time"),
        decision_reason=msg.decision_reason,
        revoked_by=msg.revoked_by,
        revoked_at=from_ts(msg, "revoke_time"),
        revoke_reason=msg.revoke_reason,
        expired_at=from_ts(msg, "expire_time"),
    )


def contract(c: Contract | None) -> pb.Contract | None:
    if c is None:
        return None
    return pb.Contract(
        contract_id=c.contract_id,
        scope=scope(c.scope),
        end_time=ts(c.ends_at),
        actions=[pb.Action.Value(a.value) for a in sorted(c.actions)],
    )


def from_contract(msg: pb.PrincipalFacts) -> Contract | None:
    if not msg.HasField("contract"):
        return None
    c = msg.contract
    ends = from_ts(c, "end_time")
    if ends is None:
        return None
    actions = frozenset(Action(pb.Action.Name(a)) for a in c.actions if a) or frozenset({Action.LIVE_VIEW})
    return Contract(contract_id=c.contract_id, scope=from_scope(c.scope), ends_at=ends, actions=actions)


def principal_from_proto(msg: identity_pb2.Principal) -> Principal:
    return Principal.from_proto(msg)


def device_facts(device: reg_pb.Device) -> DeviceFacts:
    """What sharing keeps of a registry Device (its owner and site facts, ACC-2/6/7)."""
    site = device.site
    # The embedded site facts are read with the device, so they are as of the device's update_time.
    updated = from_ts(device, "update_time")
    return DeviceFacts(
        device_id=device.device_id,
        owner_unit=device.owner_unit_id,
        site_id=device.site_id,
        division_code=site.division_code,
        place_category=reg_pb.PlaceCategory.Name(site.place_category),
        funding=reg_pb.Funding.Name(site.funding),
        secret_related=site.secret_related,
        owner_unit_kind=identity_pb2.UnitKind.Name(device.owner.kind) if device.HasField("owner") else "",
        device_time=updated,
        site_time=updated,
    )
