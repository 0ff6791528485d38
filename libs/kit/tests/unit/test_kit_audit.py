"""Audit records carry every fact ACC-1 asks for, with a UUIDv7 record id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from vigil.audit.v1 import audit_record_pb2
from vigil.common.v1 import identity_pb2
from vigil_kit import audit
from vigil_kit.auth import Principal

OFFICER = Principal(
    id="u-7", name="Zhang San", unit="91110000100000000X", unit_kind="UNIT_KIND_PUBLIC_SECURITY_ORGAN",
    roles=frozenset({"ROLE_PUBLIC_SECURITY_OFFICER"}),
)  # fmt: skip
ADMIN = Principal(
    id="u-1",
    name="Admin",
    unit="U1",
    unit_kind="UNIT_KIND_ENTERPRISE",
    roles=frozenset({"ROLE_PLATFORM_ADMIN"}),
)


def test_build_record_fills_every_field() -> None:
    now = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
    start, end = now - timedelta(hours=1), now
    record = audit.build_record(
        actor=OFFICER,
        action="archive.playback.manifest",
        source_service="archive",
        decision="allowed",
        resources={"devices": ["d1", "d2"], "grant_ids": ["g1"]},
        purpose="PURPOSE_CASE_INVESTIGATION",
        reason="case 42",
        footage=(start, end),
        approver=ADMIN,
        grant_id="g1",
        request_id="r-9",
        attributes={"segments": "3"},
        now=now,
    )
    assert uuid.UUID(record.record_id).version == 7
    assert record.time.ToDatetime(tzinfo=UTC) == now
    assert record.actor.name == "Zhang San"
    assert list(record.actor.roles) == [identity_pb2.ROLE_PUBLIC_SECURITY_OFFICER]
    assert record.actor.unit_kind == identity_pb2.UNIT_KIND_PUBLIC_SECURITY_ORGAN
    assert list(record.resources.device_ids) == ["d1", "d2"]
    assert list(record.resources.grant_ids) == ["g1"]
    assert record.footage.start_time.ToDatetime(tzinfo=UTC) == start
    assert record.footage.end_time.ToDatetime(tzinfo=UTC) == end
    assert record.decision == audit_record_pb2.DECISION_ALLOWED
    assert record.approver.id == "u-1"
    assert (record.grant_id, record.request_id, record.purpose, record.reason) == (
        "g1",
        "r-9",
        "PURPOSE_CASE_INVESTIGATION",
        "case 42",
    )
    assert dict(record.attributes) == {"segments": "3"}


def test_a_refusal_carries_its_rule_id() -> None:
    record = audit.build_record(
        actor=OFFICER,
        action="registry.device.register",
        source_service="registry",
        decision="denied",
        rule_id="REG-1",
    )
    assert record.decision == audit_record_pb2.DECISION_DENIED
    assert record.rule_id == "REG-1"
    assert not record.HasField("approver") and not record.HasField("footage")


def test_record_ids_are_unique() -> None:
    ids = {
        audit.build_record(actor=OFFICER, action="a", source_service="s", decision="allowed").record_id
        for _ in range(100)
    }
    assert len(ids) == 100


def test_unknown_decision_is_refused() -> None:
    with pytest.raises(ValueError, match="decision"):
        audit.build_record(actor=OFFICER, action="a", source_service="s", decision="maybe")


def test_unknown_resource_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="resource kind"):
        audit.build_record(
            actor=OFFICER, action="a", source_service="s", decision="allowed", resources={"cats": ["c"]}
        )


def test_footage_window_must_not_end_before_it_starts() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="footage"):
        audit.build_record(
            actor=OFFICER,
            action="a",
            source_service="s",
            decision="allowed",
            footage=(now, now - timedelta(seconds=1)),
        )
