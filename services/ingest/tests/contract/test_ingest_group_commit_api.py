"""Group commit of upload records: uploads that arrive together share a transaction, and a conflict is one's own."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vigil_ingest import codec, store
from vigil_ingest.api import Admission, IngestServicer, _Recording
from vigil_ingest.domain.upload import UploadLimits
from vigil_ingest.events import Publisher
from vigil_ingest.store import UploadRecord
from vigil_kit.auth import Principal
from vigil_kit.migrations import outbox_table

from .conftest import HOSPITAL, Ingest, ts_packets

GATEWAY = Principal(
    id="user:gateway",
    name="gateway",
    unit=HOSPITAL[0],
    unit_kind=HOSPITAL[1],
    roles=frozenset({"ROLE_UNIT_OPERATOR"}),
)


def servicer(ingest: Ingest, *, threaded: bool = False) -> IngestServicer:
    """A servicer over the running ingest's database (its storage and registry are not used here); with
    `threaded`, its transactions run on the service's transaction thread, as in the service itself."""
    assert ingest.context is not None
    return IngestServicer(
        transactions=ingest.context.transactions if threaded else None,
        sessions=ingest.context.sessions,
        devices=None,  # type: ignore[arg-type]
        objects=None,  # type: ignore[arg-type]
        publisher=Publisher(),
        limits=UploadLimits(),
        admission=Admission(per_device=4, max_bytes=1 << 20, retry_after_s=1),
    )


async def recording(ingest: Ingest, did: str, sequence: int) -> _Recording:
    data = ts_packets(10, fill=sequence)
    upload = codec.upload_header(ingest.header(did, data, sequence=sequence))
    assert ingest.context is not None
    async with ingest.context.sessions() as s:
        device = await store.get_device(s, did)
    assert device is not None and upload.container is not None
    now = datetime.now(UTC)
    record = UploadRecord(
        device_id=did,
        sequence=sequence,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        bucket="vigil-segments",
        object_key=f"segments/{did}/{sequence}.ts",
        version_id=str(uuid.uuid4()),
        start_ns=upload.segment.start_ns,
        duration_ns=upload.segment.duration_ns,
        container=upload.container.value,
        codec=upload.codec,
        retain_until=now + timedelta(days=30),
        retention_days=30.0,
        ingest_time=now,
        event_id=str(uuid.uuid4()),
    )
    return _Recording(GATEWAY, upload, device, record)


def sequences(rows: list[Any]) -> list[int]:
    return sorted(int(r.sequence) for r in rows)


async def test_the_records_of_uploads_committed_together_each_get_their_row_event_and_audit_record(
    ingest: Ingest,
) -> None:
    did = await ingest.seed_device()
    batch = [await recording(ingest, did, seq) for seq in (1, 2, 3)]

    assert await servicer(ingest)._record_batch(batch) == [None, None, None]

    assert sequences(await ingest.upload_rows()) == [1, 2, 3]
    assert sorted(e.sequence for e in await ingest.segment_events()) == [1, 2, 3]
    assert len(await ingest.audits(decision=1)) == 3


async def test_a_record_that_conflicts_fails_only_its_own_upload_in_a_group(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    batch = [await recording(ingest, did, seq) for seq in (1, 2, 3)]
    # Sequence 2 stored meanwhile by another ingest process on the same database.
    other = await recording(ingest, did, 2)
    assert ingest.context is not None
    async with ingest.context.sessions.begin() as s:
        await store.add_upload(s, other.record)

    results = await servicer(ingest)._record_batch(batch)

    assert results[0] is None and results[2] is None and isinstance(results[1], IntegrityError)
    assert sequences(await ingest.upload_rows()) == [1, 2, 3]
    assert sorted(e.sequence for e in await ingest.segment_events()) == [1, 3]


async def test_concurrent_uploads_of_many_devices_are_each_stored_with_one_event_and_one_audit_record(
    ingest: Ingest,
) -> None:
    dids = [await ingest.seed_device() for _ in range(6)]

    async def upload(did: str) -> None:
        data = ts_packets(50, fill=int(did[-2:]))
        response = await ingest.upload(ingest.header(did, data), [data])
        assert not response.replayed

    await asyncio.gather(*(upload(d) for d in dids))

    assert sorted(e.device_id for e in await ingest.segment_events()) == sorted(dids)
    audited = [r for r in await ingest.audits(decision=1) if r.action == "ingest.segment.upload"]
    assert sorted(r.resources.device_ids[0] for r in audited) == sorted(dids)
    assert len(await ingest.upload_rows()) == 6


async def test_records_written_at_the_driver_level_read_back_through_the_orm_and_the_lookup_alike(
    ingest: Ingest,
) -> None:
    did = await ingest.seed_device()
    batch = [await recording(ingest, did, seq) for seq in (7, 8)]
    svc = servicer(ingest, threaded=True)
    assert svc.transactions is not None  # the service's SQLite file: the threaded path is the one tested

    assert await svc._record_batch(batch) == [None, None]

    looked_up = await svc._lookup_batch([(did, 7), (did, 8), (did, 9)])
    assert ingest.context is not None
    async with ingest.context.sessions() as s:
        orm = await store.get_uploads(s, [(did, 7), (did, 8)])
        device = await store.get_device(s, did)
    assert [stored for _, stored in looked_up] == [orm[(did, 7)], orm[(did, 8)], None]
    assert [r.record for r in batch] == [orm[(did, 7)], orm[(did, 8)]]
    assert all(facts == device for facts, _ in looked_up)


async def test_outbox_rows_of_a_group_commit_are_the_rows_outbox_enqueue_would_write(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    batch = [await recording(ingest, did, 1)]

    assert await servicer(ingest, threaded=True)._record_batch(batch) == [None]

    assert ingest.context is not None
    async with ingest.context.sessions() as s:
        rows = (await s.execute(select(outbox_table).order_by(outbox_table.c.id))).all()
    event, audit_row = rows
    record = batch[0].record
    assert (event.event_id, event.topic, event.key, event.subject) == (
        record.event_id,
        "vigil.ingest.segments.v1",
        did,
        record.object_key,
    )
    assert event.ce_type == "vigil.ingest.v1.SegmentIngested" and event.source == "//vigil/ingest"
    assert (audit_row.topic, audit_row.key, audit_row.event_id) == (
        "vigil.audit.records.v1",
        audit_row.event_id,
        audit_row.key,
    )
    assert audit_row.subject == "ingest.segment.upload"
    assert all(abs(r.created_at - record.ingest_time) < timedelta(minutes=1) for r in rows)
