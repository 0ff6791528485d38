"""The archive service's composition root: builds its graph from the service context and runs it."""

from __future__ import annotations

from pathlib import Path

from vigil_archive import metrics
from vigil_archive.config import Settings
from vigil_kit.grpc_server import ServiceBinding
from vigil_kit.service import ServiceContext, run_service

MIGRATIONS = Path(__file__).parent / "migrations"


async def build(ctx: ServiceContext) -> list[ServiceBinding]:
    """The archive's own gRPC services (the kit adds health, reflection and WhoAmI to every server).

    Its domain RPCs arrive with their own issue; until then it serves only what the kit adds.
    """
    return []


async def run(settings: Settings) -> None:
    metrics.publish_build_info()
    await run_service(settings, build=build, migrations_dir=MIGRATIONS, needs_s3=True)
