"""The fixtures start real servers that answer on their ports."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from minio import Minio
from sqlalchemy.ext.asyncio import create_async_engine

from vigil_kit.embedded import port_open


async def test_kafka_broker_round_trips_a_message(kafka_broker):
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.address, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait("fixture-check", b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "fixture-check", bootstrap_servers=kafka_broker.address, auto_offset_reset="earliest", group_id="fx"
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 10)
    finally:
        await consumer.stop()
    assert msg.value == b"hello"


def test_s3_server_creates_a_locked_versioned_bucket(s3_server):
    client = Minio(s3_server.address, access_key="k", secret_key="s", secure=False)
    client.make_bucket("fixture-check", object_lock=True)
    assert client.get_bucket_versioning("fixture-check").status == "Enabled"


def test_killed_s3_server_stops_listening(fresh_s3_server):
    assert port_open(fresh_s3_server.host, fresh_s3_server.port)
    fresh_s3_server.kill()
    assert not port_open(fresh_s3_server.host, fresh_s3_server.port)


async def test_database_url_gives_an_empty_working_database(database_url):
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one() == 1
    finally:
        await engine.dispose()
