"""The audit log in SQL (SQLite or PostgreSQL): leaves, tree nodes, signed tree heads, and the writer's state.

Tables (created by migration 0002):

- ``audit_leaves``: one row per record, by ``leaf_index``: its ``record_id`` (unique: the second guard
  against a duplicate delivery), the canonical ``leaf`` bytes it was hashed from and the ``leaf_hash``,
  plus the columns AUD-2 queries filter on (actor, action, action time, footage window in microseconds);
- ``audit_leaf_refs``: (kind, id, leaf_index) for the devices, grants, exports, sites, units and holds a
  record names (its ``grant_id`` counts as a grant), so "who touched device X" is one index range;
- ``audit_nodes``: every completed perfect subtree ``(level, idx) → hash`` (level 0 = leaf hashes), written
  in the same transaction as the leaves that complete it; any proof is one lookup of O(log n) of them;
- ``audit_tree_heads``: the signed tree heads, by size;
- ``audit_log_state``: one row: the tree size, the next Kafka offset to read, and the writer's lease.
  Every append is a compare-and-set on (writer, tree size), so only the lease holder can append, and
  only on top of the tree it has in memory;
- ``audit_signing_key``: the generated signing key when no key file is configured.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import asyncpg as _pg_asyncpg  # noqa: F401  (registers the dialect)
from sqlalchemy.dialects.sqlite import aiosqlite as _sqlite_aiosqlite  # noqa: F401
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vigil.audit.v1 import audit_record_pb2
from vigil_audit import codec
from vigil_audit.domain.sth import SignedTreeHead, TreeHead
from vigil_kit import merkle
from vigil_kit.db import SQLITE_BUSY_TIMEOUT_MS, UTCDateTime, create_engine, sqlite_insert_many
from vigil_kit.merkle import AppendResult, Frontier, NodeId

METADATA = MetaData()
_sha256 = hashlib.sha256

# Leaf indexes are SQLite's rowid (INTEGER PRIMARY KEY), a BIGINT elsewhere.
_INDEX = BigInteger().with_variant(Integer, "sqlite")

leaves_table = Table(
    "audit_leaves",
    METADATA,
    Column("leaf_index", _INDEX, primary_key=True, autoincrement=False),
    Column("record_id", String(64), nullable=False, unique=True),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("leaf", LargeBinary, nullable=False),
    Column("time_us", BigInteger, nullable=True),
    Column("source_service", String(64), nullable=False),
    Column("actor_id", String(255), nullable=True),
    Column("action", String(255), nullable=False),
    # Microseconds; NULL when the record concerns no footage. A window with a missing bound is open.
    Column("footage_start_us", BigInteger, nullable=True),
    Column("footage_end_us", BigInteger, nullable=True),
    Index("ix_audit_leaves_actor", "actor_id", "leaf_index"),
    Index("ix_audit_leaves_action", "action", "leaf_index"),
    Index("ix_audit_leaves_time", "time_us"),
)

refs_table = Table(
    "audit_leaf_refs",
    METADATA,
    Column("kind", String(8), nullable=False),
    Column("ref_id", String(255), nullable=False),
    Column("leaf_index", BigInteger, nullable=False),
    PrimaryKeyConstraint("kind", "ref_id", "leaf_index", name="pk_audit_leaf_refs"),
    sqlite_with_rowid=False,
)

nodes_table = Table(
    "audit_nodes",
    METADATA,
    Column("level", SmallInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    PrimaryKeyConstraint("level", "idx", name="pk_audit_nodes"),
    sqlite_with_rowid=False,
)

tree_heads_table = Table(
    "audit_tree_heads",
    METADATA,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("timestamp", UTCDateTime, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Column("key_id", String(16), nullable=False),
)

state_table = Table(
    "audit_log_state",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("writer_id", String(64), nullable=True),
    # Unix milliseconds by the writer's clock.
    Column("lease_expires_ms", BigInteger, nullable=False),
)

signing_key_table = Table(
    "audit_signing_key",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("key_id", String(16), nullable=False),
    Column("private_key_pem", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

STATE_ROW = 1

# Kinds of ids in audit_leaf_refs, from the Resources field they come from.
DEVICE, GRANT, EXPORT, SITE, UNIT, HOLD = "device", "grant", "export", "site", "unit", "hold"
_REF_KINDS = {
    "device_ids": DEVICE,
    "grant_ids": GRANT,
    "export_ids": EXPORT,
    "site_ids": SITE,
    "unit_ids": UNIT,
    "hold_ids": HOLD,
}
# One statement text for every proof, so asyncpg prepares it once per connection.
_PG_NODES = (
    "SELECT n.level, n.idx, n.hash FROM audit_nodes n "
    "JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx"
)
# Rows per IN (...) lookup: under SQLite's default limit of host parameters.
_IN_CHUNK = 500


def datetime_us(dt: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (the query columns' unit)."""
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


