"""The archive's own tables: the segment index by object version, holds, device-day roots, findings, state.

Written out here, not taken from vigil_archive.store, so that this revision stays what it was when
later revisions change the tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil_kit.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "archive_segments",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("start_time", UTCDateTime, nullable=False),
        sa.Column("end_time", UTCDateTime, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("version_id", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("retain_until", UTCDateTime, nullable=False),
        sa.Column("owner_unit_id", sa.String(64), nullable=False),
        sa.Column("codec", sa.String(32), nullable=False),
        sa.Column("container", sa.String(8), nullable=False),
        sa.Column("legal_hold", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("index_time", UTCDateTime, nullable=False),
        sa.UniqueConstraint("bucket", "key", "version_id", name="uq_archive_segments_object"),
    )
    op.create_index("ix_archive_segments_device_start", "archive_segments", ["device_id", "start_time", "id"])
    op.create_index("ix_archive_segments_retain", "archive_segments", ["retain_until", "id"])
    op.create_index("ix_archive_segments_key", "archive_segments", ["key"])
    op.create_table(
        "archive_holds",
        sa.Column("hold_id", sa.String(64), primary_key=True),
        sa.Column("start_time", UTCDateTime, nullable=False),
        sa.Column("end_time", UTCDateTime, nullable=False),
        sa.Column("case_reference", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("important", sa.Boolean, nullable=False),
        sa.Column("placed_by", sa.String(255), nullable=False),
        sa.Column("place_time", UTCDateTime, nullable=False),
        sa.Column("release_time", UTCDateTime, nullable=True),
        sa.Column("released_by", sa.String(255), nullable=False),
        sa.Column("covered_segments", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_archive_holds_active", "archive_holds", ["release_time"])
    op.create_table(
        "archive_hold_devices",
        sa.Column("hold_id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(32), primary_key=True),
    )
    op.create_index("ix_archive_hold_devices_device", "archive_hold_devices", ["device_id"])
    op.create_table(
        "archive_day_roots",
        sa.Column("device_id", sa.String(32), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("leaf_count", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("dirty", sa.Boolean, nullable=False),
        sa.Column("update_time", UTCDateTime, nullable=False),
    )
    op.create_index("ix_archive_day_roots_dirty", "archive_day_roots", ["dirty"])
    op.create_table(
        "archive_findings",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("version_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("detected_by", sa.String(16), nullable=False),
        sa.Column("detect_time", UTCDateTime, nullable=False),
        sa.UniqueConstraint("key", "version_id", "kind", name="uq_archive_findings_object_kind"),
    )
    op.create_table(
        "archive_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("update_time", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "archive_state",
        "archive_findings",
        "archive_day_roots",
        "archive_hold_devices",
        "archive_holds",
        "archive_segments",
    ):
        op.drop_table(name)
