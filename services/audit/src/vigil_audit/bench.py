"""Benchmark figures of the audit log (AUD-1): append rate, inclusion-proof latency, export verification."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from aiokafka import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vigil.audit.v1 import audit_record_pb2, audit_service_pb2_grpc
from vigil.audit.v1 import audit_service_pb2 as pb
from vigil.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from vigil_audit.app import MIGRATIONS, SERVICE_NAME
from vigil_audit.config import Settings
from vigil_audit.domain.leaf import leaf_bytes
from vigil_audit.domain.sth import TreeHead, sign_tree_head
from vigil_audit.domain.verify import entry_line_bytes, tree_head_line_bytes, verify_lines
from vigil_audit.servicer import AuditServicer
from vigil_audit.signing import LogKey
from vigil_audit.store import LogStore, datetime_us, read_engine
from vigil_audit.writer import LogWriter
from vigil_kit.audit import build_record
from vigil_kit.auth import Principal, TokenIssuer, TokenVerifier, generate_keypair
from vigil_kit.bench import BenchContext, Figure
from vigil_kit.cloudevents import headers_for
from vigil_kit.db import create_engine
from vigil_kit.embedded import free_port
from vigil_kit.grpc_client import make_channel
from vigil_kit.grpc_server import ServiceBinding, build_server
from vigil_kit.kafka import create_consumer, create_producer, ensure_topics
from vigil_kit.merkle import Frontier, append_leaves, leaf_hash, verify_inclusion
from vigil_kit.migrations import upgrade
from vigil_kit.settings import ServiceSettings

if TYPE_CHECKING:
    from vigil_testing.postgres import PostgresCluster

log = logging.getLogger(__name__)

VERIFY_LEAVES = 1_000_000
# One signed head per this many leaves, as a log publishing one per second at this rate would.
VERIFY_HEAD_EVERY = 10_000
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# ------------------------------------------------------------------------------ leaves for the figures


def _leaf_template() -> tuple[bytes, bytes]:
    """A realistic canonical leaf with placeholders; (prefix, suffix) around the varying record id.

    Only the record id (and with it the device and the time's seconds) differ between bench leaves; the
    bytes are exactly what leaf_bytes gives for such a record, so the verifier does its real work.
    """
    marker = "0190f5c2-7a00-7000-8000-@@@@@@@@@@@@"
    leaf = leaf_bytes(
        {
            "record_id": marker,
            "time": START,
            "source_service": "archive",
            "actor": {
                "id": "u-analyst-1",
                "name": "李伟",
                "unit": "11330100MB0000001X",
                "unit_kind": "UNIT_KIND_GOVERNMENT_DEPARTMENT",
                "roles": ["ROLE_DEPARTMENT_ANALYST"],
            },
            "action": "archive.playback.manifest",
            "resources": {"device_ids": ["cam-0042"], "grant_ids": ["g-9"]},
            "purpose": "PURPOSE_TRAFFIC_MANAGEMENT",
            "footage": {"start_time": START - timedelta(minutes=10), "end_time": START},
            "decision": "DECISION_ALLOWED",
            "grant_id": "g-9",
            "attributes": {"segments": "5", "bytes": "1048576"},
        }
    )
    prefix, _, suffix = leaf.partition(b"@@@@@@@@@@@@")
    return prefix, suffix


def bench_leaves(n: int, start: int = 0) -> Iterator[bytes]:
    """``n`` distinct canonical leaves (record ids differ in their last 12 hex digits)."""
    prefix, suffix = _leaf_template()
    for i in range(start, start + n):
        yield b"%s%012x%s" % (prefix, i, suffix)


def write_export(path: Path, n: int, key: Ed25519PrivateKey, head_every: int) -> int:
    """An export of ``n`` leaves as `vigil audit export` writes it (heads first); returns the heads count."""
    frontier = Frontier()
    heads: list[bytes] = []
    tmp = path.with_suffix(".entries")
    with tmp.open("wb") as entries:
        for i, leaf in enumerate(bench_leaves(n)):
            digest = leaf_hash(leaf)
            frontier.append(digest)
            entries.write(entry_line_bytes(i, digest, leaf) + b"\n")
            if (i + 1) % head_every == 0 or i + 1 == n:
                head = TreeHead(i + 1, frontier.root(), START + timedelta(seconds=i // head_every))
                heads.append(tree_head_line_bytes(sign_tree_head(key, head)))
    with path.open("wb") as out:
        out.writelines(h + b"\n" for h in heads)
        with tmp.open("rb") as entries:
            while chunk := entries.read(1 << 20):
                out.write(chunk)
    tmp.unlink()
    return len(heads)


def time_sha256_lines(path: Path) -> float:
    """Seconds to read the file line by line and SHA-256 each line: the floor under any verifier."""
    sha256 = hashlib.sha256
    start = time.perf_counter()
    with path.open("rb") as f:
        for line in f:
            sha256(line).digest()
    return time.perf_counter() - start


def time_verify(path: Path, key: Ed25519PrivateKey, n: int) -> float:
    start = time.perf_counter()
    with path.open("rb") as f:
        report = verify_lines(f, key.public_key())
    elapsed = time.perf_counter() - start
    if not report.ok or report.verified_size != n:
        raise RuntimeError(f"the bench export did not verify: {report}")
    return elapsed


async def verification_figure(ctx: BenchContext) -> Figure:
    n = _env_int("VIGIL_BENCH_AUDIT_VERIFY_LEAVES", VERIFY_LEAVES)
    key = Ed25519PrivateKey.generate()
    path = ctx.workdir / "audit-export.jsonl"
    heads = await asyncio.to_thread(write_export, path, n, key, VERIFY_HEAD_EVERY)
    size = path.stat().st_size
    try:
        await asyncio.to_thread(time_sha256_lines, path)  # warm the page cache for both
        baseline = await asyncio.to_thread(time_sha256_lines, path)
        value = await asyncio.to_thread(time_verify, path, key, n)
    finally:
        path.unlink()
    return Figure.bounded(
        f"audit export verification, {n:,} leaves",
        value=value,
        unit="s",
        at_most=60,
        baseline=baseline,
        notes=(
            f"verify_lines (what `vigil audit verify FILE` runs) over a {size / 1e6:,.0f} MB export with "
            f"{heads} signed tree heads, page cache warm; baseline = reading the same file line by line "
            "and SHA-256 of each line, same run"
        ),
    )


# ----------------------------------------------------------------------- (1) append rate from Kafka

APPEND_RECORDS = 100_000
APPEND_TARGET = 10_000  # records/s
APPEND_TIMEOUT_S = 600.0


def bench_records(n: int) -> list[audit_record_pb2.AuditRecord]:
    """``n`` realistic records (an analyst's playbacks across 500 cameras), ids in publishing order."""
    actor = Principal(
        id="u-analyst-1",
        name="李伟",
        unit="11330100MB0000001X",
        unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
        roles=frozenset({"ROLE_DEPARTMENT_ANALYST"}),
    )
    out = []
    for i in range(n):
        at = START + timedelta(milliseconds=i)
        out.append(
            build_record(
                actor=actor,
                action="archive.playback.manifest",
                source_service="archive",
                decision="allowed",
                resources={"device_ids": [f"cam-{i % 500:04d}"], "grant_ids": ["g-9"]},
                purpose="PURPOSE_TRAFFIC_MANAGEMENT",
                footage=(at - timedelta(minutes=10), at),
                grant_id="g-9",
                attributes={"segments": "5", "bytes": "1048576"},
                now=at,
            )
        )
    return out


async def publish_records(bootstrap: str, topic: str, records: list[audit_record_pb2.AuditRecord]) -> None:
    """Publish as services' outboxes do: key and CloudEvents id = the record id."""
    producer = await create_producer(bootstrap, linger_ms=20, max_batch_size=1 << 20)
    try:
        futures = []
        for record in records:
            headers = headers_for(
                record, source_service="archive", subject=record.record_id, event_id=record.record_id
            )
            futures.append(
                await producer.send(
                    topic, record.SerializeToString(), key=record.record_id.encode(), headers=headers
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume_rate(bootstrap: str, topic: str, n: int) -> float:
    """Records/s of a bare aiokafka consumer reading the same partition from the start (the baseline)."""
    tp = TopicPartition(topic, 0)
    start = time.perf_counter()
    consumer = await create_consumer(
        bootstrap, (), f"bench-raw-{uuid.uuid4().hex[:8]}", max_partition_fetch_bytes=4 * 1024 * 1024
    )
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        seen = 0
        while seen < n:
            batch = await consumer.getmany(tp, timeout_ms=100, max_records=5000)
            seen += len(batch.get(tp, []))
            if time.perf_counter() - start > APPEND_TIMEOUT_S:
                raise RuntimeError(f"raw consume read only {seen} of {n} records")
        return n / (time.perf_counter() - start)
    finally:
        await consumer.stop()


async def append_rate(bootstrap: str, topic: str, n: int, url: str) -> float:
    """Records/s of the service's own LogWriter from an empty log to ``n`` leaves on ``url``.

    The clock runs from the writer's start (lease, consumer start-up and all) until its tree holds n
    leaves, each committed with its nodes, offset and query rows.
    """
    engine = create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS)
        store = LogStore(engine)
        writer = LogWriter(
            store,
            LogKey(Ed25519PrivateKey.generate()),
            bootstrap=bootstrap,
            topic=topic,
            batch_max=Settings.model_fields["append_batch_max"].default,
            sth_interval_s=Settings.model_fields["sth_interval_s"].default,
            encode_workers=encode_workers(),
        )
        start = time.perf_counter()
        task = asyncio.create_task(writer.run())
        try:
            while writer.size < n:
                if task.done():
                    task.result()
                    raise RuntimeError("the log writer stopped early")
                if time.perf_counter() - start > APPEND_TIMEOUT_S:
                    raise RuntimeError(f"the log writer appended only {writer.size} of {n} records")
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - start
        finally:
            writer.stop()
            await task
        stored = await store.count_leaves()
        if stored != n:
            raise RuntimeError(f"{stored} leaves stored where {n} were published")
        return n / elapsed
    finally:
        await engine.dispose()


def encode_workers() -> int:
    """The writer's encode workers in the append figures: the service's default unless overridden."""
    return _env_int("VIGIL_BENCH_AUDIT_ENCODE_WORKERS", Settings.model_fields["encode_workers"].default)


def _append_figure(db_name: str, rate: float, raw: float, n: int) -> Figure:
    return Figure.bounded(
        f"audit log append rate from Kafka ({db_name})",
        value=rate,
        unit="records/s",
        at_least=APPEND_TARGET,
        baseline=raw,
        notes=(
            f"{n:,} AuditRecords (~{RECORD_BYTES_NOTE}) on a 1-partition topic, appended by the service's "
            "LogWriter in-process (batches of up to 5,000: leaves, query refs, "
            "tree nodes, offset in one transaction; records decoded, encoded and hashed by "
            f"{encode_workers()} spawned encode worker(s), started with the writer inside the timed span; "
            "0 = on the event loop); baseline = bare aiokafka getmany of the same partition, same run"
        ),
    )


RECORD_BYTES_NOTE = "400 B each"


# -------------------------------------------------------------------- (2) inclusion proofs at 1M leaves

PROOF_LEAVES = 1_000_000
PROOF_SAMPLES = 2000
PROOF_WARMUP = 200
PROOF_TARGET_MS = 5.0
_FILL_CHUNK = 50_000
_LEAF_COLUMNS = (
    "leaf_index",
    "record_id",
    "leaf_hash",
    "leaf",
    "time_us",
    "source_service",
    "actor_id",
    "action",
    "footage_start_us",
    "footage_end_us",
)


def _record_id(i: int) -> str:
    return f"0190f5c2-7a00-7000-8000-{i:012x}"


def _fill_chunks(n: int) -> Iterator[tuple[list[tuple], list[tuple[int, int, bytes]], Frontier]]:
    """(leaf rows, node rows, frontier after) per chunk: nodes by merkle.append_leaves, as the writer does."""
    frontier = Frontier()
    time_us = datetime_us(START)
    footage = (time_us - 600_000_000, time_us)
    leaves = bench_leaves(n)
    for first in range(0, n, _FILL_CHUNK):
        count = min(_FILL_CHUNK, n - first)
        rows, hashes = [], []
        for i in range(first, first + count):
            leaf = next(leaves)
            digest = leaf_hash(leaf)
            hashes.append(digest)
            rows.append(
                (
                    i,
                    _record_id(i),
                    digest,
                    leaf,
                    time_us,
                    "archive",
                    "u-analyst-1",
                    "archive.playback.manifest",
                    *footage,
                )
            )
        result = append_leaves(frontier, hashes)
        frontier = result.frontier
        yield rows, [(node.level, node.index, node.hash) for node in result.nodes], frontier


def fill_sqlite(path: Path, n: int) -> Frontier:
    """Bulk-load ``n`` leaves and their nodes straight into the migrated tables (not through Kafka)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        leaf_sql = f"INSERT INTO audit_leaves ({', '.join(_LEAF_COLUMNS)}) VALUES ({', '.join('?' * 10)})"
        frontier = Frontier()
        for rows, nodes, after in _fill_chunks(n):
            frontier = after
            with conn:
                conn.executemany(leaf_sql, rows)
                conn.executemany("INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
        with conn:
            conn.execute("UPDATE audit_log_state SET tree_size = ? WHERE id = 1", (n,))
        conn.execute("ANALYZE")
        return frontier
    finally:
        conn.close()


async def fill_postgres(url: str, n: int) -> Frontier:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        frontier = Frontier()
        for rows, nodes, after in _fill_chunks(n):
            frontier = after
            await conn.copy_records_to_table("audit_leaves", records=rows, columns=_LEAF_COLUMNS)
            await conn.copy_records_to_table("audit_nodes", records=nodes, columns=("level", "idx", "hash"))
        await conn.execute("UPDATE audit_log_state SET tree_size = $1 WHERE id = 1", n)
        await conn.execute("ANALYZE")
        return frontier
    finally:
        await conn.close()


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def proof_latencies(url: str, frontier: Frontier, bootstrap: str) -> tuple[list[float], list[float]]:
    """(GetInclusionProof seconds, WhoAmI seconds) over gRPC to the service's AuditServicer, in-process.

    The server is the kit's (auth, error and metrics interceptors included); each proof is asked by
    record id against the latest signed head, as `vigil audit prove` does, one call at a time.
    """
    engine = create_engine(url)
    issuer_private, issuer_public = generate_keypair()
    issuer = TokenIssuer(issuer_private)
    token = issuer.mint(
        sub="u-auditor-1",
        name="审计员",
        unit="11330100MB0000001X",
        unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
        roles=["ROLE_AUDITOR"],
    )
    # As the service builds it (app.build): reads on their own engine (SQLite: no write lock).
    reader = read_engine(engine)
    store = LogStore(engine, reader)
    try:
        key = LogKey(Ed25519PrivateKey.generate())
        await store.add_tree_head(
            key.sign(TreeHead(frontier.size, frontier.root(), datetime.now(UTC))), key.key_id
        )
        settings = ServiceSettings(
            service_name="audit",
            grpc_host="127.0.0.1",
            grpc_port=free_port(),
            metrics_port=0,
            database_url=url,
            kafka_bootstrap=bootstrap,
            auth_public_keys=[issuer_public.decode()],
        )
        server = await build_server(
            settings,
            bindings=[
                ServiceBinding(
                    name=SERVICE_NAME,
                    servicer=AuditServicer(store, key),
                    add_to_server=audit_service_pb2_grpc.add_AuditServiceServicer_to_server,
                )
            ],
            verifier=TokenVerifier([issuer_public]),
            checks={},
        )
        await server.start()
        try:
            async with make_channel(f"127.0.0.1:{server.port}", token=token) as channel:
                stub = audit_service_pb2_grpc.AuditServiceStub(channel)
                identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
                rng = random.Random(6962)
                picks = [rng.randrange(frontier.size) for _ in range(PROOF_WARMUP + PROOF_SAMPLES)]
                proofs: list[float] = []
                for n, index in enumerate(picks):
                    t0 = time.perf_counter()
                    proof = await stub.GetInclusionProof(
                        pb.GetInclusionProofRequest(record_id=_record_id(index))
                    )
                    elapsed = time.perf_counter() - t0
                    if n >= PROOF_WARMUP:
                        proofs.append(elapsed)
                    if n % 97 == 0:  # spot-check that the figure times real, valid proofs
                        leaf = bytes.fromhex(proof.leaf_hash)
                        path = [bytes.fromhex(h) for h in proof.hashes]
                        if not verify_inclusion(leaf, index, frontier.size, path, frontier.root()):
                            raise RuntimeError(f"the inclusion proof of leaf {index} does not verify")
                floor: list[float] = []
                for n in range(PROOF_WARMUP + PROOF_SAMPLES):
                    t0 = time.perf_counter()
                    await identity.WhoAmI(identity_service_pb2.WhoAmIRequest())
                    if n >= PROOF_WARMUP:
                        floor.append(time.perf_counter() - t0)
        finally:
            await server.stop(0)
        return proofs, floor
    finally:
        store.close()
        if reader is not engine:
            await reader.dispose()
        await engine.dispose()


def _proof_figure(db_name: str, proofs: list[float], floor: list[float], n: int, fill_s: float) -> Figure:
    p99, p50 = _percentile(proofs, 0.99) * 1000, _percentile(proofs, 0.50) * 1000
    return Figure.bounded(
        f"audit inclusion proof p99 at {n:,} leaves ({db_name})",
        value=p99,
        unit="ms",
        at_most=PROOF_TARGET_MS,
        baseline=_percentile(floor, 0.99) * 1000,
        notes=(
            f"GetInclusionProof by record id against the latest signed head, over gRPC to the service's "
            f"AuditServicer in-process (kit server: auth, errors, metrics), {len(proofs):,} random leaves "
            f"one at a time after {PROOF_WARMUP} warm-up calls; p50 {p50:.2f} ms; baseline = p99 of WhoAmI "
            f"(the same server's cheapest authenticated RPC), same run; store bulk-loaded in {fill_s:.0f} s "
            "(leaves + nodes from merkle.append_leaves)"
        ),
    )


async def proof_figure_sqlite(ctx: BenchContext, n: int) -> Figure:
    path = ctx.workdir / "audit-proofs.db"
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS)
    finally:
        await engine.dispose()
    t0 = time.perf_counter()
    frontier = await asyncio.to_thread(fill_sqlite, path, n)
    fill_s = time.perf_counter() - t0
    try:
        proofs, floor = await proof_latencies(url, frontier, ctx.kafka_bootstrap)
    finally:
        for suffix in ("", "-wal", "-shm"):
            await asyncio.to_thread(Path(f"{path}{suffix}").unlink, missing_ok=True)
    return _proof_figure("SQLite", proofs, floor, n, fill_s)


async def proof_figure_postgres(ctx: BenchContext, cluster: PostgresCluster, n: int) -> Figure:
    url = await asyncio.to_thread(cluster.create_database)
    engine = create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS)
    finally:
        await engine.dispose()
    t0 = time.perf_counter()
    frontier = await fill_postgres(url, n)
    fill_s = time.perf_counter() - t0
    proofs, floor = await proof_latencies(url, frontier, ctx.kafka_bootstrap)
    return _proof_figure("PostgreSQL", proofs, floor, n, fill_s)


# ------------------------------------------------------------------------------------------- figures


def _skipped(figure: str, target: str, why: str) -> Figure:
    return Figure(figure, 0.0, None, None, target, "skipped", notes=why)


async def figures(ctx: BenchContext) -> list[Figure]:
    # The throwaway PostgreSQL cluster of the test kit (imported here: only the bench needs it).
    from vigil_testing.postgres import PostgresCluster, pg_bin

    n = _env_int("VIGIL_BENCH_AUDIT_RECORDS", APPEND_RECORDS)
    proof_n = _env_int("VIGIL_BENCH_AUDIT_PROOF_LEAVES", PROOF_LEAVES)
    topic = f"bench.audit.records.{uuid.uuid4().hex[:6]}"
    await ensure_topics(ctx.kafka_bootstrap, {topic: 1})
    records = await asyncio.to_thread(bench_records, n)
    await publish_records(ctx.kafka_bootstrap, topic, records)
    del records
    await raw_consume_rate(ctx.kafka_bootstrap, topic, n)  # warm the broker's and the client's paths
    out: list[Figure] = []
    raw = await raw_consume_rate(ctx.kafka_bootstrap, topic, n)
    sqlite_url = f"sqlite+aiosqlite:///{ctx.workdir / 'audit-append.db'}"
    out.append(_append_figure("SQLite", await append_rate(ctx.kafka_bootstrap, topic, n, sqlite_url), raw, n))
    if pg_bin() is None:
        why = "skipped: the PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        out.append(
            _skipped("audit log append rate from Kafka (PostgreSQL)", f"≥ {APPEND_TARGET:,} records/s", why)
        )
        out.append(await proof_figure_sqlite(ctx, proof_n))
        out.append(
            _skipped(
                f"audit inclusion proof p99 at {proof_n:,} leaves (PostgreSQL)",
                f"≤ {PROOF_TARGET_MS:g} ms",
                why,
            )
        )
    else:
        cluster = await asyncio.to_thread(lambda: PostgresCluster().start())
        try:
            url = await asyncio.to_thread(cluster.create_database)
            raw = await raw_consume_rate(ctx.kafka_bootstrap, topic, n)
            out.append(
                _append_figure("PostgreSQL", await append_rate(ctx.kafka_bootstrap, topic, n, url), raw, n)
            )
            out.append(await proof_figure_sqlite(ctx, proof_n))
            out.append(await proof_figure_postgres(ctx, cluster, proof_n))
        finally:
            await asyncio.to_thread(cluster.stop)
    out.append(await verification_figure(ctx))
    return out