class PreparedLeaf(NamedTuple):
    """One record made ready to append: its canonical leaf, its hash and its query columns.

    A tuple, as it crosses from an encode worker process in bulk (see LogWriter's encode_workers).
    """

    record_id: str
    leaf: bytes
    leaf_hash: bytes
    row: tuple[Any, ...]
    refs: tuple[tuple[str, str], ...]


def prepare_leaf(record: audit_record_pb2.AuditRecord) -> PreparedLeaf:
    """Encode a record (LeafEncodingError when it has no canonical leaf) and extract its query columns."""
    c = codec.leaf_columns(record)
    leaf = c.text.encode("utf-8")
    digest = _sha256(b"\x00" + leaf).digest()  # merkle.leaf_hash, inline: ~10,000 calls a second
    row = (  # in _LEAF_COLUMNS order, after leaf_index
        c.record_id,
        digest,
        leaf,
        c.time_us,
        c.source_service,
        c.actor_id or None,
        c.action,
        c.footage_start_us,
        c.footage_end_us,
    )
    grant_id = c.grant_id
    if len(c.resources) == 1 and not grant_id:
        # The common shapes first (one list of distinct ids), without building a dict.
        name, ids = c.resources[0]
        kind = _REF_KINDS.get(name)
        if kind is not None and len(ids) == 1 and ids[0]:
            return PreparedLeaf(c.record_id, leaf, digest, row, ((kind, ids[0]),))
    refs: dict[tuple[str, str], None] = {}
    for name, ids in c.resources:
        kind = _REF_KINDS.get(name)
        if kind is not None:
            for ref in ids:
                if ref:
                    refs[(kind, ref)] = None
    if grant_id:
        refs[(GRANT, grant_id)] = None
    return PreparedLeaf(c.record_id, leaf, digest, row, tuple(refs))


_REF_COLUMNS = ("kind", "ref_id", "leaf_index")
_NODE_COLUMNS = ("level", "idx", "hash")
_LEAF_COLUMNS = (
    "leaf_index",
    "record_id",
    "leaf_hash",
    "leaf",
    "time_us",
    "source_service",
    "actor_id",
    "action",
    "footage_start_us",
    "footage_end_us",
)


def _sqlite_insert_tables(
    conn: sqlite3.Connection, inserts: Sequence[tuple[str, Sequence[str], Sequence[Any]]]
) -> None:
    for table, columns, rows in inserts:
        if rows:
            sqlite_insert_many(conn.execute, table, columns, rows)


