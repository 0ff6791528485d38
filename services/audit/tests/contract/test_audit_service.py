"""AuditService in-process on a real broker: records become leaves, proofs verify, queries and roles hold."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vigil.audit.v1 import audit_record_pb2, audit_service_pb2, audit_service_pb2_grpc
from vigil.common.v1 import time_range_pb2
from vigil_audit import app
from vigil_audit.codec import record_leaf
from vigil_audit.config import Settings
from vigil_audit.domain.sth import SignedTreeHead, TreeHead, load_public_key, verify
from vigil_audit.domain.verify import entry_line_bytes, tree_head_line_bytes, verify_lines
from vigil_kit import cloudevents, db, migrations, topics
from vigil_kit.audit import build_record, write_audit
from vigil_kit.auth import Principal, TokenIssuer
from vigil_kit.embedded import free_port
from vigil_kit.errors import from_rpc_error
from vigil_kit.kafka import create_producer, ensure_topics
from vigil_kit.merkle import leaf_hash, verify_consistency, verify_inclusion
from vigil_kit.outbox import OutboxRelay
from vigil_kit.service import run_service
from vigil_testing.poll import apoll_until

pb = audit_service_pb2
UNIT = "11330100MB0000001X"
ANALYST = Principal(
    id="u-analyst",
    name="李伟",
    unit=UNIT,
    unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
    roles=frozenset({"ROLE_DEPARTMENT_ANALYST"}),
)
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

KIT_REVISION = '''"""Kit tables for a producing service."""

from alembic import op

from vigil_kit.migrations import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    create_kit_tables(op)


def downgrade():
    drop_kit_tables(op)
'''


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """run_service configures process-wide JSON logging; put the test process's logging back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def token(issuer: TokenIssuer, *roles: str, sub: str = "u-reader") -> str:
    return issuer.mint(
        sub=sub, name="Reader", unit=UNIT, unit_kind="UNIT_KIND_PUBLIC_SECURITY_ORGAN", roles=roles
    )


@dataclass
class RunningAudit:
    address: str
    issuer: TokenIssuer
    channels: list[grpc.aio.Channel]

    def stub(self, *roles: str) -> audit_service_pb2_grpc.AuditServiceStub:
        tok = token(self.issuer, *(roles or ("ROLE_AUDITOR",)))
        channel = grpc.aio.insecure_channel(self.address)
        self.channels.append(channel)
        return _AuthStub(audit_service_pb2_grpc.AuditServiceStub(channel), tok)


class _AuthStub:
    """Adds the bearer token (and a deadline) to every call."""

    def __init__(self, stub: audit_service_pb2_grpc.AuditServiceStub, tok: str) -> None:
        self._stub, self._md = stub, (("authorization", f"Bearer {tok}"),)

    def __getattr__(self, name: str):
        method = getattr(self._stub, name)
        return lambda request: method(request, metadata=self._md, timeout=10)


async def _serving(address: str) -> bool:
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        return response.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


@contextlib.asynccontextmanager
async def running_audit(
    database_url: str, bootstrap: str, issuer: TokenIssuer
) -> AsyncIterator[RunningAudit]:
    settings = Settings(
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        metrics_port=0,
        database_url=database_url,
        kafka_bootstrap=bootstrap,
        auth_public_keys=[issuer.public_key_pem.decode()],
        readiness_interval_s=0.2,
        shutdown_grace_s=1,
        writer_lease_s=2,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_service(settings, build=app.build, migrations_dir=app.MIGRATIONS, needs_s3=False, stop=stop)
    )
    address = f"127.0.0.1:{settings.grpc_port}"
    running = RunningAudit(address, issuer, [])
    try:
        await apoll_until(lambda: _serving(address), timeout=30, what="audit SERVING")
        yield running
    finally:
        for channel in running.channels:
            await channel.close()
        stop.set()
        await asyncio.wait_for(task, 20)


@pytest.fixture
async def audit(kafka_broker, database_url: str, issuer: TokenIssuer) -> AsyncIterator[RunningAudit]:
    async with running_audit(database_url, kafka_broker.address, issuer) as running:
        yield running


@pytest.fixture
async def producer(kafka_broker) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(kafka_broker.address)
    p = await create_producer(kafka_broker.address)
    try:
        yield p
    finally:
        await p.stop()


