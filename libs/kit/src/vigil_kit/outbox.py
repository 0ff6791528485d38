"""The transactional outbox: enqueue an event with the state change, and the relay that publishes it.

Ordering. One relay per database publishes at a time: it holds a lease row (renewed while it
works, taken over only after it expires), reads unsent rows in id order, and in each round
sends at most ONE Kafka record batch per partition, built from that partition's rows in id
order, and waits for every acknowledgement before the next round. A record batch is appended
atomically, so a partition's log receives rows in id order; when a partition's batch fails,
its rows stay in the table and the next round starts again from the lowest unsent id (the
batch may in fact have been written: that only repeats a run of events, which consumers skip
by event id). Rows of one key land in one partition, so per-key order holds. Writers of one
key must commit in order, which they do when they update that entity's row in the same
transaction (the row lock orders them).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from google.protobuf.message import Message
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import registry as orm_registry

from vigil_kit import cloudevents, db
from vigil_kit.kafka import create_producer
from vigil_kit.migrations import KIT_METADATA, outbox_table, relay_lease_table

log = logging.getLogger(__name__)

LEASE_NAME = "outbox"
_NOTIFIERS = "vigil_outbox_notifiers"


class OutboxRow:
    """ORM view of one outbox row, so enqueue() joins the caller's unit of work."""

    def __init__(self, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)


# Identity by event id and no `id` attribute: the ORM then inserts rows in bulk (executemany) instead of
# one statement per row to fetch each generated id, which it never needs.
orm_registry(metadata=KIT_METADATA).map_imperatively(
    OutboxRow, outbox_table, primary_key=[outbox_table.c.event_id], exclude_properties=["id"]
)


def enqueue(
    session: AsyncSession,
    *,
    topic: str,
    key: str,
    message: Message,
    source_service: str,
    subject: str | None = None,
    event_id: str | None = None,
    notifier: Callable[[], None] | None = None,
) -> str:
    """Add `message` to the outbox in the caller's transaction; returns its event id (UUIDv7 unless given).

    Nothing is published unless the caller commits. `subject` defaults to `key`. `notifier`
    (e.g. OutboxRelay.notify) is called after the commit so an in-process relay wakes at once.
    """
    row = event_row(
        topic=topic,
        key=key,
        message=message,
        source_service=source_service,
        subject=subject,
        event_id=event_id,
    )
    return add_row(session, row, notifier=notifier)


def add_row(session: AsyncSession, row: dict[str, Any], *, notifier: Callable[[], None] | None = None) -> str:
    """Add an outbox row built by event_row (or audit.audit_row) in the caller's transaction; its event id.
    `notifier` is called after the commit, as with enqueue."""
    session.add(OutboxRow(**row))
    if notifier is not None:
        _notify_after_commit(session, notifier)
    return row["event_id"]


