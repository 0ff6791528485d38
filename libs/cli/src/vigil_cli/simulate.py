"""`vigil simulate`: simulated cameras uploading real, signed H.264 segments in real time; and the demo city's simulator.

Encoding is the expensive part: a 2 s 640x360 segment costs ~0.12 CPU-s with x264 ultrafast, so
live-encoding a hundred cameras would need ~6 cores. The simulator therefore encodes before it
starts and replays, in one of two modes (it says which one runs):

- per-device pool (default): each device gets `pool_size` segments of its own, with its id and
  consecutive times burned in, encoded at start on every core;
- shared pool (`--pool`): `pool_size` segments encoded once (id 000…0 burned in) and replayed by
  every device.

Either way every upload is signed with the device's own key, carries its own sequence (see
ingest_cmds: the start time in ms, strictly increasing per device) and a start time of "now minus
the segment's duration" at upload, so the bytes repeat but no upload does. Each device uploads one
segment every `segment_seconds`, the devices staggered evenly across that period, with a bounded
number of uploads in flight; backpressure (RESOURCE_EXHAUSTED) is retried after the RetryInfo
delay. Keepalives for all devices go to the registry in one StreamKeepalives call per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import grpc
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Group
from rich.live import Live
from rich.table import Table

from vigil.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from vigil.registry.v1 import registry_service_pb2 as registry_pb
from vigil.registry.v1 import registry_service_pb2_grpc as registry_grpc
from vigil_cli.ingest_cmds import (
    NS,
    RetryPolicy,
    Segment,
    Sequencer,
    now_ns,
    signed_header,
    upload_with_retry,
)
from vigil_cli.output import JsonFlag, console, err_console, fail, print_json, run, usage_error
from vigil_cli.session import session
from vigil_ingest.domain import signing
from vigil_ingest.domain.container import Container

logger = logging.getLogger(__name__)

SHARED_POOL_ID = "0" * 20  # what the shared pool's frames show: it belongs to no one device
DEFAULT_CONCURRENCY = 32
DEFAULT_KEEPALIVE_S = 30.0
LATENCY_WINDOW = 2000  # the most recent uploads the percentiles are taken over
# Simulated devices `vigil simulate` registers beyond the demo city's: the first demo device's id
# with serials from here (the demo city's serials are small), so they pass the same REG-10 checks.
PROVISION_SERIAL_BASE = 900_000
# Registry calls made while provisioning: generous, since they run while the machine is busy.
REGISTRY_TIMEOUT_S = 15.0

# The demo city's simulator runs for as long as `vigil up --demo` does, into an S3 server that keeps
# every object in memory under object lock: a small picture at a low rate keeps that at ~1.3 GB an
# hour for the 22 demo cameras rather than ~10 GB at 1 Mbit/s.
DEMO_SIZE = (320, 180)
DEMO_BITRATE = 128_000
DEMO_SEGMENT_SECONDS = 2.0
DEMO_POOL_SIZE = 2
DEMO_REPORT_EVERY_S = 300.0


# ---- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimConfig:
    segment_seconds: float = 2.0
    size: tuple[int, int] = (640, 360)
    bitrate: int = 1_000_000
    fps: int = 25
    shared_pool: bool = False
    pool_size: int = 2
    concurrency: int = DEFAULT_CONCURRENCY
    segments: int = 0  # per device; 0 = until stopped
    keepalive_interval_s: float = DEFAULT_KEEPALIVE_S  # 0 = no keepalives

    @property
    def mode(self) -> str:
        w, h = self.size
        what = f"{w}x{h} {self.fps} fps, {format_bitrate(self.bitrate)}, {self.segment_seconds:g} s segments"
        if self.shared_pool:
            return f"shared pool: {self.pool_size} segments encoded once, replayed by every device ({what})"
        return f"per-device pool: {self.pool_size} segments encoded per device at start ({what})"


def parse_resolution(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not WIDTHxHEIGHT (e.g. 640x360)")
    width, height = int(match[1]), int(match[2])
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise typer.BadParameter(f"{text!r}: width and height must be even and at least 64")
    return width, height


def parse_bitrate(text: str) -> int:
    """`1M`, `512k`, `800000` → bits per second."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*(?:bit/s|bps)?\s*", text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a bit rate (e.g. 1M, 512k)")
    value = float(match[1]) * {"": 1, "k": 1e3, "m": 1e6}[match[2].lower()]
    if value < 16_000:
        raise typer.BadParameter(f"{text!r}: at least 16k")
    return int(value)


