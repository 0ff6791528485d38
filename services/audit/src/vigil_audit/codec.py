"""Between ``vigil.audit.v1.AuditRecord`` messages and the plain field mappings the leaf encoding hashes.

The domain (:mod:`vigil_audit.domain.leaf`) knows no protobuf: it encodes a mapping of the record's
fields. :func:`record_fields` builds that mapping from a message (times as (seconds, nanos), enums as
their names), and :func:`record_from_leaf` turns stored leaf bytes back into the message, so the log
stores each record once, as the exact bytes it hashed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from vigil.audit.v1 import audit_record_pb2
from vigil.common.v1 import identity_pb2
from vigil_audit.domain.leaf import LeafEncodingError, leaf_bytes

AuditRecord = audit_record_pb2.AuditRecord

_RESOURCE_FIELDS = tuple(f.name for f in audit_record_pb2.Resources.DESCRIPTOR.fields)
_DECISION = audit_record_pb2.Decision
_UNIT_KIND = identity_pb2.UnitKind
_ROLE = identity_pb2.Role
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _enum_name(enum: Any, value: int, field: str) -> str:
    try:
        return enum.Name(value)
    except ValueError:
        # An open proto3 enum keeps numbers this build does not know; they have no name to hash.
        raise LeafEncodingError(f"{field}: unknown enum value {value}") from None


def _enum_value(enum: Any, name: str, field: str) -> int:
    try:
        return enum.Value(name)
    except ValueError:
        raise LeafEncodingError(f"{field}: unknown enum name {name!r}") from None


def _principal_fields(p: identity_pb2.Principal, field: str) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "unit": p.unit,
        "unit_kind": _enum_name(_UNIT_KIND, p.unit_kind, f"{field}.unit_kind"),
        "roles": [_enum_name(_ROLE, r, f"{field}.roles") for r in p.roles],
    }


def record_fields(record: AuditRecord) -> dict[str, Any]:
    """The record's fields as the leaf encoding takes them (empties are dropped by the encoding itself)."""
    fields: dict[str, Any] = {
        "record_id": record.record_id,
        "source_service": record.source_service,
        "action": record.action,
        "purpose": record.purpose,
        "reason": record.reason,
        "decision": _enum_name(_DECISION, record.decision, "decision"),
        "rule_id": record.rule_id,
        "grant_id": record.grant_id,
        "request_id": record.request_id,
    }
    if record.HasField("time"):
        fields["time"] = (record.time.seconds, record.time.nanos)
    if record.HasField("actor"):
        fields["actor"] = _principal_fields(record.actor, "actor")
    if record.HasField("approver"):
        fields["approver"] = _principal_fields(record.approver, "approver")
    if record.HasField("resources"):
        res = record.resources
        fields["resources"] = {name: list(getattr(res, name)) for name in _RESOURCE_FIELDS}
    if record.HasField("footage"):
        window: dict[str, Any] = {}
        if record.footage.HasField("start_time"):
            window["start_time"] = (record.footage.start_time.seconds, record.footage.start_time.nanos)
        if record.footage.HasField("end_time"):
            window["end_time"] = (record.footage.end_time.seconds, record.footage.end_time.nanos)
        fields["footage"] = window
    if record.attributes:
        fields["attributes"] = dict(record.attributes)
    return fields


def record_leaf_checked(record: AuditRecord) -> bytes:
    """The canonical leaf bytes through the domain's general encoder (the reference :func:`record_leaf` meets)."""
    return leaf_bytes(record_fields(record))


# --- the writer's fast path ----------------------------------------------------------------------------
# The log encodes ~10,000 records a second on one core. A message's fields are already typed (strings,
# repeated strings, enum numbers), so most of the domain encoder's checks cannot fail for it; this builds
# the canonical object in JCS key order straight from the message and hands it to the same JSON encoder
# settings. The unit tests hold it to record_leaf_checked (the domain encoding) over generated records.

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)
_DECISION_NAMES = {v.number: v.name for v in audit_record_pb2.Decision.DESCRIPTOR.values}
_UNIT_KIND_NAMES = {v.number: v.name for v in identity_pb2.UnitKind.DESCRIPTOR.values}
_ROLE_NAMES = {v.number: v.name for v in identity_pb2.Role.DESCRIPTOR.values}


# Formatted "YYYY-MM-DDTHH:MM:SS." by whole second: a batch's times share a few seconds.
_SECOND_PREFIXES: dict[int, str] = {}


def _fast_time(ts: Timestamp, field: str) -> str:
    nanos = ts.nanos
    if not 0 <= nanos < 1_000_000_000:
        raise LeafEncodingError(f"{field}: nanos {nanos} out of range")
    seconds = ts.seconds
    prefix = _SECOND_PREFIXES.get(seconds)
    if prefix is None:
        try:
            t = time.gmtime(seconds)
        except (OverflowError, OSError, ValueError):
            raise LeafEncodingError(f"{field}: seconds {seconds} out of range") from None
        if not 1 <= t.tm_year <= 9999:
            raise LeafEncodingError(f"{field}: year {t.tm_year} out of range")
        prefix = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        )
        if len(_SECOND_PREFIXES) >= 4096:
            _SECOND_PREFIXES.clear()
        _SECOND_PREFIXES[seconds] = prefix
    return f"{prefix}{nanos:09d}Z"


def _name(names: Mapping[int, str], value: int, field: str) -> str:
    try:
        return names[value]
    except KeyError:
        raise LeafEncodingError(f"{field}: unknown enum value {value}") from None


