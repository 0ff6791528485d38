"""`vigil audit verify FILE`: an untouched export passes; every kind of tampering fails naming the first bad leaf."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from vigil_audit.domain.leaf import leaf_bytes
from vigil_audit.domain.sth import TreeHead, sign_tree_head
from vigil_audit.domain.verify import entry_line_bytes, tree_head_line_bytes
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
from vigil_kit.merkle import Frontier, leaf_hash

runner = CliRunner()

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
COUNT = 40
HEAD_SIZES = (10, 20, 33, 40)


def _record(i: int) -> dict:
    return {
        "record_id": f"0190f5c2-7a00-7000-8000-{i:012x}",
        "time": START + timedelta(seconds=i),
        "source_service": "archive",
        "actor": {
            "id": f"u-{i % 3}",
            "name": "王芳",
            "unit": "11330100MB0000001X",
            "roles": ["ROLE_AUDITOR"],
        },
        "action": "archive.playback.manifest",
        "resources": {"device_ids": [f"cam-{i}"]},
        "footage": {"start_time": START - timedelta(minutes=10), "end_time": START},
        "decision": "DECISION_ALLOWED",
        "attributes": {"segments": str(i)},
    }


def _export_lines() -> tuple[list[bytes], list[bytes]]:
    """(tree head lines, entry lines) exactly as `vigil audit export` writes them."""
    frontier, heads, entries = Frontier(), [], []
    for i in range(COUNT):
        leaf = leaf_bytes(_record(i))
        digest = leaf_hash(leaf)
        frontier.append(digest)
        entries.append(entry_line_bytes(i, digest, leaf))
        if i + 1 in HEAD_SIZES:
            head = TreeHead(i + 1, frontier.root(), START + timedelta(seconds=i, milliseconds=250))
            heads.append(tree_head_line_bytes(sign_tree_head(KEY, head)))
    return heads, entries


HEADS, ENTRIES = _export_lines()


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VIGIL_AS", raising=False)
    return tmp_path / "home"


@pytest.fixture
def key_file(tmp_path) -> Path:
    path = tmp_path / "log-key.pem"
    path.write_bytes(_pem(KEY))
    return path


def _write(tmp_path: Path, lines: list[bytes], name: str = "log.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _verify(path: Path, key_file: Path, *extra: str):
    return runner.invoke(app, ["audit", "verify", str(path), "--public-key", str(key_file), *extra])


def _verify_json(path: Path, key_file: Path) -> tuple[int, dict]:
    result = _verify(path, key_file, "--json")
    return result.exit_code, json.loads(result.stdout)


def _edit(line: bytes, change: Callable[[dict], None]) -> bytes:
    obj = json.loads(line)
    change(obj["record"])
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _set(field: str, value: object) -> Callable[[dict], None]:
    def change(record: dict) -> None:
        record[field] = value

    return change


def _swap(entries: list[bytes], a: int, b: int) -> list[bytes]:
    out = list(entries)
    out[a], out[b] = out[b], out[a]
    return out


def test_an_untouched_export_verifies_and_prints_a_summary(tmp_path, key_file) -> None:
    result = _verify(_write(tmp_path, HEADS + ENTRIES), key_file)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"OK: {COUNT} records verified")
    assert f"tree size {COUNT}" in result.stdout and "4 signed tree heads" in result.stdout


@pytest.mark.parametrize(
    ("change", "leaf"),
    [
        (_set("action", "archive.export.create"), 17),
        (_set("reason", "added later"), 0),
        (lambda r: r["actor"].__setitem__("name", "李四"), 39),
        (lambda r: r["resources"]["device_ids"].append("cam-999"), 25),
        (lambda r: r["footage"].__setitem__("end_time", "2025-03-01T09:00:00.000000000Z"), 3),
    ],
    ids=["action", "added-field", "actor-name", "device", "footage"],
)
def test_editing_any_field_of_a_record_fails_at_that_leaf(tmp_path, key_file, change, leaf) -> None:
    entries = list(ENTRIES)
    entries[leaf] = _edit(entries[leaf], change)
    code, report = _verify_json(_write(tmp_path, HEADS + entries), key_file)
    assert code == 1
    assert report["failure"]["kind"] == "leaf_hash_mismatch"
    assert report["failure"]["leaf_index"] == leaf


def test_a_failure_is_one_line_on_stderr_naming_the_leaf_and_exits_1(tmp_path, key_file) -> None:
    entries = list(ENTRIES)
    entries[12] = _edit(entries[12], _set("action", "registry.device.delete"))
    result = _verify(_write(tmp_path, HEADS + entries), key_file)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert re.search(r"FAILED .*: leaf 12: .*edited", result.stderr)


def test_a_deleted_record_fails_naming_the_missing_leaf(tmp_path, key_file) -> None:
    entries = ENTRIES[:21] + ENTRIES[22:]
    code, report = _verify_json(_write(tmp_path, HEADS + entries), key_file)
    assert code == 1
    assert (report["failure"]["kind"], report["failure"]["leaf_index"]) == ("missing_leaf", 21)


def test_two_reordered_records_fail_at_the_first_displaced_leaf(tmp_path, key_file) -> None:
    code, report = _verify_json(_write(tmp_path, HEADS + _swap(ENTRIES, 8, 30)), key_file)
    assert code == 1
    assert (report["failure"]["kind"], report["failure"]["leaf_index"]) == ("out_of_order", 8)


def test_two_adjacent_records_swapped_fail_at_the_first_of_them(tmp_path, key_file) -> None:
    code, report = _verify_json(_write(tmp_path, HEADS + _swap(ENTRIES, 5, 6)), key_file)
    assert code == 1
    assert (report["failure"]["kind"], report["failure"]["leaf_index"]) == ("out_of_order", 5)


def test_a_file_truncated_at_a_line_end_fails_naming_the_first_leaf_cut_off(tmp_path, key_file) -> None:
    code, report = _verify_json(_write(tmp_path, HEADS + ENTRIES[:36]), key_file)
    assert code == 1
    assert (report["failure"]["kind"], report["failure"]["leaf_index"]) == ("truncated", 36)


def test_a_file_truncated_mid_line_fails_naming_the_leaf_cut_in_half(tmp_path, key_file) -> None:
    path = _write(tmp_path, HEADS + ENTRIES)
    whole = path.read_bytes()
    cut = whole.index(ENTRIES[30]) + len(ENTRIES[30]) // 2
    path.write_bytes(whole[:cut])
    code, report = _verify_json(path, key_file)
    assert code == 1
    assert report["failure"]["leaf_index"] == 30


def test_the_wrong_public_key_fails_on_the_first_tree_head(tmp_path) -> None:
    wrong = tmp_path / "other.pem"
    wrong.write_bytes(_pem(OTHER_KEY))
    code, report = _verify_json(_write(tmp_path, HEADS + ENTRIES), wrong)
    assert code == 1
    assert report["failure"]["kind"] == "bad_signature"
    assert report["failure"]["tree_size"] == HEAD_SIZES[0]


def test_a_record_rewritten_with_its_leaf_hash_fails_at_the_covering_tree_head(tmp_path, key_file) -> None:
    leaf = leaf_bytes({**_record(24), "action": "archive.export.create"})
    entries = list(ENTRIES)
    entries[24] = entry_line_bytes(24, leaf_hash(leaf), leaf)
    code, report = _verify_json(_write(tmp_path, HEADS + entries), key_file)
    assert code == 1
    # The heads pin the change to the interval after the last verified head (size 20) up to size 33.
    assert (report["failure"]["kind"], report["failure"]["leaf_index"]) == ("root_mismatch", 20)


def test_tree_heads_kept_beside_the_export_are_read_first(tmp_path, key_file) -> None:
    heads = _write(tmp_path, HEADS, "heads.jsonl")
    result = _verify(_write(tmp_path, ENTRIES), key_file, "--tree-heads", str(heads))
    assert result.exit_code == 0, result.stderr
    assert "4 signed tree heads" in result.stdout


def test_an_export_without_tree_heads_proves_nothing(tmp_path, key_file) -> None:
    code, report = _verify_json(_write(tmp_path, ENTRIES), key_file)
    assert code == 1
    assert report["failure"]["kind"] == "no_tree_head"


def _context(home: Path, extra: dict) -> None:
    write_context(
        Context(
            pid=os.getpid(),
            started_at="2025-03-01T08:00:00Z",
            data_dir=str(home / "data"),
            base_port=50050,
            issuer="vigil",
            issuer_public_key_pem="",
            services=["audit"],
            endpoints={"audit": ServiceEndpoint(grpc="127.0.0.1:1", metrics="")},
            broker=BrokerEndpoint(bootstrap="127.0.0.1:2"),
            s3=S3Endpoint(endpoint="127.0.0.1:3", access_key="k", secret_key="s"),
            principals={"admin": PrincipalEntry(token="t", claims={}, expires_at="")},
            extra=extra,
        ),
        home / "context.json",
    )


def test_without_public_key_the_context_files_key_is_used(tmp_path, home) -> None:
    _context(home, {CONTEXT_PUBLIC_KEY: _pem(OTHER_KEY).decode()})
    result = runner.invoke(app, ["audit", "verify", str(_write(tmp_path, HEADS + ENTRIES)), "--json"])
    # The context names another key than the one that signed: so it was that key that was used.
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failure"]["kind"] == "bad_signature"


def test_without_public_key_or_stack_verify_exits_1_asking_for_one(tmp_path) -> None:
    result = runner.invoke(app, ["audit", "verify", str(_write(tmp_path, HEADS + ENTRIES))])
    assert result.exit_code == 1
    assert "--public-key" in result.stderr