def format_bitrate(bps: int) -> str:
    return f"{bps / 1e6:g} Mbit/s" if bps >= 1_000_000 else f"{bps / 1e3:g} kbit/s"


# ---- the pool -----------------------------------------------------------------------------------


def _encode(device_id: str, start: datetime, cfg: SimConfig) -> Segment:
    """One pool segment (runs in a worker process)."""
    from vigil_ingest.video import encode_segment

    frames = max(1, round(cfg.segment_seconds * cfg.fps))
    data = encode_segment(device_id, start, frames / cfg.fps, cfg.fps, cfg.size, cfg.bitrate, "mpegts")
    return Segment.of(data, duration_ns=frames * NS // cfg.fps, container=Container.MPEG_TS, codec="h264")


@dataclass(frozen=True)
class Pool:
    """Pre-encoded segments: per device, or one shared list (key SHARED_POOL_ID)."""

    segments: dict[str, tuple[Segment, ...]]
    shared: bool

    def segment(self, device_id: str, n: int) -> Segment:
        """Device `device_id`'s n-th upload."""
        own = self.segments[SHARED_POOL_ID if self.shared else device_id]
        return own[n % len(own)]

    @property
    def bytes(self) -> int:
        return sum(s.size for segs in self.segments.values() for s in segs)


def pool_owners(device_ids: Sequence[str], cfg: SimConfig) -> list[str]:
    return [SHARED_POOL_ID] if cfg.shared_pool else list(device_ids)


def default_executor() -> ProcessPoolExecutor:
    # spawn, not fork: the caller may already hold gRPC channels and threads, which fork would copy.
    return ProcessPoolExecutor(
        max_workers=os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn")
    )


async def encode_pool(
    device_ids: Sequence[str],
    cfg: SimConfig,
    *,
    executor: Executor | None = None,
    on_encoded: Callable[[], None] | None = None,
    start: datetime | None = None,
) -> Pool:
    """Encode the pool on every core (in worker processes, so an event loop keeps running meanwhile)."""
    start = start or datetime.now(UTC)
    loop = asyncio.get_running_loop()
    owners = pool_owners(device_ids, cfg)
    own_executor = executor is None
    pool_executor = executor or default_executor()
    try:

        async def one(owner: str, k: int) -> tuple[str, int, Segment]:
            at = start + timedelta(seconds=k * cfg.segment_seconds)
            segment = await loop.run_in_executor(pool_executor, _encode, owner, at, cfg)
            if on_encoded is not None:
                on_encoded()
            return owner, k, segment

        results = await asyncio.gather(*(one(o, k) for o in owners for k in range(cfg.pool_size)))
    finally:
        if own_executor:
            pool_executor.shutdown(wait=False, cancel_futures=True)
    by_owner: dict[str, list[Segment]] = {o: [] for o in owners}
    for owner, _k, segment in sorted(results, key=lambda r: (r[0], r[1])):
        by_owner[owner].append(segment)
    return Pool({o: tuple(s) for o, s in by_owner.items()}, shared=cfg.shared_pool)


# ---- pacing and counters -----------------------------------------------------------------------


def first_due(index: int, count: int, period_s: float, t0: float) -> float:
    """When device `index` of `count` uploads first: staggered evenly across one period."""
    return t0 + period_s * index / max(1, count)


def due_at(index: int, count: int, period_s: float, t0: float, n: int) -> float:
    """When device `index` uploads its n-th segment: one period after the one before."""
    return first_due(index, count, period_s, t0) + n * period_s


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Stats:
    """What the live table shows."""

    devices: int = 0
    uploaded: int = 0
    replayed: int = 0
    bytes: int = 0
    retries: int = 0
    late: int = 0  # uploads that started more than a period after they were due
    failures: Counter[str] = field(default_factory=Counter)
    last_error: str = ""
    keepalives_sent: int = 0
    keepalive_failures: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    started: float = field(default_factory=time.monotonic)
    per_device: Counter[str] = field(default_factory=Counter)

    def uploaded_one(self, device_id: str, size: int, latency_s: float, replayed: bool) -> None:
        self.uploaded += 1
        self.replayed += replayed
        self.bytes += size
        self.latencies.append(latency_s)
        self.per_device[device_id] += 1

    def failed(self, code: str, message: str) -> None:
        self.failures[code] += 1
        self.last_error = f"{code}: {message}"

    @property
    def failed_total(self) -> int:
        return sum(self.failures.values())

    def summary(self) -> dict[str, object]:
        elapsed = max(1e-9, time.monotonic() - self.started)
        lat = list(self.latencies)
        return {
            "devices": self.devices,
            "uploaded": self.uploaded,
            "replayed": self.replayed,
            "bytes": self.bytes,
            "segments_per_s": round(self.uploaded / elapsed, 2),
            "mbit_per_s": round(self.bytes * 8 / elapsed / 1e6, 2),
            "failures": dict(self.failures),
            "retries": self.retries,
            "late": self.late,
            "latency_p50_ms": round(percentile(lat, 50) * 1000, 1),
            "latency_p99_ms": round(percentile(lat, 99) * 1000, 1),
            "keepalives_sent": self.keepalives_sent,
            "keepalive_failures": self.keepalive_failures,
            "elapsed_s": round(elapsed, 1),
            "last_error": self.last_error,
        }


def stats_table(stats: Stats, mode: str) -> Table:
    s = stats.summary()
    t = Table(title=f"vigil simulate: {stats.devices} devices, {mode}", title_justify="left")
    for column in (
        "uploaded",
        "MB",
        "seg/s",
        "Mbit/s",
        "failures",
        "retries",
        "late",
        "p50 ms",
        "p99 ms",
        "keepalives",
    ):
        t.add_column(column, justify="right")
    t.add_row(
        str(s["uploaded"]),
        f"{stats.bytes / 1e6:.1f}",
        f"{s['segments_per_s']}",
        f"{s['mbit_per_s']}",
        str(stats.failed_total),
        str(stats.retries),
        str(stats.late),
        f"{s['latency_p50_ms']}",
        f"{s['latency_p99_ms']}",
        f"{stats.keepalives_sent}"
        + (f" ({stats.keepalive_failures} failed)" if stats.keepalive_failures else ""),
    )
    return t


# ---- the simulator ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimDevice:
    device_id: str
    key: Ed25519PrivateKey


class Simulator:
    """Runs the devices' upload loops (and the keepalive loop) until each has sent `cfg.segments`
    segments, or forever when that is 0. A failed upload is counted and the device moves on to its
    next segment: a camera does not stop recording because one upload failed."""

    def __init__(
        self,
        devices: Sequence[SimDevice],
        pool: Pool,
        cfg: SimConfig,
        ingest: ingest_grpc.IngestServiceStub,
        registry: registry_grpc.RegistryServiceStub | None = None,
        *,
        stats: Stats | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.devices = list(devices)
        self.pool = pool
        self.cfg = cfg
        self.ingest = ingest
        self.registry = registry
        self.stats = stats or Stats()
        self.stats.devices = len(self.devices)
        self.clock = clock
        self.sleep = sleep
        self.retry = retry or RetryPolicy()
        self.limit = asyncio.Semaphore(cfg.concurrency)

    async def run(self) -> Stats:
        t0 = self.clock()
        self.stats.started = time.monotonic()
        keepalive = None
        if self.registry is not None and self.cfg.keepalive_interval_s > 0:
            keepalive = asyncio.create_task(self._keepalives(), name="keepalives")
        try:
            await asyncio.gather(*(self._device(i, d, t0) for i, d in enumerate(self.devices)))
        finally:
            if keepalive is not None:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keepalive
        return self.stats

    async def _device(self, index: int, device: SimDevice, t0: float) -> None:
        period = self.cfg.segment_seconds
        sequencer = Sequencer()
        n = 0
        while self.cfg.segments <= 0 or n < self.cfg.segments:
            due = due_at(index, len(self.devices), period, t0, n)
            delay = due - self.clock()
            if delay > 0:
                await self.sleep(delay)
            await self.upload(device, sequencer, self.pool.segment(device.device_id, n), due)
            n += 1

    async def upload(self, device: SimDevice, sequencer: Sequencer, segment: Segment, due: float) -> None:
        async with self.limit:
            began = self.clock()
            if began - due > self.cfg.segment_seconds:
                self.stats.late += 1
            start_ns = now_ns() - segment.duration_ns
            header = signed_header(
                device.key,
                device_id=device.device_id,
                sequence=sequencer.next(start_ns),
                start_ns=start_ns,
                segment=segment,
            )

            def retried(exc: grpc.RpcError, delay: float) -> None:
                self.stats.retries += 1

            try:
                reply = await upload_with_retry(
                    self.ingest, header, segment.data, policy=self.retry, on_retry=retried, sleep=self.sleep
                )
            except grpc.RpcError as exc:
                code = exc.code().name if exc.code() else "UNKNOWN"
                self.stats.failed(code, f"{device.device_id}: {exc.details()}")
                return
            self.stats.uploaded_one(device.device_id, segment.size, self.clock() - began, reply.replayed)

    async def _keepalives(self) -> None:
        assert self.registry is not None
        while True:
            requests = [registry_pb.KeepaliveRequest(device_id=d.device_id) for d in self.devices]
            try:
                reply = await self.registry.StreamKeepalives(iter(requests))
            except grpc.RpcError as exc:
                self.stats.keepalive_failures += len(requests)
                self.stats.last_error = f"keepalives {exc.code().name}: {exc.details()}"
            else:
                self.stats.keepalives_sent += int(reply.received)
                self.stats.keepalive_failures += int(reply.rejected)
            await self.sleep(self.cfg.keepalive_interval_s)


# ---- devices and their keys ---------------------------------------------------------------------


def key_path(keys_dir: Path, device_id: str) -> Path:
    return keys_dir / f"{device_id}.pem"


def ensure_device_key(keys_dir: Path, device_id: str) -> tuple[Ed25519PrivateKey, bool]:
    """The device's key from keys_dir/<id>.pem, generated (PKCS#8 PEM, mode 0600) if there is none.
    Returns (key, created)."""
    path = key_path(keys_dir, device_id)
    if path.exists():
        return signing.load_private_key_file(path), False
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = signing.generate_device_key()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(fresh.private_pem)
    os.chmod(tmp, 0o600)  # the umask filters O_CREAT's mode
    os.replace(tmp, path)
    return fresh.private_key, True


def read_device_file(path: Path, keys_dir: Path) -> list[tuple[str, Path]]:
    """`--device-ids FILE`: one device per line, `DEVICE_ID [KEYFILE]` (default KEYS_DIR/<id>.pem);
    blank lines and `#` comments are skipped; a relative key path is relative to the file."""
    out: list[tuple[str, Path]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        usage_error(f"cannot read {path}: {exc.strerror or exc}")
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) > 2 or not re.fullmatch(r"[0-9]{20}", parts[0]):
            usage_error(f"{path}:{number}: expected `DEVICE_ID [KEYFILE]` with a 20-digit id, got {raw!r}")
        key = Path(parts[1]) if len(parts) == 2 else key_path(keys_dir, parts[0])
        out.append((parts[0], key if key.is_absolute() else path.parent / key))
    return out


def provisioned_ids(template_id: str, count: int) -> list[str]:
    """Ids for simulated devices: the template's first 14 digits (division, industry, type, network)
    and serials from PROVISION_SERIAL_BASE."""
    return [f"{template_id[:14]}{PROVISION_SERIAL_BASE + i + 1:06d}" for i in range(count)]


async def provision_devices(
    registry: registry_grpc.RegistryServiceStub,
    template: registry_pb.Device,
    ids: Sequence[str],
    keys_dir: Path,
) -> int:
    """Make each simulated device (cloned from a demo device) registered, keyed with the key in
    keys_dir, and active — doing only what is missing, so a second run costs one GetDevice each.
    Returns how many were newly registered."""
    created = 0

    async def one(device_id: str) -> None:
        nonlocal created
        key, _ = ensure_device_key(keys_dir, device_id)
        public_key = signing.public_key_b64(key)
        try:
            current = await registry.GetDevice(
                registry_pb.GetDeviceRequest(device_id=device_id), timeout=REGISTRY_TIMEOUT_S
            )
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            current = None
        if current is None:
            device = registry_pb.Device()
            device.CopyFrom(template)
            device.device_id = device_id
            device.name = f"Simulated camera {device_id[-6:]}"
            device.public_key = public_key
            await registry.RegisterDevice(
                registry_pb.RegisterDeviceRequest(device=device), timeout=REGISTRY_TIMEOUT_S
            )
            created += 1
        elif current.public_key != public_key:
            await set_public_key(registry, device_id, public_key)
        if current is None or current.state != registry_pb.DEVICE_STATE_ACTIVE:
            await registry.ActivateDevice(
                registry_pb.ActivateDeviceRequest(device_id=device_id), timeout=REGISTRY_TIMEOUT_S
            )

    limit = asyncio.Semaphore(8)

    async def bounded(device_id: str) -> None:
        async with limit:
            await one(device_id)

    await asyncio.gather(*(bounded(i) for i in ids))
    return created


async def set_public_key(
    registry: registry_grpc.RegistryServiceStub, device_id: str, public_key_b64: str
) -> None:
    from google.protobuf import field_mask_pb2

    await registry.UpdateDevice(
        registry_pb.UpdateDeviceRequest(
            device=registry_pb.Device(device_id=device_id, public_key=public_key_b64),
            update_mask=field_mask_pb2.FieldMask(paths=["public_key"]),
        ),
        timeout=REGISTRY_TIMEOUT_S,
    )


def load_devices(pairs: Sequence[tuple[str, Path]]) -> list[SimDevice]:
    devices = []
    for device_id, path in pairs:
        try:
            devices.append(SimDevice(device_id, signing.load_private_key_file(path)))
        except signing.KeyFileError as exc:
            fail(f"device {device_id}: {exc}")
    return devices


# ---- the command --------------------------------------------------------------------------------


def simulate(
    ctx: typer.Context,
    devices: Annotated[
        int | None,
        typer.Option(
            "--devices",
            "-n",
            min=1,
            help="How many devices to simulate (default: every listed device). Beyond the demo city's "
            "devices, simulated devices are registered, keyed and activated first.",
        ),
    ] = None,
    segment_seconds: Annotated[
        float, typer.Option("--segment-seconds", min=0.2, max=60, help="Seconds of video per segment.")
    ] = 2.0,
    resolution: Annotated[str, typer.Option("--resolution", help="WIDTHxHEIGHT.")] = "640x360",
    bitrate: Annotated[
        str, typer.Option("--bitrate", help="Constant bit rate per device, e.g. 1M or 512k.")
    ] = "1M",
    fps: Annotated[int, typer.Option("--fps", min=1, max=60)] = 25,
    shared_pool: Annotated[
        bool,
        typer.Option("--pool", help="Replay one shared pre-encoded pool (instead of one pool per device)."),
    ] = False,
    pool_size: Annotated[int, typer.Option("--pool-size", min=1, max=50, help="Segments per pool.")] = 2,
    device_ids: Annotated[
        Path | None,
        typer.Option(
            "--device-ids",
            dir_okay=False,
            exists=True,
            help="Lines of `DEVICE_ID [KEYFILE]` (default: the demo city's devices, keys in KEYS_DIR).",
        ),
    ] = None,
    keys_dir: Annotated[
        Path | None,
        typer.Option(
            "--keys-dir", file_okay=False, help="Device key files <id>.pem (default: <data dir>/keys)."
        ),
    ] = None,
    segments: Annotated[
        int,
        typer.Option(
            "--segments", min=0, help="Stop after this many segments per device (0: run until Ctrl-C)."
        ),
    ] = 0,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=1000, help="Uploads in flight at most.")
    ] = (DEFAULT_CONCURRENCY),
    keepalive_interval: Annotated[
        float, typer.Option("--keepalive-interval", min=0, metavar="SECONDS", help="0: send no keepalives.")
    ] = DEFAULT_KEEPALIVE_S,
    json_output: JsonFlag = False,
) -> None:
    """Simulate cameras: real H.264 segments with id and time burned in, signed, uploaded in real time."""
    s = session(ctx)
    context = s.context()
    keys = (keys_dir or Path(context.data_dir) / "keys").expanduser()
    cfg = SimConfig(
        segment_seconds=segment_seconds,
        size=parse_resolution(resolution),
        bitrate=parse_bitrate(bitrate),
        fps=fps,
        shared_pool=shared_pool,
        pool_size=pool_size,
        concurrency=concurrency,
        segments=segments,
        keepalive_interval_s=keepalive_interval,
    )

    running: dict[str, Stats] = {}

    async def go() -> Stats:
        from vigil_cli.demo import load_demo_city

        async with (
            s.channel("registry", context=context) as reg_channel,
            s.channel("ingest", context=context) as ing,
        ):
            registry = registry_grpc.RegistryServiceStub(reg_channel)
            if device_ids is not None:
                pairs = read_device_file(device_ids, keys)
                if devices is not None:
                    if devices > len(pairs):
                        usage_error(f"--devices {devices}: {device_ids} lists only {len(pairs)}")
                    pairs = pairs[:devices]
            else:
                city = load_demo_city().devices
                wanted = devices or len(city)
                pairs = [(d.device_id, key_path(keys, d.device_id)) for d in city[:wanted]]
                missing = [d for d, p in pairs if not p.exists()]
                if missing:
                    fail(
                        f"no key for demo device {missing[0]} in {keys} ({len(missing)} missing): "
                        "start the stack with `vigil up --demo`, or give --device-ids FILE"
                    )
                extra = wanted - len(pairs)
                if extra > 0:
                    ids = provisioned_ids(city[0].device_id, extra)
                    err_console.print(f"registering {extra} simulated devices like {city[0].device_id} …")
                    new = await provision_devices(registry, city[0], ids, keys)
                    err_console.print(f"{new} registered, {extra - new} already there; all active")
                    pairs += [(i, key_path(keys, i)) for i in ids]
            sim_devices = load_devices(pairs)
            err_console.print(f"mode: {cfg.mode}", markup=False)
            jobs = len(pool_owners([d.device_id for d in sim_devices], cfg)) * cfg.pool_size
            from vigil_cli.output import progress

            with progress() as bar:
                task = bar.add_task(f"encoding the pool on {os.cpu_count()} cores", total=jobs)
                t = time.monotonic()
                pool = await encode_pool(
                    [d.device_id for d in sim_devices], cfg, on_encoded=lambda: bar.advance(task)
                )
            err_console.print(
                f"pool: {jobs} segments, {pool.bytes / 1e6:.1f} MB, in {time.monotonic() - t:.1f} s"
            )
            sim = Simulator(sim_devices, pool, cfg, ingest_grpc.IngestServiceStub(ing), registry)
            running["stats"] = sim.stats
            live = Live(stats_table(sim.stats, "starting"), console=err_console, refresh_per_second=2)
            with live:
                runner = asyncio.create_task(sim.run())
                while not runner.done():
                    await asyncio.wait({runner}, timeout=0.5)
                    live.update(
                        Group(stats_table(sim.stats, "shared pool" if cfg.shared_pool else "per-device pool"))
                    )
                return runner.result()

    try:
        stats = run(go())
    except KeyboardInterrupt:  # Ctrl-C: the counters so far are the result
        if "stats" not in running:
            raise typer.Exit(130) from None
        stats = running["stats"]
    summary = stats.summary()
    if json_output:
        print_json(summary)
    else:
        console.print(stats_table(stats, "shared pool" if cfg.shared_pool else "per-device pool"))
        if stats.last_error:
            err_console.print(f"last error: {stats.last_error}", markup=False, soft_wrap=True)
    if stats.failed_total and not stats.uploaded:
        raise typer.Exit(1)


