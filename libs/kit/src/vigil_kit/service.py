"""The lifecycle every Vigil service shares: command line, start-up, readiness, serving, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import SecretStr, ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from vigil_kit import db, health, kafka, migrations, outbox, topics
from vigil_kit.auth import TokenVerifier
from vigil_kit.grpc_server import ServiceBinding, VigilServer, build_server
from vigil_kit.logging import configure_logging
from vigil_kit.metrics import start_metrics_server
from vigil_kit.settings import ServiceSettings

if TYPE_CHECKING:
    from minio import Minio

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)
T = TypeVar("T")

# How long start-up keeps retrying an unreachable database before giving up (the broker and S3 are
# retried for as long as the process runs, with readiness NOT_SERVING meanwhile).
DATABASE_STARTUP_TIMEOUT_S = 60.0
# Cap on the backoff between attempts to reach a dependency at start-up.
MAX_BACKOFF_S = 2.0
# How long a background worker may take to finish after stop() before it is cancelled.
WORKER_STOP_TIMEOUT_S = 5.0
# The relay wakes at once for rows enqueued with `notifier=ctx.relay.notify`; polling only catches the
# rest (rows left by a previous run), so it can be slow enough to keep an idle service nearly idle.
RELAY_POLL_INTERVAL_S = 0.25
# Cap on the backoff between restarts of a failed worker.
WORKER_MAX_BACKOFF_S = 10.0


class Worker(Protocol):
    """A long-running task the service owns (outbox relay, consumers): run() until stop().

    run() may be called again after it failed; stop() may be sync or async.
    """

    async def run(self) -> None: ...

    def stop(self) -> object: ...


@dataclass
class ServiceContext:
    """What a service's composition root (app.py) builds its domain graph from."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    verifier: TokenVerifier
    # None for services that do not use object storage.
    minio: Minio | None
    # Publishes this service's outbox; pass `notifier=ctx.relay.notify` to outbox.enqueue.
    relay: outbox.OutboxRelay
    workers: list[tuple[str, Worker]] = field(default_factory=list)
    # For read-only work (look-ups, listings): on SQLite they do not queue for the write lock. Never write
    # through them (see db.read_session_factory). Made from `engine` when not given.
    read_sessions: async_sessionmaker[AsyncSession] | None = None
    # SQLite file databases only: whole transactions in one thread hand-off, for hot small writes such as
    # group commits (see db.ThreadedTransactions); None on PostgreSQL. Closed by the runtime at shutdown.
    transactions: db.ThreadedTransactions | None = None

    def __post_init__(self) -> None:
        if self.read_sessions is None:
            self.read_sessions = db.read_session_factory(self.engine)

    def add_worker(self, name: str, worker: Worker) -> None:
        """Run `worker` once the topics (and buckets) exist, restart it if it fails, stop it on shutdown."""
        self.workers.append((name, worker))


Build = Callable[[ServiceContext], Awaitable[Sequence[ServiceBinding]]]