async def _bulk_insert(
    conn: AsyncConnection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert many rows of one table in the connection's open transaction (see _bulk_insert_tables)."""
    await _bulk_insert_tables(conn, [(table, columns, rows)])


async def _bulk_insert_tables(
    conn: AsyncConnection, inserts: Sequence[tuple[Table, Sequence[str], Sequence[Sequence[Any]]]]
) -> None:
    """Insert many rows into several tables, in order, in the connection's open transaction.

    The log appends ~5 rows per record at >= 10,000 records a second, where SQLAlchemy's per-row
    parameter processing alone would cost more than the database. PostgreSQL gets a binary COPY per
    table. SQLite gets multi-row INSERTs as large as its parameter limit allows, all in ONE call to the
    driver's thread: executemany would step each row separately, and the sqlite3 module releases the
    GIL around every step and must take it back after, which, while the event loop encodes the next
    batch, can cost up to the interpreter's switch interval (5 ms) per step; a batch of 5,000 records
    is four steps this way (it was fifty with 500-row INSERTs), so SQLite works beside the loop. Both
    run inside the transaction SQLAlchemy has already begun on this connection (the caller has executed
    a statement in it first, so asyncpg's transaction is open).
    """
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    dialect = conn.dialect.name
    if dialect == "sqlite":
        named = [(table.name, columns, rows) for table, columns, rows in inserts if rows]
        if named:
            await driver._execute(_sqlite_insert_tables, driver._conn, named)
    elif dialect == "postgresql":
        for table, columns, rows in inserts:
            if rows:
                await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
    else:  # pragma: no cover - Vigil runs on SQLite and PostgreSQL only
        for table, columns, rows in inserts:
            if rows:
                await conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


class LeaseLost(RuntimeError):
    """Another writer holds the log (or took it over): this one must stop appending and start over."""


@dataclass(frozen=True, slots=True)
class LogState:
    tree_size: int
    next_offset: int
    writer_id: str | None
    lease_expires_ms: int


class _RecordIdTaken(Exception):
    """A batch hit the unique record id: it holds a record that is already a leaf."""


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of one appended batch."""

    result: AppendResult
    appended: int
    duplicates: int
    # The signed tree head stored with the batch, if one was due.
    head: SignedTreeHead | None = None
    appended_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredEntry:
    leaf_index: int
    leaf_hash: bytes
    leaf: bytes


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """AUD-2 filters (AND); times in microseconds, open bounds as None."""

    device_id: str = ""
    footage_start_us: int | None = None
    footage_end_us: int | None = None
    has_footage_filter: bool = False
    principal_id: str = ""
    grant_id: str = ""
    action: str = ""
    export_id: str = ""
    time_start_us: int | None = None
    time_end_us: int | None = None

    def fingerprint(self) -> str:
        """A short digest of the filters, so a page token cannot be replayed with other filters."""
        text = json.dumps([getattr(self, f) for f in self.__dataclass_fields__], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def empty(self) -> bool:
        return not (
            self.device_id
            or self.has_footage_filter
            or self.principal_id
            or self.grant_id
            or self.action
            or self.export_id
            or self.time_start_us is not None
            or self.time_end_us is not None
        )


def encode_page_token(payload: Mapping[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> dict[str, Any]:
    """The payload of a page token; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError("not a page token") from exc
    if not isinstance(payload, dict):
        raise ValueError("not a page token")
    return payload


def _head_from_row(row: Any) -> tuple[SignedTreeHead, str]:
    head = TreeHead(int(row.tree_size), bytes(row.root_hash), row.timestamp)
    return SignedTreeHead(head, bytes(row.signature)), row.key_id


def _head_insert(head: SignedTreeHead, key_id: str) -> Any:
    return insert(tree_heads_table).values(
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        timestamp=head.head.timestamp,
        signature=head.signature,
        key_id=key_id,
    )


@dataclass
class LogStore:
    """Reads and writes of the log's tables; the writer's methods take its id for the lease checks.

    The latest signed tree head is kept in memory while this process holds the writer's lease: then no
    one else can add a head, so the copy is the database's (reads elsewhere ask the database).
    """

    engine: AsyncEngine
    # Where reads go (see read_engine); the writer's engine when None.
    reader: AsyncEngine | None = None
    _head: tuple[SignedTreeHead, str] | None = None
    # time.monotonic() until which this process is known to hold the lease (so _head is the latest).
    _head_valid_until: float = 0.0
    # SQLite only: proofs read through this connection on the event loop's thread (see _proof_reads).
    _proof_conn: sqlite3.Connection | None = None
    _proof_conn_tried: bool = False

    def close(self) -> None:
        """Close the proof reads' own SQLite connection, if one was opened (the engines are the caller's)."""
        if self._proof_conn is not None:
            self._proof_conn.close()
        self._proof_conn, self._proof_conn_tried = None, False

    def _proof_reads(self) -> sqlite3.Connection | None:
        """On a SQLite file, a query-only connection for the proof reads, run on the event loop's thread.

        A proof is three indexed lookups (~50 µs of SQLite work with the pages cached) while a hop to
        the driver's thread and back costs more than that, and under CPU contention waits for the OS to
        schedule that thread: the p99 of proofs (target <= 5 ms) was mostly that wait. In WAL mode a
        reader takes no lock a writer holds, so these reads do not wait for the log's appends; the
        busy timeout is 0, and in the rare case SQLite still answers busy (WAL recovery, say), the read
        goes the driver-thread way, which waits. Each SELECT runs in autocommit, on its own snapshot, and
        its cursor is exhausted at once, so no read transaction stays open. Local to the audit service:
        vigil_kit.db's SQLite transactions all begin IMMEDIATE (the write lock), hence a connection of
        its own here.
        """
        if self._proof_conn is None and not self._proof_conn_tried:
            self._proof_conn_tried = True
            url = self._read.url
            if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
                conn = sqlite3.connect(url.database, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA busy_timeout=0")
                conn.execute("PRAGMA query_only=ON")
                self._proof_conn = conn
        return self._proof_conn

    @property
    def _read(self) -> AsyncEngine:
        return self.reader or self.engine

    # ------------------------------------------------------------------------------------------ writer

    async def state(self) -> LogState:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(state_table).where(state_table.c.id == STATE_ROW))).one()
        return LogState(int(row.tree_size), int(row.next_offset), row.writer_id, int(row.lease_expires_ms))

    async def acquire_lease(self, writer_id: str, now_ms: int, lease_ms: int) -> bool:
        """Take (or keep) the writer's lease unless another writer holds an unexpired one."""
        s = state_table.c
        started = time.monotonic()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(state_table)
                .where(
                    s.id == STATE_ROW,
                    or_(s.writer_id.is_(None), s.writer_id == writer_id, s.lease_expires_ms < now_ms),
                )
                .values(writer_id=writer_id, lease_expires_ms=now_ms + lease_ms)
            )
        # A new holder starts without a cached head: the first read loads it from the database.
        self._forget_head()
        if result.rowcount == 1:
            self._lease_renewed(started, lease_ms, head=None)
        return result.rowcount == 1

    def _forget_head(self) -> None:
        self._head, self._head_valid_until = None, 0.0

    def _lease_renewed(self, started: float, lease_ms: int, head: tuple[SignedTreeHead, str] | None) -> None:
        """Note a committed lease renewal begun at monotonic ``started`` (and a head stored with it)."""
        # Half the lease, from before the statement ran: well inside the time no other writer can start.
        self._head_valid_until = started + lease_ms / 2000
        if head is not None:
            self._note_head(*head)

    async def renew_lease(self, writer_id: str, now_ms: int, lease_ms: int) -> None:
        s = state_table.c
        started = time.monotonic()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(state_table)
                .where(s.id == STATE_ROW, s.writer_id == writer_id)
                .values(lease_expires_ms=now_ms + lease_ms)
            )
        if result.rowcount != 1:
            self._forget_head()
            raise LeaseLost("the log writer's lease was taken over")
        self._lease_renewed(started, lease_ms, head=None)

    async def release_lease(self, writer_id: str) -> None:
        s = state_table.c
        self._forget_head()
        async with self.engine.begin() as conn:
            await conn.execute(
                update(state_table)
                .where(s.id == STATE_ROW, s.writer_id == writer_id)
                .values(writer_id=None, lease_expires_ms=0)
            )

    async def load_frontier(self, size: int) -> Frontier:
        """The tree's frontier at ``size``, from the stored nodes."""
        return Frontier.from_nodes(size, await self.nodes(merkle.frontier_ids(size)))

    async def append(
        self,
        *,
        writer_id: str,
        frontier: Frontier,
        leaves: Sequence[PreparedLeaf],
        next_offset: int,
        now_ms: int,
        lease_ms: int,
        recent: Container[str] = (),
        sign: Callable[[Frontier], SignedTreeHead | None] | None = None,
        key_id: str = "",
    ) -> Appended:
        """Append a batch in ONE transaction: leaves, refs, nodes, tree size, offset and lease renewal.

        Records whose id is already in the log (or earlier in the batch) are skipped. Raises LeaseLost
        (and writes nothing) unless this writer holds the lease and the stored size is the frontier's.

        ``recent`` holds ids known to be leaves already (the writer's memory of its latest appends), so
        the database is not asked about every id: the batch is inserted as it is and the unique record
        id is the guard. Should a record turn out to be a leaf already, that attempt rolls back and the
        batch is appended again after looking its ids up. ``sign``, when given, signs the tree the batch
        leads to (None: no head), and that head is stored in the same transaction under ``key_id``.
        """
        batch: dict[str, PreparedLeaf] = {}
        for leaf in leaves:
            if leaf.record_id not in recent and leaf.record_id not in batch:
                batch[leaf.record_id] = leaf
        started = time.monotonic()
        try:
            outcome = await self._append_once(
                writer_id, frontier, list(batch.values()), len(leaves), next_offset, now_ms, lease_ms,
                sign, key_id, look_up=False,
            )  # fmt: skip
        except _RecordIdTaken:
            outcome = await self._append_once(
                writer_id, frontier, list(batch.values()), len(leaves), next_offset, now_ms, lease_ms,
                sign, key_id, look_up=True,
            )  # fmt: skip
        self._lease_renewed(started, lease_ms, (outcome.head, key_id) if outcome.head else None)
        return outcome

    async def _append_once(
        self,
        writer_id: str,
        frontier: Frontier,
        fresh: list[PreparedLeaf],
        delivered: int,
        next_offset: int,
        now_ms: int,
        lease_ms: int,
        sign: Callable[[Frontier], SignedTreeHead | None] | None,
        key_id: str,
        *,
        look_up: bool,
    ) -> Appended:
        s = state_table.c
        async with self.engine.begin() as conn:
            if look_up:
                seen = await self._existing_ids(conn, {leaf.record_id for leaf in fresh})
                fresh = [leaf for leaf in fresh if leaf.record_id not in seen]
            result = merkle.append_leaves(frontier, [leaf.leaf_hash for leaf in fresh])
            # Compare-and-set first: on PostgreSQL it also locks the row, so writers cannot interleave.
            # One statement fences the writer, renews its lease and moves the size and offset.
            fenced = await conn.execute(
                update(state_table)
                .where(s.id == STATE_ROW, s.writer_id == writer_id, s.tree_size == frontier.size)
                .values(lease_expires_ms=now_ms + lease_ms, tree_size=result.size, next_offset=next_offset)
            )
            if fenced.rowcount != 1:
                self._forget_head()
                raise LeaseLost(f"the log is no longer at size {frontier.size} under this writer")
            if fresh:
                first = frontier.size
                leaf_rows = [(first + i, *leaf.row) for i, leaf in enumerate(fresh)]
                refs = [(kind, ref, first + i) for i, leaf in enumerate(fresh) for kind, ref in leaf.refs]
                try:
                    await _bulk_insert_tables(
                        conn,
                        [
                            (leaves_table, _LEAF_COLUMNS, leaf_rows),
                            (refs_table, _REF_COLUMNS, refs),
                            (nodes_table, _NODE_COLUMNS, result.nodes),
                        ],
                    )
                except (sqlite3.IntegrityError, asyncpg.UniqueViolationError) as exc:
                    # Leaf indexes and nodes are fenced above and refs are distinct per leaf, so the
                    # only unique column that can clash is the record id.
                    if look_up:
                        raise
                    raise _RecordIdTaken() from exc
            head = sign(result.frontier) if sign is not None else None
            if head is not None:
                t = tree_heads_table.c
                if await conn.scalar(select(t.tree_size).where(t.tree_size == head.tree_size)) is None:
                    await conn.execute(_head_insert(head, key_id))
                else:  # a predecessor signed this size already; its head is kept, as add_tree_head does
                    head = None
        return Appended(
            result, len(fresh), delivered - len(fresh), head, tuple(leaf.record_id for leaf in fresh)
        )

    async def _existing_ids(self, conn: AsyncConnection, ids: set[str]) -> set[str]:
        """Which of ``ids`` are already leaves, through the driver (as the inserts): one indexed lookup."""
        if not ids:
            return set()
        ordered = sorted(ids)
        driver = (await conn.get_raw_connection()).driver_connection
        if conn.dialect.name == "postgresql":
            # One array parameter: an IN list of thousands of parameters costs PostgreSQL more to plan.
            rows = await driver.fetch(
                "SELECT record_id FROM audit_leaves WHERE record_id = ANY($1::text[])", ordered
            )
            return {r[0] for r in rows}
        found: set[str] = set()
        for i in range(0, len(ordered), _IN_CHUNK):
            chunk = ordered[i : i + _IN_CHUNK]
            sql = f"SELECT record_id FROM audit_leaves WHERE record_id IN ({', '.join('?' for _ in chunk)})"
            async with driver.execute(sql, chunk) as cursor:
                found.update(r[0] for r in await cursor.fetchall())
        return found

    async def add_tree_head(self, head: SignedTreeHead, key_id: str) -> bool:
        """Store a signed tree head; False when one of that size is already stored (it is kept)."""
        t = tree_heads_table.c
        async with self.engine.begin() as conn:
            existing = await conn.scalar(select(t.tree_size).where(t.tree_size == head.tree_size))
            if existing is not None:
                return False
            await conn.execute(_head_insert(head, key_id))
        self._note_head(head, key_id)
        return True

    def _note_head(self, head: SignedTreeHead, key_id: str) -> None:
        # Only read while the lease is held (see _head_valid_until), when the newest head is ours.
        if self._head is None or head.tree_size > self._head[0].tree_size:
            self._head = (head, key_id)

    # ------------------------------------------------------------------------------------------ readers

    async def size(self) -> int:
        async with self._read.connect() as conn:
            return int(
                await conn.scalar(select(state_table.c.tree_size).where(state_table.c.id == STATE_ROW))
            )

    def cached_tree_head(self) -> tuple[SignedTreeHead, str] | None:
        """The latest signed tree head from memory, when this process holds the lease (else None)."""
        if self._head is not None and time.monotonic() < self._head_valid_until:
            return self._head
        return None

    async def latest_tree_head(self) -> tuple[SignedTreeHead, str] | None:
        cached = self.cached_tree_head()
        if cached is not None:
            return cached
        t = tree_heads_table
        async with self._read.connect() as conn:
            row = (await conn.execute(select(t).order_by(t.c.tree_size.desc()).limit(1))).first()
        return None if row is None else _head_from_row(row)

    async def tree_head(self, size: int) -> tuple[SignedTreeHead, str] | None:
        t = tree_heads_table
        async with self._read.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.tree_size == size))).first()
        return None if row is None else _head_from_row(row)

    async def tree_heads(
        self, *, after_size: int, limit: int, max_size: int | None = None
    ) -> list[tuple[SignedTreeHead, str]]:
        """Heads with after_size < tree_size (<= max_size), ascending."""
        t = tree_heads_table
        stmt = select(t).where(t.c.tree_size > after_size)
        if max_size is not None:
            stmt = stmt.where(t.c.tree_size <= max_size)
        async with self._read.connect() as conn:
            rows = (await conn.execute(stmt.order_by(t.c.tree_size).limit(limit))).all()
        return [_head_from_row(r) for r in rows]

    async def nodes(self, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        """The stored hashes of ``ids``: one indexed query (proofs need ~log2(n) nodes).

        Through the driver: building and compiling the statement in SQLAlchemy costs ~40 times the
        lookup itself, and this is the query behind every proof (target p99 <= 5 ms).
        """
        wanted = list(ids)
        if not wanted:
            return {}
        out: dict[NodeId, bytes] = {}
        async with self._read.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            if conn.dialect.name == "postgresql":
                rows = await driver.fetch(_PG_NODES, [i.level for i in wanted], [i.index for i in wanted])
            else:
                rows = []
                for start in range(0, len(wanted), _IN_CHUNK // 2):
                    chunk = wanted[start : start + _IN_CHUNK // 2]
                    # OR of (level, idx) pairs: SQLite does not search the primary key for a row-value IN.
                    sql = "SELECT level, idx, hash FROM audit_nodes WHERE " + " OR ".join(
                        ["(level = ? AND idx = ?)"] * len(chunk)
                    )
                    async with driver.execute(sql, [x for i in chunk for x in i]) as cursor:
                        rows += await cursor.fetchall()
        out.update((NodeId(int(r[0]), int(r[1])), bytes(r[2])) for r in rows)
        return out

    async def latest_inclusion(
        self, *, record_id: str | None = None, leaf_index: int | None = None
    ) -> LatestInclusion:
        """What an inclusion proof against the latest signed head needs, in one read.

        The entry (by record id or leaf index), the latest head (from memory when this process is the
        writer) and the stored nodes of the audit path, when the head covers the entry. Through the
        driver: every statement SQLAlchemy builds costs more than the indexed lookups themselves
        (target p99 <= 5 ms). On SQLite the reads run on this thread (see _proof_reads); on PostgreSQL
        the entry and the latest head come in one round trip, the nodes in a second.
        """
        head = self.cached_tree_head()
        if record_id is not None:
            entry_sql, entry_arg = _ENTRY_BY_ID, record_id
        else:
            entry_sql, entry_arg = _ENTRY_BY_INDEX, leaf_index
        proof_conn = self._proof_reads()
        if proof_conn is not None:
            try:
                return _sqlite_latest_inclusion(proof_conn, entry_sql, entry_arg, head)
            except sqlite3.OperationalError:
                pass  # busy: read on the driver's thread below, which waits out the busy timeout
        async with self._read.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            if conn.dialect.name == "postgresql":
                return await _pg_latest_inclusion(driver, entry_sql, entry_arg, head)
            return await driver._execute(_sqlite_latest_inclusion, driver._conn, entry_sql, entry_arg, head)

    async def entry_by_index(self, leaf_index: int) -> StoredEntry | None:
        c = leaves_table.c
        async with self._read.connect() as conn:
            row = (
                await conn.execute(
                    select(c.leaf_index, c.leaf_hash, c.leaf).where(c.leaf_index == leaf_index)
                )
            ).first()
        return None if row is None else StoredEntry(int(row[0]), bytes(row[1]), bytes(row[2]))

    async def entry_by_record_id(self, record_id: str) -> StoredEntry | None:
        c = leaves_table.c
        async with self._read.connect() as conn:
            row = (
                await conn.execute(select(c.leaf_index, c.leaf_hash, c.leaf).where(c.record_id == record_id))
            ).first()
        return None if row is None else StoredEntry(int(row[0]), bytes(row[1]), bytes(row[2]))

    async def entries(self, *, start: int, end: int | None, limit: int) -> list[StoredEntry]:
        """Leaves start <= leaf_index < end, ascending."""
        c = leaves_table.c
        stmt = select(c.leaf_index, c.leaf_hash, c.leaf).where(c.leaf_index >= start)
        if end is not None:
            stmt = stmt.where(c.leaf_index < end)
        async with self._read.connect() as conn:
            rows = (await conn.execute(stmt.order_by(c.leaf_index).limit(limit))).all()
        return [StoredEntry(int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]

    async def query(self, q: RecordQuery, *, after: int, limit: int) -> list[StoredEntry]:
        """AUD-2: leaves matching every filter of ``q`` with leaf_index > after, ascending."""
        c = leaves_table.c
        stmt = select(c.leaf_index, c.leaf_hash, c.leaf)
        for kind, ref in ((DEVICE, q.device_id), (GRANT, q.grant_id), (EXPORT, q.export_id)):
            if ref:
                r = refs_table.alias(f"ref_{kind}")
                stmt = stmt.join(r, and_(r.c.leaf_index == c.leaf_index, r.c.kind == kind, r.c.ref_id == ref))
        if q.principal_id:
            stmt = stmt.where(c.actor_id == q.principal_id)
        if q.action:
            stmt = stmt.where(c.action == q.action)
        if q.has_footage_filter:
            # Half-open windows overlap when each starts before the other ends; NULL (no footage) never.
            stmt = stmt.where(c.footage_start_us.is_not(None))
            if q.footage_end_us is not None:
                stmt = stmt.where(c.footage_start_us < q.footage_end_us)
            if q.footage_start_us is not None:
                stmt = stmt.where(c.footage_end_us > q.footage_start_us)
        if q.time_start_us is not None:
            stmt = stmt.where(c.time_us >= q.time_start_us)
        if q.time_end_us is not None:
            stmt = stmt.where(c.time_us < q.time_end_us)
        stmt = stmt.where(c.leaf_index > after).order_by(c.leaf_index).limit(limit)
        async with self._read.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [StoredEntry(int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]

    async def count_leaves(self) -> int:
        async with self._read.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(leaves_table)))


@dataclass(frozen=True, slots=True)
class LatestInclusion:
    """LogStore.latest_inclusion: entry None = no such leaf; head None = nothing signed yet."""

    entry: StoredEntry | None
    head: tuple[SignedTreeHead, str] | None
    hashes: dict[NodeId, bytes]
    # The audit path's plan when the head covers the entry (computed once, for the read and the answer).
    plan: merkle.ProofPlan | None = None


_ENTRY_COLUMNS = "SELECT leaf_index, leaf_hash, leaf FROM audit_leaves WHERE "
_ENTRY_BY_ID = _ENTRY_COLUMNS + "record_id = {}"
_ENTRY_BY_INDEX = _ENTRY_COLUMNS + "leaf_index = {}"
_LATEST_HEAD = (
    "SELECT tree_size, root_hash, timestamp, signature, key_id FROM audit_tree_heads "
    "ORDER BY tree_size DESC LIMIT 1"
)


def _time_reader(dialect: Any) -> Callable[[Any], datetime]:
    # The column type's own conversion (driver value to aware UTC), as a read through SQLAlchemy does.
    return UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)


_PG_TIME = _time_reader(postgresql.asyncpg.dialect())
_SQLITE_TIME = _time_reader(sqlite.aiosqlite.dialect())


def _head_from_values(row: Sequence[Any], read_time: Callable[[Any], datetime]) -> tuple[SignedTreeHead, str]:
    head = TreeHead(int(row[0]), bytes(row[1]), read_time(row[2]))
    return SignedTreeHead(head, bytes(row[3])), row[4]


def _covered(entry: StoredEntry | None, head: tuple[SignedTreeHead, str] | None) -> merkle.ProofPlan | None:
    if entry is None or head is None or entry.leaf_index >= head[0].tree_size:
        return None
    return merkle.inclusion_plan(entry.leaf_index, head[0].tree_size)


# SELECTs of n (level, idx) pairs by n: an OR of pairs (SQLite does not search the primary key for a
# row-value IN); the same text for the same n, so the driver's statement cache keeps it compiled.
_SQLITE_NODES_BY_COUNT: dict[int, str] = {}


def _sqlite_nodes_sql(n: int) -> str:
    sql = _SQLITE_NODES_BY_COUNT.get(n)
    if sql is None:
        sql = "SELECT level, idx, hash FROM audit_nodes WHERE " + " OR ".join(["(level = ? AND idx = ?)"] * n)
        if len(_SQLITE_NODES_BY_COUNT) < 1024:
            _SQLITE_NODES_BY_COUNT[n] = sql
    return sql


# An inclusion proof on PostgreSQL in ONE round trip: the entry, the latest head (unless the writer has
# it in memory: then its size is $2) and the stored nodes its audit path can need, fetched before the
# leaf index is known to the client. The audit path of leaf m in a tree of n leaves only ever names
# perfect subtrees that are either the sibling (l, (m >> l) XOR 1) of m's ancestor at a level l, or
# a subtree (l, (n >> l) - 1) of n's frontier (bit l of n set): the right edge of the tree. Both sets
# have one id per level, so ~2 log2(n) indexed lookups on the primary key give a superset of what
# merkle.inclusion_plan asks for (the unit tests hold the query to the plan), and the client assembles
# the proof from it. Each round trip costs the latency of a context switch to the server and back,
# which on a busy host is what the proof's p99 (target <= 5 ms) was made of.
_PG_PATH_NODES = """
LEFT JOIN LATERAL (
  SELECT array_agg(n.level) AS levels, array_agg(n.idx) AS idxs, array_agg(n.hash) AS hashes
  FROM audit_nodes n
  JOIN (
    SELECT l::smallint AS level, (e.leaf_index >> l) # 1 AS idx
      FROM generate_series(0, 62) AS l WHERE (h.tree_size >> l) > 0
    UNION
    SELECT l::smallint, (h.tree_size >> l) - 1
      FROM generate_series(0, 62) AS l WHERE ((h.tree_size >> l) & 1) = 1
  ) w ON n.level = w.level AND n.idx = w.idx
  WHERE e.leaf_index < h.tree_size
) p ON TRUE"""
_PG_PROOF = (
    "WITH e AS ({}), h AS (" + _LATEST_HEAD + ") "
    "SELECT e.leaf_index, e.leaf_hash, e.leaf, p.levels, p.idxs, p.hashes, "
    "h.tree_size, h.root_hash, h.timestamp, h.signature, h.key_id "
    "FROM e LEFT JOIN h ON TRUE" + _PG_PATH_NODES
)
_PG_PROOF_AT_SIZE = (
    "WITH e AS ({}), h AS (SELECT $2::bigint AS tree_size) "
    "SELECT e.leaf_index, e.leaf_hash, e.leaf, p.levels, p.idxs, p.hashes "
    "FROM e LEFT JOIN h ON TRUE" + _PG_PATH_NODES
)
# By entry SQL: the statement texts, built once (asyncpg prepares each once per connection).
_PG_PROOF_SQL = {
    entry: (_PG_PROOF.format(entry.format("$1")), _PG_PROOF_AT_SIZE.format(entry.format("$1")))
    for entry in (_ENTRY_BY_ID, _ENTRY_BY_INDEX)
}


async def _pg_latest_inclusion(
    driver: Any, entry_sql: str, entry_arg: Any, head: tuple[SignedTreeHead, str] | None
) -> LatestInclusion:
    # One autocommit statement (see _PG_PATH_NODES).
    with_head, at_size = _PG_PROOF_SQL[entry_sql]
    if head is None:
        row = await driver.fetchrow(with_head, entry_arg)
        if row is not None and row[6] is not None:
            head = _head_from_values(row[6:], _PG_TIME)
    else:
        row = await driver.fetchrow(at_size, entry_arg, head[0].tree_size)
    if row is None:
        return LatestInclusion(None, head, {})
    entry = StoredEntry(int(row[0]), bytes(row[1]), bytes(row[2]))
    plan = _covered(entry, head)
    hashes: dict[NodeId, bytes] = {}
    if plan is not None and row[3] is not None:
        hashes = {
            NodeId(int(lv), int(ix)): bytes(h) for lv, ix, h in zip(row[3], row[4], row[5], strict=True)
        }
    return LatestInclusion(entry, head, hashes, plan)


def _sqlite_latest_inclusion(
    conn: sqlite3.Connection, entry_sql: str, entry_arg: Any, head: tuple[SignedTreeHead, str] | None
) -> LatestInclusion:
    """On the thread that owns ``conn``; each SELECT reads its own WAL snapshot of an append-only log."""
    rows = conn.execute(entry_sql.format("?"), (entry_arg,)).fetchall()
    entry = StoredEntry(int(rows[0][0]), bytes(rows[0][1]), bytes(rows[0][2])) if rows else None
    if entry is None:
        return LatestInclusion(None, head, {})
    if head is None:
        heads = conn.execute(_LATEST_HEAD).fetchall()
        head = _head_from_values(heads[0], _SQLITE_TIME) if heads else None
    plan = _covered(entry, head)
    hashes: dict[NodeId, bytes] = {}
    if plan is not None:
        ids = plan.node_ids
        for start in range(0, len(ids), _IN_CHUNK // 2):
            chunk = ids[start : start + _IN_CHUNK // 2]
            params = [x for i in chunk for x in i]
            for r in conn.execute(_sqlite_nodes_sql(len(chunk)), params).fetchall():
                hashes[NodeId(r[0], r[1])] = r[2]
    return LatestInclusion(entry, head, hashes, plan)


def read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine the service's reads use: one without pre-ping; on SQLite, one that does not lock.

    vigil_kit's SQLite engine opens every transaction with BEGIN IMMEDIATE, which takes the write lock,
    so reads through it would queue behind the log's append transactions. These connections run each
    SELECT on its own WAL snapshot (the driver's default: no transaction for a SELECT) and are query_only,
    so they never hold a transaction a pool reset would have to roll back. The log is append-only, so a
    read spanning two statements can only see it grow in between. On PostgreSQL the reads get a pool of
    their own without the pre-ping round trip per checkout (a dropped connection fails one read and is
    replaced), so proofs cost one connection checkout and their queries only.
    """
    if engine.dialect.name != "sqlite":
        return create_engine(engine.url.render_as_string(hide_password=False), pool_pre_ping=False)
    reader = create_async_engine(engine.url, pool_reset_on_return=None)

    @event.listens_for(reader.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    return reader
