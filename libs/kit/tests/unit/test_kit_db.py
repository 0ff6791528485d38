"""The engine factory's SQLite settings and the UTC timestamp type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text

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
