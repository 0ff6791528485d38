"""Outbox rows as column values (outbox.event_row, audit.audit_row): the rows enqueue and write_audit add."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from vigil.common.v1 import identity_pb2
from vigil_kit import audit, outbox, topics
from vigil_kit.auth import Principal

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
ACTOR = Principal(
    id="u1",
    name="A",
    unit="113202000142871537",
    unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
    roles=frozenset(),
)


def test_an_event_row_names_its_type_source_and_defaults_its_subject_to_the_key() -> None:
    message = identity_pb2.Principal(id="p")
    row = outbox.event_row(topic="t", key="k", message=message, source_service="registry", created_at=NOW)
    assert row["ce_type"] == "vigil.common.v1.Principal" and row["source"] == "//vigil/registry"
    assert (row["subject"], row["payload"], row["created_at"]) == ("k", message.SerializeToString(), NOW)
    assert uuid.UUID(row["event_id"]).version == 7


def test_an_audit_row_is_keyed_and_identified_by_its_record_id_on_the_audit_topic() -> None:
    record = audit.build_record(
        actor=ACTOR, action="archive.segments.find", source_service="archive", decision=audit.ALLOWED, now=NOW
    )
    row = audit.audit_row(record, NOW)
    assert row["topic"] == topics.AUDIT_RECORDS
    assert row["key"] == row["event_id"] == record.record_id
    assert (row["subject"], row["source"]) == ("archive.segments.find", "//vigil/archive")


def test_an_audit_record_without_its_id_is_refused() -> None:
    record = audit.build_record(
        actor=ACTOR, action="x", source_service="archive", decision=audit.ALLOWED, now=NOW
    )
    record.record_id = ""
    with pytest.raises(ValueError, match="record_id"):
        audit.audit_row(record)
