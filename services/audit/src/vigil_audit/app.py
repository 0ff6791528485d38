"""The audit service's composition root: builds its graph from the service context and runs it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from vigil.audit.v1 import audit_service_pb2_grpc
from vigil_audit import metrics
from vigil_audit.config import Settings
from vigil_audit.servicer import AuditServicer
from vigil_audit.signing import load_log_key
from vigil_audit.store import LogStore, read_engine
from vigil_audit.writer import LogWriter
from vigil_kit.grpc_server import ServiceBinding
from vigil_kit.service import ServiceContext, run_service

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = "vigil.audit.v1.AuditService"


async def build(ctx: ServiceContext) -> list[ServiceBinding]:
    """The log writer (a worker: it starts once the topics exist) and the AuditService."""
    settings = ctx.settings
    assert isinstance(settings, Settings)
    reader = read_engine(ctx.engine)
    store = LogStore(ctx.engine, reader)
    ctx.add_worker("audit-read-engine", _Disposer(store))
    key = await load_log_key(ctx.engine, settings.signing_key_file)
    writer = LogWriter(
        store,
        key,
        bootstrap=settings.kafka_bootstrap,
        lease_s=settings.writer_lease_s,
        sth_interval_s=settings.sth_interval_s,
        batch_max=settings.append_batch_max,
        encode_workers=settings.encode_workers,
    )
    ctx.add_worker("audit-log-writer", writer)
    from vigil_audit.compliance.service import compliance_binding  # AUD-3, hosted by this process

    return [
        ServiceBinding(
            name=SERVICE_NAME,
            servicer=AuditServicer(store, key),
            add_to_server=audit_service_pb2_grpc.add_AuditServiceServicer_to_server,
        ),
        compliance_binding(settings, store),
    ]


class _Disposer:
    """A worker that only closes the store's read connections when the service stops."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await self._stop.wait()
        self.store.close()
        if self.store.reader is not None and self.store.reader is not self.store.engine:
            await self.store.reader.dispose()

    def stop(self) -> None:
        self._stop.set()


async def run(settings: Settings) -> None:
    metrics.publish_build_info()
    await run_service(settings, build=build, migrations_dir=MIGRATIONS, needs_s3=False)
