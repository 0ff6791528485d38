"""The SQLAlchemy async engine and session factories every Vigil service uses (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import DateTime, event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator

T = TypeVar("T")

# Per-connection page cache ceiling (KiB).
SQLITE_CACHE_KIB = 64 * 1024
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Execution option marking an engine (and its connections) as read-only: on SQLite its transactions
# begin DEFERRED, taking no write lock (see read_session_factory).
READ_ONLY_OPTION = "vigil_read_only"


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


def _configure_sqlite(engine: AsyncEngine | Engine) -> None:
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

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
        # write lock. Everything else takes the write lock up front (see create_engine).
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


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
    engine = engine_or_sessions
    if isinstance(engine, async_sessionmaker):
        engine = engine.kw["bind"]
    if not isinstance(engine, AsyncEngine):
        raise TypeError("read_session_factory needs an AsyncEngine or a session factory bound to one")
    return async_sessionmaker(engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False)


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


def is_sqlite_file(engine: AsyncEngine) -> bool:
    """A SQLite engine on a database file (not an in-memory database, which another connection cannot see)."""
    database = engine.url.database or ""
    return is_sqlite(engine) and database not in ("", ":memory:") and not database.startswith("file::memory:")


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
