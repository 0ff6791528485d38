"""The context file: private (0600), atomic, round-trips, and knows when it is stale."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from vigil_cli.context import (
    BrokerEndpoint,
    Context,
    ContextError,
    PrincipalEntry,
    S3Endpoint,
    ServiceEndpoint,
    load_context,
    remove_context,
    write_context,
)


def make_context(pid: int | None = None) -> Context:
    return Context(
        pid=os.getpid() if pid is None else pid,
        started_at="2025-03-01T08:00:00+00:00",
        data_dir="/var/lib/vigil",
        base_port=50050,
        issuer="vigil",
        issuer_public_key_pem="-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
        services=["registry"],
        endpoints={"registry": ServiceEndpoint("127.0.0.1:50051", "http://127.0.0.1:50061/metrics", 42)},
        broker=BrokerEndpoint("127.0.0.1:50070", 43),
        s3=S3Endpoint("127.0.0.1:50071", "vigil", "s3-secret", pid=44),
        principals={
            "admin": PrincipalEntry("header.claims.sig", {"sub": "user:admin"}, "2025-03-01T20:00:00+00:00")
        },
    )


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_context_file_is_written_with_mode_0600(tmp_path) -> None:
    path = write_context(make_context(), tmp_path / "context.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_context_file_stays_0600_under_a_permissive_umask(tmp_path) -> None:
    old = os.umask(0)
    try:
        path = write_context(make_context(), tmp_path / "context.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_context_round_trips_through_the_file(tmp_path) -> None:
    ctx = make_context()
    path = write_context(ctx, tmp_path / "context.json")
    assert load_context(path) == ctx


def test_rewriting_the_context_leaves_no_temporary_file(tmp_path) -> None:
    write_context(make_context(), tmp_path / "context.json")
    write_context(make_context(), tmp_path / "context.json")
    assert [p.name for p in tmp_path.iterdir()] == ["context.json"]


def test_missing_context_says_to_start_vigil_up(tmp_path) -> None:
    with pytest.raises(ContextError, match="vigil up"):
        load_context(tmp_path / "context.json")


def test_context_of_a_dead_vigil_up_is_stale(tmp_path) -> None:
    path = write_context(make_context(pid=dead_pid()), tmp_path / "context.json")
    with pytest.raises(ContextError, match="stale"):
        load_context(path)


def test_remove_context_keeps_a_file_written_by_another_vigil_up(tmp_path) -> None:
    path = write_context(make_context(), tmp_path / "context.json")
    remove_context(path, pid=os.getpid() + 1)
    assert path.exists()
    remove_context(path, pid=os.getpid())
    assert not path.exists()
