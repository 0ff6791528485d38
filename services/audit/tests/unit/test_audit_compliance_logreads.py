"""The compliance report's reads of the log (AUD-3): a scan reads each record as its leaf says, and skips
only the records the rules would ignore; footage edges name the uploads either side of a gap."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta

import pytest

from vigil_audit import app
from vigil_audit.compliance import rules
from vigil_audit.compliance.logreads import LogReads
from vigil_audit.store import LogStore, prepare_leaf
from vigil_kit import db, migrations
from vigil_kit.audit import build_record
from vigil_kit.auth import Principal
from vigil_kit.merkle import Frontier

ACTOR = Principal(
    id="u-1", name="Li", unit="U-9", unit_kind="UNIT_KIND_ENTERPRISE", roles=frozenset({"ROLE_AUDITOR"})
)
T0 = datetime(2026, 11, 2, 1, 30, tzinfo=UTC)
US = 1_000_000


def us(t: datetime) -> int:
    return int(t.timestamp()) * US + t.microsecond


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[LogStore]:
    engine = db.create_engine(database_url)
    await migrations.upgrade(engine, app.MIGRATIONS)
    try:
        yield LogStore(engine)
    finally:
        await engine.dispose()


async def append(store: LogStore, records) -> list:
    prepared = [prepare_leaf(r) for r in records]
    assert await store.acquire_lease("w1", 1_750_000_000_000, 5000)
    await store.append(
        writer_id="w1",
        frontier=Frontier(),
        leaves=prepared,
        next_offset=len(prepared),
        now_ms=1_750_000_000_000,
        lease_ms=5000,
    )
    return prepared


def record(action: str, minutes: int, **kw):
    kw.setdefault("decision", "allowed")
    kw.setdefault("resources", {"device_ids": ["d-1"]})
    return build_record(
        actor=ACTOR,
        action=action,
        source_service=action.split(".")[0],
        now=T0 + timedelta(minutes=minutes),
        **kw,
    )


async def scan(store: LogStore, start: datetime, end: datetime) -> tuple[list[rules.Rec], int]:
    recs, unread = [], 0
    async with aclosing(LogReads(store.engine).scan(rules.SCAN_FILTER, us(start), us(end))) as pages:
        async for page, skipped in pages:
            recs.extend(page)
            unread += skipped
    return recs, unread


async def test_a_scanned_record_is_the_record_its_leaf_holds(store: LogStore) -> None:
    window = (T0 - timedelta(hours=1), T0 - timedelta(minutes=30))
    open_start = record("archive.playback.manifest", 2, footage=window)
    open_start.footage.ClearField("start_time")
    open_end = record("archive.live.manifest", 3, footage=window)
    open_end.footage.ClearField("end_time")
    records = [
        record(
            "archive.clip.export",
            1,
            footage=window,
            grant_id="g-1",
            request_id="q-1",
            resources={"device_ids": ["d-1", "d-2"], "unit_ids": ["U-2"]},
            attributes={"segments": "900", "decision": "DECISION_DENIED"},
        ),
        open_start,
        open_end,
        record("archive.integrity.violation", 4, decision="denied", rule_id="ARC-4", resources=None),
    ]
    prepared = await append(store, records)
    recs, unread = await scan(store, T0, T0 + timedelta(hours=1))
    expected = [rules.record_from_fields(json.loads(p.leaf)) for p in prepared]
    assert unread == 0
    assert sorted(recs) == sorted(expected)


async def test_a_scan_counts_without_reading_only_the_records_the_rules_ignore(store: LogStore) -> None:
    records = [
        record("registry.device.update", 1),
        record("registry.device.register", 2, decision="denied", rule_id="REG-1"),
        record("archive.segment.delete", 3),
        record("archive.segment.delete", 4, decision="denied", rule_id="ARC-2"),
        record("video.playback", 5),
        record("video.playback", 6, grant_id="g-404"),
        record("video.export", 7, decision="denied", rule_id="ACC-3", grant_id="g-404"),
        record("archive.playback.manifest", 8),
        record("ingest.segment.upload", 9),
    ]
    prepared = await append(store, records)
    recs, unread = await scan(store, T0, T0 + timedelta(hours=1))
    assert sorted(r.record_id for r in recs) == sorted(prepared[i].record_id for i in (1, 3, 5, 6, 7))
    assert unread == 3

    every = rules.LogRules(rules.Thresholds(), {}, us(T0), us(T0 + timedelta(hours=1)))
    for p in prepared[:-1]:  # every record of a scanned action, each read
        every.add(rules.record_from_fields(json.loads(p.leaf)))
    read = rules.LogRules(rules.Thresholds(), {}, us(T0), us(T0 + timedelta(hours=1)))
    for r in sorted(recs, key=lambda r: r.time_us):
        read.add(r)
    read.count_unread(unread)
    assert (read.scanned, read.findings(), read.access_series()) == (
        every.scanned,
        every.findings(),
        every.access_series(),
    )


async def test_a_scan_reads_only_the_records_of_its_range(store: LogStore) -> None:
    prepared = await append(
        store,
        [
            record("archive.playback.manifest", -1),
            record("archive.playback.manifest", 0),
            record("registry.device.update", 0),
            record("archive.playback.manifest", 60),
        ],
    )
    recs, unread = await scan(store, T0, T0 + timedelta(hours=1))
    assert ([r.record_id for r in recs], unread) == ([prepared[1].record_id], 1)


async def test_footage_edges_are_the_uploads_either_side_of_a_gap(store: LogStore) -> None:
    def upload(device: str, start_min: int) -> object:
        start = T0 + timedelta(minutes=start_min)
        return record(
            "ingest.segment.upload",
            start_min,
            resources={"device_ids": [device]},
            footage=(start, start + timedelta(minutes=1)),
        )

    prepared = await append(store, [upload("d-1", 0), upload("d-1", 1), upload("d-1", 5), upload("d-2", 1)])
    gap = (us(T0 + timedelta(minutes=2)), us(T0 + timedelta(minutes=5)))
    edges = await LogReads(store.engine).footage_edges(
        "ingest.segment.upload",
        [("d-1", gap[0], None), ("d-1", None, gap[1]), ("d-2", None, gap[1]), ("d-3", gap[0], None)],
    )
    assert edges == [prepared[1].record_id, prepared[2].record_id, None, None]
