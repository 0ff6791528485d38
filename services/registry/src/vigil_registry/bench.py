"""Figures of the registry for `make bench`: bulk import, sustained keepalives, ListDevices p99, offline lag.

The registry runs as its own process (`python -m vigil_registry`, SQLite, the bench's real broker, so
its outbox relay publishes every event as it would in production); the clients run in the bench process.
Each figure's raw-SQL baseline runs in the same run on the same schema (the registry's own migrations).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import bindparam, update

from vigil.common.v1 import identity_pb2
from vigil.registry.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil.registry.v1 import registry_service_pb2_grpc as pb_grpc
from vigil_kit import cloudevents, db, migrations, topics
from vigil_kit.auth import TokenIssuer, generate_keypair
from vigil_kit.bench import BenchContext, Figure
from vigil_kit.embedded import EmbeddedProcess, free_port
from vigil_kit.grpc_client import make_channel
from vigil_kit.kafka import create_consumer
from vigil_kit.migrations import outbox_table
from vigil_kit.paging import encode_token
from vigil_registry import app, codec
from vigil_registry.store import _device_values, _site_values, devices, sites, units

log = logging.getLogger(__name__)

DEVICES = 100_000
# Unary calls in flight where the bench registers or activates devices one by one.
IMPORT_CONCURRENCY = 64
# The bulk path (what `vigil devices import` uses): devices per ImportDevices call, calls in flight.
IMPORT_BATCH = 1000
IMPORT_CALLS = 2
KEEPALIVE_DEVICES = 10_000
KEEPALIVE_SECONDS = 15.0
LIST_REQUESTS = 500
LIST_PAGE_SIZE = 100
OFFLINE_DEVICES = 200
OFFLINE_INTERVAL_S, OFFLINE_COUNT = 1.0, 2
# Imported devices keep alive hourly, so none of them falls due while the bench runs.
IMPORT_INTERVAL_S = 3600.0

ADMIN_UNIT = ("11320200MB0000001T", "City Transport Bureau", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
HOSPITAL = ("12320200MB0000003X", "First People's Hospital", "UNIT_KIND_INSTITUTION")
SHOP = ("91320200MA1ABCDEF0", "Corner Shop Ltd", "UNIT_KIND_ENTERPRISE")
DIVISIONS = ("320202", "320205", "320211", "320213", "320214")
CATEGORIES = (
    pb.PLACE_CATEGORY_PUBLIC_SERVICES,
    pb.PLACE_CATEGORY_TRANSPORT,
    pb.PLACE_CATEGORY_VALUABLES_TRADE,
    pb.PLACE_CATEGORY_RESIDENTIAL_HOSPITALITY,
    pb.PLACE_CATEGORY_OTHER_PUBLIC,
)
SITES_PER_PAIR = 2  # 5 divisions × 5 categories × 2 = 50 sites


def _n(name: str, default: int) -> int:
    return int(os.environ.get(f"VIGIL_BENCH_REGISTRY_{name}", default))


# --- the city ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchSite:
    msg: pb.Site
    owner: str


def city_sites() -> list[BenchSite]:
    out = []
    for d in DIVISIONS:
        for c in CATEGORIES:
            for k in range(SITES_PER_PAIR):
                owner = HOSPITAL if (k + c) % 2 else SHOP
                msg = pb.Site(
                    site_id=f"s-{d}-{c}-{k}",
                    name=f"Site {d}/{c}/{k}",
                    division_code=d,
                    address=f"{k} Bench Road",
                    latitude=31.5,
                    longitude=120.3,
                    place_category=c,
                    managing_unit_id=owner[0],
                    funding=pb.FUNDING_PRIVATE,
                )
                out.append(BenchSite(msg, owner[0]))
    return out


def device_msg(
    i: int, site: BenchSite, *, interval_s: float = IMPORT_INTERVAL_S, count: int = 3
) -> pb.Device:
    """A lawful, activatable camera; ids are unique by serial and carry the site's division."""
    return pb.Device(
        device_id=f"{site.msg.division_code}0150132{i % 9}{i:06d}",
        site_id=site.msg.site_id,
        owner_unit_id=site.owner,
        name=f"Camera {i}",
        area_type=pb.AREA_TYPE_ENTRANCE,
        latitude=31.5 + (i % 1000) * 1e-5,
        longitude=120.3,
        direction_deg=float(i % 360),
        capture_range_m=25.0,
        notice_sign_confirmed=True,
        privacy_masks=[
            pb.PrivacyMask(points=[pb.Point(x=0.1, y=0.1), pb.Point(x=0.3, y=0.1), pb.Point(x=0.3, y=0.4)])
        ],
        privacy_measures="Windows masked; access logged",
        vendor="Any Vendor Co.",
        model="X-1",
        keepalive_interval_s=interval_s,
        keepalive_timeout_count=count,
    )


