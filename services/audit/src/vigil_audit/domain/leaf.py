"""The canonical leaf encoding of a ``vigil.audit.v1.AuditRecord``: the bytes the audit log hashes (AUD-1).

The leaf of a record is the UTF-8 encoding of one JSON object built from the record's fields:

- keys are the proto field names (``record_id``, ``time``, ``source_service``, ``actor``, ``action``,
  ``resources``, ``purpose``, ``reason``, ``footage``, ``decision``, ``rule_id``, ``approver``,
  ``grant_id``, ``request_id``, ``attributes``; in ``actor``/``approver``: ``id``, ``name``, ``unit``,
  ``unit_kind``, ``roles``; in ``resources``: ``unit_ids``, ``site_ids``, ``device_ids``, ``grant_ids``,
  ``segment_ids``, ``hold_ids``, ``export_ids``; in ``footage``: ``start_time``, ``end_time``);
- every value is a string, a list of strings, or an object: no numbers, booleans or nulls;
- enums are their names (``"DECISION_DENIED"``, ``"UNIT_KIND_ENTERPRISE"``, ``"ROLE_AUDITOR"``);
- times are RFC 3339 in UTC with exactly nine fractional digits: ``2025-03-01T08:30:00.000000000Z``
  (nanoseconds, so a protobuf Timestamp round-trips exactly);
- empty values are omitted: empty strings, empty lists and maps, absent messages, enums at 0
  (``*_UNSPECIFIED``), and objects left empty once their own empty fields are omitted; so a field added
  to AuditRecord later leaves the leaves of older records unchanged;
- repeated fields keep their order; ``attributes`` is a string-to-string map;
- the text is RFC 8785 (JCS) canonical JSON: object keys sorted by their UTF-16 code units, no
  whitespace, strings escaped as JCS does (``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t``, other control
  characters as ``\\u00xx``, everything else literal UTF-8). Any JCS implementation reproduces the bytes,
  which is why this is JSON and not protobuf's deterministic serialization: a third party verifies an
  export with a JSON library and SHA-256, with no schema compiler.

The leaf hash is RFC 6962's ``SHA-256(0x00 || leaf bytes)`` (:func:`vigil_kit.merkle.leaf_hash`).

Test vector (also in the unit tests)::

    record = {
        "record_id": "0190f5c2-7a00-7000-8000-000000000001",
        "time": "2025-03-01T08:30:00.123456789Z",
        "source_service": "archive",
        "actor": {"id": "u-1", "name": "李伟", "unit": "11330100MB0000001X",
                  "unit_kind": "UNIT_KIND_GOVERNMENT_DEPARTMENT", "roles": ["ROLE_DEPARTMENT_ANALYST"]},
        "action": "archive.playback.manifest",
        "resources": {"device_ids": ["cam-7"], "grant_ids": ["g-9"]},
        "purpose": "PURPOSE_TRAFFIC_MANAGEMENT",
        "reason": "",
        "footage": {"start_time": "2025-03-01T08:00:00.000000000Z", "end_time": "2025-03-01T08:10:00.000000000Z"},
        "decision": "DECISION_ALLOWED",
        "grant_id": "g-9",
        "attributes": {"segments": "5", "bytes": "1048576"},
    }

encodes (one line, shown wrapped here) as::

    {"action":"archive.playback.manifest","actor":{"id":"u-1","name":"李伟","roles":
    ["ROLE_DEPARTMENT_ANALYST"],"unit":"11330100MB0000001X","unit_kind":"UNIT_KIND_GOVERNMENT_DEPARTMENT"},
    "attributes":{"bytes":"1048576","segments":"5"},"decision":"DECISION_ALLOWED","footage":{"end_time":
    "2025-03-01T08:10:00.000000000Z","start_time":"2025-03-01T08:00:00.000000000Z"},"grant_id":"g-9",
    "purpose":"PURPOSE_TRAFFIC_MANAGEMENT","record_id":"0190f5c2-7a00-7000-8000-000000000001","resources":
    {"device_ids":["cam-7"],"grant_ids":["g-9"]},"source_service":"archive","time":
    "2025-03-01T08:30:00.123456789Z"}

(596 bytes of UTF-8; the name is two 3-byte characters) with leaf hash
``635b84e241f75b0feb5a3a5eb09377cd7f0df671696b7bba7e8e7cf6dc4f216d``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from vigil_kit.merkle import leaf_hash

# Field names in JCS order (sorted); the proto numbers them differently, which does not matter here.
_PRINCIPAL_FIELDS = ("id", "name", "roles", "unit", "unit_kind")
_RESOURCE_FIELDS = (
    "device_ids",
    "export_ids",
    "grant_ids",
    "hold_ids",
    "segment_ids",
    "site_ids",
    "unit_ids",
)
_TIME_RANGE_FIELDS = ("end_time", "start_time")
_RECORD_FIELDS = (
    "action",
    "actor",
    "approver",
    "attributes",
    "decision",
    "footage",
    "grant_id",
    "purpose",
    "reason",
    "record_id",
    "request_id",
    "resources",
    "rule_id",
    "source_service",
    "time",
)

_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z", re.ASCII)
_ENUM_RE = re.compile(r"[A-Z][A-Z0-9_]*", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The C encoder is used because there is no indent; no sort_keys: objects are built in JCS order.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)


class LeafEncodingError(ValueError):
    """A record's fields do not have the shape of an AuditRecord, so they have no canonical leaf."""


