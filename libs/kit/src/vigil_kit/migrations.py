"""Kit-owned tables (outbox, processed events, relay lease) and Alembic upgrades run at service start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from vigil_kit.db import UTCDateTime, create_engine

KIT_METADATA = MetaData()

OUTBOX = "outbox"
PROCESSED_EVENTS = "processed_events"
RELAY_LEASE = "outbox_relay_lease"

# A constant key for PostgreSQL's advisory lock, so replicas starting together migrate one at a time.
_MIGRATION_LOCK_KEY = 0x56494749  # "VIGI"


def _outbox_parts() -> list[Any]:
    return [
        # The autoincrement id is the publication order; SQLite AUTOINCREMENT keeps ids from being
        # reused after the relay deletes published rows.
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False),  # ce_id, UUIDv7
        Column("topic", String(249), nullable=False),
        Column("key", String(255), nullable=False),
        Column("ce_type", String(255), nullable=False),
        Column("source", String(255), nullable=False),
        Column("subject", String(255), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),  # ce_time
        UniqueConstraint("event_id", name="uq_outbox_event_id"),
    ]


def _processed_parts() -> list[Any]:
    return [
        Column("consumer", String(128), nullable=False),
        Column("event_id", String(64), nullable=False),
        Column("processed_at", UTCDateTime, nullable=False),
        PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
    ]


def _lease_parts() -> list[Any]:
    return [
        Column("name", String(64), primary_key=True),
        Column("holder", String(64), nullable=False),
        # Unix milliseconds; compared with the relay's own clock.
        Column("expires_at", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    ]


outbox_table = Table(OUTBOX, KIT_METADATA, *_outbox_parts(), sqlite_autoincrement=True)
processed_events_table = Table(PROCESSED_EVENTS, KIT_METADATA, *_processed_parts())
relay_lease_table = Table(RELAY_LEASE, KIT_METADATA, *_lease_parts())


def create_kit_tables(op: Any) -> None:
    """Create the kit-owned tables; call from a service's first Alembic revision's upgrade()."""
    op.create_table(OUTBOX, *_outbox_parts(), sqlite_autoincrement=True)
    op.create_table(PROCESSED_EVENTS, *_processed_parts())
    op.create_table(RELAY_LEASE, *_lease_parts())


def drop_kit_tables(op: Any) -> None:
    """Drop the kit-owned tables; call from the same revision's downgrade()."""
    op.drop_table(RELAY_LEASE)
    op.drop_table(PROCESSED_EVENTS)
    op.drop_table(OUTBOX)


def _config(script_location: str | Path, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, script_location: str | Path, revision: str = "head") -> None:
    """Run Alembic `upgrade <revision>` on the async engine (the script folder's env.py calls run_env())."""

    def _run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        command.upgrade(_config(script_location, connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's Alembic revision (None before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


def run_env(target_metadata: MetaData | None = None, url: str | None = None) -> None:
    """The body of a service's Alembic env.py.

    Under upgrade() the connection arrives in config.attributes; from the alembic command line
    it connects to `url` (or the ini's sqlalchemy.url) itself.
    """
    config = context.config
    connection = config.attributes.get("connection")

    def _migrate(conn: Connection) -> None:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things in place: batch mode rebuilds the table instead.
            render_as_batch=conn.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if connection is not None:
        _migrate(connection)
        return
    db_url = url or config.get_main_option("sqlalchemy.url")
    if not db_url:
        raise RuntimeError("no database: pass a connection via upgrade() or set sqlalchemy.url")

    async def _standalone() -> None:
        engine = create_engine(db_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_migrate)
        finally:
            await engine.dispose()

    asyncio.run(_standalone())
