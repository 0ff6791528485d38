"""What `vigil up` seeds once the stack is SERVING: the platform's own units always, the demo city with --demo.

Later issues extend the two step lists: a step is an async function of DemoEnv that seeds through
the services' RPCs (with a dev principal's token from the context); a simulator is an async
function that runs until `vigil up` stops (it is cancelled then).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from vigil.common.v1 import identity_pb2
from vigil.registry.v1 import registry_service_pb2 as registry_pb
from vigil.registry.v1 import registry_service_pb2_grpc as registry_grpc
from vigil_cli.context import Context
from vigil_cli.identity import DEFAULT_PRINCIPAL, DevDirectory

logger = logging.getLogger(__name__)


@dataclass
class DemoEnv:
    context: Context
    directory: DevDirectory
    data_dir: Path
    # One line of progress for the person watching `vigil up`.
    log: Callable[[str], None] = field(default=lambda line: logger.info("%s", line))


Step = Callable[[DemoEnv], Awaitable[None]]
Simulator = Callable[[DemoEnv], Awaitable[None]]


async def report_principals(env: DemoEnv) -> None:
    """The six dev principals exist in every run; their units come from data/principals.json."""
    names = ", ".join(f"{p.name} ({p.unit.name})" for p in env.directory.principals)
    env.log(f"dev principals ready: {names}")


# ---- the registry: the principals' units always; the demo city's units, sites and devices -----------

REGISTRY_SERVICE = "vigil.registry.v1.RegistryService"
# Seeding waits out a registry that `vigil up` is restarting; every seeding call is safe to repeat
# (ALREADY_EXISTS counts as done, activation is idempotent).
SEED_TIMEOUT_S = 15.0
# A keepalive round that fails (registry restarting) is retried this soon, not a whole interval later.
KEEPALIVE_RETRY_S = 5.0


@dataclass(frozen=True)
class DemoCity:
    """data/demo_city.json: canonical JSON of vigil.registry.v1 resources, seeded in this order."""

    units: tuple[registry_pb.Unit, ...]
    sites: tuple[registry_pb.Site, ...]
    devices: tuple[registry_pb.Device, ...]
    # REG-7: systems already filed (filed_on empty = the day of seeding).
    filings: tuple[registry_pb.RecordFilingRequest, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoCity:
        return cls(
            units=tuple(json_format.ParseDict(u, registry_pb.Unit()) for u in data["units"]),
            sites=tuple(json_format.ParseDict(s, registry_pb.Site()) for s in data["sites"]),
            devices=tuple(json_format.ParseDict(d, registry_pb.Device()) for d in data["devices"]),
            filings=tuple(
                json_format.ParseDict(f, registry_pb.RecordFilingRequest()) for f in data.get("filings", ())
            ),
        )


def load_demo_city() -> DemoCity:
    text = resources.files("vigil_cli").joinpath("data", "demo_city.json").read_text(encoding="utf-8")
    return DemoCity.from_dict(json.loads(text))


def platform_units(directory: DevDirectory) -> list[registry_pb.Unit]:
    """The dev principals' units (data/principals.json) as registry units."""
    return [
        registry_pb.Unit(unit_id=u.unit_id, name=u.name, kind=identity_pb2.UnitKind.Value(u.kind))
        for u in directory.units
    ]


def registry_channel(env: DemoEnv, principal: str = DEFAULT_PRINCIPAL) -> grpc.aio.Channel:
    """A channel to the stack's registry as a dev principal (the administrator unless told)."""
    from vigil_kit.grpc_client import make_channel

    return make_channel(
        env.context.endpoints["registry"].grpc,
        token=env.context.token_for(principal),
        default_timeout_s=SEED_TIMEOUT_S,
        retry_methods=[REGISTRY_SERVICE],
    )


