"""The decision log: Authorize's audit records, committed before write() returns: acknowledged by the real
broker, or, when it does not answer in time, as write_audit's outbox rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry
from sqlalchemy import select, text

from vigil_kit import audit, cloudevents, db, kafka, migrations, outbox, topics
from vigil_kit.auth import Principal
from vigil_kit.migrations import outbox_table
from vigil_sharing import app
from vigil_sharing.api import DecisionLog
from vigil_testing.poll import apoll_until

ANALYST = Principal(
    "user:analyst", "Analyst", "113202000142871537", "UNIT_KIND_GOVERNMENT_DEPARTMENT", frozenset()
)
COLUMNS = ("topic", "key", "ce_type", "source", "subject", "payload")


def record(n: int) -> audit.AuditRecord:
    return audit.build_record(
        actor=ANALYST,
        action="video.playback",
        source_service="sharing",
        decision=audit.ALLOWED if n % 2 else audit.DENIED,
        resources={"device_ids": [f"3202050150132000000{n}"], "grant_ids": []},
        reason="no grant covers it",
        rule_id="ACC-2",
        attributes={"action": "ACTION_PLAYBACK"},
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[object]:
    engine = db.create_engine(database_url)
    await migrations.upgrade(engine, app.MIGRATIONS)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(params=["async", "threaded"])
async def log_and_wakes(request, engine) -> AsyncIterator[tuple[DecisionLog, list[int]]]:
    """A DecisionLog on the async engine, or on SQLite through ThreadedTransactions; and its wake-ups."""
    transactions = None
    if request.param == "threaded":
        transactions = db.threaded_transactions(engine)
        if transactions is None:
            pytest.skip("threaded transactions are for SQLite files only")
    wakes: list[int] = []
    log = DecisionLog(
        db.session_factory(engine), lambda: wakes.append(1), max_batch=100, transactions=transactions
    )
    try:
        yield log, wakes
    finally:
        if transactions is not None:
            transactions.close()


async def rows(engine, record_ids: list[str]) -> dict[str, dict[str, object]]:
    async with engine.connect() as conn:
        found = (
            await conn.execute(select(outbox_table).where(outbox_table.c.event_id.in_(record_ids)))
        ).all()
    return {r.event_id: {c: getattr(r, c) for c in COLUMNS} for r in found}


async def test_each_record_is_committed_when_write_returns(engine, log_and_wakes) -> None:
    log, wakes = log_and_wakes
    records = [record(n) for n in range(5)]

    ids = await asyncio.gather(*(log.write(r) for r in records))

    assert ids == [r.record_id for r in records]
    assert set(await rows(engine, ids)) == set(ids)  # visible to another connection: committed
    assert wakes  # the relay was woken after the commit


async def test_a_decision_row_is_the_row_write_audit_makes(engine, log_and_wakes) -> None:
    log, _ = log_and_wakes
    ours, reference = record(1), record(2)
    reference.CopyFrom(ours)
    reference.record_id = "reference-" + ours.record_id
    async with db.session_factory(engine).begin() as session:
        audit.write_audit(session, reference)

    await log.write(ours)

    found = await rows(engine, [ours.record_id, reference.record_id])
    expected = dict(found[reference.record_id])
    expected["key"] = ours.record_id
    expected["payload"] = ours.SerializeToString()
    assert found[ours.record_id] == expected


async def test_a_record_without_its_id_is_refused(log_and_wakes) -> None:
    log, _ = log_and_wakes
    bad = record(1)
    bad.record_id = ""

    with pytest.raises(ValueError, match="record_id"):
        await log.write(bad)


async def test_a_failed_commit_fails_every_write_of_its_batch_and_the_next_batch_commits(
    engine, log_and_wakes
) -> None:
    log, _ = log_and_wakes
    first = record(1)
    await log.write(first)
    duplicate = record(3)
    duplicate.CopyFrom(first)  # the same record id: the outbox's unique event id refuses the whole batch
    innocent = record(5)

    results = await asyncio.gather(log.write(duplicate), log.write(innocent), return_exceptions=True)

    assert all(isinstance(r, Exception) for r in results)  # Authorize denies both (ACC-1)
    assert await rows(engine, [innocent.record_id]) == {}
    later = record(7)
    assert await log.write(later) == later.record_id


async def test_commits_in_quick_succession_wake_the_relay_once_now_and_once_when_the_interval_ends(
    engine,
) -> None:
    wakes: list[float] = []
    log = DecisionLog(db.session_factory(engine), lambda: wakes.append(1), max_batch=100, relay_wake_s=0.5)
    await log.write(record(1))
    assert len(wakes) == 1  # a quiet spell's first commit wakes the relay at once
    await log.write(record(2))
    await log.write(record(3))
    assert len(wakes) == 1  # the next ones share a wake-up due when the interval ends

    async def woken_twice() -> bool:
        return len(wakes) == 2

    await apoll_until(woken_twice, timeout=10, what="the relay's second wake-up")


async def _started(publisher: outbox.DirectPublisher) -> asyncio.Task[None]:
    task = asyncio.create_task(publisher.run())

    async def connected() -> bool:
        return publisher.available

    await apoll_until(connected, timeout=20, what="the decision publisher's producer")
    return task


async def _audit_ids_on(bootstrap: str, wanted: set[str]) -> set[str]:
    consumer = AIOKafkaConsumer(
        topics.AUDIT_RECORDS, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: set[str] = set()
    try:

        async def all_there() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.update(cloudevents.from_record(r).id for r in records)
            return wanted <= seen

        await apoll_until(
            all_there, timeout=20, interval=0, what="the decisions' audit records on the broker"
        )
    finally:
        await consumer.stop()
    return seen & wanted


async def test_with_the_broker_each_record_is_acknowledged_by_it_when_write_returns_and_skips_the_outbox(
    engine, kafka_broker
) -> None:
    await kafka.ensure_topics(kafka_broker.address)
    publisher = outbox.DirectPublisher(kafka_broker.address, service="sharing", registry=CollectorRegistry())
    task = await _started(publisher)
    wakes: list[int] = []
    log = DecisionLog(db.session_factory(engine), lambda: wakes.append(1), max_batch=100, publisher=publisher)
    try:
        records = [record(n) for n in range(5)]
        ids = await asyncio.gather(*(log.write(r) for r in records))
    finally:
        publisher.stop()
        await task

    assert ids == [r.record_id for r in records]
    assert await rows(engine, ids) == {}  # no outbox row, and the relay was never woken: the broker has them
    assert not wakes
    # Acknowledged (acks=all) before write() returned; the producer has stopped since, so nothing sends now.
    assert await _audit_ids_on(kafka_broker.address, set(ids)) == set(ids)


async def test_when_the_broker_does_not_acknowledge_the_records_go_to_the_outbox_and_without_it_write_fails(
    engine, fresh_kafka_broker
) -> None:
    await kafka.ensure_topics(fresh_kafka_broker.address)
    publisher = outbox.DirectPublisher(
        fresh_kafka_broker.address, service="sharing", timeout_s=0.3, registry=CollectorRegistry()
    )
    task = await _started(publisher)
    wakes: list[int] = []
    log = DecisionLog(db.session_factory(engine), lambda: wakes.append(1), max_batch=100, publisher=publisher)
    try:
        await log.write(record(0))
        fresh_kafka_broker.kill()

        late = [record(n) for n in range(1, 4)]
        ids = await asyncio.gather(*(log.write(r) for r in late))

        assert set(await rows(engine, ids)) == set(
            ids
        )  # committed to the outbox; the relay will publish them
        assert wakes
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE outbox"))  # and now no commit can take the record either
        with pytest.raises(Exception):  # noqa: B017 - Authorize denies on any failure (ACC-1)
            await log.write(record(9))
    finally:
        publisher.stop()
        await task