def event_row(
    *,
    topic: str,
    key: str,
    message: Message,
    source_service: str,
    subject: str | None = None,
    event_id: str | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """The outbox row enqueue() adds, as column values: for a writer that inserts many rows in one
    statement (`conn.execute(outbox_table.insert(), rows)`) or on a synchronous connection. The caller
    wakes the relay after its commit."""
    return {
        "event_id": event_id or cloudevents.new_event_id(),
        "topic": topic,
        "key": key,
        "ce_type": message.DESCRIPTOR.full_name,
        "source": cloudevents.source_for(source_service),
        "subject": key if subject is None else subject,
        "payload": message.SerializeToString(),
        "created_at": created_at or datetime.now(UTC),
    }


def kafka_record(row: Mapping[str, Any]) -> tuple[bytes, bytes, list[tuple[str, bytes]], int]:
    """(key, value, CloudEvents headers, timestamp in ms) of the Kafka record an event row (event_row, or
    an outbox table row) is published as: the relay and DirectPublisher write the same record."""
    headers = cloudevents.build_headers(
        event_id=row["event_id"],
        ce_type=row["ce_type"],
        source=row["source"],
        subject=row["subject"],
        time=row["created_at"],
    )
    return row["key"].encode(), row["payload"], headers, int(row["created_at"].timestamp() * 1000)


def _notify_after_commit(session: AsyncSession, notifier: Callable[[], None]) -> None:
    sync_session = session.sync_session
    pending: set[Callable[[], None]] | None = sync_session.info.get(_NOTIFIERS)
    if pending is None:
        pending = set()
        sync_session.info[_NOTIFIERS] = pending
        from sqlalchemy import event

        @event.listens_for(sync_session, "after_commit")
        def _after_commit(s: Any) -> None:
            for fn in list(s.info.get(_NOTIFIERS, ())):
                try:
                    fn()
                except Exception:  # a wake-up hint must never fail the caller's commit
                    log.exception("outbox notifier failed")
            s.info[_NOTIFIERS] = set()

    pending.add(notifier)


@dataclass
class _Metrics:
    pending: Gauge
    oldest_age: Gauge
    published: Counter
    failures: Counter
    direct: Counter
    fallbacks: Counter


# Keyed by the registry itself, weakly: an id() could be reused by a new registry once an old one is freed.
_metrics_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()


def _metrics(reg: CollectorRegistry) -> _Metrics:
    # One set of collectors per registry: several relays in one process (tests, the CLI) share them.
    found = _metrics_by_registry.get(reg)
    if found is None:
        found = _Metrics(
            pending=Gauge(
                "vigil_outbox_pending_rows", "Outbox rows not yet published", ["service"], registry=reg
            ),
            oldest_age=Gauge(
                "vigil_outbox_oldest_unsent_age_seconds",
                "Age of the oldest unpublished outbox row (0 when none)",
                ["service"],
                registry=reg,
            ),
            published=Counter(
                "vigil_outbox_published_total",
                "Outbox events acknowledged by the broker",
                ["service"],
                registry=reg,
            ),
            failures=Counter(
                "vigil_outbox_publish_failures_total",
                "Relay rounds in which a publish to the broker failed",
                ["service"],
                registry=reg,
            ),
            direct=Counter(
                "vigil_outbox_direct_published_total",
                "Events the broker acknowledged straight from the writer, without an outbox row",
                ["service"],
                registry=reg,
            ),
            fallbacks=Counter(
                "vigil_outbox_direct_fallbacks_total",
                "Events the broker did not acknowledge in time, which went to the outbox table instead",
                ["service"],
                registry=reg,
            ),
        )
        _metrics_by_registry[reg] = found
    return found


class OutboxRelay:
    """Publishes a database's outbox to Kafka, in id order per key, until stop()."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        bootstrap: str,
        service: str,
        batch_size: int = 500,
        poll_interval_s: float = 0.05,
        lease_ttl_s: float = 10.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        max_batch_bytes: int = 1024 * 1024,
        producer_kw: dict[str, Any] | None = None,
        registry: CollectorRegistry = REGISTRY,
        transactions: db.ThreadedTransactions | None = None,
    ) -> None:
        self.engine = engine
        # SQLite file: sent rows are deleted in one worker-thread hand-off (see _mark_sent).
        self.transactions = transactions
        self._reader = engine.execution_options(**{db.READ_ONLY_OPTION: True})
        self.bootstrap = bootstrap
        self.service = service
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.lease_ttl_s = lease_ttl_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_batch_bytes = max_batch_bytes
        self.producer_kw = producer_kw or {}
        self.holder = uuid.uuid4().hex
        self.published = 0
        self._metrics = _metrics(registry)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._lease_until_ms = 0
        self._partitioner = DefaultPartitioner()
        self._last_count = 0.0

    # -- control -------------------------------------------------------------------------------

    def notify(self) -> None:
        """Rows were committed: look now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def holds_lease(self) -> bool:
        return self._lease_until_ms > _now_ms()

    async def run(self) -> None:
        """Relay until stop(). Publish failures are retried with capped exponential backoff."""
        self._producer = await create_producer(
            self.bootstrap, max_batch_size=self.max_batch_bytes, linger_ms=0, **self.producer_kw
        )
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    if not await self._hold_lease():
                        await self._sleep(min(self.lease_ttl_s / 4, 1.0), wakeable=False)
                        continue
                    self._wake.clear()
                    read = await self.relay_once()
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception:
                    failures += 1
                    self._metrics.failures.labels(self.service).inc()
                    delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (failures - 1))
                    delay *= random.uniform(0.5, 1.0)
                    log.warning(
                        "outbox relay round failed; retrying",
                        exc_info=True,
                        extra={"service": self.service, "attempt": failures, "retry_in_s": round(delay, 3)},
                    )
                    await self._sleep(delay, wakeable=False)
                    continue
                if read < self.batch_size:
                    await self._sleep(self.poll_interval_s, wakeable=True)
        finally:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()
            finally:
                await self._release_lease()

    async def _sleep(self, seconds: float, *, wakeable: bool) -> None:
        waiters = [asyncio.ensure_future(self._stop.wait())]
        if wakeable:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    # -- lease ---------------------------------------------------------------------------------

    async def _hold_lease(self) -> bool:
        now = _now_ms()
        ttl_ms = int(self.lease_ttl_s * 1000)
        if self._lease_until_ms - now > ttl_ms // 2:
            return True
        lease = relay_lease_table
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(lease)
                .where(
                    lease.c.name == LEASE_NAME, or_(lease.c.holder == self.holder, lease.c.expires_at < now)
                )
                .values(holder=self.holder, expires_at=now + ttl_ms)
            )
            got = result.rowcount == 1
            if not got:
                exists = await conn.scalar(
                    select(func.count()).select_from(lease).where(lease.c.name == LEASE_NAME)
                )
                if not exists:
                    await conn.execute(
                        _insert_ignore(conn.dialect.name, lease, LEASE_NAME, self.holder, now + ttl_ms)
                    )
                    owner = await conn.scalar(select(lease.c.holder).where(lease.c.name == LEASE_NAME))
                    got = owner == self.holder
        if got:
            if self._lease_until_ms <= now:
                log.info("outbox relay holds the lease", extra={"service": self.service})
            self._lease_until_ms = now + ttl_ms
        else:
            self._lease_until_ms = 0
        return got

    async def _release_lease(self) -> None:
        if self._lease_until_ms == 0:
            return
        self._lease_until_ms = 0
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(relay_lease_table)
                    .where(relay_lease_table.c.name == LEASE_NAME, relay_lease_table.c.holder == self.holder)
                    .values(expires_at=0)
                )
        except Exception:
            log.warning("could not release the outbox lease (it will expire)", exc_info=True)

    # -- publishing ----------------------------------------------------------------------------

    async def relay_once(self) -> int:
        """One round: read up to batch_size unsent rows, publish what fits, delete what the broker acked.

        Returns the number of rows read. Raises after deleting the acked rows when any partition's
        publish failed, so run() backs off.
        """
        assert self._producer is not None, "run() starts the producer"
        producer = self._producer
        t = outbox_table
        # Reading takes no write lock (on SQLite a DEFERRED transaction on the WAL snapshot): a relay
        # polling or woken after every commit must not queue the service's own writers behind it.
        async with self._reader.begin() as conn:
            rows = (
                await conn.execute(
                    select(
                        t.c.id,
                        t.c.event_id,
                        t.c.topic,
                        t.c.key,
                        t.c.ce_type,
                        t.c.source,
                        t.c.subject,
                        t.c.payload,
                        t.c.created_at,
                    )
                    .order_by(t.c.id)
                    .limit(self.batch_size)
                )
            ).all()
            if time.monotonic() - self._last_count > 1.0 or len(rows) < self.batch_size:
                self._last_count = time.monotonic()
                pending = (
                    len(rows)
                    if len(rows) < self.batch_size
                    else await conn.scalar(select(func.count()).select_from(t))
                )
                self._metrics.pending.labels(self.service).set(pending or 0)
        if not rows:
            self._metrics.oldest_age.labels(self.service).set(0)
            return 0
        self._metrics.oldest_age.labels(self.service).set(
            max(0.0, (datetime.now(UTC) - rows[0].created_at).total_seconds())
        )

        batches: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        full: set[tuple[str, int]] = set()
        partitions: dict[str, list[int]] = {}
        part_of_key: dict[tuple[str, str], int] = {}
        for row in rows:
            pk = (row.topic, row.key)
            partition = part_of_key.get(pk)
            if partition is None:
                if row.topic not in partitions:
                    partitions[row.topic] = sorted(await producer.partitions_for(row.topic))
                all_parts = partitions[row.topic]
                partition = self._partitioner(row.key.encode(), all_parts, all_parts)
                part_of_key[pk] = partition
            tp = (row.topic, partition)
            if tp in full:
                continue  # a later row of a full partition waits for the next round, keeping order
            entry = batches.get(tp)
            if entry is None:
                entry = (producer.create_batch(), [])
                batches[tp] = entry
            builder, ids = entry
            key, value, headers, timestamp_ms = kafka_record(row._mapping)
            meta = builder.append(timestamp=timestamp_ms, key=key, value=value, headers=headers)
            if meta is None:
                full.add(tp)
                continue
            ids.append(row.id)

        sends = []
        for (topic, partition), (builder, ids) in batches.items():
            builder.close()
            sends.append(
                (topic, partition, ids, await producer.send_batch(builder, topic, partition=partition))
            )
        results = await asyncio.gather(*(fut for *_, fut in sends), return_exceptions=True)

        done: list[int] = []
        errors: list[str] = []
        for (topic, partition, ids, _), result in zip(sends, results, strict=True):
            if isinstance(result, BaseException):
                errors.append(f"{topic}[{partition}]: {result!r}")
            else:
                done.extend(ids)
        if done:
            await self._mark_sent(done)
            self.published += len(done)
            self._metrics.published.labels(self.service).inc(len(done))
        if errors:
            raise PublishError("; ".join(errors))
        return len(rows)

    async def _mark_sent(self, ids: list[int]) -> None:
        # Deleting keeps the table as small as the backlog; the broker is the record of what was sent.
        statement = delete(outbox_table).where(outbox_table.c.id.in_(ids))
        if self.transactions is not None:
            # One hand-off holding SQLite's write lock for the delete alone. Through the async driver the
            # lock is held across several event-loop turns, and the service's own writers (audited reads'
            # group commits) queue behind it at the write gate.
            await self.transactions.run(lambda conn: conn.execute(statement))
            return
        async with self.engine.begin() as conn:
            await conn.execute(statement)


