"""All five services run as real processes on the real broker and S3: healthy, reflective, measured,
authenticated, and stopped cleanly by SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from vigil.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from vigil_kit import embedded
from vigil_kit.auth import TokenIssuer, generate_keypair
from vigil_testing.services import S3_SERVICES, SERVICES, ServiceProcess, start_together, stop_together

GRPCURL = Path(sys.executable).parent / "grpcurl"


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_broker: embedded.EmbeddedProcess,
    s3_server: embedded.EmbeddedProcess,
    issuer: TokenIssuer,
) -> Iterator[dict[str, ServiceProcess]]:
    """The five services, started together once for this module."""
    root = tmp_path_factory.mktemp("services")
    services = {
        name: ServiceProcess(
            name,
            workdir=root / name,
            kafka_bootstrap=kafka_broker.address,
            s3_endpoint=s3_server.address if name in S3_SERVICES else None,
            public_keys_pem=[issuer.public_key_pem.decode()],
        )
        for name in SERVICES
    }
    try:
        start_together(*services.values())
        yield services
    finally:
        stop_together(*services.values())


def mint(issuer: TokenIssuer, **overrides: object) -> str:
    claims: dict = {
        "sub": "user:ann",
        "name": "Ann Auditor",
        "unit": "11310000MB0000000X",
        "unit_kind": "UNIT_KIND_PUBLIC_SECURITY_ORGAN",
        "roles": ["ROLE_AUDITOR"],
    }
    claims.update(overrides)
    return issuer.mint(**claims)


def whoami(address: str, token: str | None) -> identity_service_pb2.WhoAmIResponse:
    metadata = [("authorization", f"Bearer {token}")] if token is not None else []
    with grpc.insecure_channel(address) as channel:
        stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
        return stub.WhoAmI(identity_service_pb2.WhoAmIRequest(), metadata=metadata, timeout=10)


def handled_whoami_calls(metrics_url: str) -> float:
    """Sum of vigil_grpc_server_handled_total for WhoAmI with status OK in the service's /metrics."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "vigil_grpc_server_handled_total"
        and sample.labels.get("grpc_method") == "WhoAmI"
        and sample.labels.get("grpc_code") == "OK"
    )


@pytest.mark.parametrize("name", SERVICES)
def test_service_reports_serving_on_the_real_broker_and_s3(
    running: dict[str, ServiceProcess], name: str
) -> None:
    assert running[name].health() == "SERVING"


@pytest.mark.parametrize("name", SERVICES)
def test_grpcurl_lists_health_reflection_and_identity_through_reflection(
    running: dict[str, ServiceProcess], name: str
) -> None:
    result = subprocess.run(
        [str(GRPCURL), "-plaintext", running[name].address, "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    listed = set(result.stdout.split())
    assert {"grpc.health.v1.Health", "vigil.identity.v1.IdentityService"} <= listed
    assert any(s.startswith("grpc.reflection.") for s in listed)


@pytest.mark.parametrize("name", SERVICES)
def test_whoami_returns_the_principal_of_the_token(
    running: dict[str, ServiceProcess], issuer: TokenIssuer, name: str
) -> None:
    response = whoami(running[name].address, mint(issuer))
    assert (response.service, response.issuer) == (name, "vigil")
    assert (response.principal.id, response.principal.name) == ("user:ann", "Ann Auditor")
    assert response.principal.unit == "11310000MB0000000X"


@pytest.mark.parametrize("name", SERVICES)
def test_metrics_count_a_whoami_call(
    running: dict[str, ServiceProcess], issuer: TokenIssuer, name: str
) -> None:
    service = running[name]
    before = handled_whoami_calls(service.metrics_url)
    whoami(service.address, mint(issuer))
    assert handled_whoami_calls(service.metrics_url) == before + 1


@pytest.mark.parametrize("name", SERVICES)
def test_metrics_show_the_service_build_info(running: dict[str, ServiceProcess], name: str) -> None:
    with urllib.request.urlopen(running[name].metrics_url, timeout=5) as response:
        text = response.read().decode()
    assert f"vigil_{name}_build_info{{" in text


def test_a_call_without_a_token_is_unauthenticated(running: dict[str, ServiceProcess]) -> None:
    with pytest.raises(grpc.RpcError) as info:
        whoami(running["registry"].address, None)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_call_with_an_expired_token_is_unauthenticated(
    running: dict[str, ServiceProcess], issuer: TokenIssuer
) -> None:
    expired = mint(issuer, now=datetime.now(UTC) - timedelta(hours=2), ttl_s=600)
    with pytest.raises(grpc.RpcError) as info:
        whoami(running["registry"].address, expired)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_call_with_a_token_signed_by_another_key_is_unauthenticated(
    running: dict[str, ServiceProcess],
) -> None:
    stranger = TokenIssuer(generate_keypair()[0])
    with pytest.raises(grpc.RpcError) as info:
        whoami(running["registry"].address, mint(stranger))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_sigterm_stops_a_service_with_exit_code_0_within_its_grace_period(vigil_service) -> None:
    service = vigil_service("audit", SHUTDOWN_GRACE_S=5)
    started = time.monotonic()
    service.terminate()
    assert service.wait(timeout=15) == 0
    assert time.monotonic() - started < 5 + 3  # grace period plus closing the broker and database clients


def test_ingest_readiness_turns_not_serving_within_5_s_of_losing_s3(
    vigil_service, fresh_s3_server: embedded.EmbeddedProcess
) -> None:
    ingest = vigil_service("ingest", s3=fresh_s3_server)
    fresh_s3_server.kill()
    ingest.wait_for_status("NOT_SERVING", timeout=5)


def test_a_service_started_before_its_broker_serves_once_the_broker_is_up(
    vigil_service, tmp_path: Path
) -> None:
    port = embedded.free_port()
    registry = vigil_service("registry", kafka=f"127.0.0.1:{port}", start=False)
    registry.start(wait_serving=False)
    registry.wait_for_status("NOT_SERVING", timeout=60)
    with embedded.tansu(port=port, log_path=tmp_path / "late-broker.log"):
        registry.wait_for_status("SERVING", timeout=30)
        # Stop the service while the broker is still up, so its clients close cleanly.
        assert registry.stop() == 0


def test_a_bad_setting_stops_the_console_script_with_exit_code_2_and_one_line(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "vigil-registry"
    result = subprocess.run(
        [str(script)],
        env={"PATH": str(script.parent), "REGISTRY_GRPC_PORT": "not-a-port"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "REGISTRY_GRPC_PORT" in result.stderr
