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

Contention. Everything the writer stores while records stream in rides in the append transaction: the
lease is renewed by the append's compare-and-set, and a signed tree head that is due is stored with the
batch it covers. The separate lease-renewal and tree-head transactions only run while the log is idle,
so they never queue behind 5,000-row appends for the write lock (SQLite) or the state row (PostgreSQL).
The ids appended recently are kept in memory, so a duplicate delivery is usually dropped before the
database is asked; the unique record id stays the guard (see LogStore.append).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from google.protobuf.message import DecodeError

from vigil.audit.v1 import audit_record_pb2
from vigil_audit import metrics
from vigil_audit.domain.leaf import LeafEncodingError
from vigil_audit.domain.sth import SignedTreeHead, TreeHead
from vigil_audit.signing import LogKey
from vigil_audit.store import LeaseLost, LogStore, PreparedLeaf, prepare_leaf
from vigil_kit import cloudevents, topics
from vigil_kit.kafka import create_consumer
from vigil_kit.merkle import Frontier

log = logging.getLogger(__name__)

RECORD_TYPE = audit_record_pb2.AuditRecord.DESCRIPTOR.full_name
GROUP_ID = "vigil-audit-log"
# Records encoded between two yields to the event loop (~25 ms of work), so RPCs are not held up.
_PREPARE_SLICE = 500
# Record ids of the latest appended leaves kept in memory to drop redeliveries before the database.
RECENT_IDS = 200_000
_RECORD_TYPE_BYTES = RECORD_TYPE.encode()
_parse_from_string = audit_record_pb2.AuditRecord.FromString


class Rejected(NamedTuple):
    """A fetched record that cannot become a leaf: why, where, and the details for the log line."""

    reason: str
    offset: int | None
    detail: str


