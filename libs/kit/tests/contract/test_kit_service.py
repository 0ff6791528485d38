"""run_service in-process: migrations at start, readiness, worker supervision and graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vigil_kit import db, migrations
from vigil_kit.auth import generate_keypair
from vigil_kit.embedded import free_port
from vigil_kit.service import ServiceContext, run_service
from vigil_kit.settings import ServiceSettings
from vigil_testing.poll import apoll_until

REVISION = '''"""Kit tables for the probe service."""

from alembic import op

from vigil_kit.migrations import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    create_kit_tables(op)


def downgrade():
    drop_kit_tables(op)
'''


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """run_service configures process-wide JSON logging; put the test process's logging back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    kafka_level = logging.getLogger("aiokafka").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(kafka_level)


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text("from vigil_kit.migrations import run_env\n\nrun_env()\n")
    (folder / "versions" / "0001_kit_tables.py").write_text(REVISION)
    return folder


def probe_settings(database_url: str, kafka_bootstrap: str) -> ServiceSettings:
    return ServiceSettings(
        service_name="probe",
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        metrics_port=0,
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        auth_public_keys=[generate_keypair()[1].decode()],
        readiness_interval_s=0.2,
        shutdown_grace_s=1,
    )


class RecordingWorker:
    """A worker that fails its first `failures` runs, then runs until stopped."""

    def __init__(self, failures: int = 0) -> None:
        self.runs = 0
        self.failures_left = failures
        self.running = asyncio.Event()
        self.finished = False
        self._stop = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("broker went away")
        self.running.set()
        await self._stop.wait()
        self.finished = True

    def stop(self) -> None:
        self._stop.set()


async def health_of(settings: ServiceSettings) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


@contextlib.asynccontextmanager
async def running(
    settings: ServiceSettings, migrations_dir: Path, worker: RecordingWorker
) -> AsyncIterator[asyncio.Task[None]]:
    """Run the service in this event loop; set its stop event on exit and wait for it to return."""
    stop = asyncio.Event()

    async def build(ctx: ServiceContext) -> list:
        ctx.add_worker("recorder", worker)
        return []

    task = asyncio.create_task(
        run_service(settings, build=build, migrations_dir=migrations_dir, needs_s3=False, stop=stop)
    )
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_start_up_migrates_the_database(kafka_broker, sqlite_url: str, migrations_dir: Path) -> None:
    settings = probe_settings(sqlite_url, kafka_broker.address)
    async with running(settings, migrations_dir, RecordingWorker()):
        await apoll_until(lambda: _serving(settings), timeout=30, what="SERVING")
    engine = db.create_engine(sqlite_url)
    try:
        assert await migrations.current_revision(engine) == "0001"
    finally:
        await engine.dispose()


async def test_a_service_serves_and_runs_its_workers_until_stopped(
    kafka_broker, sqlite_url: str, migrations_dir: Path
) -> None:
    settings = probe_settings(sqlite_url, kafka_broker.address)
    worker = RecordingWorker()
    async with running(settings, migrations_dir, worker):
        await apoll_until(lambda: _serving(settings), timeout=30, what="SERVING")
        await asyncio.wait_for(worker.running.wait(), 10)
    assert worker.finished


async def test_a_failed_worker_is_restarted(kafka_broker, sqlite_url: str, migrations_dir: Path) -> None:
    settings = probe_settings(sqlite_url, kafka_broker.address)
    worker = RecordingWorker(failures=1)
    async with running(settings, migrations_dir, worker):
        await asyncio.wait_for(worker.running.wait(), 20)
    assert worker.runs == 2


async def test_an_unreachable_broker_keeps_the_service_up_but_not_serving(
    sqlite_url: str, migrations_dir: Path
) -> None:
    settings = probe_settings(sqlite_url, f"127.0.0.1:{free_port()}")
    worker = RecordingWorker()
    async with running(settings, migrations_dir, worker) as task:
        await apoll_until(lambda: _status_is(settings, "NOT_SERVING"), timeout=30, what="NOT_SERVING")
        assert not task.done() and worker.runs == 0


async def _serving(settings: ServiceSettings) -> bool:
    return await _status_is(settings, "SERVING")


async def _status_is(settings: ServiceSettings, status: str) -> bool:
    return await health_of(settings) == status
