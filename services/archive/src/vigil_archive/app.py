"""The archive service's composition root: builds its graph from the service context and runs it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from vigil.archive.v1 import archive_service_pb2_grpc as pb_grpc
from vigil.sharing.v1 import sharing_service_pb2 as sharing_pb
from vigil.sharing.v1 import sharing_service_pb2_grpc as sharing_grpc
from vigil_archive import metrics
from vigil_archive.api import SERVICE_NAME, ArchiveDeps, Clock, IndexReads
from vigil_archive.codec import time_range
from vigil_archive.config import Settings
from vigil_archive.holds import Holds
from vigil_archive.indexer import INDEX_GROUP, Indexer
from vigil_archive.integrity import Integrity
from vigil_kit import topics
from vigil_kit.auth import Principal
from vigil_kit.consumer import IdempotentConsumer
from vigil_kit.errors import from_rpc_error
from vigil_kit.grpc_client import make_channel
from vigil_kit.grpc_server import ServiceBinding
from vigil_kit.service import ServiceContext, run_service

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class ArchiveServicer(IndexReads, Holds, Integrity, pb_grpc.ArchiveServiceServicer):
    """vigil.archive.v1.ArchiveService, assembled from its parts."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class GrantChecker:
    """Asks sharing's Authorize (as this service, naming the caller) whether a grant allows playback."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stub: sharing_grpc.SharingServiceStub | None = None

    async def __call__(
        self, p: Principal, device_id: str, start: datetime, end: datetime
    ) -> sharing_pb.AuthorizeResponse | None:
        token = self._settings.service_token.get_secret_value() if self._settings.service_token else ""
        if not token:
            return None
        if self._stub is None:
            channel = make_channel(
                self._settings.sharing_addr, token=token, default_timeout_s=self._settings.sharing_timeout_s
            )
            self._stub = sharing_grpc.SharingServiceStub(channel)
        try:
            return await self._stub.Authorize(
                sharing_pb.AuthorizeRequest(
                    action=sharing_pb.ACTION_PLAYBACK,
                    device_id=device_id,
                    footage_window=time_range(start, end),
                    principal=p.to_proto(),
                )
            )
        except grpc.RpcError as exc:
            # Deny by default: an unreachable or refusing sharing service grants nothing.
            log.warning("grant check failed", extra={"error": str(from_rpc_error(exc))})
            return None


async def build(ctx: ServiceContext, *, clock: Clock = utc_now) -> list[ServiceBinding]:
    """The ArchiveService and its workers: the segment indexer (and the parts' own workers)."""
    settings = ctx.settings
    assert isinstance(settings, Settings)
    deps = ArchiveDeps(
        sessions=ctx.sessions,
        minio=ctx.minio,
        clock=clock,
        notifier=ctx.relay.notify,
        grant_check=GrantChecker(settings),
        max_segment=timedelta(seconds=settings.max_segment_seconds),
        max_gaps=settings.max_coverage_gaps,
    )
    servicer = ArchiveServicer(deps)
    indexer = Indexer(clock=clock, notifier=ctx.relay.notify, after_index=servicer.after_index)
    ctx.add_worker(
        "segment-indexer",
        IdempotentConsumer(
            ctx.engine,
            bootstrap=settings.kafka_bootstrap,
            topics=[topics.INGEST_SEGMENTS],
            group_id=INDEX_GROUP,
            name=INDEX_GROUP,
            handler=indexer.handle,
        ),
    )
    for name, worker in servicer.workers(settings, indexer):
        ctx.add_worker(name, worker)
    return [
        ServiceBinding(
            name=SERVICE_NAME, servicer=servicer, add_to_server=pb_grpc.add_ArchiveServiceServicer_to_server
        )
    ]


async def run(settings: Settings) -> None:
    metrics.publish_build_info()
    await run_service(settings, build=build, migrations_dir=MIGRATIONS, needs_s3=True)
