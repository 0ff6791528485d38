"""The archive's schema migrations keep what was indexed, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from vigil_archive.app import MIGRATIONS
from vigil_kit import db
from vigil_kit.migrations import upgrade

ROW = {
    "device_id": "32020501501320000001",
    "sequence": 1,
    "start_time": datetime(2026, 11, 28, 8, 0, 0),
    "end_time": datetime(2026, 11, 28, 8, 0, 2),
    "day": "2026-11-28",
    "bucket": "vigil-segments",
    "key": "segments/32020501501320000001/20261128T080000-1.ts",
    "version_id": "v1",
    "size": 752,
    "sha256": "0" * 64,
    "retain_until": datetime(2026, 12, 28, 8, 0, 0),
    "owner_unit_id": "12320200MB0000003X",
    "codec": "h264",
    "container": "ts",
    "legal_hold": False,
    "source": "ingest",
    "index_time": datetime(2026, 11, 28, 8, 0, 3),
}


async def test_upgrading_past_0003_keeps_indexed_rows_and_their_uniqueness(database_url: str) -> None:
    engine = db.create_engine(database_url)
    try:
        await upgrade(engine, MIGRATIONS, "0002")
        columns = ", ".join(f'"{c}"' for c in ROW)
        values = ", ".join(f":{c}" for c in ROW)
        insert = text(f"INSERT INTO archive_segments ({columns}) VALUES ({values})")
        async with engine.begin() as conn:
            await conn.execute(insert, ROW)
        await upgrade(engine, MIGRATIONS)
        async with engine.connect() as conn:
            keys = (await conn.execute(text('SELECT "key", version_id FROM archive_segments'))).all()
        assert [tuple(k) for k in keys] == [(ROW["key"], "v1")]
        # The same object version twice is still refused by the reordered unique constraint.
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert, {**ROW, "sequence": 2})
    finally:
        await engine.dispose()


async def test_a_lookup_by_key_alone_uses_the_object_unique_index_on_sqlite(tmp_path) -> None:
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'archive.db'}")
    try:
        await upgrade(engine, MIGRATIONS)
        async with engine.connect() as conn:
            plan = (
                await conn.execute(
                    text('EXPLAIN QUERY PLAN SELECT id FROM archive_segments WHERE "key" = :k'), {"k": "x"}
                )
            ).all()
        # SQLite names a table constraint's index sqlite_autoindex_<table>_N; it is the only one on key.
        detail = " ".join(str(r[-1]) for r in plan)
        assert "sqlite_autoindex_archive_segments" in detail and "(key=?)" in detail, detail
    finally:
        await engine.dispose()
