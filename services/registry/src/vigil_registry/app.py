"""The registry service's composition root: builds its graph from the service context and runs it."""

from __future__ import annotations

from pathlib import Path

from vigil.registry.v1 import registry_service_pb2_grpc as pb_grpc
from vigil_kit.grpc_server import ServiceBinding
from vigil_kit.service import ServiceContext, run_service
from vigil_registry import metrics
from vigil_registry.api import SERVICE_NAME, RegistryServicer
from vigil_registry.config import Settings
from vigil_registry.domain.model import Clock, utc_now
from vigil_registry.events import Publisher
from vigil_registry.status import DeadlineTracker, OfflineDetector, StatusService
from vigil_registry.store import RegistryStore

MIGRATIONS = Path(__file__).parent / "migrations"


async def build(ctx: ServiceContext, *, clock: Clock = utc_now) -> list[ServiceBinding]:
    """The registry's own gRPC service and its offline detector (the kit adds health, reflection, WhoAmI).

    `clock` is the injectable time source (REG-7 due dates, REG-11 deadlines): tests pass a clock
    they can move across a due date.
    """
    settings = ctx.settings
    assert isinstance(settings, Settings)
    policy = settings.policy()
    store = RegistryStore()
    publisher = Publisher(notifier=ctx.relay.notify, source=settings.service_name)
    tracker = DeadlineTracker()
    status = StatusService(
        sessions=ctx.sessions,
        store=store,
        publisher=publisher,
        policy=policy,
        clock=clock,
        tracker=tracker,
        batch_window_s=settings.keepalive_batch_window_s,
        batch_max=settings.keepalive_batch_max,
    )
    ctx.add_worker(
        "offline-detector", OfflineDetector(status, max_sleep_s=settings.offline_check_max_sleep_s)
    )
    servicer = RegistryServicer(
        sessions=ctx.sessions,
        store=store,
        policy=policy,
        clock=clock,
        publisher=publisher,
        status=status,
        tracker=tracker,
        transactions=ctx.transactions,
    )
    return [
        ServiceBinding(
            name=SERVICE_NAME, servicer=servicer, add_to_server=pb_grpc.add_RegistryServiceServicer_to_server
        )
    ]


async def run(settings: Settings) -> None:
    metrics.publish_build_info()
    await run_service(settings, build=build, migrations_dir=MIGRATIONS, needs_s3=False)