async def create_each(calls: Sequence[Callable[[], Awaitable[object]]]) -> tuple[int, int]:
    """Run the create calls concurrently; (created, already there). Any other error propagates."""

    async def one(make: Callable[[], Awaitable[object]]) -> bool:
        try:
            await make()
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                return False
            raise
        return True

    results = await asyncio.gather(*(one(make) for make in calls))
    return sum(results), len(results) - sum(results)


def _counts(what: str, created: int, existing: int) -> str:
    return f"{created + existing} {what} ({created} created, {existing} already there)"


async def seed_platform_units(env: DemoEnv) -> None:
    """The units every dev principal belongs to, created as the platform administrator."""
    async with registry_channel(env) as channel:
        stub = registry_grpc.RegistryServiceStub(channel)
        created, existing = await create_each(
            [
                lambda u=unit: stub.CreateUnit(registry_pb.CreateUnitRequest(unit=u))
                for unit in platform_units(env.directory)
            ]
        )
    env.log(f"registry: {_counts('platform units', created, existing)}")


async def seed_demo_units(env: DemoEnv) -> None:
    city = load_demo_city()
    async with registry_channel(env) as channel:
        stub = registry_grpc.RegistryServiceStub(channel)
        created, existing = await create_each(
            [lambda u=unit: stub.CreateUnit(registry_pb.CreateUnitRequest(unit=u)) for unit in city.units]
        )
    env.log(f"demo: {_counts('more units', created, existing)}")


async def seed_demo_sites(env: DemoEnv) -> None:
    city = load_demo_city()
    async with registry_channel(env) as channel:
        stub = registry_grpc.RegistryServiceStub(channel)
        created, existing = await create_each(
            [lambda s=site: stub.CreateSite(registry_pb.CreateSiteRequest(site=s)) for site in city.sites]
        )
    env.log(f"demo: {_counts('sites', created, existing)}")


async def seed_demo_devices(env: DemoEnv) -> None:
    city = load_demo_city()
    async with registry_channel(env) as channel:
        stub = registry_grpc.RegistryServiceStub(channel)
        created, existing = await create_each(
            [
                lambda d=device: stub.RegisterDevice(registry_pb.RegisterDeviceRequest(device=d))
                for device in city.devices
            ]
        )
    env.log(f"demo: {_counts('devices registered', created, existing)}")


async def register_demo_device_keys(env: DemoEnv) -> None:
    """ARC-4: each demo camera gets an Ed25519 key (PKCS#8 PEM, mode 0600, in <data dir>/keys/<id>.pem,
    kept across restarts) and its public key registered on the device, so the simulator can sign."""
    from vigil_cli.simulate import ensure_device_key, set_public_key
    from vigil_ingest.domain.signing import public_key_b64

    city = load_demo_city()
    keys = env.data_dir / "keys"
    pairs = [(d.device_id, *ensure_device_key(keys, d.device_id)) for d in city.devices]
    async with registry_channel(env) as channel:
        stub = registry_grpc.RegistryServiceStub(channel)
        await asyncio.gather(*(set_public_key(stub, d, public_key_b64(key)) for d, key, _ in pairs))
    created = sum(1 for *_, new in pairs if new)
    env.log(f"demo: {len(pairs)} device keys registered ({created} generated) in {keys}")


async def simulate_demo_cameras(env: DemoEnv) -> None:
    """Simulator: the demo city's cameras upload signed H.264 segments (vigil_cli.simulate)."""
    from vigil_cli.simulate import simulate_demo_city

    await simulate_demo_city(env)


async def activate_demo_devices(env: DemoEnv) -> None:
    city = load_demo_city()
    async with registry_channel(env) as channel:
        stub = registry_grpc.RegistryServiceStub(channel)
        replies = await asyncio.gather(
            *(
                stub.ActivateDevice(registry_pb.ActivateDeviceRequest(device_id=d.device_id))
                for d in city.devices
            )
        )
    active = sum(1 for r in replies if r.state == registry_pb.DEVICE_STATE_ACTIVE)
    env.log(f"demo: {active} of {len(replies)} devices active")


