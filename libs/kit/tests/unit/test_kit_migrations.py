"""Alembic upgrades on the async engine create the kit tables on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from vigil_kit import db, migrations

SCRIPTS = Path(__file__).resolve().parents[1] / "kit_migrations"


async def _tables(engine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_creates_the_kit_tables(database_url: str) -> None:
    engine = db.create_engine(database_url)
    try:
        await migrations.upgrade(engine, SCRIPTS)
        assert {"outbox", "processed_events", "outbox_relay_lease"} <= await _tables(engine)
        assert await migrations.current_revision(engine) == "0001"
    finally:
        await engine.dispose()


async def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    engine = db.create_engine(database_url)
    try:
        await migrations.upgrade(engine, SCRIPTS)
        await migrations.upgrade(engine, SCRIPTS)
        assert await migrations.current_revision(engine) == "0001"
    finally:
        await engine.dispose()


async def test_kit_metadata_matches_what_the_migration_creates(sqlite_url: str) -> None:
    engine = db.create_engine(sqlite_url)
    try:
        await migrations.upgrade(engine, SCRIPTS)
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: {
                    t: {col["name"] for col in inspect(c).get_columns(t)}
                    for t in migrations.KIT_METADATA.tables
                }
            )
        for name, table in migrations.KIT_METADATA.tables.items():
            assert columns[name] == {c.name for c in table.columns}
    finally:
        await engine.dispose()
