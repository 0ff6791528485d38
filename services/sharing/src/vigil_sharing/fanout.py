"""The partner fan-out: a faust-streaming agent copying in-scope registry, status and alarm events to
`vigil.partner.<partner_unit_id>.v1`, unchanged (same key, value and ce_* headers).

At least once: the agent waits for the broker's ack of every copy before it takes the next event, and
faust commits an offset only for events the agent has finished, so a crash repeats copies rather than
losing them (partners dedupe by ce_id; Subscribe dedupes for its clients). No faust tables: the state
it decides from (subscriptions, grants, device facts) lives in SQL and this process's grant index, as
the broker cannot recover faust tables reliably (its end offsets are wrong after batched produce).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from vigil_kit import cloudevents, kafka, topics
from vigil_sharing.partner import Router

log = logging.getLogger(__name__)

FANOUT_GROUP = "sharing-partner-fanout"
SOURCES = (topics.REGISTRY_EVENTS, topics.DEVICE_STATUS, topics.INGEST_ALARMS)
PARTNER_PARTITIONS = 3
MAX_BACKOFF_S = 2.0

COPIED = Counter(
    "vigil_sharing_partner_events_total", "Events the fan-out copied to partner topics.", ["event_type"]
)
RETRIES = Counter(
    "vigil_sharing_partner_fanout_retries_total",
    "Times the fan-out retried an event it could not route or copy (registry or broker unavailable).",
)


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    items = raw.items() if isinstance(raw, Mapping) else (raw or ())
    return [(str(k), bytes(v) if v is not None else b"") for k, v in items]


class FanOut:
    """Worker: one faust app (its consumer group is FANOUT_GROUP) per run(); restartable."""

    def __init__(
        self,
        router: Router,
        *,
        bootstrap: str,
        group_id: str = FANOUT_GROUP,
        session_timeout_s: float = 6.0,
        commit_interval_s: float = 0.5,
    ) -> None:
        self.router = router
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.session_timeout_s = session_timeout_s
        self.commit_interval_s = commit_interval_s
        self._stop = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._topics_ready: set[str] = set()

    def stop(self) -> None:
        self._stop.set()

    def _app(self) -> faust.App:
        app = faust.App(
            self.group_id,
            broker=_broker_url(self.bootstrap),
            store="memory://",
            processing_guarantee="at_least_once",
            web_enabled=False,
            autodiscover=False,
            topic_disable_leader=True,
            topic_partitions=PARTNER_PARTITIONS,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=self.session_timeout_s,
            broker_heartbeat_interval=1.0,
            # A member that died is replaced after session_timeout_s; a live one rejoins well within this.
            broker_rebalance_timeout=10.0,
            broker_commit_interval=self.commit_interval_s,
            producer_acks=-1,
        )
        source = app.topic(
            *SOURCES, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

        # One agent instance (concurrency 1): events of a key stay in order on the partner topic.
        @app.agent(source, name="partner-fanout")
        async def fan(stream: Any) -> None:
            async for event in stream.events():
                await self._handle(event.message)

        return app

    async def run(self) -> None:
        self._stop.clear()
        self._producer = await kafka.create_producer(self.bootstrap)
        app = self._app()
        try:
            await app.start()
            log.info("partner fan-out started", extra={"group": self.group_id})
            while not self._stop.is_set():
                if app.should_stop or app.crashed:
                    raise RuntimeError(f"the fan-out's faust app stopped: {app.crash_reason!r}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.5)
        finally:
            with contextlib.suppress(Exception):
                await app.stop()
            await self._producer.stop()
            self._producer = None

    async def _handle(self, message: Any) -> None:
        record = SimpleNamespace(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            headers=_headers(message.headers),
            timestamp=int((message.timestamp or 0) * 1000),
        )
        try:
            event = cloudevents.from_record(record)
        except cloudevents.CloudEventError:
            log.warning("skipping a record that is not a CloudEvent", extra={"topic": message.topic})
            return
        backoff = 0.1
        while True:
            try:
                await self._copy(event, record)
                return
            except Exception:
                if self._stop.is_set():
                    raise  # not acked: the next run (or another replica) copies it
                RETRIES.inc()
                log.exception("could not copy an event to partner topics; retrying", extra={"id": event.id})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _copy(self, event: cloudevents.CloudEvent, record: SimpleNamespace) -> None:
        units = await self.router.units_for(event)
        assert self._producer is not None
        for unit in sorted(units):
            topic = topics.partner_topic(unit)
            if topic not in self._topics_ready:
                await kafka.ensure_topics(self.bootstrap, {topic: PARTNER_PARTITIONS})
                self._topics_ready.add(topic)
            # Unchanged: the partner dedupes by the original ce_id and reads the original payload.
            await self._producer.send_and_wait(
                topic, value=record.value, key=record.key, headers=record.headers
            )
            COPIED.labels(event.type).inc()
