"""The archive's FindSegments figure for `make bench`: one page's p99 over a 1.3 M-row index.

One device's index holds 30 days of 2 s segments (1,296,000 rows, written straight into the archive's
own schema on SQLite); an archive PROCESS (`python -m vigil_archive`, the bench's broker and S3, its
outbox relay publishing every page's audit record) serves FindSegments for random one-hour windows
(1,800 segments each), paginated at the default page size, called one after another. The baseline is
the same keyset SELECT of each page through the plain sqlite3 module on the same file, in the same run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.archive.v1 import archive_service_pb2_grpc as pb_grpc
from vigil_archive.api import RELAY_WAKE_S
from vigil_archive.app import MIGRATIONS
from vigil_archive.codec import time_range
from vigil_kit import db
from vigil_kit.auth import TokenIssuer, generate_keypair
from vigil_kit.bench import BenchContext, Figure
from vigil_kit.bench.process import BenchService
from vigil_kit.grpc_client import make_channel
from vigil_kit.migrations import upgrade
from vigil_kit.paging import DEFAULT_PAGE_SIZE

DEVICE = "32020501501320099999"
OWNER = "12320200MB0000003X"
SEGMENT = timedelta(seconds=2)
DAYS = 30
WINDOWS = 40  # one-hour windows → 18 pages each at the default page size
TARGET_MS = 10.0


def _n(name: str, default: int) -> int:
    return int(os.environ.get(f"VIGIL_BENCH_ARCHIVE_{name}", default))


def _sqlite_time(t: datetime) -> str:
    # How SQLAlchemy's SQLite DateTime stores a value (UTCDateTime hands it naive UTC).
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def fill_index(path: Path, t0: datetime, n: int, batch: int = 50_000, device: str = DEVICE) -> float:
    """n back-to-back segments of `device` from t0 into archive_segments; seconds taken."""
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        retain = _sqlite_time(t0 + timedelta(days=DAYS + 30))
        now = _sqlite_time(datetime.now(UTC))
        for lo in range(0, n, batch):
            rows = []
            for i in range(lo, min(n, lo + batch)):
                start = t0 + i * SEGMENT
                key = f"segments/{device}/{start:%Y/%m/%d}/{start:%Y%m%dT%H%M%S}.000Z-{i + 1}.ts"
                rows.append(
                    (
                        device,
                        i + 1,
                        _sqlite_time(start),
                        _sqlite_time(start + SEGMENT),
                        f"{start:%Y-%m-%d}",
                        "vigil-segments",
                        key,
                        f"v{i:012d}",
                        500_000,
                        hashlib.sha256(key.encode()).hexdigest(),
                        retain,
                        OWNER,
                        "h264",
                        "ts",
                        False,
                        "ingest",
                        now,
                    )
                )
            conn.executemany(
                "INSERT INTO archive_segments (device_id, sequence, start_time, end_time, day, bucket, key, "
                "version_id, size, sha256, retain_until, owner_unit_id, codec, container, legal_hold, source, "
                "index_time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()
    return time.perf_counter() - started


def windows(t0: datetime, n_rows: int, count: int, seed: int = 11) -> list[tuple[datetime, datetime]]:
    rnd = random.Random(seed)
    span = n_rows * SEGMENT - timedelta(hours=1)
    out = []
    for _ in range(count):
        start = t0 + timedelta(seconds=rnd.randrange(int(span.total_seconds()) // 2) * 2)
        out.append((start, start + timedelta(hours=1)))
    return out


async def rpc_pages(
    stub: pb_grpc.ArchiveServiceStub, wins: list[tuple[datetime, datetime]]
) -> tuple[list[float], int]:
    """Every page of every window, timed one by one; (page times in ms, segments returned)."""
    times: list[float] = []
    total = 0
    for start, end in wins:
        token = ""
        while True:
            began = time.perf_counter()
            resp = await stub.FindSegments(
                pb.FindSegmentsRequest(device_id=DEVICE, range=time_range(start, end), page_token=token)
            )
            times.append((time.perf_counter() - began) * 1000)
            total += len(resp.segments)
            token = resp.next_page_token
            if not token:
                break
    return times, total


RAW_PAGE = (
    "SELECT id, device_id, sequence, start_time, end_time, bucket, key, version_id, size, sha256, "
    "retain_until, owner_unit_id, codec, container, legal_hold FROM archive_segments "
    "WHERE device_id = ? AND start_time >= ? AND start_time < ? AND end_time > ? "
    "AND (start_time > ? OR (start_time = ? AND id > ?)) ORDER BY start_time, id LIMIT ?"
)


def raw_pages(path: Path, wins: list[tuple[datetime, datetime]], page: int) -> list[float]:
    """The same keyset pages through sqlite3 on the same file."""
    conn = sqlite3.connect(path)
    times: list[float] = []
    try:
        for start, end in wins:
            lo = _sqlite_time(start - timedelta(minutes=10))
            after = (_sqlite_time(start - timedelta(minutes=10)), 0)
            while True:
                began = time.perf_counter()
                rows = conn.execute(
                    RAW_PAGE,
                    (
                        DEVICE,
                        lo,
                        _sqlite_time(end),
                        _sqlite_time(start),
                        after[0],
                        after[0],
                        after[1],
                        page + 1,
                    ),
                ).fetchall()
                times.append((time.perf_counter() - began) * 1000)
                if len(rows) <= page:
                    break
                last = rows[page - 1]
                after = (last[3], last[0])
    finally:
        conn.close()
    return times


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


async def find_segments_figure(ctx: BenchContext) -> Figure:
    n_rows = _n("FIND_ROWS", DAYS * 86_400 // 2)
    n_windows = _n("FIND_WINDOWS", WINDOWS)
    path = ctx.workdir / "archive-find.db"
    url = f"sqlite+aiosqlite:///{path}"
    engine = db.create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS)
    finally:
        await engine.dispose()
    t0 = (datetime.now(UTC) - timedelta(days=DAYS + 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    fill_s = await asyncio.to_thread(fill_index, path, t0, n_rows)
    wins = windows(t0, n_rows, n_windows)

    private, public = generate_keypair()
    issuer = TokenIssuer(private)
    archive = BenchService(
        "archive",
        ctx.workdir,
        public_key_pem=public.decode(),
        kafka_bootstrap=ctx.kafka_bootstrap,
        s3_endpoint=ctx.s3_endpoint,
        settings={"DATABASE_URL": url},
        label="archive-find",
    )
    async with archive:
        token = issuer.mint(
            sub="bench:auditor",
            name="bench",
            unit="11320200MB0000001T",
            unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
            roles=["ROLE_AUDITOR"],
        )
        async with make_channel(archive.address, token=token, default_timeout_s=30) as channel:
            stub = pb_grpc.ArchiveServiceStub(channel)
            await rpc_pages(stub, wins[:3])  # warm up the channel, the server and the page cache
            rpc_ms, total = await rpc_pages(stub, wins)
    raw_ms = await asyncio.to_thread(raw_pages, path, wins, DEFAULT_PAGE_SIZE)
    expected = n_windows * 1800
    return Figure.bounded(
        f"archive FindSegments page p99 (one device, {n_rows:,} indexed segments, 1 h windows, SQLite)",
        value=p99(rpc_ms),
        baseline=p99(raw_ms),
        at_most=TARGET_MS,
        unit="ms",
        notes=f"{n_windows} random one-hour windows of 2 s segments ({total:,} segments returned of "
        f"{expected:,} expected) in {len(rpc_ms)} pages of {DEFAULT_PAGE_SIZE} (the default), one call at a "
        f"time over gRPC as an auditor; each page is authorized and audited (an audit record committed to "
        f"the outbox in the page's own transaction before the page is returned, published by the relay, "
        f"which is woken at most every {RELAY_WAKE_S * 1000:.0f} ms after reads commit). "
        f"Median {statistics.median(rpc_ms):.2f} ms (raw "
        f"{statistics.median(raw_ms):.2f} ms). Baseline = the same keyset SELECT per page through sqlite3 on "
        f"the same file. Index filled with {n_rows:,} rows in {fill_s:.0f} s.",
    )


async def figures(ctx: BenchContext) -> list[Figure]:
    return [await find_segments_figure(ctx)]
