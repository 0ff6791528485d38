"""The canonical leaf encoding of an AuditRecord: the published test vector and the encoding's rules."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from vigil_audit.domain.leaf import (
    LeafEncodingError,
    canonical_record,
    format_time,
    leaf_bytes,
    leaf_hash_as_given,
    record_leaf_hash,
)

VECTOR_RECORD = {
    "record_id": "0190f5c2-7a00-7000-8000-000000000001",
    "time": "2025-03-01T08:30:00.123456789Z",
    "source_service": "archive",
    "actor": {
        "id": "u-1",
        "name": "李伟",
        "unit": "11330100MB0000001X",
        "unit_kind": "UNIT_KIND_GOVERNMENT_DEPARTMENT",
        "roles": ["ROLE_DEPARTMENT_ANALYST"],
    },
    "action": "archive.playback.manifest",
    "resources": {"device_ids": ["cam-7"], "grant_ids": ["g-9"]},
    "purpose": "PURPOSE_TRAFFIC_MANAGEMENT",
    "reason": "",
    "footage": {"start_time": "2025-03-01T08:00:00.000000000Z", "end_time": "2025-03-01T08:10:00.000000000Z"},
    "decision": "DECISION_ALLOWED",
    "grant_id": "g-9",
    "attributes": {"segments": "5", "bytes": "1048576"},
}
VECTOR_BYTES = (
    '{"action":"archive.playback.manifest","actor":{"id":"u-1","name":"李伟","roles":'
    '["ROLE_DEPARTMENT_ANALYST"],"unit":"11330100MB0000001X","unit_kind":"UNIT_KIND_GOVERNMENT_DEPARTMENT"},'
    '"attributes":{"bytes":"1048576","segments":"5"},"decision":"DECISION_ALLOWED","footage":{"end_time":'
    '"2025-03-01T08:10:00.000000000Z","start_time":"2025-03-01T08:00:00.000000000Z"},"grant_id":"g-9",'
    '"purpose":"PURPOSE_TRAFFIC_MANAGEMENT","record_id":"0190f5c2-7a00-7000-8000-000000000001","resources":'
    '{"device_ids":["cam-7"],"grant_ids":["g-9"]},"source_service":"archive","time":'
    '"2025-03-01T08:30:00.123456789Z"}'
).encode()
VECTOR_LEAF_HASH = "635b84e241f75b0feb5a3a5eb09377cd7f0df671696b7bba7e8e7cf6dc4f216d"


def test_the_published_record_encodes_to_the_published_bytes() -> None:
    assert leaf_bytes(VECTOR_RECORD) == VECTOR_BYTES
    assert len(VECTOR_BYTES) == 596


def test_the_published_record_has_the_published_leaf_hash() -> None:
    assert record_leaf_hash(VECTOR_RECORD).hex() == VECTOR_LEAF_HASH
    assert hashlib.sha256(b"\x00" + VECTOR_BYTES).hexdigest() == VECTOR_LEAF_HASH


def test_a_third_party_json_library_reproduces_the_bytes_from_the_canonical_record() -> None:
    text = json.dumps(json.loads(VECTOR_BYTES), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert text.encode() == VECTOR_BYTES


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("record_id", "0190f5c2-7a00-7000-8000-000000000002"),
        ("time", "2025-03-01T08:30:00.123456788Z"),
        ("source_service", "registry"),
        ("actor", {**VECTOR_RECORD["actor"], "name": "李"}),
        ("actor", {**VECTOR_RECORD["actor"], "roles": ["ROLE_AUDITOR"]}),
        ("action", "archive.export"),
        ("resources", {"device_ids": ["cam-8"], "grant_ids": ["g-9"]}),
        ("purpose", "PURPOSE_CASE_INVESTIGATION"),
        ("reason", "case 42"),
        ("footage", {**VECTOR_RECORD["footage"], "end_time": "2025-03-01T08:10:00.000000001Z"}),
        ("decision", "DECISION_DENIED"),
        ("rule_id", "SHR-1"),
        ("approver", {"id": "u-2"}),
        ("grant_id", "g-8"),
        ("request_id", "req-1"),
        ("attributes", {"segments": "6", "bytes": "1048576"}),
    ],
)
def test_changing_any_field_changes_the_leaf_hash(field: str, value: object) -> None:
    assert record_leaf_hash({**VECTOR_RECORD, field: value}) != record_leaf_hash(VECTOR_RECORD)


def test_empty_fields_are_omitted_so_they_do_not_change_the_leaf() -> None:
    padded = {
        **VECTOR_RECORD,
        "reason": "",
        "rule_id": None,
        "request_id": "",
        "approver": {"id": "", "roles": [], "unit_kind": "UNIT_KIND_UNSPECIFIED"},
        "resources": {**VECTOR_RECORD["resources"], "unit_ids": [], "hold_ids": None},
        "footage": {**VECTOR_RECORD["footage"]},
    }
    assert leaf_bytes(padded) == VECTOR_BYTES


def test_an_unspecified_decision_is_omitted() -> None:
    assert "decision" not in canonical_record({"record_id": "r", "decision": "DECISION_UNSPECIFIED"})


def test_times_given_as_datetimes_or_seconds_and_nanos_encode_the_same() -> None:
    as_text = "2025-03-01T08:30:00.123456000Z"
    as_datetime = datetime(2025, 3, 1, 16, 30, 0, 123456, tzinfo=timezone(timedelta(hours=8)))
    seconds = int(datetime(2025, 3, 1, 8, 30, tzinfo=UTC).timestamp())
    assert format_time(as_datetime) == as_text
    assert format_time((seconds, 123_456_000)) == as_text
    assert (
        leaf_bytes({"time": as_datetime})
        == leaf_bytes({"time": as_text})
        == leaf_bytes({"time": (seconds, 123_456_000)})
    )


def test_nanoseconds_survive_the_encoding() -> None:
    assert canonical_record({"time": (0, 1)})["time"] == "1970-01-01T00:00:00.000000001Z"


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(LeafEncodingError):
        leaf_bytes({"time": datetime(2025, 3, 1)})


@pytest.mark.parametrize(
    "text", ["2025-03-01T08:30:00Z", "2025-03-01T08:30:00.123456Z", "2025-03-01 08:30:00.123456789Z"]
)
def test_a_time_text_not_in_the_canonical_form_is_refused(text: str) -> None:
    with pytest.raises(LeafEncodingError):
        leaf_bytes({"time": text})


def test_strings_are_escaped_as_rfc_8785_does() -> None:
    encoded = leaf_bytes({"reason": 'a"b\\c\n\t\x01\x7f é 中 \u2028'})
    assert encoded == '{"reason":"a\\"b\\\\c\\n\\t\\u0001\x7f é 中 \u2028"}'.encode()


def test_attribute_keys_are_ordered_by_utf16_code_units_as_rfc_8785_requires() -> None:
    # U+1F600 is the surrogate pair D83D DE00, which sorts before U+FFFD in UTF-16 but after it by code point.
    encoded = leaf_bytes({"attributes": {"\ufffd": "1", "\U0001f600": "2", "a": "3"}})
    assert encoded == '{"attributes":{"a":"3","\U0001f600":"2","\ufffd":"1"}}'.encode()


def test_repeated_fields_keep_their_order() -> None:
    one = leaf_bytes({"resources": {"device_ids": ["a", "b"]}})
    other = leaf_bytes({"resources": {"device_ids": ["b", "a"]}})
    assert one != other


@pytest.mark.parametrize(
    "record",
    [
        {"color": "red"},
        {"actor": {"id": "u", "email": "x"}},
        {"resources": {"cameras": ["c"]}},
        {"footage": {"start": "2025-03-01T08:30:00.000000000Z"}},
    ],
)
def test_an_unknown_field_is_refused_rather_than_silently_dropped(record: dict) -> None:
    with pytest.raises(LeafEncodingError, match="unknown field"):
        leaf_bytes(record)


@pytest.mark.parametrize(
    "record",
    [
        {"action": 7},
        {"resources": {"device_ids": "cam-1"}},
        {"actor": {"roles": ["auditor"]}},
        {"decision": "allowed"},
        {"attributes": {"bytes": 5}},
        {"actor": "u-1"},
        {"reason": "\ud800"},
    ],
)
def test_a_field_of_the_wrong_shape_is_refused(record: dict) -> None:
    with pytest.raises(LeafEncodingError):
        leaf_bytes(record)


def test_a_canonical_record_hashes_the_same_as_given_and_normalised() -> None:
    canonical = canonical_record(VECTOR_RECORD)
    assert leaf_hash_as_given(canonical) == record_leaf_hash(VECTOR_RECORD)


def test_a_record_given_in_another_key_order_hashes_differently_as_given_only() -> None:
    assert leaf_hash_as_given(VECTOR_RECORD) != record_leaf_hash(VECTOR_RECORD)
    assert leaf_hash_as_given({"time": datetime.now(UTC)}) is None