def record(**kw) -> audit_record_pb2.AuditRecord:
    kw.setdefault("actor", ANALYST)
    kw.setdefault("action", "archive.playback.manifest")
    kw.setdefault("source_service", "archive")
    kw.setdefault("decision", "allowed")
    kw.setdefault("now", T0)
    return build_record(**kw)


async def publish(producer: AIOKafkaProducer, *records: audit_record_pb2.AuditRecord) -> None:
    for r in records:
        headers = cloudevents.headers_for(
            r, source_service=r.source_service, subject=r.action, event_id=r.record_id
        )
        await producer.send(
            topics.AUDIT_RECORDS, r.SerializeToString(), key=r.record_id.encode(), headers=headers
        )
    await producer.flush()


async def leaf_of(stub, record_id: str) -> pb.InclusionProof | None:
    """The inclusion proof of a record once a signed tree head covers it (None until then)."""
    try:
        return await stub.GetInclusionProof(pb.GetInclusionProofRequest(record_id=record_id))
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
            return None
        raise


async def wait_signed(stub, *records: audit_record_pb2.AuditRecord) -> list[pb.InclusionProof]:
    proofs = []
    for r in records:
        proofs.append(await apoll_until(lambda r=r: leaf_of(stub, r.record_id), timeout=20, what=r.record_id))
    return proofs


def domain_head(msg: pb.SignedTreeHead) -> SignedTreeHead:
    stamp = msg.timestamp.ToDatetime(tzinfo=UTC)
    return SignedTreeHead(TreeHead(msg.tree_size, bytes.fromhex(msg.root_hash), stamp), msg.signature)


async def public_key(stub):
    return load_public_key((await stub.GetPublicKey(pb.GetPublicKeyRequest())).public_key_pem)


async def rpc_error(awaitable) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        await awaitable
    return info.value


# --------------------------------------------------------------------------------------------- the log


async def test_a_published_record_is_appended_with_its_canonical_leaf(audit, producer) -> None:
    r = record(resources={"devices": ["cam-1"]}, footage=(T0 - timedelta(minutes=10), T0))
    await publish(producer, r)
    stub = audit.stub()
    (proof,) = await wait_signed(stub, r)
    assert proof.entry.leaf == record_leaf(r)
    assert proof.leaf_hash == leaf_hash(record_leaf(r)).hex()
    assert proof.entry.record == r


async def test_records_written_through_another_services_outbox_are_appended(
    audit, kafka_broker, tmp_path: Path
) -> None:
    folder = tmp_path / "producer-migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text("from vigil_kit.migrations import run_env\n\nrun_env()\n")
    (folder / "versions" / "0001_kit_tables.py").write_text(KIT_REVISION)
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'producer.db'}")
    await migrations.upgrade(engine, folder)
    relay = OutboxRelay(engine, bootstrap=kafka_broker.address, service="archive", poll_interval_s=0.05)
    relay_task = asyncio.create_task(relay.run())
    try:
        written = [record(resources={"devices": [f"cam-{i}"]}) for i in range(3)]
        async with db.session_factory(engine).begin() as session:
            for r in written:
                write_audit(session, r)
        proofs = await wait_signed(audit.stub(), *written)
    finally:
        relay.stop()
        await asyncio.wait_for(relay_task, 10)
        await engine.dispose()
    assert [p.entry.record for p in proofs] == written


async def test_a_duplicate_delivery_is_appended_once(fresh_kafka_broker, sqlite_url, issuer) -> None:
    await ensure_topics(fresh_kafka_broker.address)
    p = await create_producer(fresh_kafka_broker.address)
    try:
        first, second = record(), record()
        await publish(p, first, first, second, first)
        async with running_audit(sqlite_url, fresh_kafka_broker.address, issuer) as audit:
            stub = audit.stub()
            await wait_signed(stub, second)
            listed = await stub.ListRecords(pb.ListRecordsRequest(page_size=100))
    finally:
        await p.stop()
    assert [e.record.record_id for e in listed.entries] == [first.record_id, second.record_id]
    assert listed.log_size == 2


# -------------------------------------------------------------------------------------------- proofs


async def test_an_inclusion_proof_verifies_against_a_signed_tree_head(audit, producer) -> None:
    records = [record() for _ in range(7)]
    await publish(producer, *records)
    stub = audit.stub()
    proofs = await wait_signed(stub, *records)
    key = await public_key(stub)
    for proof in proofs:
        head = domain_head(proof.tree_head)
        assert verify(key, head.head, head.signature)
        assert verify_inclusion(
            bytes.fromhex(proof.leaf_hash),
            proof.leaf_index,
            proof.tree_size,
            [bytes.fromhex(h) for h in proof.hashes],
            head.root_hash,
        )


