"""The compliance report (AUD-3) cites the log's records of what each registry finding is about, and says
so in a note when the log does not hold them yet (it lags the actions it records by a moment)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from vigil.registry.v1 import registry_service_pb2 as rpb
from vigil_audit import app
from vigil_audit.compliance.rules import Thresholds
from vigil_audit.compliance.service import ComplianceServicer, Upstreams
from vigil_audit.store import LogStore, prepare_leaf
from vigil_kit import db, migrations
from vigil_kit.audit import build_record
from vigil_kit.auth import Principal
from vigil_kit.merkle import Frontier

ADMIN = Principal(
    id="u-1",
    name="Wang",
    unit="U-1",
    unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
    roles=frozenset({"ROLE_PLATFORM_ADMIN"}),
)
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
US = 1_000_000
DEVICE = "32020501501320000001"


@pytest.fixture
async def servicer(database_url: str) -> AsyncIterator[ComplianceServicer]:
    engine = db.create_engine(database_url)
    await migrations.upgrade(engine, app.MIGRATIONS)
    summary = rpb.ComplianceSummary(
        devices_missing_notice_sign=[rpb.DeviceGap(device_id=DEVICE, site_id="hosp-1", owner_unit_id="U-9")]
    )
    s = ComplianceServicer(
        LogStore(engine), Upstreams("registry:0", "archive:0", "t"), Thresholds(), clock=lambda: NOW
    )

    async def upstream(start_us: int, end_us: int, notes: list[str]):
        return summary, []  # the registry's answer; no device has footage

    s._upstream = upstream  # type: ignore[method-assign]
    try:
        yield s
    finally:
        await engine.dispose()


async def report(s: ComplianceServicer):
    end_us = int(NOW.timestamp()) * US
    return await s.report(end_us - 3600 * US, end_us, NOW)


def missing_sign(out):
    (found,) = [f for f in out.findings if f.subject_ids == [DEVICE]]
    return found


async def test_a_finding_whose_record_the_log_lacks_yet_is_reported_with_a_note(servicer) -> None:
    out = await report(servicer)
    assert list(missing_sign(out).evidence_record_ids) == []
    assert [n for n in out.notes if "not in the log yet" in n] == [
        "1 record a finding cites is not in the log yet; compose the report again shortly"
    ]


async def test_once_the_log_holds_the_devices_record_it_is_cited_and_the_note_is_gone(servicer) -> None:
    rec = build_record(
        actor=ADMIN,
        action="registry.device.register",
        source_service="registry",
        now=NOW - timedelta(minutes=5),
        decision="allowed",
        resources={"device_ids": [DEVICE]},
    )
    leaf = prepare_leaf(rec)
    store = servicer.store
    assert await store.acquire_lease("w1", 1_750_000_000_000, 5000)
    await store.append(
        writer_id="w1",
        frontier=Frontier(),
        leaves=[leaf],
        next_offset=1,
        now_ms=1_750_000_000_000,
        lease_ms=5000,
    )
    out = await report(servicer)
    assert list(missing_sign(out).evidence_record_ids) == [rec.record_id]
    assert not out.notes