async def record_demo_filings(env: DemoEnv) -> None:
    """REG-7: some systems are filed, so `vigil filings list` shows FILED beside DUE and OVERDUE."""
    city = load_demo_city()
    async with registry_channel(env) as channel:
        stub = registry_grpc.RegistryServiceStub(channel)
        await asyncio.gather(*(stub.RecordFiling(request) for request in city.filings))
    env.log(f"demo: {len(city.filings)} filings recorded")


async def keep_demo_devices_alive(env: DemoEnv) -> None:
    """Simulator: a gateway sending each demo device's keepalive at its own interval (REG-11), one
    StreamKeepalives call per round, so the demo city stays online. A failed round (the registry
    restarting) is retried soon; the simulator itself never gives up."""
    devices = load_demo_city().devices
    interval = {d.device_id: d.keepalive_interval_s or 60.0 for d in devices}
    due = dict.fromkeys(interval, time.monotonic())
    failing = False
    announced = False
    async with registry_channel(env) as channel:
        stub = registry_grpc.RegistryServiceStub(channel)
        while True:
            now = time.monotonic()
            batch = sorted(d for d, t in due.items() if t <= now)
            if batch:
                requests = [registry_pb.KeepaliveRequest(device_id=d) for d in batch]
                try:
                    reply = await stub.StreamKeepalives(iter(requests))
                except grpc.RpcError as exc:
                    if not failing:
                        env.log(
                            f"demo: keepalives failing ({exc.code().name}); retrying every {KEEPALIVE_RETRY_S:g} s"
                        )
                    failing = True
                    for d in batch:
                        due[d] = now + min(KEEPALIVE_RETRY_S, interval[d])
                else:
                    if failing:
                        env.log("demo: keepalives flowing again")
                    elif not announced:
                        periods = sorted({f"{v:g} s" for v in interval.values()})
                        env.log(
                            f"demo: sending keepalives for {len(interval)} devices every {', '.join(periods)}"
                        )
                    failing, announced = False, True
                    if reply.rejected:
                        first = reply.rejections[0] if reply.rejections else None
                        env.log(
                            f"demo: {reply.rejected} keepalives refused"
                            + (f", e.g. {first.device_id}: {first.code} {first.message}" if first else "")
                        )
                    for d in batch:
                        # From the scheduled time, so the period does not drift by the call's latency
                        # (but never into the past after a long stall).
                        scheduled = due[d] + interval[d]
                        due[d] = scheduled if scheduled > now else now + interval[d]
            await asyncio.sleep(max(0.0, min(due.values()) - time.monotonic()))


# Run on every `vigil up`, after all services are SERVING.
PLATFORM_STEPS: list[Step] = [report_principals, seed_platform_units]
# Run with --demo only, after PLATFORM_STEPS: the demo city's units, sites and devices, their
# activation, and the filings already made.
DEMO_STEPS: list[Step] = [
    seed_demo_units,
    seed_demo_sites,
    seed_demo_devices,
    register_demo_device_keys,
    activate_demo_devices,
    record_demo_filings,
]
# Started with --demo after DEMO_STEPS; cancelled when `vigil up` stops.
DEMO_SIMULATORS: list[Simulator] = [keep_demo_devices_alive, simulate_demo_cameras]


async def seed(env: DemoEnv, *, demo: bool) -> list[asyncio.Task[None]]:
    """Run the seeding steps in order; return the started simulator tasks (the caller cancels them)."""
    for step in PLATFORM_STEPS:
        await step(env)
    if not demo:
        return []
    for step in DEMO_STEPS:
        await step(env)
    if not DEMO_STEPS:
        env.log("demo: nothing to seed yet besides the dev principals")
    tasks = []
    for sim in DEMO_SIMULATORS:
        task = asyncio.create_task(sim(env), name=getattr(sim, "__name__", "simulator"))
        task.add_done_callback(lambda t: _report_end(env, t))
        tasks.append(task)
    return tasks


def _report_end(env: DemoEnv, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        env.log(f"demo: simulator {task.get_name()} stopped: {task.exception()!r}")
