"""The sharing's own tables: access requests (= grants), principals' facts, the device cache, subscriptions."""

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
        "sharing_requests",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("requester_id", sa.String(255), nullable=False),
        sa.Column("requester_unit", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("valid_until", UTCDateTime, nullable=False),
        sa.Column("create_time", UTCDateTime, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_sharing_requests_requester", "sharing_requests", ["requester_id"])
    op.create_index("ix_sharing_requests_unit", "sharing_requests", ["requester_unit"])
    op.create_index("ix_sharing_requests_state_until", "sharing_requests", ["state", "valid_until"])
    op.create_table(
        "sharing_principal_facts",
        sa.Column("principal_id", sa.String(255), primary_key=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("update_time", UTCDateTime, nullable=False),
    )
    op.create_table(
        "sharing_devices",
        sa.Column("device_id", sa.String(32), primary_key=True),
        sa.Column("owner_unit", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(128), nullable=False),
        sa.Column("division_code", sa.String(12), nullable=False),
        sa.Column("place_category", sa.String(64), nullable=False),
        sa.Column("funding", sa.String(32), nullable=False),
        sa.Column("secret_related", sa.Boolean, nullable=False),
        sa.Column("owner_unit_kind", sa.String(64), nullable=False),
        sa.Column("update_time", UTCDateTime, nullable=False),
    )
    op.create_index("ix_sharing_devices_site", "sharing_devices", ["site_id"])
    op.create_table(
        "sharing_subscriptions",
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("partner_unit_id", sa.String(64), nullable=False),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("create_time", UTCDateTime, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_sharing_subscriptions_unit", "sharing_subscriptions", ["partner_unit_id"])
    op.create_index("ix_sharing_subscriptions_grant", "sharing_subscriptions", ["grant_id"])


def downgrade() -> None:
    for table in ("sharing_subscriptions", "sharing_devices", "sharing_principal_facts", "sharing_requests"):
        op.drop_table(table)