async def test_a_consistency_proof_links_two_signed_tree_heads(audit, producer) -> None:
    stub = audit.stub()
    early = [record() for _ in range(3)]
    await publish(producer, *early)
    (proof,) = await wait_signed(stub, early[-1])
    old = proof.tree_head
    late = [record() for _ in range(5)]
    await publish(producer, *late)
    (proof,) = await wait_signed(stub, late[-1])
    new = proof.tree_head
    consistency = await stub.GetConsistencyProof(pb.GetConsistencyProofRequest(old_size=old.tree_size))
    assert consistency.new_size >= new.tree_size >= old.tree_size + 5
    assert consistency.old_tree_head == old
    assert verify_consistency(
        old.tree_size,
        new.tree_size,
        bytes.fromhex(old.root_hash),
        bytes.fromhex(consistency.new_root_hash),
        [bytes.fromhex(h) for h in consistency.hashes],
    )


async def _export(stub) -> list[bytes]:
    """An export as `vigil audit export` writes it: every signed head first, then every entry they cover."""
    latest = await stub.GetSignedTreeHead(pb.GetSignedTreeHeadRequest())
    lines: list[bytes] = []
    token_ = ""
    while True:
        page = await stub.ListTreeHeads(
            pb.ListTreeHeadsRequest(page_size=50, page_token=token_, max_tree_size=latest.tree_size)
        )
        lines += [tree_head_line_bytes(domain_head(h)) for h in page.tree_heads if h.tree_size]
        if not (token_ := page.next_page_token):
            break
    while True:
        page = await stub.ListRecords(
            pb.ListRecordsRequest(
                page_size=40, page_token=token_, end_index=latest.tree_size, view=pb.ENTRY_VIEW_LEAF
            )
        )
        lines += [entry_line_bytes(e.leaf_index, bytes.fromhex(e.leaf_hash), e.leaf) for e in page.entries]
        if not (token_ := page.next_page_token):
            break
    return lines


async def test_an_export_from_list_records_and_tree_heads_verifies(audit, producer) -> None:
    records = [record(resources={"devices": [f"cam-{i}"]}) for i in range(120)]
    await publish(producer, *records)
    stub = audit.stub()
    await wait_signed(stub, records[-1])
    lines = await _export(stub)
    report = verify_lines(lines, await public_key(stub))
    assert report.ok, report.failure
    assert report.verified_size >= 120


# ------------------------------------------------------------------------------------------- queries


async def _query(stub, **filters) -> list[str]:
    ids, token_ = [], ""
    while True:
        page = await stub.QueryRecords(pb.QueryRecordsRequest(page_size=2, page_token=token_, **filters))
        ids += [e.record.record_id for e in page.entries]
        if not (token_ := page.next_page_token):
            return ids


def _window(start: datetime | None, end: datetime | None) -> time_range_pb2.TimeRange:
    w = time_range_pb2.TimeRange()
    if start is not None:
        w.start_time.FromDatetime(start)
    if end is not None:
        w.end_time.FromDatetime(end)
    return w


async def test_a_device_and_footage_window_query_returns_the_overlapping_records_in_log_order(
    audit, producer
) -> None:
    device = f"cam-q-{id(audit)}"
    before = record(
        resources={"devices": [device]}, footage=(T0 - timedelta(hours=2), T0 - timedelta(hours=1))
    )
    overlapping = record(
        resources={"devices": [device]}, footage=(T0 - timedelta(minutes=70), T0 - timedelta(minutes=50))
    )
    inside = record(
        resources={"devices": [device, "cam-other"]},
        footage=(T0 - timedelta(minutes=40), T0 - timedelta(minutes=30)),
    )
    no_footage = record(resources={"devices": [device]}, action="registry.device.update")
    other_device = record(resources={"devices": ["cam-other"]}, footage=(T0 - timedelta(minutes=40), T0))
    await publish(producer, before, overlapping, inside, no_footage, other_device)
    stub = audit.stub()
    await wait_signed(stub, other_device)
    found = await _query(stub, device_id=device, footage=_window(T0 - timedelta(hours=1), T0))
    assert found == [overlapping.record_id, inside.record_id]
    assert await _query(stub, device_id=device) == [
        r.record_id for r in (before, overlapping, inside, no_footage)
    ]