async def run_service(
    settings: ServiceSettings,
    *,
    build: Build,
    migrations_dir: Path,
    needs_s3: bool,
    topic_partitions: Mapping[str, int] = topics.PARTITIONS,
    stop: asyncio.Event | None = None,
) -> None:
    """Run one service until SIGTERM/SIGINT (or `stop` is set), then shut down gracefully and return.

    Logging and /metrics come first, then the database and its migrations, then the gRPC server
    (readiness NOT_SERVING) while the broker topics and S3 buckets are set up in the background,
    retrying with backoff, so a broker or S3 server that is briefly away does not crash start-up.
    Pass `stop` to run a service inside another program (tests), which then owns the signals.
    """
    configure_logging(settings.service_name, settings.log_level)
    # The process is the service's own when it owns the signals: only then is its heap frozen once up.
    runtime = _Runtime(settings, build, migrations_dir, needs_s3, topic_partitions, freeze_heap=stop is None)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if stop is None else ()
    stop = stop or asyncio.Event()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    started = asyncio.create_task(runtime.start(), name="startup")
    stopped = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({started, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            log.info("stop requested during start-up")
            started.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await started
        else:
            started.result()  # re-raises a start-up failure
            await stopped
            log.info("stop requested")
    finally:
        stopped.cancel()
        await runtime.shutdown()
        for sig in signals:
            loop.remove_signal_handler(sig)


def freeze_startup_heap() -> None:
    """Move everything start-up built (modules, protobuf descriptors, SQLAlchemy metadata, clients) out of
    the garbage collector's reach, once the service is up.

    None of it ever becomes garbage, yet every full collection walked all of it: in the archive about
    140,000 objects, an 80 ms pause of the event loop (every request in flight waited for it). Frozen,
    a full collection walks only what requests left behind (1.3 ms measured there). Collected first,
    so that no start-up garbage is kept forever."""
    gc.collect()
    gc.freeze()


class _Runtime:
    """The objects one running service holds, started in order and stopped in reverse."""

    def __init__(
        self,
        settings: ServiceSettings,
        build: Build,
        migrations_dir: Path,
        needs_s3: bool,
        topic_partitions: Mapping[str, int],
        *,
        freeze_heap: bool = False,
    ) -> None:
        self.settings = settings
        self.freeze_heap = freeze_heap
        self.build = build
        self.migrations_dir = migrations_dir
        self.needs_s3 = needs_s3
        self.topic_partitions = dict(topic_partitions)
        self.engine: AsyncEngine | None = None
        self.server: VigilServer | None = None
        self.context: ServiceContext | None = None
        self.bootstrapped = asyncio.Event()
        self.bootstrap_error: str | None = None
        self.stopping = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        s = self.settings
        if s.metrics_port:
            start_metrics_server(s.metrics_port, host=s.grpc_host)
        kafka.configure(s)  # before any client: relay, consumers, topic creation, readiness
        self.engine = db.create_engine(s.database_url)
        await self._migrate()
        client = _objectstore().make_minio(s) if self.needs_s3 else None
        verifier = TokenVerifier.from_settings(s)
        transactions = db.threaded_transactions(self.engine)
        relay = outbox.OutboxRelay(
            self.engine,
            bootstrap=s.kafka_bootstrap,
            service=s.service_name,
            poll_interval_s=RELAY_POLL_INTERVAL_S,
            transactions=transactions,
        )
        self.context = ServiceContext(
            settings=s,
            engine=self.engine,
            sessions=db.session_factory(self.engine),
            read_sessions=db.read_session_factory(self.engine),
            transactions=transactions,
            verifier=verifier,
            minio=client,
            relay=relay,
        )
        self.context.add_worker("outbox-relay", relay)
        bindings = list(await self.build(self.context))
        checks: dict[str, health.Check] = {
            "database": health.database_check(self.engine),
            "kafka": health.kafka_check(s.kafka_bootstrap, timeout_s=s.readiness_timeout_s),
        }
        if client is not None:
            checks["s3"] = health.s3_check(client, timeout_s=s.readiness_timeout_s)
        # Not ready until the topics (and buckets) exist, even when every dependency answers.
        checks["bootstrap"] = self._bootstrap_check
        self.server = await build_server(s, bindings=bindings, verifier=verifier, checks=checks)
        await self.server.start()
        log.info(
            "service started; readiness follows its dependencies",
            extra={
                "grpc_port": self.server.port,
                "services": [b.name for b in bindings],
                "s3": self.needs_s3,
            },
        )
        self._spawn("bootstrap", self._bootstrap())

    async def _migrate(self) -> None:
        assert self.engine is not None
        # A database server may be starting too; a SQLite file that cannot be opened will not get better.
        transient = () if db.is_sqlite(self.engine) else (OSError, OperationalError, InterfaceError)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(transient),
            wait=wait_exponential(multiplier=0.2, max=MAX_BACKOFF_S),
            stop=stop_after_delay(DATABASE_STARTUP_TIMEOUT_S),
            before_sleep=lambda rs: log.warning(
                "database unreachable, retrying", extra={"error": _describe(rs.outcome.exception())}
            ),
            reraise=True,
        ):
            with attempt:
                await migrations.upgrade(self.engine, self.migrations_dir)
        log.info("database migrated", extra={"revision": await migrations.current_revision(self.engine)})

    async def _bootstrap_check(self) -> None:
        if not self.bootstrapped.is_set():
            raise RuntimeError(
                f"topics and buckets not set up yet (last error: {self.bootstrap_error or 'none'})"
            )

    async def _bootstrap(self) -> None:
        s = self.settings
        assert self.context is not None
        await self._retry_forever(
            "kafka topics", lambda: kafka.ensure_topics(s.kafka_bootstrap, self.topic_partitions)
        )
        client = self.context.minio
        if client is not None:
            await self._retry_forever("s3 buckets", lambda: _objectstore().bootstrap_buckets(client))
        self.bootstrap_error = None
        self.bootstrapped.set()
        log.info("topics and buckets ready")
        if self.freeze_heap:
            freeze_startup_heap()
        for name, worker in self.context.workers:
            self._spawn(name, self._supervise(name, worker))

    async def _retry_forever(self, what: str, attempt_once: Callable[[], Awaitable[Any]]) -> None:
        """Retry with capped exponential backoff until it succeeds or the task is cancelled at shutdown."""

        def note(state: RetryCallState) -> None:
            self.bootstrap_error = (
                f"{what}: {_describe(state.outcome.exception() if state.outcome else None)}"
            )
            log.warning(
                "dependency unavailable, retrying", extra={"what": what, "error": self.bootstrap_error}
            )

        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.2, max=MAX_BACKOFF_S), before_sleep=note
        ):
            with attempt:
                await attempt_once()

    async def _supervise(self, name: str, worker: Worker) -> None:
        """Run a worker; if it fails, log and restart it with backoff (its broker may be briefly away)."""
        failures = 0
        while not self.stopping.is_set():
            try:
                await worker.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                delay = min(WORKER_MAX_BACKOFF_S, 0.5 * 2 ** (failures - 1))
                log.error(
                    "worker failed; restarting", exc_info=True, extra={"worker": name, "retry_in_s": delay}
                )
                # Sleep, but wake at once for shutdown.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks[name] = asyncio.create_task(coro, name=name)

    async def shutdown(self) -> None:
        self.stopping.set()
        if self.server is not None:
            # Stop accepting new calls first; in-flight calls get the grace period.
            await self.server.stop(self.settings.shutdown_grace_s)
        await _cancel(self.tasks.pop("bootstrap", None))
        if self.context is not None:
            for name, worker in self.context.workers:
                task = self.tasks.pop(name, None)
                if task is None:
                    continue
                result = worker.stop()
                if inspect.isawaitable(result):
                    await result
                done, _ = await asyncio.wait({task}, timeout=WORKER_STOP_TIMEOUT_S)
                if not done:
                    log.warning("worker did not stop in time; cancelling it", extra={"worker": name})
                await _cancel(task)
        if self.context is not None and self.context.transactions is not None:
            # After the server and workers: nothing submits transactions any more.
            await asyncio.to_thread(self.context.transactions.close)
        if self.engine is not None:
            await self.engine.dispose()
        log.info("stopped")


