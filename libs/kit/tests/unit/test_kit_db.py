"""The engine factory's SQLite settings, read-only sessions, and the UTC timestamp type."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, event, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from vigil_kit import db
from vigil_testing.poll import apoll_until


async def test_sqlite_engine_uses_wal_and_foreign_keys(sqlite_url: str) -> None:
    engine = db.create_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.scalar(text("PRAGMA journal_mode"))) == "wal"
            assert (await conn.scalar(text("PRAGMA foreign_keys"))) == 1
            assert (await conn.scalar(text("PRAGMA busy_timeout"))) == db.SQLITE_BUSY_TIMEOUT_MS
    finally:
        await engine.dispose()


async def test_timestamps_come_back_timezone_aware_in_utc(database_url: str) -> None:
    meta = MetaData()
    t = Table("t", meta, Column("id", Integer, primary_key=True), Column("at", db.UTCDateTime))
    engine = db.create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(meta.create_all)
            when = datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=8)))
            await conn.execute(insert(t).values(id=1, at=when))
            back = await conn.scalar(select(t.c.at))
        assert back == when and back.tzinfo == UTC
    finally:
        await engine.dispose()


async def test_naive_timestamps_are_refused(sqlite_url: str) -> None:
    meta = MetaData()
    t = Table("t", meta, Column("id", Integer, primary_key=True), Column("at", db.UTCDateTime))
    engine = db.create_engine(sqlite_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(meta.create_all)
            with pytest.raises(Exception, match="timezone-aware"):
                await conn.execute(insert(t).values(id=1, at=datetime(2025, 3, 1)))
    finally:
        await engine.dispose()


ROWS = Table("rows", MetaData(), Column("id", Integer, primary_key=True))


@pytest.fixture
async def engines(sqlite_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """(the engine a writer uses, an engine whose connections wait for no lock: busy_timeout 0, so a
    transaction that needs the write lock while another holds it fails at once instead of waiting)."""
    writer = db.create_engine(sqlite_url)
    impatient = db.create_engine(sqlite_url)

    @event.listens_for(impatient.sync_engine, "connect")
    def _no_waiting(dbapi_connection, _record) -> None:  # runs after the kit's own connect hook
        dbapi_connection.cursor().execute("PRAGMA busy_timeout=0")

    async with writer.begin() as conn:
        await conn.run_sync(ROWS.metadata.create_all)
        await conn.execute(insert(ROWS).values(id=1))
    try:
        yield writer, impatient
    finally:
        await impatient.dispose()
        await writer.dispose()


async def test_a_read_session_reads_while_a_writer_holds_the_write_lock(engines) -> None:
    writer, impatient = engines
    async with db.session_factory(writer).begin() as writing:
        await writing.execute(insert(ROWS).values(id=2))  # uncommitted, write lock held

        async with db.read_session_factory(impatient)() as reading:
            seen = list(await reading.scalars(select(ROWS.c.id)))

    assert seen == [1]  # the last committed snapshot, read without waiting for the writer


@contextmanager
def another_process_writing(url: str) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection holding the write lock, as another process's writer would (this process's
    write gate knows nothing of it)."""
    conn = sqlite3.connect(make_url(url).database, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO rows (id) VALUES (2)")
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def test_default_sessions_still_take_the_write_lock_when_they_begin(engines, sqlite_url: str) -> None:
    _, impatient = engines
    with another_process_writing(sqlite_url):
        with pytest.raises(OperationalError, match="locked"):
            async with db.session_factory(impatient)() as other:
                await other.scalar(select(ROWS.c.id))  # even a read: BEGIN IMMEDIATE needs the lock


async def test_read_sessions_made_from_a_session_factory_read_without_the_write_lock_too(engines) -> None:
    writer, impatient = engines
    reads = db.read_session_factory(db.session_factory(impatient))
    async with db.session_factory(writer).begin() as writing:
        await writing.execute(insert(ROWS).values(id=2))

        async with reads() as reading:
            assert list(await reading.scalars(select(ROWS.c.id))) == [1]


async def test_threaded_transactions_commit_where_the_async_engine_reads(engines) -> None:
    writer, _ = engines
    transactions = db.threaded_transactions(writer)
    assert transactions is not None
    try:
        await transactions.run(lambda conn: conn.execute(insert(ROWS), [{"id": 2}, {"id": 3}]))
    finally:
        transactions.close()

    async with db.read_session_factory(writer)() as reading:
        assert list(await reading.scalars(select(ROWS.c.id).order_by(ROWS.c.id))) == [1, 2, 3]


async def test_a_threaded_transaction_that_fails_leaves_nothing_behind(engines) -> None:
    writer, _ = engines
    transactions = db.threaded_transactions(writer)
    assert transactions is not None

    def insert_then_fail(conn) -> None:
        conn.execute(insert(ROWS).values(id=2))
        raise RuntimeError("changed my mind")

    try:
        with pytest.raises(RuntimeError, match="changed my mind"):
            await transactions.run(insert_then_fail)
    finally:
        transactions.close()

    async with db.read_session_factory(writer)() as reading:
        assert list(await reading.scalars(select(ROWS.c.id))) == [1]


async def test_a_threaded_transaction_takes_the_write_lock_when_it_begins(engines, sqlite_url: str) -> None:
    writer, _ = engines
    transactions = db.threaded_transactions(writer)
    assert transactions is not None
    try:
        await transactions.run(lambda conn: conn.exec_driver_sql("PRAGMA busy_timeout=0"))
        with another_process_writing(sqlite_url):
            with pytest.raises(OperationalError, match="locked"):
                await transactions.run(lambda conn: conn.execute(select(ROWS.c.id)).all())
    finally:
        transactions.close()


def test_threaded_transactions_are_only_for_sqlite_files() -> None:
    assert db.threaded_transactions(db.create_engine("sqlite+aiosqlite:///:memory:")) is None
    assert db.threaded_transactions(db.create_engine("postgresql+asyncpg://vigil@127.0.0.1:1/vigil")) is None


# --- the write gate: this process's writers of one file queue in order instead of in SQLite's busy sleeps


def _waiting(gate: db.WriteGate, n: int):
    async def check() -> bool:
        return gate.waiting == n

    return check


async def test_a_second_writer_waits_at_the_gate_and_begins_once_the_first_commits(engines) -> None:
    writer, impatient = engines  # impatient: busy_timeout 0, so meeting SQLite's lock would fail at once
    gate = db.write_gate(writer.url.database)
    async with db.session_factory(writer).begin() as writing:
        await writing.execute(insert(ROWS).values(id=2))

        async def second() -> None:
            async with impatient.begin() as conn:
                await conn.execute(insert(ROWS).values(id=3))

        waiting = asyncio.create_task(second())
        await apoll_until(_waiting(gate, 1), timeout=10, what="the second writer queued at the gate")
        assert not waiting.done()
    await asyncio.wait_for(waiting, 10)  # began when the first committed: no "database is locked"
    assert gate.holder is None and gate.waiting == 0
    async with db.read_session_factory(writer)() as reading:
        assert list(await reading.scalars(select(ROWS.c.id).order_by(ROWS.c.id))) == [1, 2, 3]


async def test_a_threaded_transaction_queues_at_the_gate_behind_an_async_writer(engines) -> None:
    writer, _ = engines
    gate = db.write_gate(writer.url.database)
    transactions = db.threaded_transactions(writer)
    assert transactions is not None
    try:
        await transactions.run(lambda conn: conn.exec_driver_sql("PRAGMA busy_timeout=0"))
        async with db.session_factory(writer).begin() as writing:
            await writing.execute(insert(ROWS).values(id=2))
            waiting = asyncio.ensure_future(
                transactions.run(lambda conn: conn.execute(insert(ROWS).values(id=3)))
            )
            await apoll_until(_waiting(gate, 1), timeout=10, what="the thread queued at the gate")
        await asyncio.wait_for(waiting, 10)
    finally:
        transactions.close()
    async with db.read_session_factory(writer)() as reading:
        assert list(await reading.scalars(select(ROWS.c.id).order_by(ROWS.c.id))) == [1, 2, 3]


async def test_a_rolled_back_or_failed_transaction_opens_the_gate(engines) -> None:
    writer, _ = engines
    gate = db.write_gate(writer.url.database)
    with pytest.raises(RuntimeError, match="no"):
        async with db.session_factory(writer).begin() as writing:
            await writing.execute(insert(ROWS).values(id=2))
            assert gate.holder is not None
            raise RuntimeError("no")
    assert gate.holder is None
    with pytest.raises(Exception, match="UNIQUE"):
        async with writer.begin() as conn:
            await conn.execute(insert(ROWS).values(id=1))
    assert gate.holder is None


async def test_read_sessions_pass_the_gate_by(engines) -> None:
    writer, impatient = engines
    gate = db.write_gate(writer.url.database)
    async with db.session_factory(writer).begin() as writing:
        await writing.execute(insert(ROWS).values(id=2))
        async with db.read_session_factory(impatient)() as reading:
            assert list(await reading.scalars(select(ROWS.c.id))) == [1]
        assert gate.waiting == 0


async def test_a_wait_past_the_timeout_gives_up_and_a_cancelled_wait_leaves_the_queue() -> None:
    assert db.WriteGate().try_take("x")  # open and no one waiting: admitted at once
    gate = db.WriteGate()
    assert await gate.acquire("a", 1)
    assert not gate.try_take("b")
    assert not await gate.acquire("b", 0.01)
    assert not await asyncio.to_thread(gate.acquire_blocking, "c", 0.01)
    assert gate.waiting == 0 and gate.holder == "a"

    queued = asyncio.create_task(gate.acquire("d", 10))
    await apoll_until(_waiting(gate, 1), timeout=10, what="d queued")
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert gate.waiting == 0

    gate.release("someone else")  # not the holder: nothing happens
    assert gate.holder == "a"
    after = asyncio.create_task(gate.acquire("e", 10))
    await apoll_until(_waiting(gate, 1), timeout=10, what="e queued")
    gate.release("a")
    assert await asyncio.wait_for(after, 10) and gate.holder == "e"


async def test_an_urgent_waiter_is_admitted_before_the_ordinary_ones_queued_before_it() -> None:
    gate = db.WriteGate()
    assert await gate.acquire("a", 1)
    admitted: list[str] = []

    async def writer(name: str, urgent: bool = False) -> None:
        assert await gate.acquire(name, 10, urgent=urgent)
        admitted.append(name)

    waiting = [asyncio.create_task(writer("b")), asyncio.create_task(writer("c"))]
    await apoll_until(_waiting(gate, 2), timeout=10, what="b and c queued")
    waiting.append(asyncio.create_task(writer("urgent-1", urgent=True)))
    await apoll_until(_waiting(gate, 3), timeout=10, what="the first urgent writer queued")
    waiting.append(asyncio.create_task(writer("urgent-2", urgent=True)))
    await apoll_until(_waiting(gate, 4), timeout=10, what="the second urgent writer queued")
    holder = "a"
    for _ in range(4):
        gate.release(holder)
        await apoll_until(lambda n=len(admitted): _grew(admitted, n), timeout=10, what="the next admitted")
        holder = admitted[-1]
    await asyncio.gather(*waiting)
    assert admitted == ["urgent-1", "urgent-2", "b", "c"]  # urgent first, each kind in its own order


async def _grew(items: list[str], n: int) -> bool:
    return len(items) > n


async def test_an_urgent_session_begins_before_ordinary_writers_queued_at_the_gate(engines) -> None:
    writer, _ = engines
    gate = db.write_gate(writer.url.database)
    order: list[int] = []

    async def write(sessions, row: int) -> None:
        async with sessions.begin() as session:
            await session.execute(insert(ROWS).values(id=row))  # its transaction begins (at the gate) here
            order.append(row)

    async with db.session_factory(writer).begin() as writing:
        await writing.execute(insert(ROWS).values(id=2))
        ordinary = asyncio.create_task(write(db.session_factory(writer), 3))
        await apoll_until(_waiting(gate, 1), timeout=10, what="the ordinary writer queued")
        urgent = asyncio.create_task(write(db.urgent_session_factory(writer), 4))
        await apoll_until(_waiting(gate, 2), timeout=10, what="the urgent writer queued")
    await asyncio.wait_for(asyncio.gather(ordinary, urgent), 10)
    assert order == [4, 3]
    async with db.read_session_factory(writer)() as reading:
        assert list(await reading.scalars(select(ROWS.c.id).order_by(ROWS.c.id))) == [1, 2, 3, 4]
