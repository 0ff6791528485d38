"""Fault injection: while simulated cameras upload, ingest, archive, sharing and audit are SIGKILLed and
restarted at random moments, several times. Afterwards nothing acknowledged is lost and nothing is
counted twice:

- every segment whose upload was acknowledged is in storage (by its version id) and in the archive's
  index exactly once (no second row for the same device and sequence);
- the audit log holds every distinct record published to its topic exactly once, with no gap, and it
  verifies against its signed tree heads (AUD-1);
- no consumer is stuck: the index and the log both catch up with everything published.

The test prints the counts it compared. VIGIL_FAULT_CAMERAS / VIGIL_FAULT_SEGMENTS / VIGIL_FAULT_KILLS
scale it up for a soak (`make soak`).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from minio.error import S3Error

from vigil.archive.v1 import archive_service_pb2 as apb
from vigil.archive.v1 import archive_service_pb2_grpc as apb_grpc
from vigil.audit.v1 import audit_record_pb2
from vigil.audit.v1 import audit_service_pb2 as audit_pb
from vigil.audit.v1 import audit_service_pb2_grpc as audit_grpc
from vigil_archive.codec import time_range
from vigil_cli.audit_cmds import fetch_public_key, verify_live
from vigil_ingest.domain.signing import generate_device_key
from vigil_kit import cloudevents, objectstore, topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.embedded import EmbeddedProcess
from vigil_kit.grpc_client import make_channel
from vigil_kit.kafka import create_consumer
from vigil_kit.settings import ServiceSettings
from vigil_testing.platform import (
    Uploader,
    admin_token,
    gateway_token,
    new_device_id,
    register_active_device,
    ts_payload,
)
from vigil_testing.poll import apoll_until
from vigil_testing.services import ServiceProcess, start_together, stop_together

pytestmark = pytest.mark.slow

CAMERAS = int(os.environ.get("VIGIL_FAULT_CAMERAS", 50))
SEGMENTS = int(os.environ.get("VIGIL_FAULT_SEGMENTS", 4))
KILLS = int(os.environ.get("VIGIL_FAULT_KILLS", 2))  # per killed service
VICTIMS = ("ingest", "archive", "sharing", "audit")
SEGMENT = timedelta(seconds=2)
PACE_S = 1.0


@dataclass
class Camera:
    uploader: Uploader
    acked: dict[int, str] = field(default_factory=dict)  # sequence → version id
    retries: int = 0


async def _upload_all(camera: Camera, t0: datetime, chaos_done: asyncio.Event) -> None:
    """Upload a segment every PACE_S, each retried until acknowledged (the same sequence and bytes, so
    idempotent), until at least SEGMENTS are acknowledged and the chaos is over: uploads span every kill."""
    seq = 0
    while seq < SEGMENTS or not chaos_done.is_set():
        seq += 1
        data = ts_payload(hash((camera.uploader.device_id, seq)) & 0xFFFF, packets=16)
        while True:
            try:
                reply = await camera.uploader.upload(data, t0 + (seq - 1) * SEGMENT, seq, SEGMENT)
            except grpc.aio.AioRpcError as e:
                if e.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    grpc.StatusCode.CANCELLED,
                    grpc.StatusCode.FAILED_PRECONDITION,  # the device cache of a restarted ingest catching up
                ):
                    raise
                camera.retries += 1
                await asyncio.sleep(0.2)  # a camera's retry interval, not synchronisation
                continue
            except asyncio.CancelledError:
                # grpc.aio sometimes ends a client-streaming call whose server was SIGKILLed mid-stream with
                # a bare CancelledError instead of an RpcError. Unless this task itself is being cancelled,
                # that is a dropped connection, and a camera retries it like any other.
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                camera.retries += 1
                await asyncio.sleep(0.2)
                continue
            camera.acked[seq] = reply.segment.version_id
            break
        await asyncio.sleep(PACE_S)  # a camera's segment cadence, not synchronisation


async def _chaos(processes: dict[str, ServiceProcess], rnd: random.Random) -> list[str]:
    """Kill (SIGKILL) and restart each victim KILLS times at random moments while uploads run."""
    plan = [name for name in VICTIMS for _ in range(KILLS)]
    rnd.shuffle(plan)
    log: list[str] = []
    for name in plan:
        await asyncio.sleep(rnd.uniform(0.3, 1.5))  # a random moment, not synchronisation
        victim = processes[name]
        victim.kill()
        log.append(name)
        await asyncio.sleep(rnd.uniform(0.1, 1.0))
        await asyncio.to_thread(victim.start, 90.0, False)
    for p in processes.values():
        if not p.alive:
            await asyncio.to_thread(p.start, 90.0, False)
    return log


async def _indexed(address: str, token: str, device_id: str, t0: datetime) -> list[apb.Segment]:
    out: list[apb.Segment] = []
    page = ""
    async with make_channel(address, token=token, default_timeout_s=10) as channel:
        stub = apb_grpc.ArchiveServiceStub(channel)
        while True:
            resp = await stub.FindSegments(
                apb.FindSegmentsRequest(
                    device_id=device_id, range=time_range(t0, t0 + timedelta(hours=1)), page_token=page
                )
            )
            out += resp.segments
            page = resp.next_page_token
            if not page:
                return out


async def _topic_record_ids(bootstrap: str) -> list[str]:
    """Every AuditRecord id published on the audit topic (duplicates included), read to its end."""
    consumer = await create_consumer(bootstrap, [topics.AUDIT_RECORDS], f"fault-{uuid.uuid4()}")
    ids: list[str] = []
    try:
        await consumer.getmany(timeout_ms=500)  # join and get the assignment
        parts = consumer.assignment()
        ends = await consumer.end_offsets(list(parts))
        for tp in parts:
            consumer.seek(tp, 0)
        deadline = time.monotonic() + 60
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "could not read the audit topic to its end"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = cloudevents.from_record(record)
                    ids.append(cloudevents.decode(event, [audit_record_pb2.AuditRecord]).record_id)  # type: ignore[attr-defined]
    finally:
        await consumer.stop()
    return ids


@pytest.fixture
def stack(tmp_path, fresh_kafka_broker: EmbeddedProcess, s3_server: EmbeddedProcess, issuer: TokenIssuer):
    key = tmp_path / "audit-signing.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    keys = [issuer.public_key_pem.decode()]
    processes = {
        name: ServiceProcess(
            name,
            workdir=tmp_path / name,
            kafka_bootstrap=fresh_kafka_broker.address,
            public_keys_pem=keys,
            s3_endpoint=s3_server.address if name in ("ingest", "archive") else None,
            settings={"SERVICE_TOKEN": issuer.mint_service(name), "LOG_LEVEL": "WARNING"},
        )
        for name in ("registry", "ingest", "archive", "sharing", "audit")
    }
    addresses = {f"{n.upper()}_ADDR": p.address for n, p in processes.items()}
    for name, p in processes.items():
        p.settings = {**p.settings, **addresses}
        if name == "audit":
            p.settings = {**p.settings, "SIGNING_KEY_FILE": str(key)}
    processes["registry"].settings = {**processes["registry"].settings, "JURISDICTION_PREFIXES": '["3202"]'}
    try:
        start_together(*processes.values())
        yield processes, fresh_kafka_broker
    finally:
        stop_together(*processes.values())


async def test_killing_services_while_cameras_upload_loses_and_duplicates_nothing(
    stack, issuer: TokenIssuer, s3_server: EmbeddedProcess
) -> None:
    processes, broker = stack
    admin = admin_token(issuer)
    cameras: list[Camera] = []
    for _ in range(CAMERAS):
        device_id, key = new_device_id(), generate_device_key()
        await register_active_device(processes["registry"].address, admin, device_id, key.public_key_b64)
        cameras.append(Camera(Uploader(processes["ingest"].address, gateway_token(issuer), device_id, key)))
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    chaos_done = asyncio.Event()

    async def chaos_then_done() -> list[str]:
        try:
            return await _chaos(processes, random.Random(20261128))
        finally:
            chaos_done.set()

    chaos = asyncio.create_task(chaos_then_done())
    try:
        await asyncio.wait_for(
            asyncio.gather(*(_upload_all(c, t0, chaos_done) for c in cameras)), timeout=900
        )
    finally:
        killed = await chaos
    for p in processes.values():
        await asyncio.to_thread(p.wait_for_status, "SERVING", 90.0)

    acked = {(c.uploader.device_id, seq): v for c in cameras for seq, v in c.acked.items()}
    assert len(acked) >= CAMERAS * SEGMENTS

    # Storage: every acknowledged version is there.
    s3 = objectstore.make_minio(ServiceSettings(service_name="test", s3_endpoint=s3_server.address))
    missing_objects = []
    for c in cameras:
        for seq, version in c.acked.items():
            prefix = f"segments/{c.uploader.device_id}/"
            try:
                names = [
                    o.object_name
                    for o in s3.list_objects(
                        objectstore.SEGMENTS_BUCKET, prefix=prefix, recursive=True, include_version=True
                    )
                    if o.version_id == version
                ]
                assert names, f"{c.uploader.device_id}#{seq}@{version} not listed"
                s3.stat_object(objectstore.SEGMENTS_BUCKET, names[0], version_id=version)
            except (S3Error, AssertionError) as e:
                missing_objects.append(str(e))
    assert not missing_objects, missing_objects[:10]

    # The index: every acknowledged version exactly once, and no second row for a device and sequence.
    archive = processes["archive"].address

    async def caught_up() -> dict[str, list[apb.Segment]] | None:
        found = {
            c.uploader.device_id: await _indexed(archive, admin, c.uploader.device_id, t0) for c in cameras
        }
        versions = {s.version_id for segs in found.values() for s in segs}
        return found if set(acked.values()) <= versions else None

    indexed = await apoll_until(caught_up, timeout=120, interval=0.5, what="the archive index catching up")
    per_sequence = Counter((d, s.sequence) for d, segs in indexed.items() for s in segs)
    twice = {k: n for k, n in per_sequence.items() if n > 1}
    assert not twice, f"indexed more than once: {twice}"

    # The audit log: every distinct published record once, no gaps, and it verifies.
    published = await _topic_record_ids(broker.address)
    distinct = set(published)
    async with make_channel(processes["audit"].address, token=admin, default_timeout_s=30) as channel:
        stub = audit_grpc.AuditServiceStub(channel)

        async def log_size() -> int | None:
            head = await stub.GetSignedTreeHead(audit_pb.GetSignedTreeHeadRequest())
            return head.tree_size if head.tree_size >= len(distinct) else None

        size = await apoll_until(log_size, timeout=120, interval=0.5, what="the audit log catching up")
        report = await verify_live(stub, await fetch_public_key(stub))
    assert report.ok, report.failure
    assert size == len(distinct) == report.entries, (size, len(distinct), report.entries)

    print(
        f"\nfault injection: {CAMERAS} cameras, {len(acked)} segments acknowledged "
        f"({sum(c.retries for c in cameras)} retries); killed {len(killed)} times ({Counter(killed)}); "
        f"index rows {sum(per_sequence.values())} for {len(per_sequence)} (device, sequence) pairs, none twice; "
        f"audit topic {len(published)} messages, {len(distinct)} distinct records, log size {size}, verified"
    )
