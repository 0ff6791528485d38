"""The outbox relay against the real broker: headers, keys, values, per-key order, the lease, metrics."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from vigil.common.v1 import identity_pb2
from vigil_kit import cloudevents, db, kafka, outbox
from vigil_kit.migrations import KIT_METADATA, outbox_table
from vigil_testing.poll import apoll_until


@pytest.fixture
async def engine(database_url: str):
    engine = db.create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(KIT_METADATA.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def topic(kafka_broker) -> str:
    name = f"test.outbox.{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(kafka_broker.address, {name: 3})
    return name


async def _read(bootstrap: str, topic: str, count: int, within_s: float = 20.0) -> list:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list = []
    try:

        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
            return len(records) >= count

        await apoll_until(enough, timeout=within_s, interval=0, what=f"{count} records on {topic}")
    finally:
        await consumer.stop()
    return records


async def _pending(engine) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(outbox_table))


def _principal(key: str, seq: int) -> identity_pb2.Principal:
    return identity_pb2.Principal(id=key, name=str(seq))


async def test_relay_publishes_an_enqueued_event_with_cloudevents_headers(
    engine, topic, kafka_broker
) -> None:
    sessions = db.session_factory(engine)
    message = identity_pb2.Principal(id="dev-1", name="camera")
    async with sessions.begin() as session:
        event_id = outbox.enqueue(
            session,
            topic=topic,
            key="dev-1",
            message=message,
            source_service="registry",
            subject="device/dev-1",
        )
    relay = outbox.OutboxRelay(
        engine, bootstrap=kafka_broker.address, service="registry", registry=CollectorRegistry()
    )
    task = asyncio.create_task(relay.run())
    try:
        [record] = await _read(kafka_broker.address, topic, 1)
        await apoll_until(lambda: _is_zero(engine), what="outbox drained")
    finally:
        relay.stop()
        await task
    event = cloudevents.from_record(record)
    assert record.key == b"dev-1"
    assert event.id == event_id
    assert event.type == "vigil.common.v1.Principal"
    assert event.source == "//vigil/registry"
    assert event.subject == "device/dev-1"
    assert event.headers["ce_specversion"] == b"1.0"
    assert event.headers["content-type"] == b"application/protobuf"
    assert cloudevents.decode(event, [identity_pb2.Principal]) == message


async def _is_zero(engine) -> bool:
    return await _pending(engine) == 0


async def test_relay_deletes_sent_rows_in_worker_thread_transactions(engine, topic, kafka_broker) -> None:
    # How a service on a SQLite file runs its relay (vigil_kit.service): sent rows deleted in one hand-off.
    transactions = db.threaded_transactions(engine)
    if transactions is None:
        pytest.skip("worker-thread transactions are SQLite's")
    sessions = db.session_factory(engine)
    async with sessions.begin() as session:
        ids = [
            outbox.enqueue(session, topic=topic, key="k", message=_principal("k", i), source_service="t")
            for i in range(30)
        ]
    relay = outbox.OutboxRelay(
        engine,
        bootstrap=kafka_broker.address,
        service="t",
        registry=CollectorRegistry(),
        batch_size=7,
        transactions=transactions,
    )
    task = asyncio.create_task(relay.run())
    try:
        records = await _read(kafka_broker.address, topic, 30)
        await apoll_until(lambda: _is_zero(engine), what="outbox drained")
    finally:
        relay.stop()
        await task
        transactions.close()
    assert [cloudevents.from_record(r).id for r in records] == ids


async def test_nothing_is_published_when_the_writer_rolls_back(engine, topic, kafka_broker) -> None:
    sessions = db.session_factory(engine)
    async with sessions() as session:
        outbox.enqueue(session, topic=topic, key="k", message=_principal("k", 0), source_service="t")
        await session.rollback()
    assert await _pending(engine) == 0


class _FlakyProducer:
    """Fails every third batch it is handed (the broker does not see it), like a partition leader hiccup."""

    def __init__(self, real) -> None:
        self.real = real
        self.calls = 0

    def create_batch(self):
        return self.real.create_batch()

    async def partitions_for(self, topic):
        return await self.real.partitions_for(topic)

    async def send_batch(self, batch, topic, *, partition):
        self.calls += 1
        if self.calls % 3 == 0:
            failed = asyncio.get_running_loop().create_future()
            failed.set_exception(ConnectionError("injected publish failure"))
            return failed
        return await self.real.send_batch(batch, topic, partition=partition)


async def test_relay_keeps_per_key_order_when_publishes_fail_midway(engine, topic, kafka_broker) -> None:
    sessions = db.session_factory(engine)
    keys, per_key = 12, 60
    async with sessions.begin() as session:
        for seq in range(per_key):
            for k in range(keys):
                outbox.enqueue(
                    session,
                    topic=topic,
                    key=f"key-{k}",
                    message=_principal(f"key-{k}", seq),
                    source_service="t",
                )
    # Small batches (and record batches that fill after ~4 events) force many rounds and full partitions.
    relay = outbox.OutboxRelay(
        engine,
        bootstrap=kafka_broker.address,
        service="t",
        batch_size=64,
        max_batch_bytes=1024,
        registry=CollectorRegistry(),
    )
    real = await kafka.create_producer(kafka_broker.address, max_batch_size=1024, linger_ms=0)
    relay._producer = _FlakyProducer(real)
    failures = 0
    try:
        for _ in range(1000):
            if await _pending(engine) == 0:
                break
            try:
                await relay.relay_once()
            except outbox.PublishError:
                failures += 1
    finally:
        await real.stop()
    assert await _pending(engine) == 0
    assert failures > 0

    records = await _read(kafka_broker.address, topic, keys * per_key)
    seen: set[str] = set()
    order: dict[str, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = cloudevents.from_record(record)
        if event.id in seen:
            continue
        seen.add(event.id)
        msg = cloudevents.decode(event, [identity_pb2.Principal])
        order[msg.id].append(int(msg.name))
    assert len(seen) == keys * per_key
    assert all(seqs == list(range(per_key)) for seqs in order.values()), order


async def test_only_the_lease_holder_publishes(engine, topic, kafka_broker) -> None:
    reg = CollectorRegistry()
    first = outbox.OutboxRelay(
        engine, bootstrap=kafka_broker.address, service="t", lease_ttl_s=30, registry=reg
    )
    second = outbox.OutboxRelay(
        engine, bootstrap=kafka_broker.address, service="t", lease_ttl_s=30, registry=reg
    )
    t1 = asyncio.create_task(first.run())
    try:
        await apoll_until(lambda: _holds(first), what="first relay holds the lease")
        t2 = asyncio.create_task(second.run())
        try:
            sessions = db.session_factory(engine)
            async with sessions.begin() as session:
                for i in range(20):
                    outbox.enqueue(
                        session, topic=topic, key="k", message=_principal("k", i), source_service="t"
                    )
            await apoll_until(lambda: _is_zero(engine), what="outbox drained")
            assert (first.published, second.published) == (20, 0)
            assert not second.holds_lease
        finally:
            second.stop()
            await t2
    finally:
        first.stop()
        await t1


async def test_a_stopped_relay_hands_the_lease_over_at_once(engine, kafka_broker) -> None:
    reg = CollectorRegistry()
    first = outbox.OutboxRelay(
        engine, bootstrap=kafka_broker.address, service="t", lease_ttl_s=60, registry=reg
    )
    t1 = asyncio.create_task(first.run())
    await apoll_until(lambda: _holds(first), what="first relay holds the lease")
    first.stop()
    await t1
    second = outbox.OutboxRelay(
        engine, bootstrap=kafka_broker.address, service="t", lease_ttl_s=60, registry=reg
    )
    t2 = asyncio.create_task(second.run())
    try:
        await apoll_until(lambda: _holds(second), timeout=5, what="second relay takes the released lease")
    finally:
        second.stop()
        await t2


async def _holds(relay: outbox.OutboxRelay) -> bool:
    return relay.holds_lease


async def test_relay_exports_its_backlog_and_published_count(engine, topic, kafka_broker) -> None:
    reg = CollectorRegistry()
    sessions = db.session_factory(engine)
    relay = outbox.OutboxRelay(engine, bootstrap=kafka_broker.address, service="svc", registry=reg)
    async with sessions.begin() as session:
        for i in range(5):
            outbox.enqueue(session, topic=topic, key="k", message=_principal("k", i), source_service="svc")
    relay._producer = await kafka.create_producer(kafka_broker.address)
    try:
        await relay.relay_once()  # the backlog gauge is read before the round publishes
    finally:
        await relay._producer.stop()
    assert reg.get_sample_value("vigil_outbox_pending_rows", {"service": "svc"}) == 5
    assert reg.get_sample_value("vigil_outbox_oldest_unsent_age_seconds", {"service": "svc"}) >= 0
    assert reg.get_sample_value("vigil_outbox_published_total", {"service": "svc"}) == 5
    assert await _pending(engine) == 0


async def test_notify_on_commit_wakes_the_relay(engine, topic, kafka_broker) -> None:
    relay = outbox.OutboxRelay(
        engine,
        bootstrap=kafka_broker.address,
        service="t",
        poll_interval_s=3600,
        registry=CollectorRegistry(),
    )
    task = asyncio.create_task(relay.run())
    try:
        await apoll_until(lambda: _holds(relay), what="relay holds the lease")
        sessions = db.session_factory(engine)
        async with sessions.begin() as session:
            outbox.enqueue(
                session,
                topic=topic,
                key="k",
                message=_principal("k", 0),
                source_service="t",
                notifier=relay.notify,
            )
        await apoll_until(
            lambda: _is_zero(engine), timeout=10, what="published long before the hour-long poll"
        )
    finally:
        relay.stop()
        await task
