"""The group commit's driver-level statements (store.lookup, store.record_uploads) on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from vigil_ingest import app, store
from vigil_ingest.store import DeviceFacts, UploadRecord
from vigil_kit import db, migrations
from vigil_kit.migrations import outbox_table

DEVICE = "32020501501320000001"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(database_url)
    try:
        await migrations.upgrade(engine, app.MIGRATIONS)
        yield engine
    finally:
        await engine.dispose()


def record(sequence: int, now: datetime) -> UploadRecord:
    return UploadRecord(
        device_id=DEVICE,
        sequence=sequence,
        sha256=f"{sequence:064x}",
        size=1880,
        bucket="vigil-segments",
        object_key=f"segments/{DEVICE}/{sequence}.ts",
        version_id=str(uuid.uuid4()),
        start_ns=1_764_000_000_123_456_789 + sequence,
        duration_ns=2_000_000_000,
        container="ts",
        codec="h264",
        retain_until=now + timedelta(days=30),
        retention_days=30.0,
        ingest_time=now,
        event_id=str(uuid.uuid4()),
    )


def outbox_row(event_id: str, now: datetime) -> dict[str, object]:
    return {
        "event_id": event_id,
        "topic": "vigil.ingest.segments.v1",
        "key": DEVICE,
        "ce_type": "vigil.ingest.v1.SegmentIngested",
        "source": "//vigil/ingest",
        "subject": DEVICE,
        "payload": b"\x01\x02",
        "created_at": now,
    }


async def test_what_record_uploads_writes_the_driver_level_lookup_and_the_orm_read_back_alike(
    engine: AsyncEngine,
) -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
    facts = DeviceFacts(
        DEVICE, "DEVICE_STATE_ACTIVE", "a2V5", 30.0, "123456789012345678", "site", "320205", now
    )
    sessions = db.session_factory(engine)
    async with sessions.begin() as s:
        await store.put_device(s, facts, now=now)
    records = [record(seq, now) for seq in (1, 18_446_744_073_709_551_615)]
    events = [outbox_row(str(uuid.uuid4()), now) for _ in records]

    async with engine.begin() as conn:
        await conn.run_sync(lambda c: store.record_uploads(c, records, events))
    keys = [(DEVICE, 1), (DEVICE, 18_446_744_073_709_551_615), (DEVICE, 2)]
    async with engine.begin() as conn:
        devices, stored = await conn.run_sync(lambda c: store.lookup(c, keys))

    async with sessions() as s:
        orm = await store.get_uploads(s, keys)
        outbox = (await s.execute(select(outbox_table).order_by(outbox_table.c.id))).all()
    assert devices == {DEVICE: facts}
    assert stored == orm == {(r.device_id, r.sequence): r for r in records}
    assert [(r.event_id, r.created_at, r.payload) for r in outbox] == [
        (e["event_id"], now, b"\x01\x02") for e in events
    ]
