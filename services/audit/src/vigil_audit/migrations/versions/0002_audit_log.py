"""The audit log's tables: leaves, their references, tree nodes, signed tree heads, writer state, signing key."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil_kit.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Leaf indexes are SQLite's rowid (INTEGER PRIMARY KEY), a BIGINT elsewhere.
_INDEX = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_leaves",
        sa.Column("leaf_index", _INDEX, primary_key=True, autoincrement=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sa.Column("time_us", sa.BigInteger, nullable=True),
        sa.Column("source_service", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(255), nullable=True),
        sa.Column("action", sa.String(255), nullable=False),
        sa.Column("footage_start_us", sa.BigInteger, nullable=True),
        sa.Column("footage_end_us", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("record_id", name="uq_audit_leaves_record_id"),
    )
    op.create_index("ix_audit_leaves_actor", "audit_leaves", ["actor_id", "leaf_index"])
    op.create_index("ix_audit_leaves_action", "audit_leaves", ["action", "leaf_index"])
    op.create_index("ix_audit_leaves_time", "audit_leaves", ["time_us"])
    op.create_table(
        "audit_leaf_refs",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("ref_id", sa.String(255), nullable=False),
        sa.Column("leaf_index", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("kind", "ref_id", "leaf_index", name="pk_audit_leaf_refs"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_audit_nodes"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "audit_tree_heads",
        sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("timestamp", UTCDateTime, nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
    )
    state = op.create_table(
        "audit_log_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("writer_id", sa.String(64), nullable=True),
        sa.Column("lease_expires_ms", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        state, [{"id": 1, "tree_size": 0, "next_offset": 0, "writer_id": None, "lease_expires_ms": 0}]
    )
    op.create_table(
        "audit_signing_key",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("private_key_pem", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_signing_key")
    op.drop_table("audit_log_state")
    op.drop_table("audit_tree_heads")
    op.drop_table("audit_nodes")
    op.drop_table("audit_leaf_refs")
    op.drop_index("ix_audit_leaves_time", table_name="audit_leaves")
    op.drop_index("ix_audit_leaves_action", table_name="audit_leaves")
    op.drop_index("ix_audit_leaves_actor", table_name="audit_leaves")
    op.drop_table("audit_leaves")
