"""The kit-owned tables (outbox, processed events, ...) in the sharing's database."""

from __future__ import annotations

from alembic import op

from vigil_kit.migrations import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables(op)


def downgrade() -> None:
    drop_kit_tables(op)
