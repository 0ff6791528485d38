"""`vigil audit export / verify / prove / query` against a stand-in AuditService built on the log's domain."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from vigil.audit.v1 import audit_service_pb2 as pb
from vigil.audit.v1 import audit_service_pb2_grpc as pb_grpc
from vigil_audit.codec import record_from_leaf
from vigil_audit.domain.leaf import leaf_bytes
from vigil_audit.domain.sth import TreeHead, key_id, sign_tree_head
from vigil_cli.audit_cmds import CONTEXT_PUBLIC_KEY
from vigil_cli.context import (
    BrokerEndpoint,
    Context,
    PrincipalEntry,
    S3Endpoint,
    ServiceEndpoint,
    write_context,
)
from vigil_cli.main import app
from vigil_kit.merkle import InMemoryNodeStore, inclusion_proof, leaf_hash

runner = CliRunner()

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
COUNT = 30
HEAD_SIZES = (8, 16, 25, 30)
PAGE = 7  # the stand-in serves short pages, so the CLI must follow page tokens


def _pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _record_id(i: int) -> str:
    return f"0190f5c2-7a00-7000-8000-{i:012x}"


def _record(i: int) -> dict:
    return {
        "record_id": _record_id(i),
        "time": START + timedelta(seconds=i),
        "source_service": "archive",
        "actor": {
            "id": f"u-{i % 3}",
            "name": "陈静",
            "unit": "11330100MB0000001X",
            "roles": ["ROLE_AUDITOR"],
        },
        "action": "archive.playback.manifest" if i % 2 else "registry.device.register",
        "resources": {"device_ids": [f"cam-{i % 5}"]},
        "decision": "DECISION_ALLOWED",
    }


def _ts(value: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


@dataclass
class FakeLog(pb_grpc.AuditServiceServicer):
    """The AuditService RPCs the CLI uses, over an in-memory tree; `leaves` may be tampered with by tests."""

    leaves: list[bytes] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    heads: list = field(default_factory=list)
    store: InMemoryNodeStore = field(default_factory=InMemoryNodeStore)
    corrupt_proofs: bool = False
    queries: list = field(default_factory=list)

    def __post_init__(self) -> None:
        for i in range(COUNT):
            leaf = leaf_bytes(_record(i))
            self.leaves.append(leaf)
            self.hashes.append(leaf_hash(leaf))
            self.store.append([self.hashes[-1]])
            if i + 1 in HEAD_SIZES:
                head = TreeHead(
                    i + 1, self.store.frontier.root(), START + timedelta(seconds=i, milliseconds=500)
                )
                self.heads.append(sign_tree_head(KEY, head))

    def _head(self, signed) -> pb.SignedTreeHead:
        return pb.SignedTreeHead(
            tree_size=signed.tree_size,
            root_hash=signed.root_hash.hex(),
            timestamp=_ts(signed.head.timestamp),
            signature=signed.signature,
            key_id=key_id(KEY.public_key()),
        )

    def _entry(self, i: int, view: int) -> pb.LogEntry:
        entry = pb.LogEntry(leaf_index=i, leaf_hash=self.hashes[i].hex(), leaf=self.leaves[i])
        if view != pb.ENTRY_VIEW_LEAF:
            entry.record.CopyFrom(record_from_leaf(self.leaves[i]))
        return entry

    def GetPublicKey(self, request, context):
        return pb.PublicKey(public_key_pem=_pem(KEY), key_id=key_id(KEY.public_key()))

    def GetSignedTreeHead(self, request, context):
        return self._head(self.heads[-1])

    def ListTreeHeads(self, request, context):
        start = int(request.page_token or 0)
        heads = [h for h in self.heads if not request.max_tree_size or h.tree_size <= request.max_tree_size]
        page = heads[start : start + min(request.page_size or 100, PAGE)]
        more = start + len(page) < len(heads)
        return pb.ListTreeHeadsResponse(
            tree_heads=[self._head(h) for h in page], next_page_token=str(start + len(page)) if more else ""
        )

    def ListRecords(self, request, context):
        start = int(request.page_token) if request.page_token else request.start_index
        end = min(request.end_index or len(self.leaves), len(self.leaves))
        stop = min(end, start + min(request.page_size or 100, PAGE))
        return pb.ListRecordsResponse(
            entries=[self._entry(i, request.view) for i in range(start, stop)],
            next_page_token=str(stop) if stop < end else "",
            log_size=len(self.leaves),
        )

    def GetInclusionProof(self, request, context):
        index = next(i for i in range(COUNT) if _record_id(i) == request.record_id)
        head = self.heads[-1]
        path = inclusion_proof(self.store, index, head.tree_size)
        if self.corrupt_proofs:
            path[0] = bytes(32)
        return pb.InclusionProof(
            leaf_index=index,
            leaf_hash=self.hashes[index].hex(),
            tree_size=head.tree_size,
            root_hash=head.root_hash.hex(),
            hashes=[h.hex() for h in path],
            tree_head=self._head(head),
            entry=self._entry(index, pb.ENTRY_VIEW_FULL),
        )

    def QueryRecords(self, request, context):
        self.queries.append(request)
        found = [
            i
            for i in range(COUNT)
            if (not request.device_id or request.device_id in _record(i)["resources"]["device_ids"])
            and (not request.principal_id or request.principal_id == _record(i)["actor"]["id"])
        ]
        start = int(request.page_token or 0)
        page = found[start : start + min(request.page_size or 100, PAGE)]
        more = start + len(page) < len(found)
        return pb.QueryRecordsResponse(
            entries=[self._entry(i, request.view) for i in page],
            next_page_token=str(start + len(page)) if more else "",
        )


@pytest.fixture
def fake() -> Iterator[tuple[FakeLog, str]]:
    servicer = FakeLog()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_AuditServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def _write_context(home: Path, address: str, *, key_pem: str | None) -> None:
    write_context(
        Context(
            pid=os.getpid(),
            started_at="2025-03-01T08:00:00Z",
            data_dir=str(home / "data"),
            base_port=50050,
            issuer="vigil",
            issuer_public_key_pem="",
            services=["audit"],
            endpoints={"audit": ServiceEndpoint(grpc=address, metrics="")},
            broker=BrokerEndpoint(bootstrap="127.0.0.1:1"),
            s3=S3Endpoint(endpoint="127.0.0.1:2", access_key="k", secret_key="s"),
            principals={"admin": PrincipalEntry(token="dev-token", claims={}, expires_at="")},
            extra={CONTEXT_PUBLIC_KEY: key_pem} if key_pem else {},
        ),
        home / "context.json",
    )


@pytest.fixture
def log(fake, tmp_path, monkeypatch) -> FakeLog:
    home = tmp_path / "home"
    monkeypatch.setenv("VIGIL_HOME", str(home))
    monkeypatch.delenv("VIGIL_AS", raising=False)
    servicer, address = fake
    _write_context(home, address, key_pem=_pem(KEY))
    return servicer


def _cli(*args: str):
    return runner.invoke(app, ["audit", *args])


def test_export_writes_every_tree_head_then_every_entry_in_leaf_order(log, tmp_path) -> None:
    out = tmp_path / "log.jsonl"
    result = _cli("export", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert [line["tree_head"]["tree_size"] for line in lines[: len(HEAD_SIZES)]] == list(HEAD_SIZES)
    assert [line["leaf_index"] for line in lines[len(HEAD_SIZES) :]] == list(range(COUNT))
    assert lines[-1]["record"]["record_id"] == _record_id(COUNT - 1)


def test_an_export_verifies_with_the_context_files_key(log, tmp_path) -> None:
    out = tmp_path / "log.jsonl"
    assert _cli("export", "-o", str(out)).exit_code == 0
    result = _cli("verify", str(out))
    assert result.exit_code == 0, result.stderr
    assert f"OK: {COUNT} records verified" in result.stdout


def test_an_export_of_a_tampered_service_fails_verification_at_the_tampered_leaf(log, tmp_path) -> None:
    log.leaves[11] = log.leaves[11].replace(b"cam-1", b"cam-9")
    out = tmp_path / "log.jsonl"
    assert _cli("export", "-o", str(out)).exit_code == 0
    result = _cli("verify", str(out), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failure"]["leaf_index"] == 11


def test_the_live_log_verifies_with_a_summary(log) -> None:
    result = _cli("verify")
    assert result.exit_code == 0, result.stderr
    assert f"OK: {COUNT} records verified (live log); tree size {COUNT}" in result.stdout


def test_the_live_log_with_an_edited_leaf_fails_naming_that_leaf(log) -> None:
    log.leaves[12] = log.leaves[12].replace(b"registry.device.register", b"registry.device.delete")
    result = _cli("verify")
    assert result.exit_code == 1
    assert re.search(r"leaf 12: .*edited", result.stderr)


def test_the_live_log_with_a_leaf_and_its_hash_rewritten_fails_at_the_covering_head(log) -> None:
    leaf = log.leaves[20].replace(b"cam-0", b"cam-4")
    log.leaves[20], log.hashes[20] = leaf, leaf_hash(leaf)
    result = _cli("verify", "--json")
    assert result.exit_code == 1
    failure = json.loads(result.stdout)["failure"]
    assert (failure["kind"], failure["leaf_index"], failure["tree_size"]) == ("root_mismatch", 16, 25)


def test_the_live_log_fails_under_the_wrong_public_key(log, tmp_path) -> None:
    wrong = tmp_path / "wrong.pem"
    wrong.write_text(_pem(OTHER_KEY))
    result = _cli("verify", "--public-key", str(wrong))
    assert result.exit_code == 1
    assert "not signed by this key" in result.stderr


def test_without_a_key_in_the_context_the_services_key_is_used_and_said(fake, tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("VIGIL_HOME", str(home))
    _write_context(home, fake[1], key_pem=None)
    result = _cli("verify")
    assert result.exit_code == 0, result.stderr
    assert "key the audit service reports" in result.stderr


def test_prove_checks_the_inclusion_proof_against_the_signed_head(log) -> None:
    result = _cli("prove", _record_id(17))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"OK: record {_record_id(17)} is leaf 17 ")
    assert f"size {COUNT}" in result.stdout


def test_prove_fails_on_an_audit_path_that_does_not_lead_to_the_root(log) -> None:
    log.corrupt_proofs = True
    result = _cli("prove", _record_id(4))
    assert result.exit_code == 1
    assert "audit path does not lead from leaf 4" in result.stderr


def test_prove_fails_when_the_head_is_not_signed_by_the_given_key(log, tmp_path) -> None:
    wrong = tmp_path / "wrong.pem"
    wrong.write_text(_pem(OTHER_KEY))
    result = _cli("prove", _record_id(4), "--public-key", str(wrong))
    assert result.exit_code == 1
    assert "not signed by this key" in result.stderr


def test_prove_fails_when_the_proven_leaf_is_another_record(log) -> None:
    log.leaves[6] = log.leaves[7]
    log.hashes[6] = log.hashes[7]
    result = _cli("prove", _record_id(6))
    assert result.exit_code == 1
    assert f"is record '{_record_id(7)}'" in result.stderr


def test_query_json_prints_one_canonical_record_per_line_across_pages(log) -> None:
    result = _cli("query", "--device", "cam-2", "--json")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["record_id"] for r in records] == [_record_id(i) for i in range(COUNT) if i % 5 == 2]
    assert records[0]["resources"] == {"device_ids": ["cam-2"]}
    assert records[0]["decision"] == "DECISION_ALLOWED"


def test_query_sends_the_device_and_footage_window(log) -> None:
    result = _cli(
        "query", "--device", "cam-3", "--from", "2025-03-01T08:00:00Z", "--to", "2025-03-01T09:00:00+08:00"
    )
    assert result.exit_code == 0, result.stderr
    sent = log.queries[0]
    assert sent.device_id == "cam-3"
    assert sent.footage.start_time.ToDatetime(tzinfo=UTC) == START
    assert sent.footage.end_time.ToDatetime(tzinfo=UTC) == datetime(2025, 3, 1, 1, 0, tzinfo=UTC)


def test_query_by_principal_prints_a_table_for_people(log) -> None:
    result = _cli("query", "--principal", "u-1", "--limit", "3")
    assert result.exit_code == 0, result.stderr
    assert "audit records (3)" in result.stdout
    assert _record_id(1) in result.stdout and _record_id(7) in result.stdout
    assert _record_id(10) not in result.stdout