class PublishError(RuntimeError):
    """The broker did not acknowledge some partitions' batches."""


class DirectPublisher:
    """Publishes event rows (event_row, audit.audit_row) straight to the broker, for events that record no
    database state change: an audit record of a read-only decision has nothing to commit atomically with.

    The broker's acknowledgement (acks=all) is then the commit, and the row skips the outbox table's insert,
    the relay's read and its delete. publish() raises PublishError when the broker did not acknowledge every
    row within `timeout_s`; the caller then commits the same rows to the outbox (same event ids), so nothing
    is lost. A send that timed out may still land, and the relay then publishes a repeat, which consumers
    skip by event id as they skip any redelivery. After a failure, `available` is False for `cooldown_s`:
    during a broker outage writers go to the outbox at once instead of each waiting out the timeout. Rows of
    one key keep their order only within one publish(): use it for events whose consumers need no order
    across writes (each audit record is its own key).

    A worker (run() until stop()): it holds the producer; run() fails while the broker is unreachable.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        service: str,
        timeout_s: float = 0.5,
        cooldown_s: float = 5.0,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.bootstrap = bootstrap
        self.service = service
        self.timeout_s = timeout_s
        self.cooldown_s = cooldown_s
        self._metrics = _metrics(registry)
        self._producer: AIOKafkaProducer | None = None
        self._retry_at = 0.0
        self._stop = asyncio.Event()

    @property
    def available(self) -> bool:
        """Connected, and no publish failed within the last `cooldown_s`."""
        return self._producer is not None and time.monotonic() >= self._retry_at

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        # linger 0: a lone record goes at once; records sent while a request is in flight share the next one.
        # A short request timeout: a record older than `timeout_s` is in the outbox already, and stop() need
        # not wait the default 30 s on a broker that is gone. An unreachable broker fails run(): the service's
        # worker supervisor restarts it with backoff, and writers use the outbox meanwhile.
        self._producer = await create_producer(
            self.bootstrap, linger_ms=0, request_timeout_ms=int(max(2.0, 4 * self.timeout_s) * 1000)
        )
        try:
            await self._stop.wait()
        finally:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def publish(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Every row acknowledged by the broker, or PublishError (then publish the rows another way)."""
        producer = self._producer
        if producer is None:
            raise PublishError("the direct publisher is not connected to the broker")
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self.timeout_s):
                for row in rows:
                    key, value, headers, timestamp_ms = kafka_record(row)
                    futures.append(
                        await producer.send(
                            row["topic"], key=key, value=value, headers=headers, timestamp_ms=timestamp_ms
                        )
                    )
                # Waiting does not cancel the sends: on a timeout they may still land (see the class doc).
                await asyncio.wait(futures)
            for future in futures:
                if future.cancelled():
                    raise PublishError("the producer stopped before the broker acknowledged")
                if (error := future.exception()) is not None:
                    raise error
        except Exception as e:
            for future in futures:  # a late failure is this error's consequence: no "never retrieved" noise
                future.add_done_callback(_retrieved)
            self._retry_at = time.monotonic() + self.cooldown_s
            self._metrics.fallbacks.labels(self.service).inc(len(rows))
            raise PublishError(f"the broker did not acknowledge {len(rows)} event(s): {e!r}") from e
        self._metrics.direct.labels(self.service).inc(len(rows))


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _insert_ignore(dialect: str, table: Any, name: str, holder: str, expires_at: int) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).values(name=name, holder=holder, expires_at=expires_at).on_conflict_do_nothing()


class CoalescedWake:
    """Wakes the relay at most once per `interval_s`: the first commit after a quiet spell wakes it at once,
    later ones within the interval share one wake-up at its end. For hot writers (a wake-up per group
    commit made the relay run a round for every few rows); rows are still committed first, and reach the
    broker at most `interval_s` later. Call it on the event loop after each commit."""

    def __init__(self, notify: Callable[[], None], interval_s: float) -> None:
        self._notify = notify
        self._interval_s = interval_s
        self._last = float("-inf")
        self._due: asyncio.TimerHandle | None = None

    def __call__(self) -> None:
        if self._due is not None:
            return  # a wake-up is already due and covers these rows too
        loop = asyncio.get_running_loop()
        wait = self._last + self._interval_s - loop.time()
        if wait <= 0:
            self._wake()
        else:
            self._due = loop.call_later(wait, self._wake)

    def _wake(self) -> None:
        self._due = None
        self._last = asyncio.get_running_loop().time()
        self._notify()
