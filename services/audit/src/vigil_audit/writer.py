"""The log's single writer (AUD-1): consumes vigil.audit.records.v1, appends batches, signs tree heads.

Why a batch consumer of its own and not vigil_kit's IdempotentConsumer: that one runs a handler per
event and keeps a processed-events row per event, while the log appends ~10,000 records a second; here a
fetched batch is encoded, hashed and appended with its tree nodes in ONE transaction that also moves the
log's stored Kafka offset, on the same principles (effects and bookkeeping commit together; the offset
never moves ahead of the data). The dedupe key is the record id (= the event's ``ce_id``): the leaves
table's unique record_id is the processed-ids table.

Single writer. The topic has one partition, read by manual assignment from the offset stored in the
database (not a consumer group's: the database commit is the only commit that counts). Only the holder
of the lease row in ``audit_log_state`` appends, and every append is a compare-and-set on (writer id,
tree size), so a second replica, or a writer that stalled past its lease, cannot append: it fails,
reloads and waits for the lease. A SIGKILL at any point leaves either the whole batch (leaves, nodes,
size, offset) or none of it; the next writer resumes from the stored offset and the record-id check
skips anything delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from google.protobuf.message import DecodeError

from vigil.audit.v1 import audit_record_pb2
from vigil_audit import metrics
from vigil_audit.domain.leaf import LeafEncodingError
from vigil_audit.domain.merkle import Frontier
from vigil_audit.domain.sth import TreeHead
from vigil_audit.signing import LogKey
from vigil_audit.store import LeaseLost, LogStore, PreparedLeaf, prepare_leaf
from vigil_kit import cloudevents, topics
from vigil_kit.kafka import create_consumer

log = logging.getLogger(__name__)

RECORD_TYPE = audit_record_pb2.AuditRecord.DESCRIPTOR.full_name
GROUP_ID = "vigil-audit-log"
# Records encoded between two yields to the event loop (~25 ms of work), so RPCs are not held up.
_PREPARE_SLICE = 500


class LogWriter:
    """A worker (run()/stop()) that owns the log while it holds the writer's lease."""

    def __init__(
        self,
        store: LogStore,
        key: LogKey,
        *,
        bootstrap: str,
        lease_s: float = 5.0,
        sth_interval_s: float = 0.5,
        batch_max: int = 5000,
        fetch_timeout_ms: int = 100,
        topic: str = topics.AUDIT_RECORDS,
        writer_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.key = key
        self.bootstrap = bootstrap
        self.lease_ms = int(lease_s * 1000)
        self.sth_interval_s = sth_interval_s
        self.batch_max = batch_max
        self.fetch_timeout_ms = fetch_timeout_ms
        self.topic = topic
        self.writer_id = writer_id or f"audit-{uuid.uuid4().hex[:12]}"
        self.clock = clock
        self._stop = asyncio.Event()
        self._grew = asyncio.Event()
        self._frontier = Frontier()
        self._signed_size = -1
        self.holding = asyncio.Event()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def stop(self) -> None:
        self._stop.set()

    @property
    def size(self) -> int:
        return self._frontier.size

    async def run(self) -> None:
        self._stop.clear()
        if not await self._acquire():
            return
        tasks: list[asyncio.Task[None]] = []
        consumer: AIOKafkaConsumer | None = None
        try:
            state = await self.store.state()
            self._frontier = await self.store.load_frontier(state.tree_size)
            metrics.TREE_SIZE.set(state.tree_size)
            latest = await self.store.latest_tree_head()
            self._signed_size = latest[0].tree_size if latest else -1
            await self._sign_if_grown()
            log.info(
                "holding the audit log",
                extra={
                    "writer": self.writer_id,
                    "tree_size": state.tree_size,
                    "next_offset": state.next_offset,
                },
            )
            tasks.append(asyncio.create_task(self._sign_loop(), name="audit-sth"))
            tasks.append(asyncio.create_task(self._renew_loop(), name="audit-lease"))
            consumer = await create_consumer(
                self.bootstrap, (), GROUP_ID, max_partition_fetch_bytes=4 * 1024 * 1024
            )
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            if state.next_offset:
                consumer.seek(tp, state.next_offset)
            else:
                await consumer.seek_to_beginning(tp)
            await self._consume(consumer, tp, tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            with contextlib.suppress(Exception):
                # Cover the last batch before handing over (best effort: the next writer signs it anyway).
                await self._sign_if_grown()
            self.holding.clear()
            metrics.WRITER_LEASE_HELD.set(0)
            with contextlib.suppress(Exception):
                await self.store.release_lease(self.writer_id)

    async def _acquire(self) -> bool:
        """Wait for the lease (a crashed predecessor's expires after lease_s); False if stopped first."""
        waited = False
        while not self._stop.is_set():
            if await self.store.acquire_lease(self.writer_id, self._now_ms(), self.lease_ms):
                self.holding.set()
                metrics.WRITER_LEASE_HELD.set(1)
                return True
            if not waited:
                log.info(
                    "another writer holds the audit log; waiting for its lease",
                    extra={"writer": self.writer_id},
                )
                waited = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.2, self.lease_ms / 4000))
        return False

    async def _consume(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, tasks: list[asyncio.Task[None]]
    ) -> None:
        """Fetch and encode the next batch while the previous one is in its database transaction.

        Encoding is Python work on the event loop and the database work runs outside it (SQLite in
        aiosqlite's thread, PostgreSQL in its server), so the two overlap. Batches still commit one at a
        time and in offset order; a batch still in the queue at a stop is simply read again next time.
        """
        queue: asyncio.Queue[tuple[list[PreparedLeaf], int]] = asyncio.Queue(maxsize=2)

        async def fetch() -> None:
            while True:
                batch = await consumer.getmany(
                    tp, timeout_ms=self.fetch_timeout_ms, max_records=self.batch_max
                )
                records = batch.get(tp, [])
                if records:
                    prepared: list[PreparedLeaf] = []
                    for i in range(0, len(records), _PREPARE_SLICE):
                        prepared += self.prepare(records[i : i + _PREPARE_SLICE])
                        await asyncio.sleep(0)  # let calls in flight run between slices
                    await queue.put((prepared, records[-1].offset + 1))

        async def append() -> None:
            while True:
                prepared, next_offset = await queue.get()
                await self.append_prepared(prepared, next_offset)
                with contextlib.suppress(Exception):
                    # For lag dashboards only: the offset that counts is the one stored with the leaves.
                    await consumer.commit({tp: OffsetAndMetadata(next_offset, "")})

        workers = [
            asyncio.create_task(fetch(), name="audit-fetch"),
            asyncio.create_task(append(), name="audit-append"),
        ]
        stop_wait = asyncio.create_task(self._stop.wait(), name="audit-stop")
        try:
            done, _ = await asyncio.wait({*workers, *tasks, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop_wait:
                    task.result()  # a lost lease (or a failure) ends this run; the supervisor restarts it
                    raise RuntimeError(f"{task.get_name()} ended")
        finally:
            for task in (*workers, stop_wait):
                task.cancel()
            for task in (*workers, stop_wait):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def prepare(self, records: list) -> list[PreparedLeaf]:
        """Encode and hash a fetched batch of Kafka records (records that cannot be leaves are dropped)."""
        return [p for p in (self._prepare(r) for r in records) if p is not None]

    async def append(self, records: list, next_offset: int) -> int:
        """Append one fetched batch of Kafka records; returns how many became leaves."""
        return await self.append_prepared(self.prepare(records), next_offset)

    async def append_prepared(self, prepared: list[PreparedLeaf], next_offset: int) -> int:
        """Append encoded records in one transaction that also stores ``next_offset``."""
        started = time.perf_counter()
        outcome = await self.store.append(
            writer_id=self.writer_id,
            frontier=self._frontier,
            leaves=prepared,
            next_offset=next_offset,
            now_ms=self._now_ms(),
            lease_ms=self.lease_ms,
        )
        self._frontier = outcome.result.frontier
        metrics.APPEND_BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.TREE_SIZE.set(self._frontier.size)
        if outcome.appended:
            metrics.LEAVES_APPENDED.inc(outcome.appended)
            self._grew.set()
        if outcome.duplicates:
            metrics.DUPLICATES.inc(outcome.duplicates)
            log.info("skipped records already in the log", extra={"duplicates": outcome.duplicates})
        return outcome.appended

    def _prepare(self, raw: object) -> PreparedLeaf | None:
        try:
            event = cloudevents.from_record(raw)
        except cloudevents.CloudEventError as exc:
            return self._reject("not_a_cloudevent", raw, str(exc))
        if event.type != RECORD_TYPE:
            return self._reject("wrong_type", raw, f"ce_type {event.type!r}")
        try:
            record = audit_record_pb2.AuditRecord.FromString(event.data)
        except DecodeError as exc:
            return self._reject("undecodable", raw, str(exc))
        if not record.record_id:
            return self._reject("no_record_id", raw, "the record has no record_id")
        try:
            return prepare_leaf(record)
        except LeafEncodingError as exc:
            return self._reject("no_canonical_leaf", raw, str(exc))

    @staticmethod
    def _reject(reason: str, raw: object, detail: str) -> None:
        # Nothing can turn such a record into a leaf; it is skipped, loudly, rather than stall the log.
        metrics.REJECTED.labels(reason).inc()
        log.error(
            "audit record rejected",
            extra={"reason": reason, "detail": detail, "offset": getattr(raw, "offset", None)},
        )
        return None

    async def _sign_if_grown(self) -> None:
        frontier = self._frontier
        if frontier.size == self._signed_size:
            return
        now = datetime.fromtimestamp(self.clock(), UTC)
        head = self.key.sign(TreeHead(frontier.size, frontier.root(), now))
        await self.store.add_tree_head(head, self.key.key_id)
        self._signed_size = frontier.size
        metrics.note_tree_head_signed(frontier.size, now.timestamp())

    async def _sign_loop(self) -> None:
        """A signed head at most sth_interval_s after the log grows, and no more often than that."""
        while True:
            await self._grew.wait()
            self._grew.clear()
            await self._sign_if_grown()
            await asyncio.sleep(self.sth_interval_s)

    async def _renew_loop(self) -> None:
        """Keep the lease while idle (every append renews it too); raises LeaseLost if it was taken."""
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            await self.store.renew_lease(self.writer_id, self._now_ms(), self.lease_ms)


__all__ = ["GROUP_ID", "LeaseLost", "LogWriter"]
