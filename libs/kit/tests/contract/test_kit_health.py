"""Readiness: grpc.health.v1 follows the broker, database and S3 checks; liveness stays SERVING."""

from __future__ import annotations

import asyncio
import sqlite3

import grpc
import minio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.ext.asyncio import create_async_engine

from vigil_kit import auth, db
from vigil_kit.embedded import free_port
from vigil_kit.grpc_server import build_server
from vigil_kit.health import ReadinessMonitor, database_check, kafka_check, s3_check
from vigil_kit.settings import ServiceSettings
from vigil_testing.poll import apoll_until

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Switch:
    """A check that fails while `down` is set."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("dependency unreachable")


async def serve(checks, **settings_kw):
    """A started server with `checks` and a health stub on it; caller stops the server."""
    settings = ServiceSettings(service_name="ingest", grpc_host="127.0.0.1", grpc_port=0, **settings_kw)
    verifier = auth.TokenVerifier([auth.generate_keypair()[1]])
    server = await build_server(settings, bindings=[], verifier=verifier, checks=checks)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    return server, channel, health_pb2_grpc.HealthStub(channel)


async def status(stub, service: str = "") -> int:
    return (await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)).status


async def is_status(stub, wanted: int, service: str = "") -> bool:
    return await status(stub, service) == wanted


class FakeHealth:
    """Records statuses like grpc_health's aio servicer (its `set` is the only method the monitor uses)."""

    def __init__(self) -> None:
        self.statuses: dict[str, int] = {}

    async def set(self, service: str, status: int) -> None:
        self.statuses[service] = status


@pytest.fixture
async def switch_server():
    switch = Switch()
    server, channel, stub = await serve({"broker": switch}, readiness_interval_s=0.1, readiness_timeout_s=1)
    yield switch, server, stub
    await channel.close()
    await server.stop(0)


async def test_a_failing_check_turns_readiness_not_serving_and_back(switch_server):
    switch, server, stub = switch_server
    assert await status(stub) == SERVING

    switch.down = True
    await apoll_until(lambda: is_status(stub, NOT_SERVING), timeout=5, what="NOT_SERVING")
    assert "broker" in server.readiness.failures
    assert await status(stub, "vigil.identity.v1.IdentityService") == NOT_SERVING

    switch.down = False
    await apoll_until(lambda: is_status(stub, SERVING), timeout=5, what="SERVING again")
    assert server.readiness.failures == {}


async def test_health_watch_streams_the_readiness_changes(switch_server):
    switch, _server, stub = switch_server
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
    try:
        assert (await asyncio.wait_for(watch.read(), 5)).status == SERVING

        switch.down = True

        assert (await asyncio.wait_for(watch.read(), 5)).status == NOT_SERVING
    finally:
        watch.cancel()


async def test_liveness_stays_serving_while_a_dependency_is_down(switch_server):
    switch, _server, stub = switch_server
    switch.down = True
    await apoll_until(lambda: is_status(stub, NOT_SERVING), timeout=5, what="NOT_SERVING")

    assert await status(stub, "liveness") == SERVING


async def test_readiness_is_not_serving_from_the_start_when_a_dependency_is_down():
    switch = Switch()
    switch.down = True
    server, channel, stub = await serve({"broker": switch})
    try:
        assert await status(stub) == NOT_SERVING
        assert not server.readiness.ready
    finally:
        await channel.close()
        await server.stop(0)


async def test_a_check_that_hangs_counts_as_failed_within_the_timeout():
    async def hang() -> None:
        await asyncio.Event().wait()

    monitor = ReadinessMonitor(FakeHealth(), ["svc"], {"stuck": hang}, interval_s=0.1, timeout_s=0.3)
    await monitor.start()
    try:
        assert not monitor.ready
        assert "0.3" in monitor.failures["stuck"]
    finally:
        await monitor.stop()


async def test_s3_loss_turns_readiness_not_serving_within_5_s(fresh_s3_server):
    client = minio.Minio(fresh_s3_server.address, access_key="vigil", secret_key="vigil-secret", secure=False)
    server, channel, stub = await serve({"s3": s3_check(client)})
    try:
        assert await status(stub) == SERVING

        fresh_s3_server.kill()

        await apoll_until(lambda: is_status(stub, NOT_SERVING), timeout=5, what="NOT_SERVING after S3 loss")
        assert "s3" in server.readiness.failures
        assert await status(stub, "liveness") == SERVING
    finally:
        await channel.close()
        await server.stop(0)


async def test_s3_check_fails_within_its_timeout_for_an_unreachable_server():
    client = minio.Minio(f"127.0.0.1:{free_port()}", access_key="a", secret_key="b", secure=False)
    check = s3_check(client, timeout_s=1)

    with pytest.raises(Exception):  # noqa: B017 — any failure will do, as long as it is quick
        await asyncio.wait_for(check(), 2)


async def test_database_check_passes_on_a_reachable_sqlite_database(sqlite_url):
    engine = create_async_engine(sqlite_url)
    try:
        await database_check(engine)()
    finally:
        await engine.dispose()


async def test_database_check_answers_while_another_connection_holds_the_sqlite_write_lock(tmp_path):
    path = tmp_path / "busy.db"
    engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode=WAL")  # as every Vigil database is
        writer.execute("CREATE TABLE t (x INTEGER)")
        writer.execute("BEGIN IMMEDIATE")  # a long write transaction, as under a busy group commit
        # Taking the write lock itself, the probe would wait out the busy timeout (10 s) instead.
        await asyncio.wait_for(database_check(engine)(), 2)
    finally:
        writer.close()
        await engine.dispose()


async def test_database_check_fails_when_the_database_is_unreachable():
    engine = create_async_engine(f"postgresql+asyncpg://vigil:pw@127.0.0.1:{free_port()}/vigil")
    try:
        with pytest.raises(OSError):
            await asyncio.wait_for(database_check(engine)(), 5)
    finally:
        await engine.dispose()


async def test_kafka_check_follows_the_broker_and_reuses_one_client(fresh_kafka_broker):
    check = kafka_check(fresh_kafka_broker.address, timeout_s=2)
    try:
        await check()
        tasks_after_first = len(asyncio.all_tasks())
        for _ in range(5):
            await check()
        assert len(asyncio.all_tasks()) == tasks_after_first

        fresh_kafka_broker.kill()

        with pytest.raises(Exception):  # noqa: B017 — connection or timeout error
            await asyncio.wait_for(check(), 3)
    finally:
        await check.aclose()
