"""Figures: ingest throughput against raw minio PUT, per-process device capacity, and its peak memory.

Every figure drives a real ingest *subprocess* (`python -m vigil_ingest`, vigil_testing's
ServiceProcess) over gRPC on loopback, with its outbox relay publishing to the bench's broker. Its
devices are seeded straight into the device-cache table (as if their registry events had arrived),
so no registry runs. Segments are real H.264 (PyAV, 2 s, 640x360, 1 Mbit/s CBR, MPEG-TS), a small
pool encoded before any clock starts; every upload is signed for its own (device, sequence, start).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import multiprocessing
import os
import pickle
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.retention import Retention

from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from vigil_ingest import store
from vigil_ingest.domain.container import Container
from vigil_ingest.domain.signing import SegmentHeader, public_key_b64
from vigil_ingest.domain.upload import UploadHeader, object_key, object_metadata, retain_until
from vigil_ingest.storage import checksum_headers
from vigil_ingest.store import DeviceFacts
from vigil_ingest.video import encode_segment
from vigil_kit import db, embedded, objectstore, topics
from vigil_kit.auth import TokenIssuer, generate_keypair
from vigil_kit.bench import BenchContext, Figure
from vigil_kit.grpc_client import make_channel
from vigil_kit.kafka import create_consumer

MiB = 1024 * 1024
UNIT = ("12320200MB0000003X", "UNIT_KIND_INSTITUTION")
SEGMENT_S = 2.0
RETENTION_DAYS = 30.0
POOL = 6  # distinct encoded segments, replayed by every device with its own signature
CONCURRENCY = 16  # figure 1: uploads in flight, each worker with a device of its own
THROUGHPUT_SEGMENTS = 480  # figure 1: per side, in two interleaved rounds
CAPACITY_SECONDS = 60.0
WINDOW_S = 20.0


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# --- segments, devices, signing ---------------------------------------------------------------------


@dataclass(frozen=True)
class PoolSegment:
    data: bytes
    sha256: str
    sha256_b64: str


def encode_pool(n: int = POOL) -> list[PoolSegment]:
    """n real 2 s 640x360 1 Mbit/s MPEG-TS segments (encoded once, before any measurement)."""
    start = datetime.now(UTC).replace(microsecond=0)
    out = []
    for i in range(n):
        data = encode_segment(
            "32020501501320000000", start + timedelta(seconds=SEGMENT_S * i), seconds=SEGMENT_S
        )
        digest = hashlib.sha256(data).digest()
        out.append(PoolSegment(data, digest.hex(), base64.b64encode(digest).decode("ascii")))
    return out


def device_ids(n: int) -> list[str]:
    """n fresh device ids (a random block, so rounds and steps never collide on the broker)."""
    base = random.randrange(0, 10**6 - n)
    return [f"32020501501320{base + i:06d}" for i in range(n)]


def signed_header(
    key: Ed25519PrivateKey, device_id: str, sequence: int, start: datetime, seg: PoolSegment
) -> pb.SegmentHeader:
    segment = SegmentHeader.of(
        device_id=device_id, sequence=sequence, start=start, duration=SEGMENT_S, sha256=seg.sha256
    )
    msg = pb.SegmentHeader(
        device_id=device_id,
        sequence=sequence,
        container=pb.CONTAINER_MPEG_TS,
        codec="h264",
        size=len(seg.data),
        sha256=seg.sha256,
        signature=key.sign(segment.canonical_bytes()),
    )
    msg.start_time.FromDatetime(start)
    msg.duration.FromTimedelta(timedelta(seconds=SEGMENT_S))
    return msg


def requests(header: pb.SegmentHeader, data: bytes):
    yield pb.UploadSegmentRequest(header=header)
    for i in range(0, len(data), MiB):
        yield pb.UploadSegmentRequest(chunk=data[i : i + MiB])


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# --- the ingest subprocess ----------------------------------------------------------------------------


@dataclass
class Stack:
    """One ingest subprocess, the issuer its tokens come from, and a gateway token of the devices' unit."""

    ingest: object  # vigil_testing.services.ServiceProcess
    issuer: TokenIssuer
    token: str
    db_path: Path

    @property
    def address(self) -> str:
        return self.ingest.address  # type: ignore[attr-defined]

    @property
    def pid(self) -> int:
        return self.ingest.proc.pid  # type: ignore[attr-defined]


