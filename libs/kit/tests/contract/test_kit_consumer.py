"""The idempotent consumer against the real broker: duplicates skipped, offsets held back on failure."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from vigil.common.v1 import identity_pb2
from vigil_kit import cloudevents, db, kafka
from vigil_kit.consumer import IdempotentConsumer
from vigil_kit.migrations import KIT_METADATA
from vigil_testing.poll import apoll_until

EFFECTS = MetaData()
effects = Table("effects", EFFECTS, Column("n", Integer, primary_key=True), Column("event_id", String(64)))


@pytest.fixture
async def engine(database_url: str):
    engine = db.create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(KIT_METADATA.create_all)
        await conn.run_sync(EFFECTS.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def topic(kafka_broker) -> str:
    name = f"test.consumer.{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(kafka_broker.address, {name: 1})
    return name


async def _publish(bootstrap: str, topic: str, events: list[tuple[str, identity_pb2.Principal]]) -> None:
    producer = await kafka.create_producer(bootstrap)
    try:
        for event_id, msg in events:
            headers = cloudevents.headers_for(msg, source_service="test", subject=msg.id, event_id=event_id)
            await producer.send_and_wait(topic, msg.SerializeToString(), key=msg.id.encode(), headers=headers)
    finally:
        await producer.stop()


async def _record_effect(session, event) -> None:
    await session.execute(insert(effects).values(event_id=event.id))


async def _effects(engine) -> list[str]:
    async with engine.connect() as conn:
        return list(await conn.scalars(select(effects.c.event_id).order_by(effects.c.n)))


def _consumer(engine, bootstrap, topic, handler, group: str) -> IdempotentConsumer:
    return IdempotentConsumer(
        engine, bootstrap=bootstrap, topics=[topic], group_id=group, name="test", handler=handler,
        backoff_initial_s=0.05, backoff_max_s=0.2, registry=CollectorRegistry(),
    )  # fmt: skip


async def test_a_redelivered_event_takes_effect_once(engine, topic, kafka_broker) -> None:
    dup = str(uuid.uuid4())
    other = str(uuid.uuid4())
    msg = identity_pb2.Principal(id="dev-1")
    await _publish(kafka_broker.address, topic, [(dup, msg), (dup, msg), (other, msg)])
    consumer = _consumer(engine, kafka_broker.address, topic, _record_effect, f"g-{uuid.uuid4().hex[:6]}")
    task = asyncio.create_task(consumer.run())
    try:
        await apoll_until(lambda: _count(consumer, 3), timeout=30, what="three deliveries seen")
    finally:
        consumer.stop()
        await task
    assert await _effects(engine) == [dup, other]
    assert (consumer.handled, consumer.duplicates) == (2, 1)


async def test_an_event_seen_by_an_earlier_run_is_skipped_after_a_reset(engine, topic, kafka_broker) -> None:
    event_id = str(uuid.uuid4())
    await _publish(kafka_broker.address, topic, [(event_id, identity_pb2.Principal(id="d"))])
    for _ in range(2):  # a fresh group re-reads from the start, as after lost offsets
        consumer = _consumer(engine, kafka_broker.address, topic, _record_effect, f"g-{uuid.uuid4().hex[:6]}")
        task = asyncio.create_task(consumer.run())
        try:
            await apoll_until(lambda c=consumer: _count(c, 1), timeout=30, what="delivery seen")
        finally:
            consumer.stop()
            await task
    assert await _effects(engine) == [event_id]


async def _count(consumer: IdempotentConsumer, n: int) -> bool:
    return consumer.handled + consumer.duplicates >= n


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        return await probe.committed(tp)
    finally:
        await probe.stop()


async def test_offsets_are_not_committed_past_a_failing_event(engine, topic, kafka_broker) -> None:
    first, poison, last = (str(uuid.uuid4()) for _ in range(3))
    await _publish(
        kafka_broker.address,
        topic,
        [
            (first, identity_pb2.Principal(id="a")),
            (poison, identity_pb2.Principal(id="b")),
            (last, identity_pb2.Principal(id="c")),
        ],
    )
    attempts = 0

    async def failing(session, event) -> None:
        nonlocal attempts
        await _record_effect(session, event)
        if event.id == poison:
            attempts += 1
            raise RuntimeError("handler bug")

    group = f"g-{uuid.uuid4().hex[:6]}"
    consumer = _consumer(engine, kafka_broker.address, topic, failing, group)
    task = asyncio.create_task(consumer.run())
    try:
        await apoll_until(lambda: _attempted(lambda: attempts, 3), timeout=30, what="poison event retried")
    finally:
        consumer.stop()
        await task
    assert await _effects(engine) == [first]  # the failing event's and later effects were rolled back
    assert await _committed(kafka_broker.address, group, TopicPartition(topic, 0)) == 1

    # After a restart with the bug fixed, the failed event is redelivered and handled, then the next one.
    consumer = _consumer(engine, kafka_broker.address, topic, _record_effect, group)
    task = asyncio.create_task(consumer.run())
    try:
        await apoll_until(lambda: _count(consumer, 2), timeout=30, what="redelivery after restart")
    finally:
        consumer.stop()
        await task
    assert await _effects(engine) == [first, poison, last]
    assert await _committed(kafka_broker.address, group, TopicPartition(topic, 0)) == 3


async def _attempted(get, n: int) -> bool:
    return get() >= n


async def test_processed_ids_commit_with_the_handler_effects(engine, topic, kafka_broker) -> None:
    event_id = str(uuid.uuid4())
    await _publish(kafka_broker.address, topic, [(event_id, identity_pb2.Principal(id="d"))])
    consumer = _consumer(engine, kafka_broker.address, topic, _record_effect, f"g-{uuid.uuid4().hex[:6]}")
    task = asyncio.create_task(consumer.run())
    try:
        await apoll_until(lambda: _count(consumer, 1), timeout=30, what="delivery seen")
    finally:
        consumer.stop()
        await task
    from vigil_kit.migrations import processed_events_table as pe

    async with engine.connect() as conn:
        rows = (await conn.execute(select(pe.c.consumer, pe.c.event_id))).all()
        n = await conn.scalar(select(func.count()).select_from(effects))
    assert [tuple(r) for r in rows] == [("test", event_id)] and n == 1