def format_time(value: datetime | tuple[int, int]) -> str:
    """RFC 3339 UTC with nine fractional digits, from an aware datetime or protobuf (seconds, nanos)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise LeafEncodingError("a time must carry its time zone")
        dt = value.astimezone(UTC)
        nanos = dt.microsecond * 1000
    else:
        seconds, nanos = value
        if not 0 <= nanos < 1_000_000_000:
            raise LeafEncodingError(f"nanos {nanos} out of range")
        dt = _EPOCH + timedelta(seconds=seconds)
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}.{nanos:09d}Z"


def _time(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if not _TIME_RE.fullmatch(value):
            raise LeafEncodingError(f"{name}: {value!r} is not RFC 3339 UTC with nine fractional digits")
        return value
    if isinstance(value, datetime | tuple):
        return format_time(value)
    raise LeafEncodingError(f"{name}: a time is a string, an aware datetime or (seconds, nanos)")


def _string(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise LeafEncodingError(f"{name}: expected a string, got {type(value).__name__}")
    return value


def _enum(value: Any, name: str) -> str | None:
    value = _string(value, name)
    if value is None or value.endswith("_UNSPECIFIED"):
        return None
    if not _ENUM_RE.fullmatch(value):
        raise LeafEncodingError(f"{name}: {value!r} is not an enum name")
    return value


def _strings(value: Any, name: str) -> list[str] | None:
    if not value:
        return None
    if isinstance(value, str | bytes) or not all(isinstance(v, str) for v in value):
        raise LeafEncodingError(f"{name}: expected a list of strings")
    return list(value)


def _check_keys(fields: Mapping[str, Any], allowed: tuple[str, ...], name: str) -> None:
    unknown = fields.keys() - set(allowed)
    if unknown:
        raise LeafEncodingError(f"{name}: unknown field(s) {', '.join(sorted(unknown))}")


def _message(value: Any, name: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise LeafEncodingError(f"{name}: expected an object")
    return value


def _principal(value: Any, name: str) -> dict[str, Any] | None:
    fields = _message(value, name)
    if fields is None:
        return None
    _check_keys(fields, _PRINCIPAL_FIELDS, name)
    out: dict[str, Any] = {}
    for key, convert in (
        ("id", _string),
        ("name", _string),
        ("roles", _strings),
        ("unit", _string),
        ("unit_kind", _enum),
    ):
        v = convert(fields.get(key), f"{name}.{key}")
        if v is not None:
            out[key] = v
    if "roles" in out:
        for i, role in enumerate(out["roles"]):
            if not _ENUM_RE.fullmatch(role):
                raise LeafEncodingError(f"{name}.roles[{i}]: {role!r} is not an enum name")
    return out or None


def _resources(value: Any) -> dict[str, list[str]] | None:
    fields = _message(value, "resources")
    if fields is None:
        return None
    _check_keys(fields, _RESOURCE_FIELDS, "resources")
    out = {}
    for key in _RESOURCE_FIELDS:
        v = _strings(fields.get(key), f"resources.{key}")
        if v is not None:
            out[key] = v
    return out or None


def _time_range(value: Any, name: str) -> dict[str, str] | None:
    fields = _message(value, name)
    if fields is None:
        return None
    _check_keys(fields, _TIME_RANGE_FIELDS, name)
    out = {}
    for key in _TIME_RANGE_FIELDS:
        v = _time(fields.get(key), f"{name}.{key}")
        if v is not None:
            out[key] = v
    return out or None


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def _attributes(value: Any) -> dict[str, str] | None:
    fields = _message(value, "attributes")
    if not fields:
        return None
    for k, v in fields.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise LeafEncodingError("attributes: keys and values are strings")
    # JCS orders keys by UTF-16 code units; Python's str order (code points) differs above U+FFFF.
    return {k: fields[k] for k in sorted(fields, key=_utf16_key)}


def canonical_record(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The record as the leaf encodes it: empties dropped, times and enums normalised, keys in JCS order.

    Accepts the field mapping described in the module docstring, with times as canonical strings,
    aware datetimes or (seconds, nanos); this is also the form an export carries each record in.
    """
    if not isinstance(fields, Mapping):
        raise LeafEncodingError("a record is an object")
    _check_keys(fields, _RECORD_FIELDS, "record")
    candidates = (
        ("action", _string(fields.get("action"), "action")),
        ("actor", _principal(fields.get("actor"), "actor")),
        ("approver", _principal(fields.get("approver"), "approver")),
        ("attributes", _attributes(fields.get("attributes"))),
        ("decision", _enum(fields.get("decision"), "decision")),
        ("footage", _time_range(fields.get("footage"), "footage")),
        ("grant_id", _string(fields.get("grant_id"), "grant_id")),
        ("purpose", _string(fields.get("purpose"), "purpose")),
        ("reason", _string(fields.get("reason"), "reason")),
        ("record_id", _string(fields.get("record_id"), "record_id")),
        ("request_id", _string(fields.get("request_id"), "request_id")),
        ("resources", _resources(fields.get("resources"))),
        ("rule_id", _string(fields.get("rule_id"), "rule_id")),
        ("source_service", _string(fields.get("source_service"), "source_service")),
        ("time", _time(fields.get("time"), "time")),
    )
    return {k: v for k, v in candidates if v is not None}


def leaf_bytes(fields: Mapping[str, Any]) -> bytes:
    """The canonical leaf bytes of a record (see the module docstring)."""
    text = _ENCODER.encode(canonical_record(fields))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LeafEncodingError(f"a string is not valid Unicode: {exc.reason}") from None


def leaf_hash_as_given(record: Any) -> bytes | None:
    """The leaf hash of a record encoded exactly as given (keys in its own order, nothing normalised).

    For verifiers of an export, whose records are already canonical: when this equals the signed leaf
    hash, the record is byte for byte what the log hashed (SHA-256 binds the bytes, and the JSON encoding
    of a parsed value is one-to-one), so the costly normalisation of :func:`canonical_record` is only
    needed to tell an edited record from an equivalent non-canonical one. None if it is not JSON data.
    """
    try:
        return leaf_hash(_ENCODER.encode(record).encode("utf-8"))
    except (TypeError, ValueError):
        return None


def record_leaf_hash(fields: Mapping[str, Any]) -> bytes:
    """The RFC 6962 leaf hash of a record: ``SHA-256(0x00 || leaf_bytes(fields))``."""
    return leaf_hash(leaf_bytes(fields))
