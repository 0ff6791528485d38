"""Run a Vigil service inside the test's event loop (contract tests): real database, broker and S3.

`in_process(settings, build=app.build, ...)` starts the service with vigil_kit.service.run_service,
waits until it listens (and, when asked, until its buckets exist), yields what its build made, and
always stops it. Workers named in `drop_workers` never run — by default the outbox relay, so every
event and audit record the service commits stays in its outbox table for the test to read exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from vigil_kit.grpc_server import ServiceBinding
from vigil_kit.migrations import outbox_table
from vigil_kit.service import Build, ServiceContext, run_service
from vigil_kit.settings import ServiceSettings
from vigil_testing.calls import service_started
from vigil_testing.poll import apoll_until


@dataclass
class Outboxed:
    """One committed outbox row, decoded."""

    topic: str
    key: str
    type: str
    message: Any


@dataclass
class InProcess:
    """A running in-process service: its context and bindings, and a reader of its outbox."""

    settings: ServiceSettings
    context: ServiceContext | None = None
    bindings: list[ServiceBinding] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.grpc_port}"

    def servicer(self, name: str | None = None) -> Any:
        """The servicer of the binding named `name` (the only one when None)."""
        if name is None:
            (binding,) = self.bindings
            return binding.servicer
        return next(b.servicer for b in self.bindings if b.name == name)

    async def outbox(self, types: Iterable[type], *, topic: str | None = None) -> list[Outboxed]:
        """The committed outbox rows of the given message types, in commit order."""
        assert self.context is not None
        by_name = {t.DESCRIPTOR.full_name: t for t in types}  # type: ignore[attr-defined]
        async with self.context.sessions() as s:
            rows = (await s.execute(select(outbox_table).order_by(outbox_table.c.id))).all()
        return [
            Outboxed(r.topic, r.key, r.ce_type, by_name[r.ce_type].FromString(r.payload))
            for r in rows
            if r.ce_type in by_name and (topic is None or r.topic == topic)
        ]


@contextlib.asynccontextmanager
async def in_process(
    settings: ServiceSettings,
    *,
    build: Build,
    migrations_dir: Path,
    needs_s3: bool,
    drop_workers: Sequence[str] = ("outbox-relay",),
    buckets: Sequence[str] = (),
    start_timeout_s: float = 30.0,
) -> AsyncIterator[InProcess]:
    service = InProcess(settings=settings)

    async def _build(ctx: ServiceContext) -> list[ServiceBinding]:
        service.context = ctx
        service.bindings = list(await build(ctx))
        ctx.workers[:] = [(n, w) for n, w in ctx.workers if n not in drop_workers]
        return service.bindings

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_service(settings, build=_build, migrations_dir=migrations_dir, needs_s3=needs_s3, stop=stop)
    )
    try:
        await apoll_until(
            lambda: service_started(task, settings.grpc_port),
            timeout=start_timeout_s,
            interval=0.02,
            what=f"{settings.service_name} listening",
        )
        if buckets:
            assert service.context is not None and service.context.minio is not None
            client = service.context.minio
            for bucket in buckets:
                await apoll_until(
                    lambda b=bucket: asyncio.to_thread(client.bucket_exists, b),
                    timeout=start_timeout_s,
                    what=f"bucket {bucket}",
                )
        yield service
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 20)
        # run_service configures process-wide JSON logging; give the test process its own back.
        root.handlers[:] = handlers
        root.setLevel(level)
