"""`vigil up`: start the broker, S3 and the five services as children, wait for SERVING, supervise.

Every child stays in vigil's process group (none starts a new session), so signalling the group
reaches the whole stack. A service that dies is restarted with backoff; the broker and S3 keep
memory only, so when one of them dies the stack stops. Each run starts from empty state: the
services' SQLite files are reset at start to match the fresh broker and S3.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from minio import Minio
from rich.console import Console
from rich.text import Text

from vigil_cli import demo, output
from vigil_cli.context import (
    BrokerEndpoint,
    Context,
    PrincipalEntry,
    S3Endpoint,
    ServiceEndpoint,
    context_path,
    remove_context,
    write_context,
)
from vigil_cli.identity import (
    SERVICES,
    DevDirectory,
    load_directory,
    mint_principal_tokens,
    mint_service_tokens,
)
from vigil_kit import embedded

HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 50050
ISSUER = "vigil"
S3_ACCESS_KEY = "vigil"
S3_REGION = "us-east-1"

READY_TIMEOUT_S = 60.0
# Children get SIGTERM, then this long before SIGKILL (services first, then broker and S3).
SERVICE_STOP_GRACE_S = 12.0
INFRA_STOP_GRACE_S = 5.0
# What the services are told their own graceful shutdown may take (below SERVICE_STOP_GRACE_S).
SERVICE_SHUTDOWN_GRACE_S = 5.0
# Delay before the n-th consecutive restart of a crashing service.
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
# A service that ran this long before dying counts as healthy again: its backoff starts over.
STABLE_AFTER_S = 30.0
TICK_S = 0.25
HEALTH_TIMEOUT_S = 1.0

PORT_LAYOUT_HELP = (
    "Ports from --base-port N: services' gRPC N+1..N+5 (registry, ingest, archive, sharing, audit), "
    "their /metrics N+11..N+15, Kafka broker N+20, S3 N+21."
)


@dataclass(frozen=True)
class PortLayout:
    base: int = DEFAULT_BASE_PORT

    def grpc(self, service: str) -> int:
        return self.base + 1 + SERVICES.index(service)

    def metrics(self, service: str) -> int:
        return self.base + 11 + SERVICES.index(service)

    @property
    def broker(self) -> int:
        return self.base + 20

    @property
    def s3(self) -> int:
        return self.base + 21

    def labelled(self) -> dict[int, str]:
        ports = {self.broker: "Kafka broker", self.s3: "S3 server"}
        for s in SERVICES:
            ports[self.grpc(s)] = f"{s} gRPC"
            ports[self.metrics(s)] = f"{s} /metrics"
        return ports


def service_settings(
    service: str,
    layout: PortLayout,
    *,
    data_dir: Path,
    broker: str,
    s3: str,
    s3_secret_key: str,
    public_key_file: Path,
    service_token: str,
    log_level: str = "INFO",
) -> dict[str, str]:
    """The environment variables (prefixed REGISTRY_, INGEST_, ...) that configure one service."""
    values = {
        "SERVICE_NAME": service,
        "GRPC_HOST": HOST,
        "GRPC_PORT": str(layout.grpc(service)),
        "METRICS_PORT": str(layout.metrics(service)),
        "DATABASE_URL": f"sqlite+aiosqlite:///{(data_dir / f'{service}.db').resolve()}",
        "KAFKA_BOOTSTRAP": broker,
        "S3_ENDPOINT": s3,
        "S3_ACCESS_KEY": S3_ACCESS_KEY,
        "S3_SECRET_KEY": s3_secret_key,
        "S3_SECURE": "false",
        "S3_REGION": S3_REGION,
        "AUTH_ISSUER": ISSUER,
        "AUTH_PUBLIC_KEYS_FILE": str(public_key_file.resolve()),
        "SERVICE_TOKEN": service_token,
        "LOG_LEVEL": log_level,
        "SHUTDOWN_GRACE_S": str(SERVICE_SHUTDOWN_GRACE_S),
    }
    for other in SERVICES:
        values[f"{other.upper()}_ADDR"] = f"{HOST}:{layout.grpc(other)}"
    prefix = service.upper() + "_"
    return {prefix + key: value for key, value in values.items()}


def port_available(port: int, host: str = HOST) -> bool:
    """Nothing listens on the port and a server could bind it now. The block sits in the OS's
    ephemeral range, so a client connection may hold one of its ports; binding tells (with
    SO_REUSEADDR, as servers use, so a TIME_WAIT left by the last run does not count)."""
    if embedded.port_open(host, port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def restart_delay(consecutive_failures: int) -> float:
    """Backoff before restarting a service that has died this many times in a row (0 = first)."""
    return RESTART_BACKOFF_S[min(consecutive_failures, len(RESTART_BACKOFF_S) - 1)]


class StartupError(Exception):
    """The stack could not start; the message says why in one line."""


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def grpc_channel(address: str) -> grpc.aio.Channel:
    # Short reconnect backoff: a restarted service should be seen SERVING within a second.
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ],
    )


async def health_status(channel: grpc.aio.Channel, timeout_s: float = HEALTH_TIMEOUT_S) -> str:
    """The overall ("") health of a server: SERVING, or NOT_SERVING when unreachable or not ready."""
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
        )
    except grpc.RpcError:
        return "NOT_SERVING"
    except TimeoutError:
        return "NOT_SERVING"
    return "SERVING" if reply.status == health_pb2.HealthCheckResponse.SERVING else "NOT_SERVING"


@dataclass
class ServiceProcess:
    """One supervised service: its child process and its restart bookkeeping."""

    name: str
    grpc_port: int
    metrics_port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    state: str = "STARTING"  # STARTING, SERVING, RESTARTING
    failures: int = 0
    restart_at: float | None = None
    restarts: int = 0
    channel: grpc.aio.Channel | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(
        self,
        *,
        home: Path,
        data_dir: Path,
        layout: PortLayout,
        demo_mode: bool = False,
        log_level: str = "INFO",
        console: Console | None = None,
        err_console: Console | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
        command: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.home = home
        self.command = command or service_command
        self.data_dir = data_dir
        self.logs_dir = data_dir / "logs"
        self.layout = layout
        self.demo_mode = demo_mode
        self.log_level = log_level
        self.console = console or output.console
        self.err_console = err_console or output.err_console
        self.ready_timeout_s = ready_timeout_s
        self.context_file = context_path(home)
        self.directory: DevDirectory = load_directory()
        self.stop_requested = asyncio.Event()
        self.stop_signal: str | None = None
        self.services = {
            s: ServiceProcess(s, layout.grpc(s), layout.metrics(s), self.logs_dir / f"{s}.log")
            for s in SERVICES
        }
        self.broker: embedded.EmbeddedProcess | None = None
        self.s3: embedded.EmbeddedProcess | None = None
        self.s3_secret = secrets.token_urlsafe(24)
        self.issuer = None  # vigil_kit.auth.TokenIssuer, created in _prepare
        self.public_key_pem = b""
        self.public_key_file = data_dir / "auth" / "issuer-public-key.pem"
        # The audit log's signing key: a file the audit service reads, so its public half is known here
        # and goes into the context file, where `vigil audit verify` pins it.
        self.audit_key_file = data_dir / "audit" / "log-signing-key.pem"
        self.audit_public_key_pem = b""
        # The archive's evidence-manifest signing key, the same way: `vigil export verify` pins its public half.
        self.archive_key_file = data_dir / "archive" / "export-signing-key.pem"
        self.archive_public_key_pem = b""
        self.context: Context | None = None
        self.seed_task: asyncio.Task[None] | None = None
        self.demo_tasks: list[asyncio.Task[None]] = []
        self._lock_file: IO[str] | None = None

    # ---- output -------------------------------------------------------------------------------

    def say(self, line: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        self.console.print(Text.assemble((stamp, "dim"), " ", line), soft_wrap=True)

    def warn(self, line: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        self.err_console.print(f"{stamp} {line}", markup=False, soft_wrap=True)

    # ---- entry point --------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            return await self._run()
        except StartupError as exc:
            self.warn(f"vigil up: {exc}")
            return 1
        finally:
            await self._shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self.stop_requested.is_set():
            self.stop_signal = sig.name
            self.stop_requested.set()

    async def _run(self) -> int:
        self._prepare()
        await self._start_infrastructure()
        if self.stop_requested.is_set():
            return 0
        if not await self._unless_stopped(self._bootstrap_infrastructure()):
            return 0
        self.say(f"starting services: {', '.join(SERVICES)}")
        for svc in self.services.values():
            self._spawn(svc, first=True)

        deadline = time.monotonic() + self.ready_timeout_s
        while not all(svc.state == "SERVING" for svc in self.services.values()):
            if self.stop_requested.is_set():
                return 0
            if failure := await self._tick(announce_serving=False):
                self.warn(failure)
                return 1
            if time.monotonic() > deadline:
                waiting = [s.name for s in self.services.values() if s.state != "SERVING"]
                logs = ", ".join(str(self.services[n].log_path) for n in waiting)
                self.warn(
                    f"vigil up: not SERVING within {self.ready_timeout_s:.0f} s: {', '.join(waiting)} "
                    f"(see {logs})"
                )
                return 1
            await self._wait(TICK_S)

        self.context = self._build_context()
        write_context(self.context, self.context_file)
        self._print_endpoints()
        self.say(f"context written to {self.context_file}; stop with Ctrl-C")
        # Seeding runs beside supervision, so a crash or Ctrl-C during a long seed is still handled.
        self.seed_task = asyncio.create_task(self._seed(), name="seed")

        while not self.stop_requested.is_set():
            if failure := await self._tick(announce_serving=True):
                self.warn(failure)
                return 1
            await self._wait(TICK_S)
        return 0

    async def _unless_stopped(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run `work` unless a stop signal comes first (then cancel it and return False)."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.stop_requested.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return False
        task.result()
        return True

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stop_requested.wait(), seconds)

    # ---- start-up -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        from vigil_kit.auth import TokenIssuer, generate_keypair

        self.home.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        busy = [
            f"{port} ({what})"
            for port, what in sorted(self.layout.labelled().items())
            if not port_available(port)
        ]
        if busy:
            raise StartupError(
                f"ports not free: {', '.join(busy)}; stop what uses them or pick another --base-port"
            )
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            # The broker and S3 start empty, so the databases must too (see the module docstring).
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    (self.data_dir / f"{name}.db{suffix}").unlink()
        for name in (*SERVICES, "broker", "s3"):
            (self.logs_dir / f"{name}.log").write_bytes(b"")

        private_pem, public_pem = generate_keypair()
        self.issuer = TokenIssuer(private_pem, issuer=ISSUER)
        self.public_key_pem = public_pem
        self.public_key_file.parent.mkdir(parents=True, exist_ok=True)
        self.public_key_file.write_bytes(public_pem)
        # A fresh log key with the fresh audit database (it is deleted above, as the broker starts empty).
        audit_private_pem, self.audit_public_key_pem = generate_keypair()
        self.audit_key_file.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.audit_key_file.unlink()
        fd = os.open(self.audit_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as key_out:
            key_out.write(audit_private_pem)
        archive_private_pem, self.archive_public_key_pem = generate_keypair()
        self.archive_key_file.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.archive_key_file.unlink()
        fd = os.open(self.archive_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as key_out:
            key_out.write(archive_private_pem)

    def _take_lock(self) -> None:
        lock_path = self.home / "up.lock"
        self._lock_file = open(lock_path, "w")  # held for the life of this process
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StartupError(
                f"another `vigil up` is already running with VIGIL_HOME={self.home}; stop it first"
            ) from None

    async def _start_infrastructure(self) -> None:
        self.broker = embedded.tansu(self.layout.broker, HOST, log_path=self.logs_dir / "broker.log")
        self.s3 = embedded.moto_s3(self.layout.s3, HOST, log_path=self.logs_dir / "s3.log")
        self.say(f"starting Kafka broker on {self.broker.address} and S3 server on {self.s3.address}")
        results = await asyncio.gather(
            asyncio.to_thread(self.broker.start), asyncio.to_thread(self.s3.start), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise StartupError(f"infrastructure did not start: {errors[0]} (logs in {self.logs_dir})")

    async def _bootstrap_infrastructure(self) -> None:
        from vigil_kit.kafka import ensure_topics
        from vigil_kit.objectstore import bootstrap_buckets

        assert self.broker is not None and self.s3 is not None
        self.say("creating topics and buckets")
        client = Minio(
            self.s3.address,
            access_key=S3_ACCESS_KEY,
            secret_key=self.s3_secret,
            secure=False,
            region=S3_REGION,
        )

        async def buckets() -> None:
            result = await asyncio.to_thread(bootstrap_buckets, client)
            if inspect.isawaitable(result):
                await result

        try:
            await asyncio.wait_for(asyncio.gather(ensure_topics(self.broker.address), buckets()), 30)
        except Exception as exc:
            raise StartupError(f"could not create topics and buckets: {exc!r}") from None

    def _service_env(self, svc: ServiceProcess) -> dict[str, str]:
        assert self.broker is not None and self.s3 is not None and self.issuer is not None
        # A fresh token per start: a service restarted late in a long session still gets 12 hours.
        token = mint_service_tokens(self.issuer, self.directory, [svc.name])[svc.name].token
        settings = service_settings(
            svc.name,
            self.layout,
            data_dir=self.data_dir,
            broker=self.broker.address,
            s3=self.s3.address,
            s3_secret_key=self.s3_secret,
            public_key_file=self.public_key_file,
            service_token=token,
            log_level=self.log_level,
        )
        if svc.name == "audit":
            settings["AUDIT_SIGNING_KEY_FILE"] = str(self.audit_key_file.resolve())
        if svc.name == "archive":
            settings["ARCHIVE_SIGNING_KEY_FILE"] = str(self.archive_key_file.resolve())
        return {**os.environ, **settings}

    def _spawn(self, svc: ServiceProcess, *, first: bool = False) -> None:
        with open(svc.log_path, "ab") as log:
            # No start_new_session: the child stays in vigil's process group (the whole stack is
            # one group, so nothing can outlive it unnoticed).
            svc.proc = subprocess.Popen(
                self.command(svc.name),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._service_env(svc),
                cwd=self.data_dir,
            )
        svc.started_at = time.monotonic()
        svc.state = "STARTING"
        svc.restart_at = None
        if svc.channel is None:
            svc.channel = grpc_channel(svc.address)
        if not first:
            self.say(f"{svc.name} restarted (pid {svc.pid})")
            self._refresh_context()

    # ---- supervision --------------------------------------------------------------------------

    async def _tick(self, *, announce_serving: bool) -> str | None:
        """One round of supervision. Returns a message when the stack must stop."""
        if failure := await self._infrastructure_failure():
            return failure
        now = time.monotonic()
        checks: list[ServiceProcess] = []
        for svc in self.services.values():
            if svc.state == "RESTARTING":
                if svc.restart_at is not None and now >= svc.restart_at:
                    self._spawn(svc)
                continue
            if not svc.alive():
                self._schedule_restart(svc, now)
                continue
            if svc.state == "STARTING":
                checks.append(svc)
        if checks:
            statuses = await asyncio.gather(*(health_status(svc.channel) for svc in checks))  # type: ignore[arg-type]
            for svc, status in zip(checks, statuses, strict=True):
                if status == "SERVING" and svc.alive():
                    svc.state = "SERVING"
                    if announce_serving or svc.restarts:
                        self.say(
                            f"{svc.name} is SERVING again (pid {svc.pid}, "
                            f"{time.monotonic() - svc.started_at:.1f} s after restart)"
                        )
        return None

    def _schedule_restart(self, svc: ServiceProcess, now: float) -> None:
        if self.stop_requested.is_set():
            return
        assert svc.proc is not None
        ran_for = now - svc.started_at
        if ran_for >= STABLE_AFTER_S:
            svc.failures = 0
        delay = restart_delay(svc.failures)
        svc.failures += 1
        svc.restarts += 1
        svc.state = "RESTARTING"
        svc.restart_at = now + delay
        self.warn(
            f"{svc.name} (pid {svc.proc.pid}) {describe_exit(svc.proc.returncode)} after {ran_for:.1f} s; "
            f"restarting in {delay:g} s (restart {svc.restarts}; log: {svc.log_path})"
        )

    async def _infrastructure_failure(self) -> str | None:
        for what, proc in (("the Kafka broker", self.broker), ("the S3 server", self.s3)):
            if proc is None or proc.alive():
                continue
            # Ctrl-C reaches the whole group at once: let our own signal handler run before
            # taking a child's exit for a crash.
            await self._wait(0.3)
            if self.stop_requested.is_set():
                return None
            assert proc.proc is not None
            return (
                f"vigil up: {what} (pid {proc.proc.pid}) {describe_exit(proc.proc.returncode)}; it kept "
                "everything in memory, so the stack's state is gone — stopping all services. "
                "Run `vigil up` again for a fresh stack."
            )
        return None

    # ---- context and seeding ------------------------------------------------------------------

    def _build_context(self) -> Context:
        assert self.broker is not None and self.s3 is not None and self.issuer is not None
        tokens = mint_principal_tokens(self.issuer, self.directory)
        return Context(
            pid=os.getpid(),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            data_dir=str(self.data_dir.resolve()),
            base_port=self.layout.base,
            issuer=ISSUER,
            issuer_public_key_pem=self.public_key_pem.decode(),
            services=list(SERVICES),
            endpoints={
                s.name: ServiceEndpoint(grpc=s.address, metrics=s.metrics_url, pid=s.pid)
                for s in self.services.values()
            },
            broker=BrokerEndpoint(
                bootstrap=self.broker.address, pid=self.broker.proc.pid if self.broker.proc else None
            ),
            s3=S3Endpoint(
                endpoint=self.s3.address,
                access_key=S3_ACCESS_KEY,
                secret_key=self.s3_secret,
                region=S3_REGION,
                secure=False,
                pid=self.s3.proc.pid if self.s3.proc else None,
            ),
            principals={
                name: PrincipalEntry(
                    token=t.token, claims=t.claims, expires_at=t.expires_at.isoformat(timespec="seconds")
                )
                for name, t in tokens.items()
            },
            demo=self.demo_mode,
            extra={
                "audit_log_public_key_pem": self.audit_public_key_pem.decode(),
                "archive_export_public_key_pem": self.archive_public_key_pem.decode(),
            },
        )

    def _refresh_context(self) -> None:
        if self.context is None:
            return
        for svc in self.services.values():
            self.context.endpoints[svc.name].pid = svc.pid
        write_context(self.context, self.context_file)

    def _print_endpoints(self) -> None:
        assert self.broker is not None and self.s3 is not None
        rows: list[Sequence[object]] = [
            (s.name, s.address, s.metrics_url, s.pid, s.state) for s in self.services.values()
        ]
        rows.append(
            (
                "kafka broker",
                self.broker.address,
                "",
                self.broker.proc.pid if self.broker.proc else "",
                "RUNNING",
            )
        )
        rows.append(("s3", self.s3.address, "", self.s3.proc.pid if self.s3.proc else "", "RUNNING"))
        self.console.print(
            output.table("Vigil is up", ("service", "gRPC address", "metrics", "pid", "state"), rows)
        )

    async def _seed(self) -> None:
        assert self.context is not None
        env = demo.DemoEnv(
            context=self.context,
            directory=self.directory,
            data_dir=self.data_dir,
            log=lambda line: self.say(line),
        )
        try:
            self.demo_tasks = await demo.seed(env, demo=self.demo_mode)
        except Exception as exc:  # seeding is best effort: the stack stays up for the person to look
            self.warn(f"vigil up: seeding failed: {exc!r}")

    # ---- shutdown -----------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        if self.stop_signal:
            self.say(f"{self.stop_signal}: stopping the stack")
        tasks = [t for t in (self.seed_task, *self.demo_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        remove_context(self.context_file, pid=os.getpid())
        await terminate([s.proc for s in self.services.values() if s.proc], SERVICE_STOP_GRACE_S)
        await terminate(
            [p.proc for p in (self.broker, self.s3) if p is not None and p.proc is not None],
            INFRA_STOP_GRACE_S,
        )
        for svc in self.services.values():
            if svc.channel is not None:
                await svc.channel.close()
        if self._lock_file is not None:
            self._lock_file.close()
        self.say("stopped")


async def terminate(procs: Sequence[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM every live process, wait up to grace_s, SIGKILL stragglers, and reap them all."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    async def reap(proc: subprocess.Popen) -> None:
        try:
            await asyncio.to_thread(proc.wait, grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.to_thread(proc.wait)

    await asyncio.gather(*(reap(p) for p in procs))


def service_command(service: str) -> list[str]:
    return [sys.executable, "-m", f"vigil_{service}"]


def run_up(
    *,
    home: Path,
    data_dir: Path,
    base_port: int,
    demo_mode: bool,
    log_level: str = "INFO",
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> int:
    """Run the stack until a signal (exit 0) or a failure (exit 1)."""

    async def main() -> int:
        supervisor = Supervisor(
            home=home,
            data_dir=data_dir,
            layout=PortLayout(base_port),
            demo_mode=demo_mode,
            log_level=log_level,
            ready_timeout_s=ready_timeout_s,
        )
        return await supervisor.run()

    return asyncio.run(main())
