"""The SQLAlchemy async engine and session factories every Vigil service uses (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import DateTime, event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_only

T = TypeVar("T")

# Per-connection page cache ceiling (KiB).
SQLITE_CACHE_KIB = 64 * 1024
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Execution option marking an engine (and its connections) as read-only: on SQLite its transactions
# begin DEFERRED, taking no write lock (see read_session_factory).
READ_ONLY_OPTION = "vigil_read_only"
# Execution option marking an engine's write transactions as urgent: at the write gate they wait only
# behind the transaction in progress and earlier urgent ones (see urgent_session_factory).
URGENT_OPTION = "vigil_write_urgent"


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str, **kw: Any) -> AsyncEngine:
    """An AsyncEngine for `sqlite+aiosqlite://...` or `postgresql+asyncpg://...`.

    SQLite: WAL (readers never block the writer), a busy timeout, foreign keys on, and every
    transaction opened with BEGIN IMMEDIATE. The last one is why: SQLite's default deferred
    transactions take the write lock only at their first write, and a reader that then writes
    while another connection writes fails with SQLITE_BUSY at once instead of waiting; taking
    the write lock up front makes concurrent writers queue behind the busy timeout instead,
    and it also makes SAVEPOINT behave (the pysqlite driver's own transaction handling is off).
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kw)
        _configure_sqlite(engine)
        return engine
    kw.setdefault("pool_size", 5)
    kw.setdefault("max_overflow", 10)
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("pool_recycle", 1800)
    return create_async_engine(url, **kw)


class WriteGate:
    """The write transactions of one SQLite database file in this process, admitted one at a time, first
    come first served.

    Why: SQLite lets one connection write at a time, and a connection that finds the write lock taken
    waits in SQLite's busy handler, which polls with sleeps of 1, 2, 5, 10 … 100 ms. Every service here
    has at least two writers on one file (its requests' transactions and the outbox relay, often a group
    commit too), so a transaction that began a moment after another paid a sleep of several
    milliseconds however short the other was: ActivateDevice spent 8 ms of its 10 ms in BEGIN IMMEDIATE
    at one call in flight. Queued here instead, the next writer starts the moment the last one commits.
    Async connections wait on a future (the event loop keeps running), threads on an event. A wait is
    bounded by the busy timeout; past it the transaction begins anyway and SQLite's busy handling
    decides, exactly as without the gate. Other processes on the file still meet SQLite's own locking.
    An urgent waiter (a deadline-bound transaction, such as marking devices offline) is admitted before
    every ordinary one, after the urgent ones queued before it.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._holder: object | None = None
        self._waiters: deque[_GateWaiter] = deque()

    @property
    def holder(self) -> object | None:
        """The connection whose write transaction the gate admitted last, until it ends (None: open)."""
        return self._holder

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_take(self, owner: object) -> bool:
        """Admit `owner` if the gate is open and no one waits (the uncontended case: no future, no thread)."""
        with self._mutex:
            return self._take_if_open(owner)

    def _take_if_open(self, owner: object) -> bool:
        # Under self._mutex.
        if self._holder is None and not self._waiters:
            self._holder = owner
            return True
        return False

    def _take_or_queue(self, owner: object, waiter: _GateWaiter) -> bool:
        with self._mutex:
            if self._take_if_open(owner):
                return True
            if waiter.urgent:
                ahead = 0
                while ahead < len(self._waiters) and self._waiters[ahead].urgent:
                    ahead += 1
                self._waiters.insert(ahead, waiter)
            else:
                self._waiters.append(waiter)
            return False

    def _withdraw(self, waiter: _GateWaiter) -> bool:
        """Whether `waiter` was still queued (and now is not); False: it was admitted meanwhile."""
        with self._mutex:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return False
            return True

    async def acquire(self, owner: object, timeout_s: float, *, urgent: bool = False) -> bool:
        """Admit `owner` (a DBAPI connection) from a coroutine; False if `timeout_s` passed first."""
        waiter = _GateWaiter(owner, future=asyncio.get_running_loop().create_future(), urgent=urgent)
        if self._take_or_queue(owner, waiter):
            return True
        assert waiter.future is not None
        try:
            await asyncio.wait_for(waiter.future, timeout_s)
        except TimeoutError:
            return not self._withdraw(waiter)
        except asyncio.CancelledError:
            if not self._withdraw(waiter):
                self.release(owner)
            raise
        return True

    def acquire_blocking(self, owner: object, timeout_s: float, *, urgent: bool = False) -> bool:
        """Admit `owner` from a thread that may block; False if `timeout_s` passed first."""
        waiter = _GateWaiter(owner, event=threading.Event(), urgent=urgent)
        if self._take_or_queue(owner, waiter):
            return True
        assert waiter.event is not None
        if waiter.event.wait(timeout_s):
            return True
        return not self._withdraw(waiter)

    def release(self, owner: object) -> None:
        """`owner`'s transaction ended: admit the next waiter. A no-op for a connection not admitted."""
        with self._mutex:
            if self._holder is not owner:
                return
            self._holder = None
            if self._waiters:
                waiter = self._waiters.popleft()
                self._holder = waiter.owner
                waiter.admit()


