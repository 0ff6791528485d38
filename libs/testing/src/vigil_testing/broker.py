"""Reading the broker as an outside observer would: every CloudEvent of a topic, a group's committed offset.

Real-stack tests use these to prove what a service published (or did not): a topic read to its end
shows what is there, and a consumer group's committed offset past an event shows the group has
finished deciding about it, so an absence is an absence and not a delay.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from vigil.audit.v1 import audit_record_pb2
from vigil_kit import cloudevents, topics


async def read_topic(bootstrap: str, topic: str, *, idle_ms: int = 300) -> list[cloudevents.CloudEvent]:
    """Every CloudEvent on `topic` now, in partition order (records that are not CloudEvents are skipped)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.topics()  # refreshes metadata
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            return []
        consumer.assign(parts)
        # Read until a poll comes back empty, not to end_offsets: the embedded broker answers that
        # wrongly after a batched produce.
        out: list[cloudevents.CloudEvent] = []
        while batch := await consumer.getmany(timeout_ms=idle_ms):
            for records in batch.values():
                for record in records:
                    try:
                        out.append(cloudevents.from_record(record))
                    except cloudevents.CloudEventError:
                        continue
        return out
    finally:
        await consumer.stop()


async def committed_past(bootstrap: str, group_id: str, event: cloudevents.CloudEvent) -> bool:
    """Whether consumer group `group_id` has committed an offset past `event` (it is done with it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(event.topic, event.partition))
        return committed is not None and committed > event.offset
    finally:
        await consumer.stop()


async def audit_records(bootstrap: str) -> list[audit_record_pb2.AuditRecord]:
    """Every audit record the services have published to the audit topic so far."""
    return [
        audit_record_pb2.AuditRecord.FromString(e.data)
        for e in await read_topic(bootstrap, topics.AUDIT_RECORDS)
        if e.type == audit_record_pb2.AuditRecord.DESCRIPTOR.full_name
    ]
