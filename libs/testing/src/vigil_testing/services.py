"""Run any Vigil service as a real subprocess (`python -m vigil_<name>`) for cross-process tests.

- ServiceProcess: one service on free loopback ports with its own SQLite file and log; `start()`
  returns once its gRPC health ("" service) reports SERVING.
- Fixtures: `issuer` (a TokenIssuer with a fresh Ed25519 keypair, session scope) and
  `vigil_service` (a factory: `vigil_service("registry", SHUTDOWN_GRACE_S=3)` → a started
  ServiceProcess, always stopped at teardown).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vigil_kit.embedded import EmbeddedProcess, free_port

if TYPE_CHECKING:
    from vigil_kit.auth import TokenIssuer

SERVICES = ("registry", "ingest", "archive", "sharing", "audit")
# Services whose readiness depends on the S3 server.
S3_SERVICES = frozenset({"ingest", "archive"})
HOST = "127.0.0.1"


def service_env(
    name: str,
    *,
    workdir: Path,
    kafka_bootstrap: str,
    s3_endpoint: str | None,
    public_keys_pem: list[str],
    grpc_port: int,
    metrics_port: int,
    settings: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """The environment a service starts with; `settings` keys are setting names without the prefix."""
    prefix = f"{name.upper()}_"
    values: dict[str, object] = {
        "GRPC_HOST": HOST,
        "GRPC_PORT": grpc_port,
        "METRICS_PORT": metrics_port,
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / f'{name}.db'}",
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "AUTH_PUBLIC_KEYS": json.dumps(public_keys_pem),
        "LOG_LEVEL": "INFO",
        "SHUTDOWN_GRACE_S": 5,
    }
    if s3_endpoint is not None:
        values["S3_ENDPOINT"] = s3_endpoint
    for key, value in (settings or {}).items():
        values[key.upper().removeprefix(prefix)] = value
    return {f"{prefix}{key}": str(value) for key, value in values.items()}


@dataclass
class ServiceProcess:
    """One Vigil service running as `python -m vigil_<name>` in a working directory of its own."""

    name: str
    workdir: Path
    kafka_bootstrap: str
    public_keys_pem: list[str]
    s3_endpoint: str | None = None
    settings: Mapping[str, object] = field(default_factory=dict)
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # The service runs in workdir, so every path handed to it must be absolute.
        self.workdir = Path(self.workdir).resolve()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def env(self) -> dict[str, str]:
        return service_env(
            self.name,
            workdir=self.workdir,
            kafka_bootstrap=self.kafka_bootstrap,
            s3_endpoint=self.s3_endpoint,
            public_keys_pem=self.public_keys_pem,
            grpc_port=self.grpc_port,
            metrics_port=self.metrics_port,
            settings=self.settings,
        )

    def start(self, timeout: float = 60.0, wait_serving: bool = True) -> ServiceProcess:
        """Spawn the service; with wait_serving, return once its health reports SERVING."""
        if self.name not in SERVICES:
            raise ValueError(f"unknown service {self.name!r}; expected one of {', '.join(SERVICES)}")
        if self.alive():
            # A second process on the same ports would fail, and replacing self.proc would orphan the first.
            raise RuntimeError(f"{self.name} is already running (pid {self.proc.pid if self.proc else '?'})")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The service's own settings must come only from what this test passes.
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(f"{self.name.upper()}_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"vigil_{self.name}"],
                cwd=self.workdir,
                env={**base_env, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait_serving:
            self.wait_for_status("SERVING", timeout=timeout)
        return self

    def health(self, service: str = "", timeout: float = 1.0) -> str:
        """The health status name ("SERVING", "NOT_SERVING", ...) the service reports right now."""
        with grpc.insecure_channel(self.address) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_for_status(self, status: str, timeout: float = 30.0, service: str = "") -> None:
        """Poll health until it reports `status`; fail early (with the log's tail) if the process dies."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with {self.returncode} before reporting {status}:\n{self.log_tail()}"
                )
            try:
                last = self.health(service)
                if last == status:
                    return
            except grpc.RpcError as exc:
                last = exc.code().name
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name} health was {last}, not {status}, after {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def terminate(self) -> None:
        """Send SIGTERM without waiting (pair with wait())."""
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit; its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; the exit code (None if never started)."""
        if self.proc is None:
            return None
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> ServiceProcess:
        # `with ServiceProcess(...).start():` and `with ServiceProcess(...):` both start it exactly once.
        return self if self.alive() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def issuer() -> TokenIssuer:
    """A token issuer with a fresh Ed25519 keypair; services started by `vigil_service` trust it."""
    # Imported here so that loading the plugin stays light for tests that never mint tokens.
    from vigil_kit.auth import TokenIssuer, generate_keypair

    private_pem, _public_pem = generate_keypair()
    return TokenIssuer(private_pem)


ServiceFactory = Callable[..., ServiceProcess]
# The services a test's `vigil_service` started, kept on its item for the failure report.
STARTED = pytest.StashKey[list[ServiceProcess]]()
# Lines of each service's log a failure report shows: its warnings and errors, the last ones.
REPORT_LINES = 40


def failure_logs(services: list[ServiceProcess]) -> str:
    """The last warnings and errors each service logged (its JSON lines at WARNING or above)."""
    parts = []
    for service in services:
        lines = [
            line
            for line in service.log_text().splitlines()
            if '"level": "WARNING"' in line
            or '"level": "ERROR"' in line
            or '"level": "CRITICAL"' in line
            or not line.startswith("{")  # tracebacks and whatever the process printed itself
        ]
        shown = "\n".join(lines[-REPORT_LINES:]) or "(no warnings or errors)"
        parts.append(f"--- {service.name} ({service.workdir}) ---\n{shown}")
    return "\n".join(parts)


@pytest.fixture
def vigil_service(
    request: pytest.FixtureRequest, tmp_path: Path, issuer: TokenIssuer, kafka_broker: EmbeddedProcess
) -> Iterator[ServiceFactory]:
    """Factory: `vigil_service(name, *, kafka=None, s3=None, start=True, **settings)` → ServiceProcess.

    `kafka`/`s3` default to the session broker and (for ingest and archive) the session S3
    server; `settings` are setting names without the prefix (`LOG_LEVEL="DEBUG"`). Every process
    it starts is stopped at teardown.
    """
    started: list[ServiceProcess] = []
    request.node.stash[STARTED] = started  # the failure report shows their logs (plugin.py)

    def factory(
        name: str,
        *,
        kafka: EmbeddedProcess | str | None = None,
        s3: EmbeddedProcess | str | None = None,
        start: bool = True,
        **settings: object,
    ) -> ServiceProcess:
        if s3 is None and name in S3_SERVICES:
            s3 = request.getfixturevalue("s3_server")
        service = ServiceProcess(
            name,
            workdir=tmp_path / f"{name}-{len(started)}",
            kafka_bootstrap=_address(kafka) if kafka is not None else kafka_broker.address,
            s3_endpoint=_address(s3) if s3 is not None else None,
            public_keys_pem=[issuer.public_key_pem.decode()],
            settings=settings,
        )
        started.append(service)
        return service.start() if start else service

    try:
        yield factory
    finally:
        stop_together(*started)


def start_together(*services: ServiceProcess, timeout: float = 90.0) -> None:
    """Spawn every service, then wait until each reports SERVING: they come up in parallel, as on a
    cluster, where no service waits for another to start (each reaches the others when it calls)."""
    for service in services:
        service.start(wait_serving=False)
    for service in services:
        service.wait_for_status("SERVING", timeout=timeout)


def stop_together(*services: ServiceProcess) -> None:
    """SIGTERM every service at once, so they shut down in parallel; then wait for (or kill) each."""
    for service in services:
        service.terminate()
    for service in services:
        service.stop()


def _address(server: EmbeddedProcess | str) -> str:
    return server if isinstance(server, str) else server.address
