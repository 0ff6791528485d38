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
from typing import Any, NamedTuple

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
# The log encodes >= 10,000 records a second on one core, so the canonical text is written here directly,
# piece by piece in JCS key order, from the message's typed fields: no intermediate dict, no general
# encoder walking it, and each field read once (the query columns come out of the same pass). Strings
# are escaped by the very function the json module's encoder calls for ensure_ascii=False (its C
# encode_basestring), so the text is the domain encoder's byte for byte; enum names and times need no
# escaping. The unit tests hold it to record_leaf_checked (the domain encoding) over generated records,
# and to the documented test vector.

_escape = json.encoder.encode_basestring  # the C implementation when available (it is, in CPython)
# Enum numbers to their names, already quoted as JSON strings (names are [A-Z0-9_]: nothing to escape).
_DECISION_JSON = {v.number: f'"{v.name}"' for v in audit_record_pb2.Decision.DESCRIPTOR.values}
_UNIT_KIND_JSON = {v.number: f'"{v.name}"' for v in identity_pb2.UnitKind.DESCRIPTOR.values}
_ROLE_JSON = {v.number: f'"{v.name}"' for v in identity_pb2.Role.DESCRIPTOR.values}
# Resources field name -> its key as written ('"device_ids":[').
_RESOURCE_KEYS = {name: f'"{name}":[' for name in _RESOURCE_FIELDS}
# Open bounds of a footage window that lacks one end, in the query columns (still "has a window").
MIN_US, MAX_US = -(2**63), 2**63 - 1

# '"YYYY-MM-DDTHH:MM:SS.' by whole second: a batch's times share a few seconds.
_SECOND_PREFIXES: dict[int, str] = {}


def _time_json(seconds: int, nanos: int, field: str) -> str:
    """A Timestamp's (seconds, nanos) as the quoted canonical leaf time."""
    if not 0 <= nanos < 1_000_000_000:
        raise LeafEncodingError(f"{field}: nanos {nanos} out of range")
    prefix = _SECOND_PREFIXES.get(seconds)
    if prefix is None:
        try:
            t = time.gmtime(seconds)
        except (OverflowError, OSError, ValueError):
            raise LeafEncodingError(f"{field}: seconds {seconds} out of range") from None
        if not 1 <= t.tm_year <= 9999:
            raise LeafEncodingError(f"{field}: year {t.tm_year} out of range")
        prefix = (
            f'"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.'
        )
        if len(_SECOND_PREFIXES) >= 4096:
            _SECOND_PREFIXES.clear()
        _SECOND_PREFIXES[seconds] = prefix
    return f'{prefix}{nanos:09d}Z"'


def _enum_json(names: Mapping[int, str], value: int, field: str) -> str:
    try:
        return names[value]
    except KeyError:
        raise LeafEncodingError(f"{field}: unknown enum value {value}") from None


def _principal_json(p: identity_pb2.Principal, field: str) -> str:
    """The principal's canonical object text, "" when none of its fields is set."""
    parts = []
    if v := p.id:
        parts.append('"id":' + _escape(v))
    if v := p.name:
        parts.append('"name":' + _escape(v))
    if roles := p.roles:
        names = _ROLE_JSON
        parts.append('"roles":[' + ",".join([_enum_json(names, r, f"{field}.roles") for r in roles]) + "]")
    if v := p.unit:
        parts.append('"unit":' + _escape(v))
    if kind := p.unit_kind:
        parts.append('"unit_kind":' + _enum_json(_UNIT_KIND_JSON, kind, f"{field}.unit_kind"))
    return "{" + ",".join(parts) + "}" if parts else ""


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def _attributes_json(attrs: Mapping[str, str]) -> str:
    keys = sorted(attrs)
    # JCS orders keys by UTF-16 code units, Python's str order is by code points: they differ only
    # when a key has a character above U+FFFF (more UTF-16 units than characters).
    # (ASCII keys, the usual case, cannot: one C call per key tells.)
    if not all(map(str.isascii, keys)) and any(
        len(k) != len(k.encode("utf-16-le", "surrogatepass")) >> 1 for k in keys
    ):
        keys.sort(key=_utf16_key)
    return ",".join([_escape(k) + ":" + _escape(attrs[k]) for k in keys])


class LeafColumns(NamedTuple):
    """A record's canonical leaf text and what the log's query columns take from the same read."""

    text: str
    record_id: str
    time_us: int | None
    source_service: str
    actor_id: str
    action: str
    footage_start_us: int | None
    footage_end_us: int | None
    # (Resources field name, its ids) for the non-empty lists, in JCS (name) order.
    resources: list[tuple[str, Any]]
    grant_id: str