# ---- the demo city's simulator (`vigil up --demo`) ----------------------------------------------


async def simulate_demo_city(env: object) -> None:
    """Simulator for `vigil up --demo`: the demo city's cameras upload small signed segments (see
    DEMO_*) for as long as the stack runs. Keys were registered by the seeding step; keepalives are
    the keepalive simulator's job. Failures (a service restarting) are counted and reported when
    they start and stop; the loop never gives up."""
    from vigil_cli.demo import DemoEnv, load_demo_city
    from vigil_kit.grpc_client import make_channel

    assert isinstance(env, DemoEnv)
    keys = env.data_dir / "keys"
    devices = load_devices([(d.device_id, key_path(keys, d.device_id)) for d in load_demo_city().devices])
    cfg = SimConfig(
        segment_seconds=DEMO_SEGMENT_SECONDS,
        size=DEMO_SIZE,
        bitrate=DEMO_BITRATE,
        shared_pool=False,
        pool_size=DEMO_POOL_SIZE,
        keepalive_interval_s=0,
    )
    pool = await encode_pool([d.device_id for d in devices], cfg)
    channel = make_channel(
        env.context.endpoints["ingest"].grpc, token=env.context.token_for("admin"), default_timeout_s=30.0
    )
    async with channel:
        sim = Simulator(devices, pool, cfg, ingest_grpc.IngestServiceStub(channel))
        env.log(f"demo: simulating {len(devices)} cameras, {cfg.mode}")
        task = asyncio.create_task(sim.run())
        try:
            await _report(env, sim.stats, task)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _report(env: object, stats: Stats, task: asyncio.Task[Stats]) -> None:
    log = env.log  # type: ignore[attr-defined]
    failing = False
    seen_failures = 0
    last_report = time.monotonic()
    reported_first = False
    while not task.done():
        await asyncio.wait({task}, timeout=1.0)
        if stats.uploaded and not reported_first:
            log(f"demo: first segment stored; {stats.devices} cameras uploading")
            reported_first = True
        new_failures = stats.failed_total - seen_failures
        seen_failures = stats.failed_total
        if new_failures and not failing:
            log(f"demo: segment uploads failing ({stats.last_error}); cameras keep trying")
            failing = True
        elif failing and not new_failures and stats.uploaded:
            log("demo: segment uploads flowing again")
            failing = False
        if time.monotonic() - last_report >= DEMO_REPORT_EVERY_S:
            s = stats.summary()
            log(
                f"demo: {s['uploaded']} segments ({stats.bytes / 1e6:.0f} MB) stored, "
                f"p99 {s['latency_p99_ms']} ms, {stats.failed_total} failed"
            )
            last_report = time.monotonic()
    task.result()