class WireRecord(NamedTuple):
    """What preparing a Kafka record reads of it (aiokafka's ConsumerRecord has these attributes too);
    a plain tuple, so a batch pickles cheaply to an encode worker."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]


def prepare_records(records: Sequence[Any]) -> tuple[list[PreparedLeaf], list[Rejected]]:
    """Decode, encode and hash fetched records: (leaves to append, in order; records rejected).

    Pure CPU work on the records alone, so it runs on the event loop or in an encode worker process
    alike (see LogWriter's encode_workers).
    """
    prepared: list[PreparedLeaf] = []
    rejected: list[Rejected] = []
    for raw in records:
        out = prepare_record(raw)
        if type(out) is Rejected:
            rejected.append(out)
        else:
            prepared.append(out)  # type: ignore[arg-type]
    return prepared, rejected


def prepare_record(raw: Any) -> PreparedLeaf | Rejected:
    """One record's leaf, or why it has none (the verdict cloudevents.from_record's checks give)."""
    # The common case without building a CloudEvent: only the type and the payload are used here.
    # The checks are from_record's (required headers, a parsable ce_time, UTF-8 text); anything
    # unusual takes the general path below, which gives the same verdict and reason.
    try:
        headers = dict(raw.headers)  # the last of repeated names wins, as in from_record
        ce_id, ce_source = headers["ce_id"], headers["ce_source"]
        if ce_id is None or ce_source is None or headers["ce_type"] != _RECORD_TYPE_BYTES:
            raise ValueError
        ce_id.decode()
        ce_source.decode()
        if (subject := headers.get("ce_subject")) is not None:
            subject.decode()
        if ce_time := headers.get("ce_time"):
            cloudevents.parse_time(ce_time.decode())
        key = raw.key
        if isinstance(key, bytes | bytearray):
            key.decode()
        data = raw.value
    except Exception:
        return _prepare_general(raw)
    try:
        record = _parse_from_string(bytes(data or b""))
    except DecodeError as exc:
        return Rejected("undecodable", raw.offset, str(exc))
    if not record.record_id:
        return Rejected("no_record_id", raw.offset, "the record has no record_id")
    try:
        return prepare_leaf(record)
    except LeafEncodingError as exc:
        return Rejected("no_canonical_leaf", raw.offset, str(exc))


def _prepare_general(raw: Any) -> PreparedLeaf | Rejected:
    offset = getattr(raw, "offset", None)
    try:
        event = cloudevents.from_record(raw)
    except cloudevents.CloudEventError as exc:
        return Rejected("not_a_cloudevent", offset, str(exc))
    if event.type != RECORD_TYPE:
        return Rejected("wrong_type", offset, f"ce_type {event.type!r}")
    try:
        record = audit_record_pb2.AuditRecord.FromString(event.data)
    except DecodeError as exc:
        return Rejected("undecodable", offset, str(exc))
    if not record.record_id:
        return Rejected("no_record_id", offset, "the record has no record_id")
    try:
        return prepare_leaf(record)
    except LeafEncodingError as exc:
        return Rejected("no_canonical_leaf", offset, str(exc))


def _worker_ready() -> bool:
    """Run once in each new encode worker: its imports are done by the time this returns."""
    return True


def _worker_init(parent_pid: int) -> None:
    """In each encode worker: exit once the service process is gone.

    A worker blocks reading its next batch from a pipe it also holds the write end of, so it would not
    notice a SIGKILLed service; a watcher thread sees the parent change and ends the process.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="audit-encode-parent-watch", daemon=True).start()


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
        encode_workers: int = 0,
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
        self._signed_at = 0.0  # clock() of the latest signed head
        self._renewed_at = 0.0  # clock() of the latest lease renewal (an append renews it too)
        self._appending = False
        self._appended = asyncio.Event()
        # Ids of committed leaves, oldest first (a dict keeps insertion order and drops its oldest cheaply).
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.holding = asyncio.Event()
        self.encode_workers = encode_workers

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def stop(self) -> None:
        self._stop.set()

    @property
    def size(self) -> int:
        return self._frontier.size

    async def run(self) -> None:
        self._stop.clear()
        self._recent.clear()
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
            now = self.clock()
            if await self.store.acquire_lease(self.writer_id, int(now * 1000), self.lease_ms):
                self._renewed_at = now
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

        Encoding is Python work (in the encode workers, or on the event loop) and the database work runs
        outside the loop (SQLite in aiosqlite's thread, PostgreSQL in its server), so the two overlap.
        Batches still commit one at a time and in offset order; a batch still in the queue at a stop is
        simply read again next time.
        """
        queue: asyncio.Queue[tuple[list[PreparedLeaf], int]] = asyncio.Queue(maxsize=2)
        pool, ready = self._start_workers()

        async def fetch() -> None:
            nonlocal ready
            while True:
                batch = await consumer.getmany(
                    tp, timeout_ms=self.fetch_timeout_ms, max_records=self.batch_max
                )
                records = batch.get(tp, [])
                if not records:
                    continue
                prepared = None
                if ready is not None and ready.done() and ready.exception() is None:
                    try:
                        prepared = await self._prepare_in_workers(pool, records)  # type: ignore[arg-type]
                    except BrokenProcessPool:
                        # A worker died (killed, out of memory): the loop does the work from now on.
                        log.warning("an audit encode worker died; encoding on the event loop")
                        ready = None
                if prepared is None:  # no workers, not started yet, or broken: on the loop, in slices
                    prepared = []
                    for i in range(0, len(records), _PREPARE_SLICE):
                        prepared += self.prepare(records[i : i + _PREPARE_SLICE])
                        await asyncio.sleep(0)  # let calls in flight run between slices
                await queue.put((prepared, records[-1].offset + 1))

        lag_commit: asyncio.Task[None] | None = None

        async def commit_for_dashboards(offset: int) -> None:
            with contextlib.suppress(Exception):
                await consumer.commit({tp: OffsetAndMetadata(offset, "")})

        async def append() -> None:
            nonlocal lag_commit
            while True:
                prepared, next_offset = await queue.get()
                await self.append_prepared(prepared, next_offset)
                # For lag dashboards only: the offset that counts is the one stored with the leaves. Not
                # awaited (a broker round trip between two appends would hold up the next one), and
                # skipped while the previous one is in flight: a later batch commits a later offset.
                if lag_commit is None or lag_commit.done():
                    lag_commit = asyncio.create_task(
                        commit_for_dashboards(next_offset), name="audit-lag-commit"
                    )

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
            pending = [*workers, stop_wait, *([lag_commit] if lag_commit is not None else [])]
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if pool is not None:
                # In a thread: joining the worker waits for the batch it may be encoding (~0.1 s).
                await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def _start_workers(self) -> tuple[ProcessPoolExecutor | None, Future[bool] | None]:
        """The encode workers, started in the background (None without encode_workers).

        Decoding, encoding and hashing records is ~3/4 of the writer's CPU time per record, all of it
        on the event loop otherwise; in worker processes it runs beside the loop (and the GIL), which
        keeps appending, serving RPCs and fetching meanwhile. Workers are spawned (not forked: this
        process has threads) and take a second or two to import; until the first is ready, batches
        are prepared on the loop, so starting them costs the log no time.
        """
        if self.encode_workers <= 0:
            return None, None
        pool = ProcessPoolExecutor(
            self.encode_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )
        return pool, pool.submit(_worker_ready)

    async def _prepare_in_workers(self, pool: ProcessPoolExecutor, records: list[Any]) -> list[PreparedLeaf]:
        """prepare() of a fetched batch in the encode workers, one slice per worker, in order."""
        wire = [
            WireRecord(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, r.headers)
            for r in records
        ]
        step = -(-len(wire) // self.encode_workers)
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(
                loop.run_in_executor(pool, prepare_records, wire[i : i + step])
                for i in range(0, len(wire), step)
            )
        )
        prepared: list[PreparedLeaf] = []
        for leaves, rejected in results:
            prepared += leaves
            self._note_rejected(rejected)
        return prepared

    def prepare(self, records: Sequence[Any]) -> list[PreparedLeaf]:
        """Encode and hash a fetched batch of Kafka records (records that cannot be leaves are dropped)."""
        prepared, rejected = prepare_records(records)
        self._note_rejected(rejected)
        return prepared

    @staticmethod
    def _note_rejected(rejected: list[Rejected]) -> None:
        # Nothing can turn such a record into a leaf; it is skipped, loudly, rather than stall the log.
        for reason, offset, detail in rejected:
            metrics.REJECTED.labels(reason).inc()
            log.error("audit record rejected", extra={"reason": reason, "detail": detail, "offset": offset})

    async def append(self, records: list, next_offset: int) -> int:
        """Append one fetched batch of Kafka records; returns how many became leaves."""
        return await self.append_prepared(self.prepare(records), next_offset)

    async def append_prepared(self, prepared: list[PreparedLeaf], next_offset: int) -> int:
        """Append encoded records in one transaction that also stores ``next_offset``.

        The transaction renews the lease, and stores a signed tree head of the new size when one is due.
        """
        started = time.perf_counter()
        now = self.clock()
        recent = self._recent
        due = now - self._signed_at >= self.sth_interval_s
        self._appending = True
        self._appended.clear()
        try:
            outcome = await self.store.append(
                writer_id=self.writer_id,
                frontier=self._frontier,
                leaves=prepared,
                next_offset=next_offset,
                now_ms=int(now * 1000),
                lease_ms=self.lease_ms,
                recent=recent,
                sign=self._head_signer(now) if due else None,
                key_id=self.key.key_id,
            )
        except BaseException:
            # What is in memory may be ahead of the database now: start over from the stored state.
            recent.clear()
            raise
        finally:
            self._appending = False
            self._appended.set()
        self._renewed_at = now
        self._frontier = outcome.result.frontier
        if outcome.head is not None:
            self._signed_size = outcome.head.tree_size
            self._signed_at = now
            metrics.note_tree_head_signed(outcome.head.tree_size, outcome.head.head.timestamp.timestamp())
        if outcome.appended:
            for record_id in outcome.appended_ids:
                recent[record_id] = None
            for _ in range(len(recent) - RECENT_IDS):
                recent.popitem(last=False)
        metrics.APPEND_BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.TREE_SIZE.set(self._frontier.size)
        if outcome.appended:
            metrics.LEAVES_APPENDED.inc(outcome.appended)
        if self._frontier.size != self._signed_size:
            self._grew.set()
        if outcome.duplicates:
            metrics.DUPLICATES.inc(outcome.duplicates)
            log.info("skipped records already in the log", extra={"duplicates": outcome.duplicates})
        return outcome.appended

    def _head_signer(self, now: float) -> Callable[[Frontier], SignedTreeHead | None]:
        """Signs the tree a batch leads to (inside its transaction), unless that size is signed already."""

        def sign(frontier: Frontier) -> SignedTreeHead | None:
            if frontier.size == self._signed_size:
                return None
            return self.key.sign(TreeHead(frontier.size, frontier.root(), datetime.fromtimestamp(now, UTC)))

        return sign

    async def _sign_if_grown(self) -> None:
        frontier = self._frontier
        if frontier.size == self._signed_size:
            return
        at = self.clock()
        now = datetime.fromtimestamp(at, UTC)
        head = self.key.sign(TreeHead(frontier.size, frontier.root(), now))
        await self.store.add_tree_head(head, self.key.key_id)
        if frontier.size > self._signed_size:
            self._signed_size = frontier.size
            self._signed_at = at
        metrics.note_tree_head_signed(frontier.size, now.timestamp())

    async def _sign_loop(self) -> None:
        """A signed head at most sth_interval_s after the log grows, and no more often than that.

        While records stream in, appends store the heads themselves (see append_prepared); this signs
        what the last append of a burst left unsigned, in a transaction of its own.
        """
        while True:
            await self._grew.wait()
            self._grew.clear()
            delay = self._signed_at + self.sth_interval_s - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            while self._appending:  # that append signs if a head is due; then see what is left
                await self._appended.wait()
            await self._sign_if_grown()

    async def _renew_loop(self) -> None:
        """Keep the lease while idle (every append renews it too); raises LeaseLost if it was taken."""
        period = self.lease_ms / 3000
        while True:
            await asyncio.sleep(max(0.0, self._renewed_at + period - self.clock()))
            if self.clock() - self._renewed_at >= period:
                now = self.clock()
                await self.store.renew_lease(self.writer_id, int(now * 1000), self.lease_ms)
                self._renewed_at = now


__all__ = ["GROUP_ID", "LeaseLost", "LogWriter"]
