"""`vigil audit` against a real audit service: export → verify, tampering caught, live verify, prove, query."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vigil.audit.v1 import audit_record_pb2
from vigil.audit.v1 import audit_service_pb2 as pb
from vigil.audit.v1 import audit_service_pb2_grpc as pb_grpc
from vigil_cli.audit_cmds import CONTEXT_PUBLIC_KEY
from vigil_cli.context import (
    BrokerEndpoint,
    Context,
    PrincipalEntry,
    S3Endpoint,
    ServiceEndpoint,
    write_context,
)
from vigil_cli.identity import load_directory
from vigil_kit import embedded, topics
from vigil_kit.audit import build_record
from vigil_kit.auth import Principal, TokenIssuer
from vigil_kit.cloudevents import headers_for
from vigil_kit.grpc_client import make_channel
from vigil_kit.kafka import create_producer, ensure_topics
from vigil_testing.poll import poll_until
from vigil_testing.services import ServiceProcess

VIGIL = str(Path(sys.executable).parent / "vigil")
COUNT = 24
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def _actor(i: int) -> Principal:
    return Principal(
        id=f"u-officer-{i % 2}",
        name="赵敏",
        unit="11330100MB0000001X",
        unit_kind="UNIT_KIND_PUBLIC_SECURITY_ORGAN",
        roles=frozenset({"ROLE_PUBLIC_SECURITY_OFFICER"}),
    )


def _records() -> list[audit_record_pb2.AuditRecord]:
    out = []
    for i in range(COUNT):
        at = START + timedelta(minutes=i)
        out.append(
            build_record(
                actor=_actor(i),
                action="archive.playback.manifest" if i % 3 else "registry.device.register",
                source_service="archive",
                decision="allowed",
                resources={"device_ids": [f"cam-{i % 4}"], "grant_ids": [f"g-{i % 2}"]},
                purpose="PURPOSE_TRAFFIC_MANAGEMENT",
                footage=(at - timedelta(minutes=5), at),
                grant_id=f"g-{i % 2}",
                now=at,
            )
        )
    return out


async def _publish(bootstrap: str, records: list[audit_record_pb2.AuditRecord]) -> None:
    """As a service's outbox relay publishes them: key and CloudEvents id = the record id."""
    await ensure_topics(bootstrap)
    producer = await create_producer(bootstrap)
    try:
        for record in records:
            await producer.send_and_wait(
                topics.AUDIT_RECORDS,
                record.SerializeToString(),
                key=record.record_id.encode(),
                headers=headers_for(
                    record, source_service="archive", subject=record.record_id, event_id=record.record_id
                ),
            )
    finally:
        await producer.stop()


async def _public_key_pem(address: str, token: str) -> str:
    async with make_channel(address, token=token) as channel:
        return (await pb_grpc.AuditServiceStub(channel).GetPublicKey(pb.GetPublicKeyRequest())).public_key_pem