@dataclass(eq=False)
class _GateWaiter:
    owner: object
    future: asyncio.Future[None] | None = None
    event: threading.Event | None = None
    urgent: bool = False

    def admit(self) -> None:
        if self.event is not None:
            self.event.set()
        elif self.future is not None:
            self.future.get_loop().call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_GATES: dict[str, WriteGate] = {}
_GATES_MUTEX = threading.Lock()


def write_gate(database: str) -> WriteGate:
    """The process's write gate of a SQLite database file (one per file, whichever engines open it)."""
    key = os.path.realpath(database)
    with _GATES_MUTEX:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = WriteGate()
        return gate


def _dbapi(connection: Any) -> Any:
    return getattr(connection, "dbapi_connection", connection)


def _configure_sqlite(engine: AsyncEngine | Engine) -> None:
    is_async = isinstance(engine, AsyncEngine)
    sync_engine = engine.sync_engine if is_async else engine
    database = sync_engine.url.database or ""
    gate = write_gate(database) if _on_file(database) else None
    timeout_s = SQLITE_BUSY_TIMEOUT_MS / 1000

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (see the "begin" hook below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL + NORMAL is durable against process crashes (only an OS crash may lose the last commits).
        cursor.execute("PRAGMA synchronous=NORMAL")
        # SQLite's default page cache (2 MiB) is far smaller than the indexes a service walks: on a
        # million-row table every index maintained by a write became a read from the OS. Pages are
        # cached only as read, so a small database costs no more memory than before.
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only sessions begin DEFERRED: under WAL they read a snapshot without queueing for the
        # write lock. Everything else takes the write lock up front (see create_engine), after its turn
        # at the process's write gate (see WriteGate).
        options = conn.get_execution_options()
        if options.get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
            return
        if gate is None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        owner = _dbapi(conn.connection)
        if not gate.try_take(owner):
            urgent = bool(options.get(URGENT_OPTION))
            if is_async:
                await_only(gate.acquire(owner, timeout_s, urgent=urgent))
            else:
                gate.acquire_blocking(owner, timeout_s, urgent=urgent)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            gate.release(owner)
            raise

    if gate is None:
        return
    dialect = sync_engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    # The transaction ends when COMMIT or ROLLBACK has run, not when SQLAlchemy announces it (its commit
    # and rollback events come first): the gate opens after, so the next writer never meets the lock.
    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            gate.release(_dbapi(dbapi_connection))

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            gate.release(_dbapi(dbapi_connection))

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    @event.listens_for(sync_engine.pool, "close")
    def _on_close(dbapi_connection: Any, _record: Any) -> None:
        gate.release(dbapi_connection)

    @event.listens_for(sync_engine.pool, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: Any, _exc: Any) -> None:
        gate.release(dbapi_connection)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (async code cannot lazy-load)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def read_session_factory(
    engine_or_sessions: AsyncEngine | async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession]:
    """Sessions for read-only work (look-ups, listings, checks) on the same engine and pool.

    On SQLite their transactions begin DEFERRED instead of IMMEDIATE, so under WAL a read proceeds on
    its snapshot while a writer holds the write lock, instead of queueing behind every commit. Never
    write through them: a deferred transaction that writes upgrades its lock at the first write and may
    fail with SQLITE_BUSY at once rather than wait. PostgreSQL sessions are unchanged. Accepts the
    engine, or the read-write session factory whose engine to use.
    """
    return async_sessionmaker(
        _engine_of(engine_or_sessions).execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False
    )


def _engine_of(engine_or_sessions: AsyncEngine | async_sessionmaker[AsyncSession]) -> AsyncEngine:
    engine = engine_or_sessions
    if isinstance(engine, async_sessionmaker):
        engine = engine.kw["bind"]
    if not isinstance(engine, AsyncEngine):
        raise TypeError("a session factory needs an AsyncEngine or a session factory bound to one")
    return engine


def urgent_session_factory(
    engine_or_sessions: AsyncEngine | async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession]:
    """Sessions whose write transactions are urgent: on a SQLite file they are admitted at the process's
    write gate before every ordinary writer queued there (see WriteGate), for work with a deadline that
    must not wait out a burst of requests. PostgreSQL sessions are unchanged."""
    return async_sessionmaker(
        _engine_of(engine_or_sessions).execution_options(**{URGENT_OPTION: True}), expire_on_commit=False
    )


class ThreadedTransactions:
    """Whole transactions run on a synchronous twin of a SQLite file engine, in one worker thread.

    Why: the async SQLite driver hands every statement, cursor and commit to its own thread and back,
    about ten round trips for even a one-row transaction, and those hand-offs cost far more CPU than
    SQLite itself. A hot writer that commits small batches (group commits of audit records) does better
    running the whole transaction — BEGIN IMMEDIATE, statements, COMMIT — in one hand-off. The twin opens
    the same database file with the same settings (WAL, busy timeout, BEGIN IMMEDIATE). Use it for writes
    that need nothing else from the event loop while they run; close() it when the service stops.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        if not is_sqlite_file(engine):
            raise ValueError("ThreadedTransactions needs a file-backed SQLite engine")
        self._sync = sqlalchemy.create_engine(engine.url.set(drivername="sqlite"))
        _configure_sqlite(self._sync)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-db-transactions")

    async def run(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` inside one transaction on the worker thread; committed when this returns
        (rolled back, and the error raised here, if `work` raises)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, work)

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        with self._sync.begin() as conn:
            return work(conn)

    async def read(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` inside one read-only transaction on the worker thread, in one hand-off (a
        hot read such as a list page: its statements, rows and cursor cost no thread round trips). It
        begins DEFERRED, so under WAL it reads a snapshot without taking the write lock (never write in
        it; see read_session_factory); it queues behind this object's transactions, which share the thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._read, work)

    def _read(self, work: Callable[[Connection], T]) -> T:
        with self._sync.connect() as conn:
            conn.execution_options(**{READ_ONLY_OPTION: True})
            with conn.begin():
                return work(conn)

    def close(self) -> None:
        """Finish the transaction in progress, if any, then stop the thread and close the connection."""
        self._executor.shutdown(wait=True)
        self._sync.dispose()


def _on_file(database: str) -> bool:
    """Whether a SQLite URL's database is a file (not an in-memory database, which another connection cannot see)."""
    return database not in ("", ":memory:") and not database.startswith("file::memory:")


def is_sqlite_file(engine: AsyncEngine) -> bool:
    """A SQLite engine on a database file."""
    return is_sqlite(engine) and _on_file(engine.url.database or "")


def threaded_transactions(engine: AsyncEngine) -> ThreadedTransactions | None:
    """A ThreadedTransactions for a SQLite file engine; None for any other (PostgreSQL's driver needs no
    thread hand-offs, so the async engine is already the cheap path there)."""
    return ThreadedTransactions(engine) if is_sqlite_file(engine) else None


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both databases (SQLite stores it naive; we read it back as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Host parameters per multi-row INSERT on SQLite: its default limit since 3.32 (a build may allow more).
SQLITE_MAX_PARAMS = 32_766
# The statement texts by (table, columns, rows), so the sqlite3 module's statement cache keeps them compiled.
_SQLITE_INSERTS: dict[tuple[str, tuple[str, ...], int], str] = {}


def _sqlite_insert_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    key = (table, columns, rows)
    sql = _SQLITE_INSERTS.get(key)
    if sql is None:
        one = f"({', '.join('?' for _ in columns)})"
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ",".join([one] * rows)
        if len(_SQLITE_INSERTS) < 256:
            _SQLITE_INSERTS[key] = sql
    return sql


def sqlite_insert_many(
    execute: Callable[[str, Sequence[Any]], Any], table: str, columns: Sequence[str], rows: Sequence[Any]
) -> None:
    """Insert `rows` into a SQLite table with as few multi-row INSERTs as its parameter limit allows.

    Why: executemany steps each row separately, and the sqlite3 module releases the GIL around every
    step and must take it back after; while the event loop works, that can cost up to the interpreter's
    switch interval per row. A multi-row INSERT is one step. `execute(sql, params)` runs one statement
    (a sqlite3 connection's execute, or a SQLAlchemy Connection's exec_driver_sql).
    """
    columns = tuple(columns)
    step = max(1, SQLITE_MAX_PARAMS // len(columns))
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        execute(
            _sqlite_insert_sql(table, columns, len(chunk)), tuple(value for row in chunk for value in row)
        )
