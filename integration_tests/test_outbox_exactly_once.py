"""10,000 events go outbox → broker → idempotent consumer exactly once, in per-key order, across SIGKILLs.

The relay and the consumer run as separate processes; the relay is SIGKILLed midway through
publishing and restarted, then the consumer is SIGKILLed midway through consuming and restarted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from vigil.common.v1 import identity_pb2
from vigil_kit import db, kafka, outbox
from vigil_kit.migrations import KIT_METADATA, outbox_table
from vigil_testing.poll import apoll_until

WORKER = Path(__file__).resolve().parent / "outbox_worker.py"
KEYS = 50
PER_KEY = 200
TOTAL = KEYS * PER_KEY


class Worker:
    def __init__(self, log_dir: Path, *args: str) -> None:
        self.args = args
        self.log = log_dir / f"{args[0]}-{uuid.uuid4().hex[:6]}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), *args], stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> bool:
        return self.proc.poll() is None


async def _enqueue(sessions, topic: str, seqs: range) -> None:
    for seq in seqs:
        async with sessions.begin() as session:
            for k in range(KEYS):
                key = f"key-{k:02d}"
                outbox.enqueue(
                    session,
                    topic=topic,
                    key=key,
                    message=identity_pb2.Principal(id=key, name=str(seq)),
                    source_service="it",
                )


async def _scalar(engine, query) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(query)


@pytest.mark.slow
async def test_ten_thousand_events_land_exactly_once_in_key_order_across_sigkills(
    database_url: str, kafka_broker, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        consumer_url = f"sqlite+aiosqlite:///{tmp_path / 'consumer.db'}"
    else:
        consumer_url = request.getfixturevalue("postgres_cluster").create_database()
    topic = f"it.outbox.{uuid.uuid4().hex[:8]}"
    group = f"it-{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(kafka_broker.address, {topic: 3})

    producer_db = db.create_engine(database_url)
    consumer_db = db.create_engine(consumer_url)
    async with producer_db.begin() as conn:
        await conn.run_sync(KIT_METADATA.create_all)
    sessions = db.session_factory(producer_db)
    await _enqueue(sessions, topic, range(PER_KEY))
    pending = select(func.count()).select_from(outbox_table)
    received_count = text("SELECT count(*) FROM received")

    workers: list[Worker] = []
    t0 = time.monotonic()
    phases: list[str] = []

    def mark(what: str) -> None:
        phases.append(f"{what}@{time.monotonic() - t0:.1f}s")

    def start(*args: str) -> Worker:
        w = Worker(tmp_path, *args)
        workers.append(w)
        return w

    try:
        relay = start("relay", database_url, kafka_broker.address)
        paused = tmp_path / "consumer-paused"
        consumer = start(
            "consume", consumer_url, kafka_broker.address, topic, group, str(TOTAL // 2), str(paused)
        )

        # 1. SIGKILL the relay once it has published some, but not all, of the events.
        await apoll_until(
            lambda: _below(producer_db, pending, TOTAL - 1500),
            timeout=30,
            interval=0.01,
            what="relay publishing",
        )
        relay.kill()
        mark("relay killed")
        left_at_relay_kill = await _scalar(producer_db, pending)
        assert 0 < left_at_relay_kill < TOTAL, "the relay was not killed midway"
        relay = start("relay", database_url, kafka_broker.address)

        # 2. SIGKILL the consumer midway through consuming: it stops at its TOTAL // 2-th event, inside
        # that event's batch transaction, and waits there for the kill.
        await apoll_until(
            lambda: asyncio.to_thread(paused.exists), timeout=40, interval=0.02, what="consumer halfway"
        )
        consumer.kill()
        mark("consumer killed")
        taken_at_consumer_kill = await _scalar(consumer_db, received_count)
        assert taken_at_consumer_kill < TOTAL, "the consumer was not killed midway"
        consumer = start("consume", consumer_url, kafka_broker.address, topic, group)

        await apoll_until(
            lambda: _at_least(consumer_db, received_count, TOTAL), timeout=40, what="all events consumed"
        )
        mark("all consumed")
        await apoll_until(lambda: _below(producer_db, pending, 1), timeout=20, what="outbox drained")
        # A barrier: one more event per key. Once all are consumed, every earlier copy of every event
        # in every partition has been delivered too, so any duplicate would have shown by now.
        await _enqueue(sessions, topic, range(PER_KEY, PER_KEY + 1))
        await apoll_until(
            lambda: _at_least(consumer_db, received_count, TOTAL + KEYS), timeout=30, what="barrier consumed"
        )
        mark("barrier consumed")
        assert relay.alive() and consumer.alive()
    finally:
        for w in workers:
            w.stop()

    async with consumer_db.connect() as conn:
        rows = (await conn.execute(text("SELECT key, seq, event_id FROM received ORDER BY ordinal"))).all()
    left = await _scalar(producer_db, pending)
    await producer_db.dispose()
    await consumer_db.dispose()

    by_key: dict[str, list[int]] = defaultdict(list)
    for key, seq, _ in rows:
        by_key[key].append(seq)
    events = [r for r in rows if r.seq < PER_KEY]
    in_order = sum(seqs == list(range(PER_KEY + 1)) for seqs in by_key.values())
    print(
        f"\n[{database_url.split(':')[0]}] enqueued={TOTAL} consumed={len(events)} distinct_ids={len({r.event_id for r in events})}"
        f" keys_in_order={in_order}/{KEYS} outbox_left={left}"
        f" (relay killed with {left_at_relay_kill} unsent; consumer killed after {taken_at_consumer_kill});"
        f" {', '.join(phases)}"
    )
    assert len(events) == TOTAL
    assert len({r.event_id for r in rows}) == len(rows) == TOTAL + KEYS
    assert in_order == KEYS, {k: v for k, v in by_key.items() if v != list(range(PER_KEY + 1))}
    assert left == 0


async def _below(engine, query, n: int) -> bool:
    return await _scalar(engine, query) < n


async def _at_least(engine, query, n: int) -> bool:
    return await _scalar(engine, query) >= n
