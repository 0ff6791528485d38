"""The sharing service's composition root: builds its graph from the service context and runs it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from vigil.registry.v1 import registry_service_pb2_grpc as reg_grpc
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil.sharing.v1 import sharing_service_pb2_grpc as pb_grpc
from vigil_kit import outbox, topics
from vigil_kit.consumer import IdempotentConsumer
from vigil_kit.grpc_client import ServiceStub
from vigil_kit.grpc_server import ServiceBinding
from vigil_kit.service import ServiceContext, run_service
from vigil_sharing import metrics, store
from vigil_sharing.api import SERVICE_NAME, SharingServicer
from vigil_sharing.config import Settings
from vigil_sharing.devices import DeviceDirectory
from vigil_sharing.domain.model import Clock, utc_now
from vigil_sharing.fanout import FanOut
from vigil_sharing.grants import ExpiryWorker, GrantBook, LocalSync, lapsed
from vigil_sharing.partner import Router
from vigil_sharing.subscribe import PartnerStreams

MIGRATIONS = Path(__file__).parent / "migrations"
DEVICE_CACHE_GROUP = "sharing-device-cache"


async def seed_principal_facts(ctx: ServiceContext, settings: Settings) -> None:
    """Record the configured principals' facts where none are recorded yet (recorded ones win)."""
    now = datetime.now(UTC)
    async with ctx.sessions.begin() as session:
        for principal_id, values in settings.principal_facts.items():
            if await store.get_principal_facts(session, principal_id) is not None:
                continue
            facts = pb.PrincipalFacts(
                principal_id=principal_id,
                unmask_right=bool(values.get("unmask_right", False)),
                secret_clearance=bool(values.get("secret_clearance", False)),
            )
            await store.put_principal_facts(session, facts, now)


async def build(ctx: ServiceContext, *, clock: Clock = utc_now) -> list[ServiceBinding]:
    """The SharingService, its device cache, local event follower, expiry worker and partner fan-out."""
    settings = ctx.settings
    assert isinstance(settings, Settings)
    await seed_principal_facts(ctx, settings)
    reads = ctx.read_sessions or ctx.sessions
    book = GrantBook(reads)
    await book.load()  # serve decisions from the database's grants at once; LocalSync then follows the log
    devices = DeviceDirectory(
        ctx.sessions,
        ServiceStub.from_settings(
            reg_grpc.RegistryServiceStub,
            settings.registry_addr,
            settings,
            timeout_s=settings.registry_timeout_s,
            retry_methods=["/vigil.registry.v1.RegistryService/GetDevice"],
        ),
        timeout_s=settings.registry_timeout_s,
        read_sessions=reads,
        unknown_ttl_s=settings.unknown_device_ttl_s,
    )
    await devices.load()  # Authorize answers from memory; events and registry look-ups keep it current
    publisher = None
    if settings.authorize_publish_direct:
        publisher = outbox.DirectPublisher(
            settings.kafka_bootstrap,
            service=settings.service_name,
            timeout_s=settings.authorize_publish_timeout_s,
        )
        ctx.add_worker("decision-publisher", publisher)
    servicer = SharingServicer(
        sessions=ctx.sessions,
        read_sessions=reads,
        transactions=ctx.transactions if settings.authorize_commit_thread else None,
        book=book,
        devices=devices,
        policy=settings.policy(),
        clock=clock,
        notifier=ctx.relay.notify,
        decision_batch_max=settings.authorize_batch_max,
        publisher=publisher,
    )
    ctx.add_worker(
        "device-cache",
        IdempotentConsumer(
            ctx.engine,
            bootstrap=settings.kafka_bootstrap,
            topics=[topics.REGISTRY_EVENTS],
            group_id=DEVICE_CACHE_GROUP,
            name=DEVICE_CACHE_GROUP,
            handler=devices.handle,
        ),
    )
    ctx.add_worker(
        "local-sync",
        LocalSync(book, devices, bootstrap=settings.kafka_bootstrap, refresh_s=settings.index_refresh_s),
    )
    router = Router(reads, book.index, devices, clock, refresh_s=settings.partner_refresh_s)
    servicer.router = router
    servicer.streams = PartnerStreams(
        sessions=ctx.sessions,
        router=router,
        bootstrap=settings.kafka_bootstrap,
        notifier=ctx.relay.notify,
        clock=clock,
        poll_s=settings.partner_poll_s,
    )
    ctx.add_worker(
        "partner-fanout",
        FanOut(
            router, bootstrap=settings.kafka_bootstrap, session_timeout_s=settings.partner_session_timeout_s
        ),
    )
    ctx.add_worker(
        "grant-expiry",
        ExpiryWorker(servicer.expire, lapsed(reads, clock), interval_s=settings.expiry_interval_s),
    )
    return [
        ServiceBinding(
            name=SERVICE_NAME, servicer=servicer, add_to_server=pb_grpc.add_SharingServiceServicer_to_server
        )
    ]


async def run(settings: Settings) -> None:
    metrics.publish_build_info()
    await run_service(settings, build=build, migrations_dir=MIGRATIONS, needs_s3=False)