@pytest.mark.parametrize("by", ["principal_id", "grant_id", "action", "export_id"])
async def test_a_query_by_principal_grant_action_or_export_returns_exactly_those_records(
    audit, producer, by: str
) -> None:
    tag = f"{by}-{id(audit)}"
    other = Principal(
        id=f"u-{tag}", name="王芳", unit=UNIT, unit_kind="UNIT_KIND_ENTERPRISE", roles=frozenset()
    )
    matching = {
        "principal_id": [record(actor=other), record(actor=other, decision="denied", rule_id="ACC-2")],
        "grant_id": [record(grant_id=f"g-{tag}"), record(resources={"grants": [f"g-{tag}"]})],
        "action": [record(action=f"archive.{tag}"), record(action=f"archive.{tag}")],
        "export_id": [
            record(resources={"exports": [f"x-{tag}"]}),
            record(resources={"exports": [f"x-{tag}", "x-2"]}),
        ],
    }[by]
    value = {
        "principal_id": f"u-{tag}",
        "grant_id": f"g-{tag}",
        "action": f"archive.{tag}",
        "export_id": f"x-{tag}",
    }[by]
    noise = record()
    await publish(producer, matching[0], noise, matching[1])
    stub = audit.stub()
    await wait_signed(stub, matching[1])
    assert await _query(stub, **{by: value}) == [r.record_id for r in matching]


# -------------------------------------------------------------------------------- roles and arguments

READS = [
    ("GetSignedTreeHead", pb.GetSignedTreeHeadRequest()),
    ("ListTreeHeads", pb.ListTreeHeadsRequest()),
    ("GetInclusionProof", pb.GetInclusionProofRequest(leaf_index=0)),
    ("GetConsistencyProof", pb.GetConsistencyProofRequest()),
    ("ListRecords", pb.ListRecordsRequest()),
    ("QueryRecords", pb.QueryRecordsRequest(action="x")),
]


@pytest.mark.parametrize(("method", "request_"), READS, ids=[m for m, _ in READS])
async def test_reading_the_log_is_denied_to_roles_other_than_auditors_admins_and_officers(
    audit, method: str, request_
) -> None:
    stub = audit.stub("ROLE_UNIT_OPERATOR", "ROLE_DEPARTMENT_ANALYST", "ROLE_PARTNER", "ROLE_SERVICE")
    err = await rpc_error(getattr(stub, method)(request_))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("role", ["ROLE_AUDITOR", "ROLE_PLATFORM_ADMIN", "ROLE_PUBLIC_SECURITY_OFFICER"])
async def test_auditors_admins_and_officers_read_the_signed_tree_head(audit, role: str) -> None:
    head = await apoll_until(
        lambda: audit.stub(role).GetSignedTreeHead(pb.GetSignedTreeHeadRequest()), timeout=10
    )
    assert len(head.signature) == 64


async def test_any_authenticated_caller_reads_the_public_key(audit) -> None:
    key = await audit.stub("ROLE_PARTNER").GetPublicKey(pb.GetPublicKeyRequest())
    assert key.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----") and len(key.key_id) == 16


async def test_a_tree_size_beyond_the_signed_log_is_out_of_range_naming_the_field(audit) -> None:
    stub = audit.stub()
    err = await rpc_error(stub.GetConsistencyProof(pb.GetConsistencyProofRequest(old_size=0, new_size=10**9)))
    assert err.code() == grpc.StatusCode.OUT_OF_RANGE
    assert from_rpc_error(err).field == "new_size"


async def test_an_unknown_record_is_not_found(audit) -> None:
    err = await rpc_error(
        audit.stub().GetInclusionProof(pb.GetInclusionProofRequest(record_id="no-such-record"))
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_a_query_without_filters_is_an_invalid_argument(audit) -> None:
    err = await rpc_error(audit.stub().QueryRecords(pb.QueryRecordsRequest()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert from_rpc_error(err).field == "device_id"


async def test_a_page_token_of_other_filters_is_refused(audit, producer) -> None:
    records = [record(action="archive.paged") for _ in range(3)]
    await publish(producer, *records)
    stub = audit.stub()
    await wait_signed(stub, records[-1])
    page = await stub.QueryRecords(pb.QueryRecordsRequest(action="archive.paged", page_size=1))
    err = await rpc_error(
        stub.QueryRecords(pb.QueryRecordsRequest(action="archive.other", page_token=page.next_page_token))
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert from_rpc_error(err).field == "page_token"
