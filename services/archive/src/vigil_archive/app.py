"""The archive service's composition root: builds its graph from the service context and runs it."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from vigil.archive.v1 import archive_service_pb2_grpc as pb_grpc
from vigil.registry.v1 import registry_service_pb2 as reg_pb
from vigil.registry.v1 import registry_service_pb2_grpc as reg_grpc
from vigil.sharing.v1 import sharing_service_pb2 as sharing_pb
from vigil.sharing.v1 import sharing_service_pb2_grpc as sharing_grpc
from vigil_archive import metrics
from vigil_archive.api import SERVICE_NAME, ArchiveDeps, Clock, IndexReads
from vigil_archive.codec import time_range
from vigil_archive.config import Settings
from vigil_archive.export import Exports, load_export_key
from vigil_archive.holds import Holds
from vigil_archive.indexer import INDEX_GROUP, Indexer
from vigil_archive.integrity import Integrity
from vigil_archive.playback import Viewing
from vigil_archive.reconciler import registry_client
from vigil_archive.renditions import MaskedRenditions
from vigil_kit import topics
from vigil_kit.auth import Principal
from vigil_kit.consumer import IdempotentConsumer
from vigil_kit.errors import Unavailable, format_error, from_rpc_error
from vigil_kit.grpc_client import ServiceStub
from vigil_kit.grpc_server import ServiceBinding
from vigil_kit.service import ServiceContext, run_service
from vigil_media.video import EncodeOptions

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class ArchiveServicer(IndexReads, Exports, Viewing, Holds, Integrity, pb_grpc.ArchiveServiceServicer):
    """vigil.archive.v1.ArchiveService, assembled from its parts."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class GrantChecker:
    """Asks sharing's Authorize (as this service, naming the caller) whether a grant allows playback."""

    def __init__(self, settings: Settings) -> None:
        self._sharing = ServiceStub.from_settings(
            sharing_grpc.SharingServiceStub,
            settings.sharing_addr,
            settings,
            timeout_s=settings.sharing_timeout_s,
        )

    async def __call__(
        self,
        p: Principal,
        device_id: str,
        start: datetime,
        end: datetime,
        *,
        action: int = sharing_pb.ACTION_PLAYBACK,
    ) -> sharing_pb.AuthorizeResponse | None:
        stub = self._sharing()
        if stub is None:
            return None
        try:
            return await stub.Authorize(
                sharing_pb.AuthorizeRequest(
                    action=action,
                    device_id=device_id,
                    footage_window=time_range(start, end),
                    principal=p.to_proto(),
                )
            )
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            log.warning("grant check failed", extra={"error": format_error(error)})
            raise Unavailable(f"sharing could not decide the access: {error.message}") from None


Polygons = tuple[tuple[tuple[float, float], ...], ...]


class DeviceMasks:
    """A device's privacy-mask polygons (REG-5; empty: none), from the registry, kept for a short while."""

    TTL_S = 30.0

    def __init__(self, registry: ServiceStub[reg_grpc.RegistryServiceStub]) -> None:
        self._registry = registry
        self._cache: dict[str, tuple[Polygons, float]] = {}

    async def __call__(self, device_id: str) -> Polygons:
        cached = self._cache.get(device_id)
        if cached is not None and time.monotonic() - cached[1] < self.TTL_S:
            return cached[0]
        stub = self._registry()
        if stub is None:
            raise Unavailable("the archive has no service token to ask the registry for the device's masks")
        try:
            device = await stub.GetDevice(reg_pb.GetDeviceRequest(device_id=device_id))
        except grpc.RpcError as exc:
            raise Unavailable(f"the registry could not say whether {device_id} has privacy masks") from exc
        polygons = tuple(tuple((pt.x, pt.y) for pt in mask.points) for mask in device.privacy_masks)
        self._cache[device_id] = (polygons, time.monotonic())
        return polygons


async def build(ctx: ServiceContext, *, clock: Clock = utc_now) -> list[ServiceBinding]:
    """The ArchiveService and its workers: the segment indexer (and the parts' own workers)."""
    settings = ctx.settings
    assert isinstance(settings, Settings)
    # One registry client for the parts that ask it (privacy masks, reconciliation's device keys).
    registry = registry_client(settings)
    deps = ArchiveDeps(
        sessions=ctx.sessions,
        minio=ctx.minio,
        clock=clock,
        notifier=ctx.relay.notify,
        grant_check=GrantChecker(settings),
        transactions=ctx.transactions,
        max_segment=timedelta(seconds=settings.max_segment_seconds),
        max_gaps=settings.max_coverage_gaps,
        extra={
            "registry": registry,
            "device_masks": DeviceMasks(registry),
            "presign_ttl_s": settings.presign_ttl_s,
            "max_playback_window": timedelta(seconds=settings.max_playback_window_s),
            "live_window_segments": settings.live_window_segments,
            # Export and masked renditions (ACC-5, REG-5, ARC-4).
            "export_key": load_export_key(settings.signing_key_file),
            "export_retention_days": settings.export_retention_days,
            "max_export_window_s": settings.max_export_window_s,
            "max_export_segments": settings.max_export_segments,
            "x264_preset": settings.x264_preset,
            "x264_crf": settings.x264_crf,
        },
    )
    servicer = ArchiveServicer(deps)
    if ctx.minio is not None:
        deps.extra["masked_renditions"] = MaskedRenditions(
            ctx.minio,
            options=EncodeOptions(preset=settings.x264_preset, crf=settings.x264_crf),
            concurrency=settings.rendition_concurrency,
        )
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