async def start_ingest(workdir: Path, *, kafka: str, s3: str) -> Stack:
    from vigil_testing.services import ServiceProcess  # test-support library, needed only here

    private, _ = generate_keypair()
    issuer = TokenIssuer(private)
    proc = ServiceProcess(
        "ingest",
        workdir=workdir,
        kafka_bootstrap=kafka,
        public_keys_pem=[issuer.public_key_pem.decode()],
        s3_endpoint=s3,
        settings={
            "SERVICE_TOKEN": issuer.mint_service("ingest"),
            # Only asked on a cache miss, which the seeded cache never has.
            "REGISTRY_ADDR": f"127.0.0.1:{embedded.free_port()}",
            "LOG_LEVEL": "WARNING",
        },
    )
    await asyncio.to_thread(proc.start, 90.0)
    token = issuer.mint(
        sub="gateway:bench",
        name="bench gateway",
        unit=UNIT[0],
        unit_kind=UNIT[1],
        roles=["ROLE_UNIT_OPERATOR"],
    )
    stack = Stack(ingest=proc, issuer=issuer, token=token, db_path=proc.workdir / "ingest.db")
    # The bucket is bootstrapped in the background once SERVING; uploads need it.
    client = minio_client(s3)
    deadline = time.monotonic() + 30
    while not await asyncio.to_thread(client.bucket_exists, objectstore.SEGMENTS_BUCKET):
        if time.monotonic() > deadline:
            raise TimeoutError("ingest did not create the segments bucket")
        await asyncio.sleep(0.1)
    return stack


async def seed_devices(db_path: Path, keys: dict[str, Ed25519PrivateKey]) -> None:
    """Active devices of UNIT in ingest's cache table, as if their registry events had arrived."""
    engine = db.create_engine(f"sqlite+aiosqlite:///{db_path}")
    try:
        async with db.session_factory(engine).begin() as s:
            for did, key in keys.items():
                await store.put_device(
                    s,
                    DeviceFacts(
                        device_id=did,
                        state="DEVICE_STATE_ACTIVE",
                        public_key=public_key_b64(key),
                        retention_days=RETENTION_DAYS,
                        owner_unit_id=UNIT[0],
                        site_id="bench-site",
                        division_code="320205",
                    ),
                    now=datetime.now(UTC),
                )
    finally:
        await engine.dispose()


def minio_client(endpoint: str) -> Minio:
    from vigil_kit.settings import ServiceSettings

    return objectstore.make_minio(ServiceSettings(service_name="bench", s3_endpoint=endpoint))


def vm_hwm_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- figure 1: end-to-end throughput against raw PUT ------------------------------------------------


@dataclass
class Round:
    segments: int
    nbytes: int
    seconds: float
    latencies: list[float] = field(default_factory=list)


