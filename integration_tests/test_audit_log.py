"""The audit log across a SIGKILL of its writer: nothing lost, nothing twice, and the whole log verifies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from vigil.audit.v1 import audit_record_pb2, audit_service_pb2, audit_service_pb2_grpc
from vigil.common.v1 import identity_pb2
from vigil_audit.domain.sth import SignedTreeHead, TreeHead, load_public_key
from vigil_audit.domain.verify import entry_line_bytes, tree_head_line_bytes, verify_lines
from vigil_kit import cloudevents, topics
from vigil_kit.audit import build_record
from vigil_kit.auth import Principal, TokenIssuer
from vigil_kit.grpc_client import make_channel
from vigil_kit.kafka import create_producer, ensure_topics
from vigil_testing.poll import apoll_until

pb = audit_service_pb2
N = 3000
ACTOR = Principal(
    id="u-analyst",
    name="李伟",
    unit="11330100MB0000001X",
    unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
    roles=frozenset({"ROLE_DEPARTMENT_ANALYST"}),
)


def records(n: int) -> list[audit_record_pb2.AuditRecord]:
    now = datetime.now(UTC)
    return [
        build_record(
            actor=ACTOR,
            action="archive.playback.manifest",
            source_service="archive",
            decision="allowed",
            resources={"devices": [f"cam-{i % 50}"], "grants": ["g-1"]},
            footage=(now, now),
            grant_id="g-1",
            attributes={"i": str(i)},
            now=now,
        )
        for i in range(n)
    ]


async def publish(producer, batch: list[audit_record_pb2.AuditRecord]) -> None:
    for r in batch:
        headers = cloudevents.headers_for(
            r, source_service=r.source_service, subject=r.action, event_id=r.record_id
        )
        await producer.send(
            topics.AUDIT_RECORDS, r.SerializeToString(), key=r.record_id.encode(), headers=headers
        )
    await producer.flush()


def _head(msg: pb.SignedTreeHead) -> SignedTreeHead:
    return SignedTreeHead(
        TreeHead(msg.tree_size, bytes.fromhex(msg.root_hash), msg.timestamp.ToDatetime(tzinfo=UTC)),
        msg.signature,
    )


async def export(stub, metadata) -> tuple[list[bytes], list[pb.LogEntry]]:
    """Heads first, then every entry up to the latest head, as `vigil audit export` writes them."""
    latest = await stub.GetSignedTreeHead(pb.GetSignedTreeHeadRequest(), metadata=metadata)
    lines: list[bytes] = []
    entries: list[pb.LogEntry] = []
    token = ""
    while True:
        page = await stub.ListTreeHeads(
            pb.ListTreeHeadsRequest(page_size=1000, page_token=token, max_tree_size=latest.tree_size),
            metadata=metadata,
        )
        lines += [tree_head_line_bytes(_head(h)) for h in page.tree_heads if h.tree_size]
        if not (token := page.next_page_token):
            break
    while True:
        page = await stub.ListRecords(
            pb.ListRecordsRequest(page_size=1000, page_token=token, end_index=latest.tree_size),
            metadata=metadata,
        )
        entries += page.entries
        lines += [entry_line_bytes(e.leaf_index, bytes.fromhex(e.leaf_hash), e.leaf) for e in page.entries]
        if not (token := page.next_page_token):
            break
    return lines, entries


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def audit_database(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings for the audit service's database: its own SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("postgres_cluster").create_database()}


@pytest.mark.slow
async def test_a_sigkilled_audit_log_resumes_with_every_record_once_and_the_whole_log_verifies(
    vigil_service: Callable, fresh_kafka_broker, issuer: TokenIssuer, audit_database: dict[str, str]
) -> None:
    await ensure_topics(fresh_kafka_broker.address)
    audit = vigil_service("audit", kafka=fresh_kafka_broker, WRITER_LEASE_S=2, **audit_database)
    token = issuer.mint(
        sub="u-auditor",
        name="Auditor",
        unit="11330100MB0000001X",
        unit_kind=identity_pb2.UnitKind.Name(identity_pb2.UNIT_KIND_PUBLIC_SECURITY_ORGAN),
        roles=["ROLE_AUDITOR"],
    )
    published = records(N)
    producer = await create_producer(fresh_kafka_broker.address)

    killed = asyncio.Event()

    async def publish_paced() -> None:
        # In small chunks, so the service is killed while records are still arriving: the second half
        # waits for the kill, however fast or slow the appends are. Then a redelivery of a stretch already
        # published (as an outbox relay retrying after a crash would send).
        for i in range(100, N, 100):
            if i == N // 2:
                await killed.wait()
            await publish(producer, published[i : i + 100])
            await asyncio.sleep(0.02)
        await publish(producer, published[N // 4 : N // 2])

    async def log_size() -> int:
        async with make_channel(audit.address, token=token) as channel:
            response = await audit_service_pb2_grpc.AuditServiceStub(channel).ListRecords(
                pb.ListRecordsRequest(page_size=1, view=pb.ENTRY_VIEW_LEAF)
            )
        return response.log_size

    async def grown_past_first_chunk() -> int:
        size = await log_size()
        return size if size > 100 else 0

    publishing: asyncio.Task | None = None
    try:
        # A first chunk, appended before the stream starts, so the kill surely lands mid-stream.
        await publish(producer, published[:100])
        await apoll_until(log_size, timeout=30, what="the first chunk appended")
        publishing = asyncio.create_task(publish_paced())
        size_at_kill = await apoll_until(
            grown_past_first_chunk, timeout=30, interval=0.01, what="more leaves"
        )
        audit.kill()
        killed.set()
        assert not publishing.done(), "the stream ended before the kill"
        await publishing
    finally:
        if publishing is not None and not publishing.done():  # the test failed before the kill
            publishing.cancel()
        await producer.stop()
    assert 0 < size_at_kill < N
    audit.start()
    started = time.monotonic()
    async with make_channel(audit.address, token=token, default_timeout_s=30) as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)

        async def fully_signed() -> bool:
            head = await stub.GetSignedTreeHead(pb.GetSignedTreeHeadRequest())
            return head.tree_size >= N

        await apoll_until(fully_signed, timeout=60, what=f"a signed tree head of {N} leaves")
        lines, entries = await export(stub, None)
        key = load_public_key((await stub.GetPublicKey(pb.GetPublicKeyRequest())).public_key_pem)
        final = await stub.GetSignedTreeHead(pb.GetSignedTreeHeadRequest())
    assert time.monotonic() - started < 60
    assert final.tree_size == N
    assert [e.leaf_index for e in entries] == list(range(N))
    assert sorted(e.record.record_id for e in entries) == sorted(r.record_id for r in published)
    report = verify_lines(lines, key)
    assert report.ok, report.failure
    assert report.verified_size == N
