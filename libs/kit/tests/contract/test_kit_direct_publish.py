"""The direct publisher against the real broker: the record the relay would publish, acknowledged before
publish() returns; a broker that does not acknowledge is a PublishError, after which writers stand aside."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from vigil.common.v1 import identity_pb2
from vigil_kit import cloudevents, kafka, outbox
from vigil_kit.embedded import free_port
from vigil_testing.poll import apoll_until


def _row(topic: str, n: int) -> dict:
    return outbox.event_row(
        topic=topic,
        key=f"key-{n}",
        message=identity_pb2.Principal(id=f"user:{n}", name=str(n)),
        source_service="sharing",
        subject=f"video.playback/{n}",
    )


async def _running(publisher: outbox.DirectPublisher) -> asyncio.Task[None]:
    task = asyncio.create_task(publisher.run())

    async def connected() -> bool:
        if task.done():
            task.result()  # a worker that ended is the failure to report
        return publisher.available

    await apoll_until(connected, timeout=20, what="the direct publisher's producer")
    return task


@pytest.fixture
async def topic(kafka_broker) -> str:
    name = f"test.direct.{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(kafka_broker.address, {name: 3})
    return name


@pytest.fixture
async def publisher(kafka_broker) -> AsyncIterator[outbox.DirectPublisher]:
    publisher = outbox.DirectPublisher(kafka_broker.address, service="sharing", registry=CollectorRegistry())
    task = await _running(publisher)
    try:
        yield publisher
    finally:
        publisher.stop()
        await task


async def test_published_rows_are_on_the_broker_as_the_relay_would_write_them(
    publisher, topic, kafka_broker
) -> None:
    rows = [_row(topic, n) for n in range(5)]

    await publisher.publish(rows)

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_broker.address, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found: dict[str, object] = {}
    try:

        async def all_five() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.update({cloudevents.from_record(r).id: r for r in records})
            return len(found) == 5

        await apoll_until(all_five, timeout=20, interval=0, what="the published rows")
    finally:
        await consumer.stop()
    for row in rows:
        record = found[row["event_id"]]
        event = cloudevents.from_record(record)
        assert record.key == row["key"].encode() and record.value == row["payload"]
        assert (event.type, event.source, event.subject) == (
            "vigil.common.v1.Principal",
            "//vigil/sharing",
            row["subject"],
        )
        assert record.timestamp == int(row["created_at"].timestamp() * 1000)


async def test_a_broker_that_does_not_acknowledge_is_a_publish_error_and_writers_then_stand_aside(
    fresh_kafka_broker,
) -> None:
    name = f"test.direct.{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(fresh_kafka_broker.address, {name: 1})
    registry = CollectorRegistry()
    publisher = outbox.DirectPublisher(
        fresh_kafka_broker.address, service="sharing", timeout_s=0.5, cooldown_s=60, registry=registry
    )
    task = await _running(publisher)
    try:
        await publisher.publish([_row(name, 0)])  # the topic's metadata is known: only the broker fails next
        fresh_kafka_broker.kill()

        began = time.monotonic()
        with pytest.raises(outbox.PublishError, match="did not acknowledge 2 event"):
            await publisher.publish([_row(name, 1), _row(name, 2)])
        assert time.monotonic() - began < 5  # the timeout, not the producer's 30 s request timeout

        assert not publisher.available  # the next writers go to the outbox at once
        fallbacks = registry.get_sample_value("vigil_outbox_direct_fallbacks_total", {"service": "sharing"})
        assert fallbacks == 2
        assert registry.get_sample_value("vigil_outbox_direct_published_total", {"service": "sharing"}) == 1
    finally:
        publisher.stop()
        await task


async def test_an_unreachable_broker_fails_the_worker_and_leaves_the_publisher_unavailable() -> None:
    publisher = outbox.DirectPublisher(
        f"127.0.0.1:{free_port()}", service="sharing", registry=CollectorRegistry()
    )

    # run() fails, so the service's worker supervisor restarts it with backoff; writers use the outbox meanwhile.
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(publisher.run(), timeout=30)

    assert not publisher.available
    with pytest.raises(outbox.PublishError, match="not connected"):
        await publisher.publish([_row("test.direct.none", 0)])