def _objectstore() -> Any:
    # Imported on demand: minio is slow to import and only ingest and archive use object storage.
    from vigil_kit import objectstore

    return objectstore


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _describe(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"


# --- command line -------------------------------------------------------------------------------------

# What each base setting means, for --help (a field's own description wins where it has one).
_DESCRIPTIONS = {
    "service_name": "Short service name: registry, ingest, archive, sharing, audit",
    "grpc_host": "Address the gRPC and /metrics servers bind to",
    "grpc_port": "gRPC port (health, reflection, WhoAmI and the service's RPCs)",
    "metrics_port": "Prometheus /metrics port; 0 disables it",
    "database_url": "SQLAlchemy URL: sqlite+aiosqlite:///FILE or postgresql+asyncpg://...",
    "kafka_bootstrap": "Kafka bootstrap servers, host:port[,host:port]",
    "s3_endpoint": "S3 endpoint host:port (used by services that store objects)",
    "s3_access_key": "S3 access key",
    "s3_secret_key": "S3 secret key",
    "s3_secure": "Use HTTPS for S3",
    "s3_region": "S3 region",
    "auth_issuer": "Expected `iss` of bearer tokens",
    "auth_public_keys": "Trusted issuer Ed25519 public keys, PEM strings",
    "auth_public_keys_file": "File of concatenated PEM public keys of trusted issuers",
    "service_token": "This service's own bearer token for calls to other services",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "readiness_interval_s": "Seconds between readiness probes of the dependencies",
    "readiness_timeout_s": "Seconds one readiness probe may take",
    "registry_addr": "Registry gRPC address host:port",
    "ingest_addr": "Ingest gRPC address host:port",
    "archive_addr": "Archive gRPC address host:port",
    "sharing_addr": "Sharing gRPC address host:port",
    "audit_addr": "Audit gRPC address host:port",
    "shutdown_grace_s": "Seconds in-flight calls get to finish after SIGTERM",
}


def env_names(settings_cls: type[ServiceSettings]) -> dict[str, str]:
    """Map each setting's field name to the environment variable that sets it."""
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return {name: f"{prefix}{name}".upper() for name in settings_cls.model_fields}


def settings_help(settings_cls: type[ServiceSettings], prog: str, summary: str) -> str:
    """The --help text: every setting with its environment variable, type, default and meaning."""
    rows = []
    envs = env_names(settings_cls)
    for name, info in settings_cls.model_fields.items():
        annotation = info.annotation
        type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        if annotation is not None and "list" in str(annotation):
            type_name = "JSON list"
        if info.is_required():
            default = "(required)"
        elif isinstance(info.default, SecretStr):
            default = "(secret)"
        else:
            value = info.get_default(call_default_factory=True)
            default = repr(value) if value not in (None, [], "") else "-"
        rows.append((envs[name], type_name, default, info.description or _DESCRIPTIONS.get(name, "")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"usage: {prog} [--help]",
        "",
        summary,
        "",
        "Every setting comes from an environment variable (lists as JSON):",
        "",
    ]
    for env, type_name, default, description in rows:
        line = f"  {env:<{widths[0]}}  {type_name:<{widths[1]}}  {default:<{widths[2]}}  {description}"
        lines.append(line.rstrip())
    return "\n".join(lines) + "\n"


def describe_validation_error(settings_cls: type[ServiceSettings], exc: ValidationError) -> str:
    """One line naming each bad environment variable and why it was refused (never its value)."""
    envs = env_names(settings_cls)
    parts = []
    for error in exc.errors():
        loc = error.get("loc") or ("?",)
        env = envs.get(str(loc[0]), str(loc[0]))
        parts.append(f"{env}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What creates an event loop of `kind` (ServiceSettings.event_loop): "uvloop" or "asyncio"."""
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if kind == "asyncio":
        return asyncio.new_event_loop
    raise ValueError(f"unknown event loop {kind!r} (uvloop or asyncio)")


def run_on(kind: str, main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main) on an event loop of `kind`: how a service process (and a load generator standing in
    for its clients) runs. uvloop's clock (loop.time()) counts in milliseconds: time with
    time.perf_counter() what must be finer."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)


def service_main(
    settings_cls: type[S],
    run: Callable[[S], Awaitable[None]],
    *,
    prog: str,
    summary: str,
    argv: Sequence[str] | None = None,
) -> None:
    """Entry point of `python -m vigil_<name>`: parse argv, validate settings, run, exit.

    Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT) or --help; 2 for a bad setting or
    argument (one line on stderr); 1 when the service fails.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(settings_help(settings_cls, prog, summary))
        raise SystemExit(0)
    if args:
        sys.stderr.write(
            f"{prog}: unexpected argument {args[0]!r} (settings come from the environment; see --help)\n"
        )
        raise SystemExit(2)
    try:
        settings = settings_cls()
    except ValidationError as exc:
        sys.stderr.write(f"{prog}: bad setting: {describe_validation_error(settings_cls, exc)}\n")
        raise SystemExit(2) from None
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    try:
        run_on(settings.event_loop, run(settings))
    except Exception:
        log.exception("service failed")
        raise SystemExit(1) from None
    raise SystemExit(0)
