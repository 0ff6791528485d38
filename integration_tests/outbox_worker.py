"""A relay or consumer process for the outbox exactly-once test (run as a script so SIGKILL is real).

    python outbox_worker.py relay DB_URL BOOTSTRAP
    python outbox_worker.py consume DB_URL BOOTSTRAP TOPIC GROUP [PAUSE_AT MARKER_FILE]

The consumer records every event it takes in `received`, numbered in consumption order. With PAUSE_AT
it stops inside the handler of its PAUSE_AT-th event, its batch's transaction open, and creates
MARKER_FILE: a SIGKILL then lands midway, however fast it consumes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.orm import registry

from vigil.common.v1 import identity_pb2
from vigil_kit import cloudevents, db
from vigil_kit.consumer import IdempotentConsumer
from vigil_kit.migrations import KIT_METADATA
from vigil_kit.outbox import OutboxRelay

RECEIVED = MetaData()
received = Table(
    "received",
    RECEIVED,
    Column("ordinal", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("key", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("event_id", String(64), nullable=False),
)


class Received:
    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)


registry(metadata=RECEIVED).map_imperatively(Received, received)


class Recorder:
    """The handler: numbers events in the order it takes them, continuing after a restart.

    It adds ORM rows with their ordinal already set, so a batch's rows are inserted together at
    commit; a rolled-back batch only leaves a gap in the numbering, never a reordering.
    """

    def __init__(self, start: int, pause_at: int | None = None, marker: Path | None = None) -> None:
        self.next = start
        self.pause_at = pause_at
        self.marker = marker

    async def __call__(self, session, event) -> None:
        msg = cloudevents.decode(event, [identity_pb2.Principal])
        self.next += 1
        if self.pause_at is not None and self.next >= self.pause_at:
            assert self.marker is not None
            self.marker.touch()
            await asyncio.Event().wait()  # until the test's SIGKILL
        session.add(Received(ordinal=self.next, key=msg.id, seq=int(msg.name), event_id=event.id))


async def main(argv: list[str]) -> None:
    mode, url, bootstrap = argv[:3]
    engine = db.create_engine(url)
    if mode == "relay":
        worker = OutboxRelay(engine, bootstrap=bootstrap, service="it", batch_size=50, lease_ttl_s=1.0)
    else:
        topic, group = argv[3:5]
        async with engine.begin() as conn:
            await conn.run_sync(KIT_METADATA.create_all)
            await conn.run_sync(RECEIVED.create_all)
            start = await conn.scalar(select(func.coalesce(func.max(received.c.ordinal), 0)))
        worker = IdempotentConsumer(
            engine,
            bootstrap=bootstrap,
            topics=[topic],
            group_id=group,
            name="it",
            handler=Recorder(
                start, int(argv[5]) if len(argv) > 5 else None, Path(argv[6]) if len(argv) > 6 else None
            ),
            max_records=200,
            # The broker notices the SIGKILLed member sooner, so the restarted one joins sooner.
            consumer_kw={
                "session_timeout_ms": 3000,
                "heartbeat_interval_ms": 500,
                "rebalance_timeout_ms": 3000,
            },
        )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stop)
    try:
        await worker.run()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(sys.argv[1:]))