def fleet(n: int) -> list[pb.Device]:
    city = city_sites()
    return [device_msg(i, city[i % len(city)]) for i in range(n)]


# --- the registry process ---------------------------------------------------------------------------


class RegistryProcess:
    """`python -m vigil_registry` on a fresh SQLite file, with an issuer whose tokens it trusts."""

    def __init__(self, workdir: Path, bootstrap: str, name: str) -> None:
        private, public = generate_keypair()
        self.issuer = TokenIssuer(private)
        self.db_path = workdir / f"{name}.db"
        self.url = f"sqlite+aiosqlite:///{self.db_path}"
        port = free_port()
        env = {
            "REGISTRY_GRPC_HOST": "127.0.0.1",
            "REGISTRY_GRPC_PORT": str(port),
            "REGISTRY_METRICS_PORT": "0",
            "REGISTRY_DATABASE_URL": self.url,
            "REGISTRY_KAFKA_BOOTSTRAP": bootstrap,
            "REGISTRY_AUTH_PUBLIC_KEYS": json.dumps([public.decode()]),
            "REGISTRY_LOG_LEVEL": "WARNING",
            "REGISTRY_SHUTDOWN_GRACE_S": "2",
        }
        self.proc = EmbeddedProcess(
            f"registry ({name})",
            [sys.executable, "-m", "vigil_registry"],
            "127.0.0.1",
            port,
            log_path=workdir / f"{name}.log",
            env=env,
        )
        self.channels: list[grpc.aio.Channel] = []

    async def start(self) -> None:
        await asyncio.to_thread(self.proc.start, 60.0)
        async with grpc.aio.insecure_channel(self.proc.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 60
            while True:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the registry was not SERVING within 60 s (see {self.proc.log_path})")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        for channel in self.channels:
            await channel.close()
        await asyncio.to_thread(self.proc.stop, 20.0)

    def stub(self, who: tuple[str, str, str], role: str) -> pb_grpc.RegistryServiceStub:
        token = self.issuer.mint(
            sub=f"bench:{role}", name="bench", unit=who[0], unit_kind=who[2], roles=[role]
        )
        channel = make_channel(self.proc.address, token=token, default_timeout_s=30.0)
        self.channels.append(channel)
        return pb_grpc.RegistryServiceStub(channel)

    def admin(self) -> pb_grpc.RegistryServiceStub:
        return self.stub(ADMIN_UNIT, "ROLE_PLATFORM_ADMIN")


def _unit_msg(unit: tuple[str, str, str]) -> pb.Unit:
    return pb.Unit(unit_id=unit[0], name=unit[1], kind=identity_pb2.UnitKind.Value(unit[2]))


async def seed(admin: pb_grpc.RegistryServiceStub) -> None:
    """The units and sites every device needs, created first."""
    for unit in (ADMIN_UNIT, HOSPITAL, SHOP):
        await admin.CreateUnit(pb.CreateUnitRequest(unit=_unit_msg(unit)))
    for site in city_sites():
        await admin.CreateSite(pb.CreateSiteRequest(site=site.msg))


async def bounded(n: int, concurrency: int, call: Any) -> None:
    """Run call(i) for i in range(n) with at most `concurrency` in flight."""
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await call(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# --- figure 1: bulk import ----------------------------------------------------------------------------


async def rpc_import(admin: pb_grpc.RegistryServiceStub, devs: Sequence[pb.Device]) -> float:
    start = time.perf_counter()

    async def one(i: int) -> None:
        await admin.RegisterDevice(pb.RegisterDeviceRequest(device=devs[i]))

    await bounded(len(devs), IMPORT_CONCURRENCY, one)
    return len(devs) / (time.perf_counter() - start)


async def bulk_import(
    admin: pb_grpc.RegistryServiceStub,
    devs: Sequence[pb.Device],
    *,
    batch: int = IMPORT_BATCH,
    concurrency: int = IMPORT_CALLS,
) -> float:
    """Devices/s through ImportDevices: `batch` devices a call, `concurrency` calls in flight."""
    batches = [devs[i : i + batch] for i in range(0, len(devs), batch)]
    start = time.perf_counter()

    async def one(i: int) -> None:
        await admin.ImportDevices(pb.ImportDevicesRequest(devices=batches[i]), timeout=120)

    await bounded(len(batches), concurrency, one)
    return len(devs) / (time.perf_counter() - start)


async def raw_schema(url: str) -> Any:
    """An engine on a new SQLite file with the registry's schema, units and sites (the baselines' DB)."""
    engine = db.create_engine(url)
    await migrations.upgrade(engine, app.MIGRATIONS)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        for unit in (ADMIN_UNIT, HOSPITAL, SHOP):
            await conn.execute(
                units.insert().values(
                    unit_id=unit[0], name=unit[1], kind=unit[2], created_at=now, updated_at=now
                )
            )
        await conn.execute(
            sites.insert(),
            [
                {**_site_values(codec.site_from_pb(s.msg)), "created_at": now, "updated_at": now}
                for s in city_sites()
            ],
        )
    return engine


async def raw_import(engine: Any, devs: Sequence[pb.Device], per_transaction: int) -> float:
    """Rows/s of a Core executemany INSERT of the same column values, `per_transaction` rows a commit."""
    site_map = {s.msg.site_id: codec.site_from_pb(s.msg) for s in city_sites()}
    now = datetime.now(UTC)
    # The rows are built before the clock starts: the baseline is the database's best case.
    rows = []
    for d in devs:
        device = codec.device_from_pb(d)
        rows.append(_device_values(device, site_map[device.site_id], now))
    start = time.perf_counter()
    for i in range(0, len(rows), per_transaction):
        async with engine.begin() as conn:
            await conn.execute(devices.insert(), rows[i : i + per_transaction])
    return len(rows) / (time.perf_counter() - start)


# --- figure 2: keepalives ---------------------------------------------------------------------------


async def activate(admin: pb_grpc.RegistryServiceStub, device_ids: Sequence[str]) -> None:
    async def one(i: int) -> None:
        await admin.ActivateDevice(pb.ActivateDeviceRequest(device_id=device_ids[i]))

    await bounded(len(device_ids), IMPORT_CONCURRENCY, one)


async def stream_keepalives(
    streams: Sequence[tuple[pb_grpc.RegistryServiceStub, Sequence[str]]], seconds: float
) -> tuple[list[pb.StreamKeepalivesResponse], float]:
    """Gateway streams at once, each sending keepalives round-robin over its devices for `seconds`;
    (their summaries, elapsed until the last summary came, i.e. until everything was committed)."""

    async def requests(device_ids: Sequence[str]) -> AsyncIterator[pb.KeepaliveRequest]:
        reqs = [pb.KeepaliveRequest(device_id=d) for d in device_ids]
        end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < end:
            for _ in range(256):
                yield reqs[i % len(reqs)]
                i += 1

    start = time.perf_counter()
    summaries = await asyncio.gather(
        *(gateway.StreamKeepalives(requests(ids), timeout=seconds + 120) for gateway, ids in streams)
    )
    return list(summaries), time.perf_counter() - start


async def raw_keepalives(engine: Any, device_ids: Sequence[str], total: int, batch: int) -> float:
    """Rows/s of the raw executemany UPDATE of last_keepalive_time for the same devices, `batch` a commit."""
    stmt = (
        update(devices)
        .where(devices.c.device_id == bindparam("b_id"))
        .values(last_keepalive_time=bindparam("b_last"), updated_at=bindparam("b_last"))
    )
    done = 0
    start = time.perf_counter()
    while done < total:
        now = datetime.now(UTC)
        chunk = [{"b_id": device_ids[(done + k) % len(device_ids)], "b_last": now} for k in range(batch)]
        async with engine.begin() as conn:
            await conn.execute(stmt, chunk)
        done += batch
    return done / (time.perf_counter() - start)


# --- figure 3: ListDevices ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PageQuery:
    request: pb.ListDevicesRequest
    sql: str
    params: dict[str, Any]


def page_queries(n: int, device_ids: Sequence[str], seed_: int = 7) -> list[PageQuery]:
    """Random filtered pages: a division prefix, a category or a state (alone or combined), from a random
    keyset position; with the SQL a hand-written client would run for the same page."""
    rnd = random.Random(seed_)
    out = []
    for _ in range(n):
        req = pb.ListDevicesRequest(page_size=LIST_PAGE_SIZE)
        where, params = [], {}
        shape = rnd.choice(("division", "category", "state", "division+category", "division+state"))
        if "division" in shape:
            prefix = rnd.choice(("3202", "32020", "32021", *DIVISIONS))
            req.division_prefix = prefix
            if len(prefix) == 6:
                where.append("division_code = :d")
                params["d"] = prefix
            else:
                where.append("division_code >= :dlo AND division_code < :dhi")
                params["dlo"], params["dhi"] = prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)
        if "category" in shape:
            c = rnd.choice(CATEGORIES)
            req.place_category = c
            where.append("place_category = :c")
            params["c"] = pb.PlaceCategory.Name(c)
        if "state" in shape:
            st = rnd.choice((pb.DEVICE_STATE_ACTIVE, pb.DEVICE_STATE_REGISTERED))
            req.state = st
            where.append("state = :s")
            params["s"] = pb.DeviceState.Name(st)
        if rnd.random() < 0.8:
            after = rnd.choice(device_ids)
            req.page_token = encode_token(after)
            where.append("device_id > :after")
            params["after"] = after
        sql = (
            f"SELECT * FROM devices WHERE {' AND '.join(where)} ORDER BY device_id LIMIT {LIST_PAGE_SIZE + 1}"
        )
        out.append(PageQuery(req, sql, params))
    return out


def p99(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


async def rpc_pages(stub: pb_grpc.RegistryServiceStub, queries: Sequence[PageQuery]) -> list[float]:
    for q in queries[:20]:  # warm up the channel and the server's caches
        await stub.ListDevices(q.request)
    out = []
    for q in queries:
        start = time.perf_counter()
        await stub.ListDevices(q.request)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _raw_pages(db_path: Path, queries: Sequence[PageQuery]) -> list[float]:
    conn = sqlite3.connect(db_path)
    try:
        for q in queries[:20]:
            conn.execute(q.sql, q.params).fetchall()
        out = []
        for q in queries:
            start = time.perf_counter()
            conn.execute(q.sql, q.params).fetchall()
            out.append((time.perf_counter() - start) * 1000)
        return out
    finally:
        conn.close()


async def raw_pages(db_path: Path, queries: Sequence[PageQuery]) -> list[float]:
    """The same pages' SQL on the registry's database file through the plain sqlite3 module."""
    return await asyncio.to_thread(_raw_pages, db_path, queries)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"Load average while measured: {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores."


# --- figure 4: offline detection lag ------------------------------------------------------------------


async def offline_lags(ctx: BenchContext, n: int) -> tuple[list[float], list[float], list[float]]:
    """(produced to Kafka − deadline, received by a consumer − deadline, detected − deadline), in
    seconds, for n devices that fall silent."""
    reg = RegistryProcess(ctx.workdir, ctx.kafka_bootstrap, "registry-offline")
    await reg.start()
    consumer = None
    watcher: asyncio.Task[None] | None = None
    try:
        admin = reg.admin()
        await seed(admin)
        city = city_sites()
        # Distinct serials from the import, and a fresh run id: the broker keeps other figures' events.
        base = 900_000 + random.Random().randrange(0, 90_000 // n) * n
        devs = [
            device_msg(base + i, city[i % len(city)], interval_s=OFFLINE_INTERVAL_S, count=OFFLINE_COUNT)
            for i in range(n)
        ]
        ids = [d.device_id for d in devs]
        wanted = set(ids)
        produced: list[float] = []
        arrival: list[float] = []
        detection: list[float] = []
        consumer = await create_consumer(ctx.kafka_bootstrap, [topics.DEVICE_STATUS], f"bench-{uuid.uuid4()}")
        # The silence measured starts with the last round of keepalives: a device whose first deadline
        # passed while the others were still being activated went offline then, and back online with the
        # keepalives; that earlier event is not the one timed.
        silent_from: list[datetime] = []

        async def watch() -> None:
            # Polls from the start, so the consumer has joined and is fetching before any device is due.
            assert consumer is not None
            while wanted:
                batches = await consumer.getmany(timeout_ms=50)
                now = datetime.now(UTC)
                for records in batches.values():
                    for record in records:
                        event = cloudevents.from_record(record)
                        if (
                            event.key not in wanted
                            or event.type != events_pb2.DeviceWentOffline.DESCRIPTOR.full_name
                        ):
                            continue
                        msg = cloudevents.decode(event, [events_pb2.DeviceWentOffline])
                        deadline = msg.offline_time.ToDatetime(tzinfo=UTC)
                        if not silent_from or deadline < silent_from[0]:
                            continue
                        # The record's own time: when the relay produced it to the broker (CreateTime, ms).
                        produced.append(record.timestamp / 1000 - deadline.timestamp())
                        arrival.append((now - deadline).total_seconds())
                        detection.append((msg.detect_time.ToDatetime(tzinfo=UTC) - deadline).total_seconds())
                        wanted.discard(event.key)

        watcher = asyncio.create_task(watch())
        for d in devs:
            await admin.RegisterDevice(pb.RegisterDeviceRequest(device=d))
        await activate(admin, ids)
        gateways = {
            owner: reg.stub((owner, "gateway", kind), "ROLE_UNIT_OPERATOR")
            for owner, kind in ((HOSPITAL[0], HOSPITAL[2]), (SHOP[0], SHOP[2]))
        }
        # Two rounds of keepalives half an interval apart (the devices' own cadence), then silence.
        by_owner: dict[str, list[str]] = {}
        for d in devs:
            by_owner.setdefault(d.owner_unit_id, []).append(d.device_id)
        for round_ in range(2):
            if round_ == 1:
                silent_from.append(datetime.now(UTC))
            for owner, owned in by_owner.items():
                await gateways[owner].StreamKeepalives(
                    _iterate([pb.KeepaliveRequest(device_id=i) for i in owned]), timeout=30
                )
            await asyncio.sleep(OFFLINE_INTERVAL_S / 2)
        try:
            await asyncio.wait_for(asyncio.shield(watcher), 30)
        except TimeoutError:
            raise RuntimeError(
                f"{len(wanted)} of {n} devices never went offline on Kafka within 30 s"
            ) from None
        return produced, arrival, detection
    finally:
        if watcher is not None and not watcher.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if consumer is not None:
            await consumer.stop()
        await reg.stop()


async def _iterate(items: Sequence[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


# --- the figures ----------------------------------------------------------------------------------------


async def prefill(url: str, devs: Sequence[pb.Device], active: int) -> None:
    """The registry's database before it starts: its schema, units, sites and `devs` (the first `active`
    of them ACTIVE), written as the registry writes them — the rows ListDevices and keepalives run over."""
    engine = await raw_schema(url)
    try:
        site_map = {s.msg.site_id: codec.site_from_pb(s.msg) for s in city_sites()}
        now = datetime.now(UTC)
        rows = []
        for k, d in enumerate(devs):
            device = codec.device_from_pb(d)
            values = _device_values(device, site_map[device.site_id], now)
            values["retention_s"] = 30 * 86400.0
            if k < active:
                values["state"], values["activated_at"] = "DEVICE_STATE_ACTIVE", now
            else:
                values["state"] = "DEVICE_STATE_REGISTERED"
            rows.append(values)
        for i in range(0, len(rows), 5000):
            async with engine.begin() as conn:
                await conn.execute(devices.insert(), rows[i : i + 5000])
    finally:
        await engine.dispose()


def outbox_rows(db_path: Path) -> int:
    with sqlite3.connect(db_path, timeout=30) as conn:
        return conn.execute(f"SELECT count(*) FROM {outbox_table.name}").fetchone()[0]


async def drained(db_path: Path, timeout_s: float) -> float:
    """Wait until the registry's relay has published its outbox (the import's events); seconds waited."""
    start = time.monotonic()
    while await asyncio.to_thread(outbox_rows, db_path):
        if time.monotonic() - start > timeout_s:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - start


async def figures(ctx: BenchContext) -> list[Figure]:
    n = _n("DEVICES", DEVICES)
    n_alive = min(n, _n("KEEPALIVE_DEVICES", KEEPALIVE_DEVICES))
    alive_s = float(os.environ.get("VIGIL_BENCH_REGISTRY_KEEPALIVE_SECONDS", KEEPALIVE_SECONDS))
    n_pages = _n("LIST_REQUESTS", LIST_REQUESTS)
    n_offline = _n("OFFLINE_DEVICES", OFFLINE_DEVICES)
    devs = fleet(n)
    ids = [d.device_id for d in devs]
    alive_ids = ids[:n_alive]
    out: list[Figure] = []

    # Baselines first, on their own file with the same schema (and no registry process running).
    raw_engine = await raw_schema(f"sqlite+aiosqlite:///{ctx.workdir / 'registry-raw.db'}")
    try:
        raw_rows = await raw_import(raw_engine, devs, per_transaction=1000)
        raw_alive = await raw_keepalives(
            raw_engine, ids[:n_alive], total=max(20_000, 2 * n_alive), batch=2000
        )
    finally:
        await raw_engine.dispose()

    reg = RegistryProcess(ctx.workdir, ctx.kafka_bootstrap, "registry")
    await prefill(reg.url, [], 0)  # units and sites only: every device goes through the RPC
    await reg.start()
    try:
        admin = reg.admin()
        cpu_before = process_cpu_s(reg.proc.proc.pid if reg.proc.proc else 0)
        rate = await bulk_import(admin, devs)
        cpu_per_device_us = (process_cpu_s(reg.proc.proc.pid if reg.proc.proc else 0) - cpu_before) / n * 1e6
        out.append(
            Figure.measured(
                f"registry bulk import via ImportDevices ({n:,} devices, SQLite)",
                value=rate,
                baseline=raw_rows,
                min_ratio=0.2,
                unit="devices/s",
                notes=f"ImportDevices calls of {IMPORT_BATCH:,} devices, {IMPORT_CALLS} in flight, from the bench "
                f"process to a fresh registry subprocess (each call: "
                "bearer-token check, every device under RegisterDevice's rules, one transaction holding the "
                "rows, a DeviceRegistered event per device and one audit record for the call; the outbox "
                "relay publishing to the broker meanwhile); registry process CPU "
                f"{cpu_per_device_us:.0f} µs a device, relay included; baseline = Core executemany INSERT of "
                f"the same column values, 1,000 rows a transaction, same schema, same run. {_load()}",
            )
        )

        # The keepalive figure's devices go ACTIVE through ActivateDevice, as an operator's would.
        began = time.perf_counter()
        await activate(admin, alive_ids)
        activated_s = time.perf_counter() - began
        waited = await drained(reg.db_path, 180)
        queries = page_queries(n_pages, ids)
        lister = reg.stub(ADMIN_UNIT, "ROLE_AUDITOR")
        rpc_ms = await rpc_pages(lister, queries)
        raw_ms = await raw_pages(reg.db_path, queries)
        out.append(
            Figure.bounded(
                f"registry ListDevices filtered page p99 ({n:,} devices, page {LIST_PAGE_SIZE}, SQLite)",
                value=p99(rpc_ms),
                baseline=p99(raw_ms),
                at_most=20,
                unit="ms",
                notes=f"{n_pages} sequential random pages over gRPC (filters: division prefix, category, state, "
                f"alone or combined; 80% from a random keyset position), once {len(alive_ids):,} devices had been "
                f"activated through ActivateDevice ({activated_s:.0f} s) and the relay had published the "
                f"import's and activations' events ({waited:.0f} s more); median {statistics.median(rpc_ms):.1f} ms (raw "
                f"{statistics.median(raw_ms):.1f} ms); baseline = the same SELECT * … ORDER BY device_id "
                f"LIMIT {LIST_PAGE_SIZE + 1} (a division prefix as a range) through the plain sqlite3 module on "
                f"the registry's database file. {_load()}",
            )
        )

        owner_of = {d.device_id: d.owner_unit_id for d in devs}
        streams = [
            (
                reg.stub((unit[0], "gateway", unit[2]), "ROLE_UNIT_OPERATOR"),
                [i for i in alive_ids if owner_of[i] == unit[0]],
            )
            for unit in (HOSPITAL, SHOP)
        ]
        summaries, elapsed = await stream_keepalives(streams, alive_s)
        accepted = sum(x.accepted for x in summaries)
        rejected = sum(x.rejected for x in summaries)
        if rejected:
            raise RuntimeError(
                f"{rejected} keepalives rejected: {[list(x.rejections[:3]) for x in summaries]}"
            )
        out.append(
            Figure.bounded(
                "registry sustained keepalives via StreamKeepalives (SQLite)",
                value=accepted / elapsed,
                baseline=raw_alive,
                at_least=5000,
                unit="keepalives/s",
                notes=f"two gateway streams (one per unit) at once, {accepted:,} keepalives accepted, each "
                f"stream round-robin over its half of {len(alive_ids):,} active devices, in {elapsed:.1f} s (until "
                "the last summary, i.e. all committed); "
                "baseline = raw executemany UPDATE of last_keepalive_time, 2,000 rows a transaction, same "
                "devices, same run. A crash loses at most the keepalives received but not yet committed: the "
                "open group-commit window plus the batch being committed (≤ 2 × REGISTRY_KEEPALIVE_BATCH_MAX "
                "= 4,000, about 100 ms of traffic), none of which the gateway was told were accepted. "
                f"{_load()}",
            )
        )
    finally:
        await reg.stop()

    produced, arrival, detection = await offline_lags(ctx, n_offline)
    out.append(
        Figure.bounded(
            f"registry offline detection lag past the deadline, p99 ({n_offline} devices)",
            value=p99(arrival),
            at_most=2,
            unit="s",
            notes=f"{n_offline} devices keeping alive every {OFFLINE_INTERVAL_S:g} s × {OFFLINE_COUNT} through "
            "their gateways, then silent; lag = DeviceWentOffline received by a Kafka consumer (polling "
            "throughout) − the device's deadline once silent (a device whose first deadline passed while the "
            "others were being activated went offline then, and back online with the keepalives: that "
            f"earlier event is not the one timed); max {max(arrival):.2f} s. Of which: detected (detect_time "
            f"− deadline) p99 {p99(detection):.2f} s, max {max(detection):.2f} s; produced to the broker by the "
            f"outbox relay (record time − deadline) p99 {p99(produced):.2f} s, max {max(produced):.2f} s. "
            f"{_load()}",
        )
    )
    return out