def raw_put_round(endpoint: str, pool: list[PoolSegment], n: int, concurrency: int) -> Round:
    """n PUTs straight to S3 with minio, `concurrency` threads: the same bytes, bucket, key scheme, object-lock
    retention, checksum headers and signed-header metadata that ingest writes."""
    client = minio_client(endpoint)
    dids = device_ids(concurrency)
    keys = {d: Ed25519PrivateKey.generate() for d in dids}
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    per = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]

    def worker(i: int) -> tuple[int, list[float]]:
        did, nbytes, lat = dids[i], 0, []
        for seq in range(1, per[i] + 1):
            began = time.perf_counter()
            seg = pool[(i + seq) % len(pool)]
            start = t0 + timedelta(seconds=SEGMENT_S * seq)
            header = signed_header(keys[did], did, seq, start, seg)
            upload = UploadHeader(
                segment=SegmentHeader.of(
                    device_id=did, sequence=seq, start=start, duration=SEGMENT_S, sha256=seg.sha256
                ),
                container=Container.MPEG_TS,
                codec="h264",
                size=len(seg.data),
                signature=header.signature,
            )
            until = retain_until(upload.segment, RETENTION_DAYS, now=datetime.now(UTC))
            client.put_object(
                objectstore.SEGMENTS_BUCKET,
                "raw-" + object_key(upload.segment, Container.MPEG_TS),
                io.BytesIO(seg.data),
                len(seg.data),
                content_type=Container.MPEG_TS.content_type,
                metadata={**object_metadata(upload), **checksum_headers(seg.sha256_b64)},
                retention=Retention(COMPLIANCE, until),
            )
            nbytes += len(seg.data)
            lat.append(time.perf_counter() - began)
        return nbytes, lat

    with ThreadPoolExecutor(concurrency) as pool_exec:
        began = time.perf_counter()
        results = list(pool_exec.map(worker, range(concurrency)))
        elapsed = time.perf_counter() - began
    return Round(n, sum(r[0] for r in results), elapsed, [x for r in results for x in r[1]])


