"""The engine factory's SQLite settings, read-only sessions, and the UTC timestamp type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, event, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from vigil_kit import db


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


async def test_default_sessions_still_take_the_write_lock_when_they_begin(engines) -> None:
    writer, impatient = engines
    async with db.session_factory(writer).begin() as writing:
        await writing.execute(insert(ROWS).values(id=2))

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


async def test_a_threaded_transaction_takes_the_write_lock_when_it_begins(engines) -> None:
    writer, _ = engines
    transactions = db.threaded_transactions(writer)
    assert transactions is not None
    try:
        await transactions.run(lambda conn: conn.exec_driver_sql("PRAGMA busy_timeout=0"))
        async with db.session_factory(writer).begin() as writing:
            await writing.execute(insert(ROWS).values(id=2))

            with pytest.raises(OperationalError, match="locked"):
                await transactions.run(lambda conn: conn.execute(select(ROWS.c.id)).all())
    finally:
        transactions.close()


def test_threaded_transactions_are_only_for_sqlite_files() -> None:
    assert db.threaded_transactions(db.create_engine("sqlite+aiosqlite:///:memory:")) is None
    assert db.threaded_transactions(db.create_engine("postgresql+asyncpg://vigil@127.0.0.1:1/vigil")) is None
