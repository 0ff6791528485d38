"""Figure: the outbox relay's throughput against raw aiokafka produce to the same broker, same run."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from vigil.common.v1 import identity_pb2
from vigil_kit import cloudevents, db, kafka, outbox
from vigil_kit.bench import BenchContext, Figure
from vigil_kit.migrations import KIT_METADATA, outbox_table

EVENTS = 60_000
PAYLOAD = 1024
KEYS = 100


def _message() -> identity_pb2.Principal:
    # 1 KiB of protobuf: the name field padded so the serialized message is exactly PAYLOAD bytes.
    msg = identity_pb2.Principal(id="bench")
    msg.name = "x" * (PAYLOAD - msg.ByteSize() - 3)
    assert msg.ByteSize() == PAYLOAD
    return msg


async def raw_produce(bootstrap: str, topic: str, n: int) -> float:
    """Events/s of plain aiokafka sends (acks=all) with the same headers, keys and values."""
    msg = _message()
    value = msg.SerializeToString()
    # Keys and headers are built before the clock starts, so the baseline is the client's best case.
    keys = [f"key-{i % KEYS}" for i in range(n)]
    headers = [cloudevents.headers_for(msg, source_service="bench", subject=k) for k in keys]
    producer = await kafka.create_producer(bootstrap)
    try:
        start = time.perf_counter()
        futures = []
        for key, hdrs in zip(keys, headers, strict=True):
            futures.append(await producer.send(topic, value, key=key.encode(), headers=hdrs))
        await asyncio.gather(*futures)
        return n / (time.perf_counter() - start)
    finally:
        await producer.stop()


async def relay_throughput(bootstrap: str, topic: str, n: int, url: str) -> float:
    """Events/s from a full SQLite outbox to acknowledged-and-deleted, through OutboxRelay."""
    engine = db.create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(KIT_METADATA.create_all)
        sessions = db.session_factory(engine)
        msg = _message()
        for chunk in range(0, n, 2000):
            async with sessions.begin() as session:
                for i in range(chunk, min(n, chunk + 2000)):
                    outbox.enqueue(
                        session, topic=topic, key=f"key-{i % KEYS}", message=msg, source_service="bench"
                    )
        relay = outbox.OutboxRelay(engine, bootstrap=bootstrap, service="bench", registry=CollectorRegistry())
        start = time.perf_counter()
        task = asyncio.create_task(relay.run())
        while relay.published < n:
            if task.done():
                task.result()
                raise RuntimeError("relay stopped early")
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        relay.stop()
        await task
        async with engine.connect() as conn:
            left = await conn.scalar(select(func.count()).select_from(outbox_table))
        if left:
            raise RuntimeError(f"{left} rows left in the outbox")
        return n / elapsed
    finally:
        await engine.dispose()


async def figures(ctx: BenchContext) -> list[Figure]:
    n = int(os.environ.get("VIGIL_BENCH_OUTBOX_EVENTS", EVENTS))
    raw_topic, relay_topic = (f"bench.outbox.{uuid.uuid4().hex[:6]}" for _ in range(2))
    await kafka.ensure_topics(ctx.kafka_bootstrap, {raw_topic: 3, relay_topic: 3})
    url = f"sqlite+aiosqlite:///{ctx.workdir / 'outbox-bench.db'}"
    await raw_produce(ctx.kafka_bootstrap, raw_topic, 2000)  # warm up connections and metadata
    raw = await raw_produce(ctx.kafka_bootstrap, raw_topic, n)
    relay = await relay_throughput(ctx.kafka_bootstrap, relay_topic, n, url)
    return [
        Figure.measured(
            "outbox relay throughput (SQLite, 1 KiB events, 3 partitions)",
            value=relay,
            baseline=raw,
            min_ratio=0.5,
            unit="events/s",
            notes=f"{n:,} events each; baseline = raw aiokafka send, acks=all, same broker, same run",
        )
    ]