class EventWatch:
    """Counts SegmentIngested events on the broker for a set of devices (key = device id)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.seen: dict[str, int] = {}
        self.last_at = 0.0
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> EventWatch:
        self._consumer = await create_consumer(
            self.bootstrap, [topics.INGEST_SEGMENTS], group_id=f"bench-{uuid.uuid4().hex[:8]}"
        )
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async for record in self._consumer:
            key = record.key.decode() if record.key else ""
            if key in self.seen:
                self.seen[key] += 1
                self.last_at = time.perf_counter()

    def watch(self, dids: Sequence[str]) -> None:
        for d in dids:
            self.seen.setdefault(d, 0)

    def count(self, dids: Sequence[str]) -> int:
        return sum(self.seen.get(d, 0) for d in dids)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()


async def ingest_round(
    stack: Stack, watch: EventWatch, pool: list[PoolSegment], n: int, concurrency: int
) -> Round:
    """n uploads through UploadSegment, `concurrency` in flight, timed until every response is in and every
    SegmentIngested has been published to the broker."""
    dids = device_ids(concurrency)
    keys = {d: Ed25519PrivateKey.generate() for d in dids}
    await seed_devices(stack.db_path, keys)
    watch.watch(dids)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    per = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
    lat: list[float] = []
    nbytes = 0
    async with make_channel(stack.address, token=stack.token, default_timeout_s=60) as channel:
        stub = pb_grpc.IngestServiceStub(channel)

        async def worker(i: int) -> None:
            nonlocal nbytes
            did = dids[i]
            for seq in range(1, per[i] + 1):
                began = time.perf_counter()
                seg = pool[(i + seq) % len(pool)]
                header = signed_header(keys[did], did, seq, t0 + timedelta(seconds=SEGMENT_S * seq), seg)
                response = await stub.UploadSegment(requests(header, seg.data))
                assert not response.replayed
                nbytes += len(seg.data)
                lat.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        responses_at = time.perf_counter()
        deadline = responses_at + 60
        while watch.count(dids) < n:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {watch.count(dids)} of {n} SegmentIngested events arrived")
            await asyncio.sleep(0.005)
    elapsed = max(responses_at, watch.last_at) - began
    return Round(n, nbytes, elapsed, lat)


async def throughput_figures(ctx: BenchContext, pool: list[PoolSegment]) -> list[Figure]:
    n = _env_int("VIGIL_BENCH_INGEST_SEGMENTS", THROUGHPUT_SEGMENTS)
    conc = _env_int("VIGIL_BENCH_INGEST_CONCURRENCY", CONCURRENCY)
    # The harness's S3 server: a few hundred MB of locked objects at most, which moto holds easily.
    stack = await start_ingest(
        ctx.workdir / "ingest-throughput", kafka=ctx.kafka_bootstrap, s3=ctx.s3_endpoint
    )
    try:
        async with EventWatch(ctx.kafka_bootstrap) as watch:
            # Warm up both paths (connections, first writes, the consumer's partition assignment).
            await asyncio.to_thread(raw_put_round, ctx.s3_endpoint, pool, conc * 2, conc)
            await ingest_round(stack, watch, pool, conc * 2, conc)
            raw: list[Round] = []
            ing: list[Round] = []
            timed_cpu = 0.0
            # Two interleaved rounds per side, so a burst of load from elsewhere hits both alike.
            for half in (n // 2, n - n // 2):
                raw.append(await asyncio.to_thread(raw_put_round, ctx.s3_endpoint, pool, half, conc))
                cpu0 = cpu_seconds(stack.pid)
                ing.append(await ingest_round(stack, watch, pool, half, conc))
                timed_cpu += cpu_seconds(stack.pid) - cpu0
        cpu = cpu_seconds(stack.pid)
    finally:
        await asyncio.to_thread(stack.ingest.stop)  # type: ignore[attr-defined]

    def rate(rounds: list[Round]) -> tuple[float, float]:
        secs = sum(r.seconds for r in rounds)
        return sum(r.segments for r in rounds) / secs, sum(r.nbytes for r in rounds) / secs / 1e6

    (seg_i, mb_i), (seg_r, mb_r) = rate(ing), rate(raw)
    li = [x for r in ing for x in r.latencies]
    lr = [x for r in raw for x in r.latencies]
    size = statistics.mean(len(s.data) for s in pool) / 1024
    notes = (
        f"{n} segments per side (mean {size:.0f} KiB, real H.264 2 s 640x360 1 Mbit/s MPEG-TS, a pool of "
        f"{len(pool)} signed per upload), {conc} in flight, two interleaved rounds each; ingest = a "
        "`python -m vigil_ingest` subprocess (SQLite, outbox relay on), gRPC on loopback, timed until every "
        "response AND every SegmentIngested is on the broker; baseline = minio put_object from the bench "
        "process with the same bytes, object-lock COMPLIANCE retention, SHA-256 checksum headers and "
        "metadata, same moto server, same run. Upload latency p50/p99: ingest "
        f"{percentile(li, 50) * 1000:.0f}/{percentile(li, 99) * 1000:.0f} ms, raw "
        f"{percentile(lr, 50) * 1000:.0f}/{percentile(lr, 99) * 1000:.0f} ms; ingest process CPU "
        f"{cpu:.1f} s in all, {timed_cpu / n * 1000:.1f} ms per segment in the timed rounds. {_load_note()}"
    )
    return [
        Figure.measured(
            "ingest end-to-end throughput (segments)",
            value=seg_i,
            baseline=seg_r,
            min_ratio=0.8,
            unit="segments/s",
            notes=notes,
        ),
        Figure.measured(
            "ingest end-to-end throughput (bytes)",
            value=mb_i,
            baseline=mb_r,
            min_ratio=0.8,
            unit="MB/s",
            notes="the same runs as the line above, in MB (10^6 bytes) of segment payload per second",
        ),
    ]


# --- figure 2/3: devices one process carries, and its peak memory -----------------------------------


@dataclass
class LoadPlan:
    address: str
    token: str
    devices: list[tuple[str, bytes]]  # device id, raw Ed25519 private key
    pool: list[PoolSegment]
    seconds: float
    period_s: float
    out: str


def load_main(plan_path: str) -> None:
    """The simulated devices, in a process of their own (multiprocessing): each uploads a segment every
    `period_s`, staggered evenly, in real time; results (due, latency, outcome) are pickled to `out`."""
    plan: LoadPlan = pickle.loads(Path(plan_path).read_bytes())
    asyncio.run(_load(plan))


async def _load(plan: LoadPlan) -> None:
    results: list[tuple[float, float, float, str]] = []  # (due rel, started rel, latency, outcome)
    keys = [(did, Ed25519PrivateKey.from_private_bytes(raw)) for did, raw in plan.devices]
    n = len(keys)
    segments_each = int(plan.seconds / plan.period_s)
    t_start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=plan.seconds + 60)
    async with make_channel(plan.address, token=plan.token, default_timeout_s=30) as channel:
        stub = pb_grpc.IngestServiceStub(channel)
        # One call first, so channel set-up is not in the first window.
        await stub.UploadSegment(
            requests(signed_header(keys[0][1], keys[0][0], 10**6, t_start, plan.pool[0]), plan.pool[0].data)
        )
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.5
        tasks: set[asyncio.Task] = set()

        async def one(did: str, key: Ed25519PrivateKey, seq: int, due: float) -> None:
            started = loop.time()
            seg = plan.pool[(seq + hash(did)) % len(plan.pool)]
            header = signed_header(key, did, seq, t_start + timedelta(seconds=plan.period_s * seq), seg)
            try:
                await stub.UploadSegment(requests(header, seg.data))
                outcome = "ok"
            except Exception as e:  # any failure counts against the step
                outcome = _outcome(e)
            end = loop.time()
            results.append((due - t0, started - t0, end - started, outcome))

        async def device(i: int) -> None:
            did, key = keys[i]
            offset = plan.period_s * i / n
            for seq in range(1, segments_each + 1):
                due = t0 + offset + plan.period_s * (seq - 1)
                await asyncio.sleep(max(0.0, due - loop.time()))
                # A camera keeps recording while a segment goes up: each upload is its own task.
                task = asyncio.create_task(one(did, key, seq, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        await asyncio.gather(*(device(i) for i in range(n)))
        while tasks:
            await asyncio.gather(*list(tasks))
    await asyncio.to_thread(Path(plan.out).write_bytes, pickle.dumps(results))


def _outcome(e: Exception) -> str:
    code = getattr(e, "code", None)
    return code().name if callable(code) else type(e).__name__


@dataclass
class Step:
    devices: int
    carried: bool
    p50_first: float
    p50_last: float
    p99_first: float
    p99_last: float
    failed: int
    done: int
    expected: int
    lag_p99: float
    hwm_mb: float
    cpu_share: float
    why: str = ""
    queue: str = ""  # the diagnosis: empty when neither the median grew nor the tail was slow


# A step's verdict is the rule: every upload stored, and the p99 upload latency of the last 20 s at most
# 1.5× that of the first 20 s and below the segment duration (P99_GROWTH_MAX).
#
# Beside it the report gives a diagnosis that tells a queue from a stall. A process that falls behind builds a
# queue, and a queue delays every upload after it: the median of the last window grows, and keeps growing until
# uploads overlap the next segment. A stall of the machine (another process's write-back, a collector pass)
# delays only the uploads in flight during it: the tail of one 20 s window moves (its p99 is its tenth-slowest
# upload of 1,000), the median does not. So the diagnosis judges growth on the median (MEDIAN_GROWTH_MAX) and
# the tail against the segment period (TAIL_SHARE_OF_PERIOD_MAX): a step the rule fails but the diagnosis
# passes lost its tail to a stall, not to a queue.
P99_GROWTH_MAX = 1.5
MEDIAN_GROWTH_MAX = 1.5
TAIL_SHARE_OF_PERIOD_MAX = 0.25


@dataclass(frozen=True)
class Verdict:
    """A step judged: why the issue's rule does not carry it (empty: carried), the queue diagnosis (empty: no
    sign of a queue or a slow tail), and the window percentiles both were judged on (s)."""

    why: list[str]
    queue: list[str]
    p50_first: float
    p50_last: float
    p99_first: float
    p99_last: float


def step_verdict(first: Sequence[float], last: Sequence[float], failed: Sequence[str]) -> Verdict:
    """`first` and `last` are the latencies (s) of the uploads due in the first and last window, `failed` the
    outcomes of the uploads that were not stored."""
    p50_first, p50_last = percentile(first, 50), percentile(last, 50)
    p99_first, p99_last = percentile(first, 99), percentile(last, 99)
    faults = []
    if failed:
        faults.append(f"{len(failed)} uploads failed ({', '.join(sorted(set(failed)))})")
    why, queue = list(faults), list(faults)
    if not first or not last:
        why.append("no upload stored in the first or the last window")
        queue.append(why[-1])
    else:
        if p99_last > P99_GROWTH_MAX * p99_first:
            why.append(f"p99 grew {p99_last / p99_first:.2f}× from the first 20 s to the last")
        if p99_last >= SEGMENT_S:
            why.append("p99 of the last 20 s not below the segment duration")
        if p50_last > MEDIAN_GROWTH_MAX * p50_first:
            queue.append(f"median grew {p50_last / p50_first:.2f}× from the first 20 s to the last (a queue)")
        if p99_last > TAIL_SHARE_OF_PERIOD_MAX * SEGMENT_S:
            queue.append(f"p99 of the last 20 s over {TAIL_SHARE_OF_PERIOD_MAX:.0%} of the segment duration")
    return Verdict(why, queue, p50_first, p50_last, p99_first, p99_last)


async def capacity_step(ctx: BenchContext, pool: list[PoolSegment], n: int, seconds: float) -> Step:
    """N devices against a fresh ingest process and a fresh moto server (moto keeps every object in memory
    and object lock forbids deleting them, so each step starts empty instead)."""
    work = ctx.workdir / f"capacity-{n}"
    work.mkdir(parents=True, exist_ok=True)
    with embedded.moto_s3(log_path=work / "moto.log") as s3:
        stack = await start_ingest(work, kafka=ctx.kafka_bootstrap, s3=s3.address)
        try:
            dids = device_ids(n)
            keys = {d: Ed25519PrivateKey.generate() for d in dids}
            await seed_devices(stack.db_path, keys)
            plan = LoadPlan(
                address=stack.address,
                token=stack.token,
                devices=[(d, k.private_bytes_raw()) for d, k in keys.items()],
                pool=pool,
                seconds=seconds,
                period_s=SEGMENT_S,
                out=str(work / "results.pickle"),
            )
            plan_path = work / "plan.pickle"
            plan_path.write_bytes(pickle.dumps(plan))
            proc = multiprocessing.get_context("spawn").Process(target=load_main, args=(str(plan_path),))
            cpu0, w0 = cpu_seconds(stack.pid), time.monotonic()
            proc.start()
            await asyncio.to_thread(proc.join, seconds + 120)
            if proc.is_alive():
                proc.kill()
                raise RuntimeError(f"the load generator for {n} devices did not finish")
            if proc.exitcode != 0:
                raise RuntimeError(f"the load generator for {n} devices failed with {proc.exitcode}")
            cpu_share = (cpu_seconds(stack.pid) - cpu0) / (time.monotonic() - w0)
            hwm = vm_hwm_mb(stack.pid)
        finally:
            await asyncio.to_thread(stack.ingest.stop)  # type: ignore[attr-defined]
    results = pickle.loads(await asyncio.to_thread(Path(plan.out).read_bytes))
    ok = [(due, lat) for due, _, lat, outcome in results if outcome == "ok"]
    failed = [outcome for *_, outcome in results if outcome != "ok"]
    first = [lat for due, lat in ok if due < WINDOW_S]
    last = [lat for due, lat in ok if due >= seconds - WINDOW_S]
    lag = percentile([started - due for due, started, *_ in results], 99)
    verdict = step_verdict(first, last, failed)
    return Step(
        devices=n,
        carried=not verdict.why,
        p50_first=verdict.p50_first,
        p50_last=verdict.p50_last,
        p99_first=verdict.p99_first,
        p99_last=verdict.p99_last,
        failed=len(failed),
        done=len(ok),
        expected=n * int(seconds / SEGMENT_S),
        lag_p99=lag,
        hwm_mb=hwm,
        cpu_share=cpu_share,
        why="; ".join(verdict.why),
        queue="; ".join(verdict.queue),
    )


def _step_text(s: Step) -> str:
    verdict = "carried" if s.carried else f"not carried: {s.why}"
    diagnosis = s.queue or "no queue"
    return (
        f"N={s.devices}: {verdict}; diagnosis: {diagnosis} (median {s.p50_first * 1000:.0f} ms first 20 s → "
        f"{s.p50_last * 1000:.0f} ms last 20 s, p99 {s.p99_first * 1000:.0f} → {s.p99_last * 1000:.0f} ms; "
        f"{s.done}/{s.expected} stored; scheduling lag p99 {s.lag_p99 * 1000:.0f} ms; ingest CPU "
        f"{s.cpu_share:.0%} of a core; VmHWM {s.hwm_mb:.0f} MB)"
    )


async def capacity_figures(ctx: BenchContext, pool: list[PoolSegment]) -> list[Figure]:
    seconds = float(os.environ.get("VIGIL_BENCH_INGEST_SECONDS", CAPACITY_SECONDS))
    steps_env = os.environ.get("VIGIL_BENCH_INGEST_STEPS")
    steps: list[Step] = []
    if steps_env:
        for n in (int(x) for x in steps_env.split(",")):
            steps.append(await capacity_step(ctx, pool, n, seconds))
    else:
        # 100 first; then up (150, 200) while carried, or down (50, 75) once it is not: ≤ 3 steps.
        n = 100
        step = await capacity_step(ctx, pool, n, seconds)
        steps.append(step)
        for nxt in (150, 200) if step.carried else (50, 75):
            step = await capacity_step(ctx, pool, nxt, seconds)
            steps.append(step)
            if step.carried != steps[0].carried:
                break
    carried = [s for s in steps if s.carried]
    best = max(carried, key=lambda s: s.devices) if carried else None
    at = best or min(steps, key=lambda s: s.devices)
    how = (
        f"each step {seconds:.0f} s of real time, simulated devices in their own process (multiprocessing), "
        "each uploading a pool segment (~1 Mbit/s, signed per upload) every 2 s, staggered; a fresh ingest "
        "subprocess and a fresh moto server per step (moto holds objects in memory and object lock forbids "
        "deleting them: ~N×30×270 KiB per step, released when that step's server stops); latency = call "
        "start to response; a step is carried (the issue's rule) when every upload is stored and the p99 of the "
        f"last 20 s is at most {P99_GROWTH_MAX}× that of the first 20 s and below the segment duration; the "
        f"diagnosis beside it checks the median of the last 20 s against {MEDIAN_GROWTH_MAX}× the first's (a "
        f"queue) and the p99 of the last 20 s against {TAIL_SHARE_OF_PERIOD_MAX:.0%} of the segment duration, so "
        "a step failed by a stall of the machine (only the tail moved) tells from one that fell behind. Steps: "
        + "; ".join(_step_text(s) for s in steps)
    )
    return [
        Figure.bounded(
            "ingest devices carried per process (1 Mbit/s, 2 s segments)",
            value=float(best.devices if best else 0),
            unit="devices",
            at_least=100,
            notes=how + f". {_load_note()}",
        ),
        Figure.bounded(
            "ingest peak memory (VmHWM) at that load",
            value=at.hwm_mb,
            unit="MB",
            at_most=300,
            notes=f"VmHWM from /proc/<pid>/status of the ingest subprocess after its {at.devices}-device step",
        ),
    ]


def _load_note() -> str:
    """The machine's load when the figure was taken, so a reader can judge how noisy it was."""
    one, five, _ = os.getloadavg()
    return f"Load average {one:.1f}/{five:.1f} (1/5 min) on {os.cpu_count()} cores when measured"


async def figures(ctx: BenchContext) -> list[Figure]:
    pool = await asyncio.to_thread(encode_pool)
    out = await throughput_figures(ctx, pool)
    if os.environ.get("VIGIL_BENCH_INGEST_SKIP_CAPACITY") != "1":
        out += await capacity_figures(ctx, pool)
    return out