def leaf_columns(record: AuditRecord) -> LeafColumns:
    """The canonical leaf (as text; its UTF-8 is the leaf) and the query columns of a record message.

    LeafEncodingError when the record has no canonical leaf (an enum number or a time out of range).
    """
    parts = []
    has = record.HasField
    action = record.action
    if action:
        parts.append('"action":' + _escape(action))
    actor_id = ""
    if has("actor"):
        actor = record.actor
        actor_id = actor.id
        if text := _principal_json(actor, "actor"):
            parts.append('"actor":' + text)
    if has("approver") and (text := _principal_json(record.approver, "approver")):
        parts.append('"approver":' + text)
    if attrs := record.attributes:
        parts.append('"attributes":{' + _attributes_json(attrs) + "}")
    if v := record.decision:
        parts.append('"decision":' + _enum_json(_DECISION_JSON, v, "decision"))
    footage_start = footage_end = None
    if has("footage"):
        fw = record.footage
        window = []
        footage_start, footage_end = MIN_US, MAX_US
        if fw.HasField("end_time"):
            ts = fw.end_time
            seconds, nanos = ts.seconds, ts.nanos
            window.append('"end_time":' + _time_json(seconds, nanos, "footage.end_time"))
            footage_end = seconds * 1_000_000 + nanos // 1000
        if fw.HasField("start_time"):
            ts = fw.start_time
            seconds, nanos = ts.seconds, ts.nanos
            window.append('"start_time":' + _time_json(seconds, nanos, "footage.start_time"))
            footage_start = seconds * 1_000_000 + nanos // 1000
        if window:
            parts.append('"footage":{' + ",".join(window) + "}")
    grant_id = record.grant_id
    if grant_id:
        parts.append('"grant_id":' + _escape(grant_id))
    if v := record.purpose:
        parts.append('"purpose":' + _escape(v))
    if v := record.reason:
        parts.append('"reason":' + _escape(v))
    record_id = record.record_id
    if record_id:
        parts.append('"record_id":' + _escape(record_id))
    if v := record.request_id:
        parts.append('"request_id":' + _escape(v))
    resources: list[tuple[str, Any]] = []
    if has("resources"):
        # ListFields: the non-empty lists only, in one call (each getattr of a repeated field costs ~1 µs).
        resources = [(fd.name, ids) for fd, ids in record.resources.ListFields()]
        if resources:
            if len(resources) > 1:
                resources.sort()
            keys = _RESOURCE_KEYS
            lists = [keys[name] + ",".join([_escape(i) for i in ids]) + "]" for name, ids in resources]
            parts.append('"resources":{' + ",".join(lists) + "}")
    if v := record.rule_id:
        parts.append('"rule_id":' + _escape(v))
    source_service = record.source_service
    if source_service:
        parts.append('"source_service":' + _escape(source_service))
    time_us = None
    if has("time"):
        ts = record.time
        seconds, nanos = ts.seconds, ts.nanos
        parts.append('"time":' + _time_json(seconds, nanos, "time"))
        time_us = seconds * 1_000_000 + nanos // 1000
    return LeafColumns(
        "{" + ",".join(parts) + "}",
        record_id,
        time_us,
        source_service,
        actor_id,
        action,
        footage_start,
        footage_end,
        resources,
        grant_id,
    )


def record_leaf(record: AuditRecord) -> bytes:
    """The canonical leaf bytes of a record message (vigil_audit.domain.leaf); LeafEncodingError if none."""
    return leaf_columns(record).text.encode("utf-8")


# Seconds since the epoch by canonical "YYYY-MM-DDTHH:MM:SS" (reading leaves back: proofs, listings).
_SECONDS_BY_TEXT: dict[str, int] = {}


def _timestamp(text: str, field: str) -> Timestamp:
    # The canonical form only: "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (nine digits), as the encoding writes it.
    whole = text[:19]
    seconds = _SECONDS_BY_TEXT.get(whole)
    if seconds is None:
        if (
            len(text) != 30
            or text[4] != "-"
            or text[7] != "-"
            or text[10] != "T"
            or text[13] != ":"
            or text[16] != ":"
            or not (whole[:4] + whole[5:7] + whole[8:10] + whole[11:13] + whole[14:16] + whole[17:]).isdigit()
            or not whole.isascii()
        ):
            raise LeafEncodingError(f"{field}: {text!r} is not a canonical leaf time")
        try:
            at = datetime(
                int(whole[:4]), int(whole[5:7]), int(whole[8:10]),
                int(whole[11:13]), int(whole[14:16]), int(whole[17:19]), tzinfo=UTC,
            )  # fmt: skip
        except ValueError:
            raise LeafEncodingError(f"{field}: {text!r} is not a canonical leaf time") from None
        delta = at - _EPOCH
        seconds = delta.days * 86400 + delta.seconds
        if len(_SECONDS_BY_TEXT) >= 4096:
            _SECONDS_BY_TEXT.clear()
        _SECONDS_BY_TEXT[whole] = seconds
    elif len(text) != 30:
        raise LeafEncodingError(f"{field}: {text!r} is not a canonical leaf time")
    nanos = text[20:29]
    if text[19] != "." or text[29] != "Z" or not (nanos.isascii() and nanos.isdigit()):
        raise LeafEncodingError(f"{field}: {text!r} is not a canonical leaf time")
    return Timestamp(seconds=seconds, nanos=int(nanos))


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
