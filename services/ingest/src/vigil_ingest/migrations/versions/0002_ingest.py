"""Ingest's own tables: the device cache fed by registry events, and the accepted uploads."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil_kit.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_cache",
        sa.Column("device_id", sa.String(20), primary_key=True),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("retention_days", sa.Float, nullable=False),
        sa.Column("owner_unit_id", sa.String(18), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("division_code", sa.String(6), nullable=False),
        sa.Column("source_time", UTCDateTime, nullable=True),
        sa.Column("cached_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "uploads",
        sa.Column("device_id", sa.String(20), primary_key=True),
        sa.Column("sequence", sa.String(20), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("object_key", sa.Text, nullable=False),
        sa.Column("version_id", sa.String(255), nullable=False),
        sa.Column("start_seconds", sa.BigInteger, nullable=False),
        sa.Column("start_nanos", sa.Integer, nullable=False),
        sa.Column("duration_ns", sa.BigInteger, nullable=False),
        sa.Column("container", sa.String(16), nullable=False),
        sa.Column("codec", sa.String(32), nullable=False),
        sa.Column("retain_until", UTCDateTime, nullable=False),
        sa.Column("retention_days", sa.Float, nullable=False),
        sa.Column("ingest_time", UTCDateTime, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("uploads")
    op.drop_table("device_cache")
