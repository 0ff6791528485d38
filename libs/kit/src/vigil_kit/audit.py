"""Building AuditRecords and writing them to the outbox for vigil.audit.records.v1 (AUD-1)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.audit.v1 import audit_record_pb2
from vigil.common.v1 import identity_pb2
from vigil_kit import cloudevents, outbox, topics
from vigil_kit.auth import Principal

AuditRecord = audit_record_pb2.AuditRecord
Decision = audit_record_pb2.Decision

ALLOWED = "allowed"
DENIED = "denied"

_DECISIONS = {
    ALLOWED: audit_record_pb2.DECISION_ALLOWED,
    DENIED: audit_record_pb2.DECISION_DENIED,
    "DECISION_ALLOWED": audit_record_pb2.DECISION_ALLOWED,
    "DECISION_DENIED": audit_record_pb2.DECISION_DENIED,
}
_RESOURCE_FIELDS = frozenset(f.name for f in audit_record_pb2.Resources.DESCRIPTOR.fields)


# Principals' messages by principal: a service writes records for the same few callers over and over, and
# building the message costs more than the rest of a record's fields. Never handed out: only copied from.
_PRINCIPAL_PROTOS: dict[Principal, identity_pb2.Principal] = {}
_PRINCIPAL_PROTOS_MAX = 4096


def _principal(p: Principal | identity_pb2.Principal) -> identity_pb2.Principal:
    """The principal as a message, for copying into a record (the caller must not change it)."""
    if isinstance(p, identity_pb2.Principal):
        return p
    try:
        cached = _PRINCIPAL_PROTOS.get(p)
    except TypeError:  # roles given as a list: not hashable, so not kept
        return p.to_proto()
    if cached is None:
        if len(_PRINCIPAL_PROTOS) >= _PRINCIPAL_PROTOS_MAX:
            _PRINCIPAL_PROTOS.clear()
        cached = _PRINCIPAL_PROTOS[p] = p.to_proto()
    return cached


def _decision(decision: str | int) -> int:
    if isinstance(decision, int):
        if decision not in (audit_record_pb2.DECISION_ALLOWED, audit_record_pb2.DECISION_DENIED):
            raise ValueError(f"decision must be allowed or denied, not {decision}")
        return decision
    try:
        return _DECISIONS[decision]
    except KeyError:
        raise ValueError(f"decision must be 'allowed' or 'denied', not {decision!r}") from None


def _resource_field(name: str) -> str:
    # Accept the proto field ("device_ids") or the plain plural ("devices").
    if name in _RESOURCE_FIELDS:
        return name
    candidate = f"{name.removesuffix('s')}_ids"
    if candidate in _RESOURCE_FIELDS:
        return candidate
    raise ValueError(f"unknown audit resource kind {name!r} (one of {sorted(_RESOURCE_FIELDS)})")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _set_time(target: Timestamp, t: datetime) -> None:
    """`t` into a Timestamp field in place: what Timestamp.FromDatetime gives, without a message to copy."""
    if t.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    since = t - _EPOCH
    target.seconds = since.days * 86_400 + since.seconds
    target.nanos = since.microseconds * 1000


def build_record(
    *,
    actor: Principal | identity_pb2.Principal,
    action: str,
    source_service: str,
    decision: str | int,
    resources: Mapping[str, Iterable[str]] | None = None,
    purpose: str = "",
    reason: str = "",
    footage: tuple[datetime, datetime] | None = None,
    rule_id: str = "",
    approver: Principal | identity_pb2.Principal | None = None,
    grant_id: str = "",
    request_id: str = "",
    attributes: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> audit_record_pb2.AuditRecord:
    """One AuditRecord with a fresh UUIDv7 record id (the dedupe key all the way to the audit log).

    `decision` is "allowed"/"denied" or a Decision value; `resources` maps a kind ("devices" or
    "device_ids", "grants", "segments", ...) to ids; `footage` is a [start, end) window.
    """
    record = audit_record_pb2.AuditRecord(
        record_id=cloudevents.new_event_id(),
        source_service=source_service,
        action=action,
        purpose=purpose,
        reason=reason,
        decision=_decision(decision),
        rule_id=rule_id,
        grant_id=grant_id,
        request_id=request_id,
    )
    _set_time(record.time, now or datetime.now(UTC))
    record.actor.CopyFrom(_principal(actor))
    for kind, ids in (resources or {}).items():
        getattr(record.resources, _resource_field(kind)).extend(ids)
    if footage is not None:
        start, end = footage
        if end < start:
            raise ValueError("footage window ends before it starts")
        _set_time(record.footage.start_time, start)
        _set_time(record.footage.end_time, end)
    if approver is not None:
        record.approver.CopyFrom(_principal(approver))
    for k, v in (attributes or {}).items():
        record.attributes[k] = v
    return record


def audit_row(record: audit_record_pb2.AuditRecord, created_at: datetime | None = None) -> dict[str, Any]:
    """The outbox row write_audit adds (key and event id = record id), as column values (outbox.event_row)."""
    if not record.record_id:
        raise ValueError("an audit record needs its record_id (use build_record)")
    return outbox.event_row(
        topic=topics.AUDIT_RECORDS,
        key=record.record_id,
        message=record,
        source_service=record.source_service,
        subject=record.action,
        event_id=record.record_id,
        created_at=created_at,
    )


def write_audit(
    session: AsyncSession,
    record: audit_record_pb2.AuditRecord,
    *,
    notifier: Callable[[], None] | None = None,
) -> str:
    """Enqueue `record` in the caller's transaction (key and event id = record_id); returns the record id."""
    return outbox.add_row(session, audit_row(record), notifier=notifier)
