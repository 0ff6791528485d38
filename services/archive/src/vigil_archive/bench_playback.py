"""The archive's playback-manifest figure for `make bench`: issuance p99 including Authorize and the audit commit.

A sharing PROCESS and an archive PROCESS (`python -m vigil_<name>`, SQLite, the bench's broker and S3):
sharing knows the device (its facts written into sharing's database as its registry events would) and
holds an analyst's approved playback grant for it; the archive's index holds a day of 2 s segments of it.
The analyst asks the archive for playback manifests of random 10-minute windows (300 segments each), one
call at a time: each is sharing's Authorize, the archive's audit record committed, then 300 URLs presigned
by version id. The baseline is the analyst's own Authorize call to sharing for the same windows.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.archive.v1 import archive_service_pb2_grpc as pb_grpc
from vigil.sharing.v1 import sharing_service_pb2 as spb
from vigil.sharing.v1 import sharing_service_pb2_grpc as spb_grpc
from vigil_archive.app import MIGRATIONS
from vigil_archive.bench_find import OWNER, SEGMENT, _n, fill_index, p99
from vigil_archive.codec import time_range
from vigil_kit import db
from vigil_kit.auth import TokenIssuer, generate_keypair
from vigil_kit.bench import BenchContext, Figure
from vigil_kit.bench.process import BenchService
from vigil_kit.grpc_client import make_channel
from vigil_kit.migrations import upgrade

DEVICE = "32020501501320088888"
TRANSPORT = ("113202000142871537", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
PSB = ("113202000142870306", "UNIT_KIND_PUBLIC_SECURITY_ORGAN")
WINDOW = timedelta(minutes=10)
CALLS = 300
TARGET_MS = 50.0


async def _seed_sharing(url: str) -> None:
    from vigil_sharing.app import MIGRATIONS as SHARING_MIGRATIONS
    from vigil_sharing.domain.model import FUNDING_GOVERNMENT, DeviceFacts
    from vigil_sharing.store import put_device

    engine = db.create_engine(url)
    try:
        await upgrade(engine, SHARING_MIGRATIONS)
        async with db.session_factory(engine).begin() as s:
            await put_device(
                s,
                DeviceFacts(
                    device_id=DEVICE,
                    owner_unit=OWNER,
                    site_id="hosp-1",
                    division_code="320205",
                    place_category="PLACE_CATEGORY_PUBLIC_SERVICES",
                    funding=FUNDING_GOVERNMENT,
                    owner_unit_kind="UNIT_KIND_INSTITUTION",
                ),
                datetime.now(UTC),
            )
    finally:
        await engine.dispose()


async def _registry_stand_in() -> tuple[object, str]:
    """A registry on loopback answering GetDevice with the bench's device (no privacy masks), as the real
    one would: the archive asks it once per device and keeps the answer (DeviceMasks)."""
    import grpc

    from vigil.registry.v1 import registry_service_pb2 as reg_pb

    device = reg_pb.Device(device_id=DEVICE, owner_unit_id=OWNER, site_id="hosp-1").SerializeToString()

    async def get_device(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return device

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "vigil.registry.v1.RegistryService",
                {"GetDevice": grpc.unary_unary_rpc_method_handler(get_device)},
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def _timed(call, requests) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for request in requests:
        began = time.perf_counter()
        await call(request)
        out.append((time.perf_counter() - began) * 1000)
    return out


async def manifest_figure(ctx: BenchContext) -> Figure:
    calls = _n("PLAYBACK_CALLS", CALLS)
    archive_db = ctx.workdir / "archive-playback.db"
    archive_url = f"sqlite+aiosqlite:///{archive_db}"
    engine = db.create_engine(archive_url)
    try:
        await upgrade(engine, MIGRATIONS)
    finally:
        await engine.dispose()
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    await asyncio.to_thread(fill_index, archive_db, day, 43_200, device=DEVICE)
    sharing_url = f"sqlite+aiosqlite:///{ctx.workdir / 'sharing-playback.db'}"
    await _seed_sharing(sharing_url)

    private, public = generate_keypair()
    issuer = TokenIssuer(private)
    key = public.decode()
    registry, registry_addr = await _registry_stand_in()
    try:
        return await _measure(ctx, calls, day, archive_url, sharing_url, issuer, key, registry_addr)
    finally:
        await registry.stop(0)  # type: ignore[attr-defined]


async def _measure(
    ctx: BenchContext,
    calls: int,
    day: datetime,
    archive_url: str,
    sharing_url: str,
    issuer: TokenIssuer,
    key: str,
    registry_addr: str,
) -> Figure:
    sharing = BenchService(
        "sharing",
        ctx.workdir,
        public_key_pem=key,
        kafka_bootstrap=ctx.kafka_bootstrap,
        settings={
            "DATABASE_URL": sharing_url,
            "SERVICE_TOKEN": issuer.mint_service("sharing"),
            "REGISTRY_ADDR": registry_addr,
        },
        label="sharing-playback",
    )
    async with sharing:
        archive = BenchService(
            "archive",
            ctx.workdir,
            public_key_pem=key,
            kafka_bootstrap=ctx.kafka_bootstrap,
            s3_endpoint=ctx.s3_endpoint,
            settings={
                "DATABASE_URL": archive_url,
                "SERVICE_TOKEN": issuer.mint_service("archive"),
                "SHARING_ADDR": sharing.address,
                "REGISTRY_ADDR": registry_addr,
            },
            label="archive-playback",
        )
        async with archive:
            analyst = issuer.mint(
                sub="user:analyst",
                name="analyst",
                unit=TRANSPORT[0],
                unit_kind=TRANSPORT[1],
                roles=["ROLE_DEPARTMENT_ANALYST"],
            )
            officer = issuer.mint(
                sub="user:officer",
                name="officer",
                unit=PSB[0],
                unit_kind=PSB[1],
                roles=["ROLE_PUBLIC_SECURITY_OFFICER"],
            )
            async with (
                make_channel(sharing.address, token=analyst, default_timeout_s=30) as analyst_sharing,
                make_channel(sharing.address, token=officer, default_timeout_s=30) as officer_sharing,
                make_channel(archive.address, token=analyst, default_timeout_s=30) as analyst_archive,
            ):
                now = datetime.now(UTC)
                request = await spb_grpc.SharingServiceStub(analyst_sharing).CreateAccessRequest(
                    spb.CreateAccessRequestRequest(
                        access_request=spb.AccessRequest(
                            purpose=spb.PURPOSE_TRAFFIC_MANAGEMENT,
                            legal_basis="benchmark: congestion study",
                            scope=spb.Scope(device_ids=[DEVICE]),
                            actions=[spb.ACTION_PLAYBACK],
                            footage_window=time_range(day - timedelta(days=1), now),
                            valid_until=time_range(now, now + timedelta(days=1)).end_time,
                        )
                    )
                )
                await spb_grpc.SharingServiceStub(officer_sharing).ApproveAccessRequest(
                    spb.ApproveAccessRequestRequest(request_id=request.request_id)
                )
                rnd = random.Random(5)
                starts = [day + timedelta(seconds=2 * rnd.randrange(43_200 - 300)) for _ in range(calls)]
                manifests = [
                    pb.GetPlaybackManifestRequest(device_id=DEVICE, range=time_range(t, t + WINDOW))
                    for t in starts
                ]
                authorizes = [
                    spb.AuthorizeRequest(
                        action=spb.ACTION_PLAYBACK, device_id=DEVICE, footage_window=time_range(t, t + WINDOW)
                    )
                    for t in starts
                ]
                viewer = pb_grpc.ArchiveServiceStub(analyst_archive)
                first = await viewer.GetPlaybackManifest(manifests[0])
                if len(first.urls) != WINDOW // SEGMENT:
                    raise RuntimeError(
                        f"a manifest listed {len(first.urls)} URLs, expected {WINDOW // SEGMENT}"
                    )
                await _timed(viewer.GetPlaybackManifest, manifests[:10])  # warm up
                manifest_ms = await _timed(viewer.GetPlaybackManifest, manifests)
                authorize_ms = await _timed(
                    spb_grpc.SharingServiceStub(analyst_sharing).Authorize, authorizes
                )
    return Figure.bounded(
        "archive playback manifest issuance p99 (10-minute windows, 300 presigned URLs, SQLite)",
        value=p99(manifest_ms),
        baseline=p99(authorize_ms),
        at_most=TARGET_MS,
        unit="ms",
        notes=f"{calls} GetPlaybackManifest calls one at a time by an analyst holding an approved playback grant, "
        "each including sharing's Authorize (a separate process), the archive's audit record committed, and 300 "
        f"URLs presigned by version id; median {statistics.median(manifest_ms):.1f} ms. Baseline = the analyst's "
        f"own Authorize calls to sharing for the same windows (median {statistics.median(authorize_ms):.1f} ms).",
    )


async def figures(ctx: BenchContext) -> list[Figure]:
    return [await manifest_figure(ctx)]
