"""write_audit puts an AuditRecord on vigil.audit.records.v1 with ce_id equal to its record id."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from vigil.audit.v1 import audit_record_pb2
from vigil_kit import audit, cloudevents, db, kafka, outbox, topics
from vigil_kit.auth import Principal
from vigil_kit.migrations import KIT_METADATA
from vigil_testing.poll import apoll_until

AUDITOR = Principal(
    id="u-5", name="Wang Wu", unit="U5", unit_kind="UNIT_KIND_INSTITUTION", roles=frozenset({"ROLE_AUDITOR"})
)


async def test_write_audit_publishes_the_record_keyed_by_its_id(sqlite_url: str, kafka_broker) -> None:
    await kafka.ensure_topics(kafka_broker.address, {topics.AUDIT_RECORDS: 1})
    engine = db.create_engine(sqlite_url)
    async with engine.begin() as conn:
        await conn.run_sync(KIT_METADATA.create_all)
    record = audit.build_record(
        actor=AUDITOR,
        action="audit.report.read",
        source_service="audit",
        decision="allowed",
        reason="monthly review",
    )
    async with db.session_factory(engine).begin() as session:
        assert audit.write_audit(session, record) == record.record_id

    relay = outbox.OutboxRelay(
        engine, bootstrap=kafka_broker.address, service="audit", registry=CollectorRegistry()
    )
    task = asyncio.create_task(relay.run())
    reader = AIOKafkaConsumer(
        topics.AUDIT_RECORDS, bootstrap_servers=kafka_broker.address, auto_offset_reset="earliest"
    )
    await reader.start()
    found: list = []
    try:

        async def published() -> bool:
            for recs in (await reader.getmany(timeout_ms=200)).values():
                found.extend(r for r in recs if r.key == record.record_id.encode())
            return bool(found)

        await apoll_until(published, timeout=20, interval=0, what="audit record on the topic")
    finally:
        await reader.stop()
        relay.stop()
        await task
        await engine.dispose()
    event = cloudevents.from_record(found[0])
    assert event.id == record.record_id
    assert event.type == "vigil.audit.v1.AuditRecord"
    assert event.source == "//vigil/audit"
    assert cloudevents.decode(event, [audit_record_pb2.AuditRecord]) == record