def _fast_principal(p: identity_pb2.Principal, field: str) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    if p.id:
        out["id"] = p.id
    if p.name:
        out["name"] = p.name
    if p.roles:
        out["roles"] = [_name(_ROLE_NAMES, r, f"{field}.roles") for r in p.roles]
    if p.unit:
        out["unit"] = p.unit
    if p.unit_kind:
        out["unit_kind"] = _name(_UNIT_KIND_NAMES, p.unit_kind, f"{field}.unit_kind")
    return out or None


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def record_leaf(record: AuditRecord) -> bytes:
    """The canonical leaf bytes of a record message (vigil_audit.domain.leaf); LeafEncodingError if none."""
    out: dict[str, Any] = {}
    if record.action:
        out["action"] = record.action
    if record.HasField("actor") and (actor := _fast_principal(record.actor, "actor")):
        out["actor"] = actor
    if record.HasField("approver") and (approver := _fast_principal(record.approver, "approver")):
        out["approver"] = approver
    if record.attributes:
        attrs = record.attributes
        out["attributes"] = {k: attrs[k] for k in sorted(attrs, key=_utf16_key)}
    if record.decision:
        out["decision"] = _name(_DECISION_NAMES, record.decision, "decision")
    if record.HasField("footage"):
        fw = record.footage
        window = {}
        if fw.HasField("end_time"):
            window["end_time"] = _fast_time(fw.end_time, "footage.end_time")
        if fw.HasField("start_time"):
            window["start_time"] = _fast_time(fw.start_time, "footage.start_time")
        if window:
            out["footage"] = window
    if record.grant_id:
        out["grant_id"] = record.grant_id
    if record.purpose:
        out["purpose"] = record.purpose
    if record.reason:
        out["reason"] = record.reason
    if record.record_id:
        out["record_id"] = record.record_id
    if record.request_id:
        out["request_id"] = record.request_id
    if record.HasField("resources"):
        # ListFields: only the non-empty lists, in one call (each getattr of a repeated field costs ~2 µs).
        resources = sorted((fd.name, list(ids)) for fd, ids in record.resources.ListFields())
        if resources:
            out["resources"] = dict(resources)
    if record.rule_id:
        out["rule_id"] = record.rule_id
    if record.source_service:
        out["source_service"] = record.source_service
    if record.HasField("time"):
        out["time"] = _fast_time(record.time, "time")
    return _ENCODER.encode(out).encode("utf-8")


def _timestamp(text: str, field: str) -> Timestamp:
    # The canonical form only: "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (nine digits), as the encoding writes it.
    if len(text) != 30 or text[19] != "." or text[-1] != "Z":
        raise LeafEncodingError(f"{field}: {text!r} is not a canonical leaf time")
    try:
        whole = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        nanos = int(text[20:29])
    except ValueError:
        raise LeafEncodingError(f"{field}: {text!r} is not a canonical leaf time") from None
    delta = whole - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=nanos)


def _principal(fields: Mapping[str, Any], field: str) -> identity_pb2.Principal:
    p = identity_pb2.Principal(
        id=fields.get("id", ""),
        name=fields.get("name", ""),
        unit=fields.get("unit", ""),
    )
    if "unit_kind" in fields:
        p.unit_kind = _enum_value(_UNIT_KIND, fields["unit_kind"], f"{field}.unit_kind")
    p.roles.extend(_enum_value(_ROLE, r, f"{field}.roles") for r in fields.get("roles", ()))
    return p


def record_from_fields(fields: Mapping[str, Any]) -> AuditRecord:
    """The message for a canonical record mapping (as parsed from leaf bytes)."""
    record = AuditRecord(
        record_id=fields.get("record_id", ""),
        source_service=fields.get("source_service", ""),
        action=fields.get("action", ""),
        purpose=fields.get("purpose", ""),
        reason=fields.get("reason", ""),
        rule_id=fields.get("rule_id", ""),
        grant_id=fields.get("grant_id", ""),
        request_id=fields.get("request_id", ""),
    )
    if "decision" in fields:
        record.decision = _enum_value(_DECISION, fields["decision"], "decision")
    if "time" in fields:
        record.time.CopyFrom(_timestamp(fields["time"], "time"))
    if "actor" in fields:
        record.actor.CopyFrom(_principal(fields["actor"], "actor"))
    if "approver" in fields:
        record.approver.CopyFrom(_principal(fields["approver"], "approver"))
    if "resources" in fields:
        res = fields["resources"]
        record.resources.SetInParent()
        for name in _RESOURCE_FIELDS:
            getattr(record.resources, name).extend(res.get(name, ()))
    if "footage" in fields:
        window = fields["footage"]
        record.footage.SetInParent()
        if "start_time" in window:
            record.footage.start_time.CopyFrom(_timestamp(window["start_time"], "footage.start_time"))
        if "end_time" in window:
            record.footage.end_time.CopyFrom(_timestamp(window["end_time"], "footage.end_time"))
    for k, v in fields.get("attributes", {}).items():
        record.attributes[k] = v
    return record


def record_from_leaf(leaf: bytes) -> AuditRecord:
    """The message a stored leaf encodes (leaf bytes are UTF-8 JSON, see vigil_audit.domain.leaf)."""
    try:
        fields = json.loads(leaf)
    except ValueError as exc:
        raise LeafEncodingError(f"a leaf is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise LeafEncodingError("a leaf is a JSON object")
    return record_from_fields(fields)
