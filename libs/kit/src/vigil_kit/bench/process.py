"""A Vigil service as its own process for a benchmark: `python -m vigil_<name>`, waited for until SERVING."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vigil_kit.embedded import EmbeddedProcess, free_port


class BenchService:
    """One service process on loopback: its own port, database URL, broker, S3, and trusted issuer key.

    `settings` are the service's setting names without its prefix (DATABASE_URL=…, SHARING_ADDR=…).
    """

    def __init__(
        self,
        name: str,
        workdir: Path,
        *,
        public_key_pem: str,
        kafka_bootstrap: str,
        s3_endpoint: str | None = None,
        settings: Mapping[str, str] | None = None,
        label: str | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        prefix = name.upper()
        env = {
            f"{prefix}_GRPC_HOST": "127.0.0.1",
            f"{prefix}_GRPC_PORT": str(self.port),
            f"{prefix}_METRICS_PORT": "0",
            f"{prefix}_KAFKA_BOOTSTRAP": kafka_bootstrap,
            f"{prefix}_AUTH_PUBLIC_KEYS": json.dumps([public_key_pem]),
            f"{prefix}_LOG_LEVEL": "WARNING",
            f"{prefix}_SHUTDOWN_GRACE_S": "2",
        }
        if s3_endpoint:
            env[f"{prefix}_S3_ENDPOINT"] = s3_endpoint
        env.update({f"{prefix}_{k}": v for k, v in (settings or {}).items()})
        label = label or name
        self.process = EmbeddedProcess(
            f"{label} (bench)",
            [sys.executable, "-m", f"vigil_{name}"],
            "127.0.0.1",
            self.port,
            log_path=workdir / f"{label}.log",
            env=env,
        )

    @property
    def address(self) -> str:
        return self.process.address

    async def start(self, timeout_s: float = 90.0) -> BenchService:
        try:
            return await self._start(timeout_s)
        except BaseException:
            # Failed, cancelled or interrupted while starting: no `async with` exit will stop it.
            self.process.stop(5.0)
            raise

    async def _start(self, timeout_s: float) -> BenchService:
        await asyncio.to_thread(self.process.start, timeout_s)
        async with grpc.aio.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return self
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} was not SERVING within {timeout_s:.0f} s")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await asyncio.to_thread(self.process.stop, 20.0)

    async def __aenter__(self) -> BenchService:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
