"""The idempotent consumer: each event's effects and its processed-event row commit together, then the offset."""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from vigil_kit import cloudevents
from vigil_kit.cloudevents import CloudEvent
from vigil_kit.db import session_factory
from vigil_kit.kafka import create_consumer
from vigil_kit.migrations import processed_events_table

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]

# Keyed by the registry itself, weakly: an id() could be reused by a new registry once an old one is freed.
_metrics_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, tuple[Counter, Counter, Counter]] = (
    weakref.WeakKeyDictionary()
)


def _metrics(reg: CollectorRegistry) -> tuple[Counter, Counter, Counter]:
    found = _metrics_by_registry.get(reg)
    if found is None:
        found = (
            Counter(
                "vigil_consumer_events_total", "Events handled and committed", ["consumer"], registry=reg
            ),
            Counter(
                "vigil_consumer_duplicates_total",
                "Events skipped as already processed",
                ["consumer"],
                registry=reg,
            ),
            Counter("vigil_consumer_failures_total", "Handler runs that raised", ["consumer"], registry=reg),
        )
        _metrics_by_registry[reg] = found
    return found


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: IdempotentConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Let the batch in hand finish (DB commit, then offset commit) before another member takes over.
        async with self.owner._batch_lock:
            pass
        if revoked:
            log.info(
                "partitions revoked",
                extra={"consumer": self.owner.name, "partitions": [str(tp) for tp in revoked]},
            )

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.owner._failures.clear()
        if assigned:
            log.info(
                "partitions assigned",
                extra={"consumer": self.owner.name, "partitions": [str(tp) for tp in assigned]},
            )


class IdempotentConsumer:
    """Consumes `topics` in `group_id`, running `handler(session, event)` once per event id.

    For each fetched batch, one transaction runs the handler for every event not yet in the
    processed-events table (under this consumer's `name`) and records it there; after that
    transaction commits, the offsets are committed. If a handler raises, the batch is rolled
    back and replayed one event per transaction up to the failing one; the offset never moves
    past it, and it is retried after a capped backoff (and redelivered after a restart).
    Handlers must keep their effects inside the session.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        bootstrap: str,
        topics: Iterable[str],
        group_id: str,
        name: str,
        handler: Handler,
        max_records: int = 500,
        fetch_timeout_ms: int = 200,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        consumer_kw: dict[str, Any] | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.engine = engine
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.group_id = group_id
        self.name = name
        self.handler = handler
        self.max_records = max_records
        self.fetch_timeout_ms = fetch_timeout_ms
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.consumer_kw = consumer_kw or {}
        self.handled = 0
        self.duplicates = 0
        self._sessions = session_factory(engine)
        self._stop = asyncio.Event()
        self._batch_lock = asyncio.Lock()
        self._failures: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._m_events, self._m_dupes, self._m_failures = _metrics(registry)
        self.started = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        consumer = await create_consumer(self.bootstrap, (), self.group_id, **self.consumer_kw)
        self._consumer = consumer
        consumer.subscribe(self.topics, listener=_Rebalance(self))
        self.started.set()
        try:
            while not self._stop.is_set():
                fetch = asyncio.ensure_future(
                    consumer.getmany(timeout_ms=self.fetch_timeout_ms, max_records=self.max_records)
                )
                stop = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if not fetch.done():
                    fetch.cancel()
                    break
                batch = fetch.result()
                if not batch:
                    continue
                async with self._batch_lock:
                    delay = await self._process(consumer, batch)
                if delay:
                    try:
                        await asyncio.wait_for(self._stop.wait(), delay)
                    except TimeoutError:
                        pass
        finally:
            self._consumer = None
            await consumer.stop()

    async def _process(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Any]]) -> float:
        """Handle one fetched batch; returns how long to back off (0 when everything committed)."""
        try:
            async with self._sessions.begin() as session:
                counts = await self._apply(session, [r for records in batch.values() for r in records])
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
            self._account(*counts)
            for tp in batch:
                self._failures.pop(tp, None)
            await self._commit(consumer, offsets)
            return 0.0
        except Exception:
            log.warning(
                "batch failed; replaying it one event at a time", exc_info=True, extra={"consumer": self.name}
            )
        delay = 0.0
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            for record in records:
                try:
                    async with self._sessions.begin() as session:
                        counts = await self._apply(session, [record])
                except Exception:
                    attempt = self._failures.get(tp, 0) + 1
                    self._failures[tp] = attempt
                    self._m_failures.labels(self.name).inc()
                    wait = min(
                        self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1)
                    ) * random.uniform(0.5, 1)
                    log.error(
                        "event handler failed; will retry it",
                        exc_info=True,
                        extra={
                            "consumer": self.name,
                            "topic": tp.topic,
                            "partition": tp.partition,
                            "offset": record.offset,
                            "attempt": attempt,
                        },
                    )
                    consumer.seek(tp, record.offset)
                    delay = max(delay, wait)
                    break
                self._account(*counts)
                self._failures.pop(tp, None)
                offsets[tp] = record.offset + 1
        if offsets:
            await self._commit(consumer, offsets)
        return delay

    async def _apply(self, session: AsyncSession, records: list[Any]) -> tuple[int, int]:
        events = []
        for r in records:
            try:
                events.append(cloudevents.from_record(r))
            except cloudevents.CloudEventError:
                # Not a Vigil event at all (no id to dedupe by): retrying cannot help, so skip it loudly.
                log.error("skipping a malformed record", exc_info=True, extra={"consumer": self.name})
                self._m_failures.labels(self.name).inc()
        pe = processed_events_table
        ids = list({e.id for e in events})
        seen: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            seen.update(
                await session.scalars(
                    select(pe.c.event_id).where(pe.c.consumer == self.name, pe.c.event_id.in_(chunk))
                )
            )
        handled = dupes = 0
        now = datetime.now(UTC)
        new_rows = []
        for event in events:
            if event.id in seen:
                dupes += 1
                continue
            seen.add(event.id)
            await self.handler(session, event)
            new_rows.append({"consumer": self.name, "event_id": event.id, "processed_at": now})
            handled += 1
        if new_rows:
            await session.execute(insert(pe), new_rows)
        return handled, dupes

    def _account(self, handled: int, dupes: int) -> None:
        self.handled += handled
        self.duplicates += dupes
        if handled:
            self._m_events.labels(self.name).inc(handled)
        if dupes:
            self._m_dupes.labels(self.name).inc(dupes)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in offsets.items()})
        except (CommitFailedError, KafkaError):
            # The group moved on; whoever owns these partitions now re-reads them and skips what we committed.
            log.warning(
                "offset commit failed after the database commit", exc_info=True, extra={"consumer": self.name}
            )
