"""Readiness: dependency checks (broker, database, S3) driving the stock grpc.health.v1 statuses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from grpc_health.v1 import health_pb2

if TYPE_CHECKING:
    import minio
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

Check = Callable[[], Awaitable[None]]
"""A readiness probe: returns when the dependency answers, raises when it does not."""

LIVENESS = "liveness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ReadinessMonitor:
    """Probes every check each `interval_s`; SERVING for "" and `service_names` only while all pass.

    A probe that does not answer within `timeout_s` counts as failed, so a lost dependency turns
    readiness NOT_SERVING within interval + timeout (3 s with the defaults). The "liveness" service
    name is SERVING for as long as the monitor runs, whatever the dependencies do.
    """

    def __init__(
        self,
        health_servicer: Any,
        service_names: Sequence[str],
        checks: Mapping[str, Check],
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
    ) -> None:
        self._health = health_servicer
        self._names = ["", *(n for n in service_names if n)]
        self._checks = dict(checks)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._failures: dict[str, str] = {}
        self._ready: bool | None = None
        self._task: asyncio.Task | None = None

    @property
    def ready(self) -> bool:
        return bool(self._ready)

    @property
    def failures(self) -> dict[str, str]:
        """Check name → why it failed, for the checks failing in the last round."""
        return dict(self._failures)

    async def start(self) -> None:
        """Mark liveness SERVING, run a first round (so statuses are right at once), then probe periodically."""
        if self._task is not None:
            return
        await self._health.set(LIVENESS, SERVING)
        if self._ready is None:
            for name in self._names:
                await self._health.set(name, NOT_SERVING)
        await self.check_once()
        self._task = asyncio.create_task(self._run(), name="vigil-readiness")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for check in self._checks.values():
            close = getattr(check, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    logger.warning("closing a readiness check failed", exc_info=True)

    async def check_once(self) -> bool:
        """Run every check now and update the health statuses; returns readiness."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._probe(self._checks[n]) for n in names))
        failures = {n: r for n, r in zip(names, results, strict=True) if r is not None}
        await self._apply(failures)
        return self.ready

    async def _probe(self, check: Check) -> str | None:
        try:
            await asyncio.wait_for(check(), self.timeout_s)
        except TimeoutError:
            return f"no answer within {self.timeout_s:g} s"
        except Exception as exc:
            text = str(exc) or type(exc).__name__
            return f"{type(exc).__name__}: {text}"[:300]
        return None

    async def _apply(self, failures: dict[str, str]) -> None:
        ready = not failures
        changed = ready != self._ready or failures.keys() != self._failures.keys()
        self._failures = failures
        if ready != self._ready:
            for name in self._names:
                await self._health.set(name, SERVING if ready else NOT_SERVING)
        self._ready = ready
        if changed:
            if ready:
                logger.info("ready: all dependencies reachable", extra={"checks": sorted(self._checks)})
            else:
                logger.warning("not ready: dependencies unreachable", extra={"failures": failures})

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check_once()
            except Exception:  # keep probing whatever one round did
                logger.exception("readiness round failed")


class _KafkaCheck:
    """Fetches cluster metadata over one long-lived client; a failed probe drops the client, the next
    probe bootstraps a new one, so no connection or task outlives a probe's failure."""

    def __init__(self, bootstrap: str, timeout_s: float) -> None:
        self._bootstrap = bootstrap
        self._timeout_ms = max(int(timeout_s * 1000), 100)
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> None:
        from aiokafka.client import AIOKafkaClient

        from vigil_kit.kafka import client_options

        async with self._lock:
            client = self._client
            try:
                if client is None:
                    client = AIOKafkaClient(
                        **client_options(),
                        bootstrap_servers=self._bootstrap,
                        client_id="vigil-readiness",
                        request_timeout_ms=self._timeout_ms,
                        retry_backoff_ms=100,
                    )
                    await client.bootstrap()
                    self._client = client
                else:
                    await client.fetch_all_metadata()
                if not client.cluster.brokers():
                    raise ConnectionError("broker returned no brokers in its metadata")
            except BaseException:
                self._client = None
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.close()
                raise

    async def aclose(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is not None:
                await client.close()


def kafka_check(bootstrap: str, *, timeout_s: float = 2.0) -> Check:
    """Readiness check for the Kafka broker at `bootstrap` (a metadata request)."""
    return _KafkaCheck(bootstrap, timeout_s)


class _DatabaseCheck:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __call__(self) -> None:
        from sqlalchemy import text

        from vigil_kit.db import READ_ONLY_OPTION

        async with self._engine.connect() as conn:
            # Read-only: on SQLite it begins DEFERRED, so the probe never takes (or waits for) the write
            # lock that the service's own commits need.
            conn = await conn.execution_options(**{READ_ONLY_OPTION: True})
            await conn.execute(text("SELECT 1"))


def database_check(engine: AsyncEngine) -> Check:
    """Readiness check for the service's database (SELECT 1 on a pooled connection)."""
    return _DatabaseCheck(engine)


class _S3Check:
    """list_buckets on a probe client with short timeouts and no retries, in a worker thread.

    minio's default HTTP pool waits minutes and retries, so a probe made with the service's own
    client would hang; this one fails within the timeout. Only one probe thread runs at a time: a
    thread still stuck in a previous probe makes the next probe fail at once instead of piling up.
    """

    def __init__(self, client: minio.Minio, timeout_s: float) -> None:
        self._client = _probe_client(client, timeout_s)
        self._inflight: asyncio.Future | None = None

    async def __call__(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            raise TimeoutError("previous S3 probe has not returned yet")
        fut = asyncio.get_running_loop().run_in_executor(None, self._client.list_buckets)
        # Nobody may be waiting when a late probe fails; retrieve its exception so asyncio stays quiet.
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._inflight = fut
        # Shielded: a timed-out probe leaves the thread's future pending until the thread really ends.
        await asyncio.shield(fut)


def _probe_client(client: minio.Minio, timeout_s: float) -> minio.Minio:
    import minio as minio_mod
    import urllib3

    pool = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
        retries=False,
        maxsize=1,
    )
    try:
        # minio exposes no public way to copy a client's endpoint/credentials with another HTTP pool.
        base = client._base_url
        return minio_mod.Minio(
            base.host,
            credentials=client._provider,
            secure=base.is_https,
            region=base.region,
            http_client=pool,
        )
    except AttributeError:
        logger.warning("cannot derive a short-timeout S3 probe client; probing with the service's client")
        return client


def s3_check(client: minio.Minio, *, timeout_s: float = 2.0) -> Check:
    """Readiness check for the S3 server behind `client` (list_buckets), failing within `timeout_s`."""
    return _S3Check(client, timeout_s)
