"""The ingest service's composition root: builds its graph from the service context and runs it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vigil.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from vigil_ingest import metrics
from vigil_ingest.api import SERVICE_NAME, Admission, IngestServicer
from vigil_ingest.config import Settings
from vigil_ingest.devices import DeviceDirectory, registry_stub
from vigil_ingest.events import Publisher
from vigil_ingest.storage import ObjectStore
from vigil_kit.grpc_server import ServiceBinding
from vigil_kit.service import ServiceContext, run_service

MIGRATIONS = Path(__file__).parent / "migrations"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Closer:
    """A worker that does nothing but release resources at shutdown (the registry channel, S3 threads)."""

    def __init__(self, *closers: Callable[[], object]) -> None:
        self._closers = closers
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        for close in self._closers:
            result = close()
            if inspect.isawaitable(result):
                await result
        self._stopped.set()


async def build(ctx: ServiceContext, *, clock: Callable[[], datetime] = _utc_now) -> list[ServiceBinding]:
    """IngestService, the device-cache consumer, and the clients it needs (the kit adds health, reflection, WhoAmI)."""
    settings = ctx.settings
    assert isinstance(settings, Settings)
    assert ctx.minio is not None, "ingest runs with needs_s3=True"
    token = settings.service_token.get_secret_value()
    channel, stub = registry_stub(settings.registry_addr, token, settings.registry_timeout_s)
    devices = DeviceDirectory(
        ctx.sessions, registry=stub, registry_timeout_s=settings.registry_timeout_s, clock=clock
    )
    ctx.add_worker("device-cache", devices.consumer(ctx.engine, settings.kafka_bootstrap))
    objects = ObjectStore(ctx.minio, threads=settings.s3_threads)
    ctx.add_worker("clients", _Closer(channel.close, objects.close))
    servicer = IngestServicer(
        sessions=ctx.sessions,
        devices=devices,
        objects=objects,
        publisher=Publisher(notifier=ctx.relay.notify, source=settings.service_name),
        limits=settings.limits(),
        admission=Admission(
            per_device=settings.max_uploads_per_device,
            max_bytes=settings.max_bytes_in_flight,
            retry_after_s=settings.retry_after_s,
        ),
        min_lock=timedelta(seconds=settings.min_lock_s),
        max_snapshot_bytes=settings.max_snapshot_bytes,
        clock=clock,
        transactions=ctx.transactions,
    )
    return [
        ServiceBinding(
            name=SERVICE_NAME, servicer=servicer, add_to_server=pb_grpc.add_IngestServiceServicer_to_server
        )
    ]


async def run(settings: Settings) -> None:
    metrics.publish_build_info()
    await run_service(settings, build=build, migrations_dir=MIGRATIONS, needs_s3=True)