@dataclass
class AuditStack:
    home: Path
    records: list[audit_record_pb2.AuditRecord]
    public_key_pem: str

    def cli(self, *args: str, as_: str = "auditor") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "VIGIL_HOME": str(self.home), "VIGIL_AS": as_}
        return subprocess.run(
            [VIGIL, "audit", *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )


def _write_context(home: Path, address: str, issuer: TokenIssuer, key_pem: str) -> None:
    directory = load_directory()
    principals = {}
    for name in directory.names():
        claims = directory.principal(name).claims()
        token = issuer.mint(
            sub=claims["sub"],
            name=claims["name"],
            unit=claims["unit"],
            unit_kind=claims["unit_kind"],
            roles=claims["roles"],
        )
        principals[name] = PrincipalEntry(token=token, claims=claims, expires_at="")
    write_context(
        Context(
            pid=os.getpid(),
            started_at=datetime.now(UTC).isoformat(),
            data_dir=str(home / "data"),
            base_port=0,
            issuer="vigil",
            issuer_public_key_pem=issuer.public_key_pem.decode(),
            services=["audit"],
            endpoints={"audit": ServiceEndpoint(grpc=address, metrics="")},
            broker=BrokerEndpoint(bootstrap="127.0.0.1:1"),
            s3=S3Endpoint(endpoint="127.0.0.1:2", access_key="-", secret_key="-"),
            principals=principals,
            extra={CONTEXT_PUBLIC_KEY: key_pem},
        ),
        home / "context.json",
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, issuer: TokenIssuer) -> Iterator[AuditStack]:
    """An audit service on a broker of its own (so no other test's records land in its log), fed COUNT
    records, with a context file naming it and the log's public key, as `vigil up` writes one."""
    root = tmp_path_factory.mktemp("cli-audit")
    with embedded.tansu(log_path=root / "tansu.log") as broker:
        service = ServiceProcess(
            "audit",
            workdir=root / "audit",
            kafka_bootstrap=broker.address,
            public_keys_pem=[issuer.public_key_pem.decode()],
        )
        with service.start():
            records = _records()
            asyncio.run(_publish(broker.address, records))
            auditor = load_directory().principal("auditor").claims()
            token = issuer.mint(
                sub=auditor["sub"],
                name=auditor["name"],
                unit=auditor["unit"],
                unit_kind=auditor["unit_kind"],
                roles=auditor["roles"],
            )
            key_pem = asyncio.run(_public_key_pem(service.address, token))
            home = root / "home"
            _write_context(home, service.address, issuer, key_pem)
            stack = AuditStack(home, records, key_pem)

            def signed_all() -> bool:
                result = stack.cli("verify", "--json")
                return result.returncode == 0 and json.loads(result.stdout)["verified_size"] == COUNT

            poll_until(
                signed_all, timeout=60, interval=0.5, what=f"a signed tree head covering {COUNT} records"
            )
            yield stack


@pytest.fixture
def export(stack: AuditStack, tmp_path: Path) -> Path:
    out = tmp_path / "log.jsonl"
    result = stack.cli("export", "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _entry_position(lines: list[bytes], leaf: int) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(b'{"leaf_index":%d,' % leaf))


def test_an_export_of_the_live_log_verifies(stack: AuditStack, export: Path) -> None:
    result = stack.cli("verify", str(export))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: {COUNT} records verified")


def test_the_export_holds_every_published_record_in_order_after_the_tree_heads(export: Path, stack) -> None:
    objs = [json.loads(line) for line in _lines(export)]
    heads = [o for o in objs if "tree_head" in o]
    entries = [o for o in objs if "leaf_index" in o]
    assert objs[: len(heads)] == heads
    assert [e["leaf_index"] for e in entries] == list(range(COUNT))
    assert [e["record"]["record_id"] for e in entries] == [r.record_id for r in stack.records]


def test_an_edited_record_in_the_export_fails_verification_naming_its_leaf(stack, export: Path) -> None:
    lines = _lines(export)
    at = _entry_position(lines, 9)
    obj = json.loads(lines[at])
    obj["record"]["actor"]["name"] = "某人"
    lines[at] = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    export.write_bytes(b"\n".join(lines) + b"\n")
    result = stack.cli("verify", str(export))
    assert result.returncode == 1
    assert "leaf 9: " in result.stderr and "edited" in result.stderr


def test_a_record_deleted_from_the_export_fails_verification_naming_it(stack, export: Path) -> None:
    lines = _lines(export)
    del lines[_entry_position(lines, 15)]
    export.write_bytes(b"\n".join(lines) + b"\n")
    result = stack.cli("verify", str(export), "--json")
    assert result.returncode == 1
    failure = json.loads(result.stdout)["failure"]
    assert (failure["kind"], failure["leaf_index"]) == ("missing_leaf", 15)


def test_the_export_fails_verification_under_another_key(stack, export: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    result = stack.cli("verify", str(export), "--public-key", str(other))
    assert result.returncode == 1
    assert "not signed by this key" in result.stderr


def test_the_live_log_verifies(stack: AuditStack) -> None:
    result = stack.cli("verify")
    assert result.returncode == 0, result.stderr
    assert f"OK: {COUNT} records verified (live log); tree size {COUNT}" in result.stdout


def test_prove_checks_a_records_inclusion_against_the_latest_signed_head(stack: AuditStack) -> None:
    record = stack.records[5]
    result = stack.cli("prove", record.record_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: record {record.record_id} is leaf 5 ")


def test_query_by_device_and_footage_window_returns_those_records(stack: AuditStack) -> None:
    result = stack.cli(
        "query",
        "--device",
        "cam-2",
        "--from",
        "2025-03-01T08:00:00Z",
        "--to",
        "2025-03-01T08:12:00Z",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    found = [json.loads(line)["record_id"] for line in result.stdout.splitlines()]
    # cam-2 is named by records 2, 6, 10, ...; their footage ends at minute i, starts 5 minutes before.
    expected = [r.record_id for i, r in enumerate(stack.records) if i % 4 == 2 and i - 5 < 12]
    assert found == expected


def test_query_by_principal_prints_a_table_of_their_records(stack: AuditStack) -> None:
    result = stack.cli("query", "--principal", "u-officer-1")
    assert result.returncode == 0, result.stderr
    assert f"audit records ({COUNT // 2})" in result.stdout
    assert stack.records[1].record_id in result.stdout and stack.records[0].record_id not in result.stdout


def test_a_principal_without_an_auditing_role_cannot_query(stack: AuditStack) -> None:
    result = stack.cli("query", "--grant", "g-1", as_="analyst")
    assert result.returncode == 1
    assert result.stderr.startswith("PERMISSION_DENIED")
