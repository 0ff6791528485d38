"""The registry's own tables: units, sites, devices (with ListDevices' filter indexes) and filings."""

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
        "units",
        sa.Column("unit_id", sa.String(18), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_units_kind", "units", ["kind", "unit_id"])
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("division_code", sa.String(6), nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("latitude", sa.Float, nullable=True),
        sa.Column("longitude", sa.Float, nullable=True),
        sa.Column("place_category", sa.String(64), nullable=False),
        sa.Column("key_public_area", sa.Boolean, nullable=False),
        sa.Column("managing_unit_id", sa.String(18), sa.ForeignKey("units.unit_id"), nullable=False),
        sa.Column("funding", sa.String(32), nullable=False),
        sa.Column("near_military_zone", sa.Boolean, nullable=False),
        sa.Column("military_opinion_ref", sa.Text, nullable=False),
        sa.Column("secret_related", sa.Boolean, nullable=False),
        sa.Column("designed_on", sa.Date, nullable=True),
        sa.Column("built_on", sa.Date, nullable=True),
        sa.Column("in_use_on", sa.Date, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_sites_division", "sites", ["division_code", "site_id"])
    op.create_index("ix_sites_category", "sites", ["place_category", "site_id"])
    op.create_index("ix_sites_managing_unit", "sites", ["managing_unit_id", "site_id"])
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(20), primary_key=True),
        sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.site_id"), nullable=False),
        sa.Column("owner_unit_id", sa.String(18), sa.ForeignKey("units.unit_id"), nullable=False),
        sa.Column("division_code", sa.String(6), nullable=False),
        sa.Column("place_category", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("area_type", sa.String(64), nullable=False),
        sa.Column("latitude", sa.Float, nullable=True),
        sa.Column("longitude", sa.Float, nullable=True),
        sa.Column("direction_deg", sa.Float, nullable=True),
        sa.Column("capture_range_m", sa.Float, nullable=True),
        sa.Column("notice_sign_confirmed", sa.Boolean, nullable=False),
        sa.Column("privacy_masks", sa.JSON, nullable=False),
        sa.Column("privacy_measures", sa.Text, nullable=False),
        sa.Column("vendor", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("retention_profile", sa.String(64), nullable=False),
        sa.Column("retention_s", sa.Float, nullable=True),
        sa.Column("keepalive_interval_s", sa.Float, nullable=False),
        sa.Column("keepalive_timeout_count", sa.Integer, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("last_keepalive_time", UTCDateTime, nullable=True),
        sa.Column("activated_at", UTCDateTime, nullable=True),
        sa.Column("offline_since", UTCDateTime, nullable=True),
        sa.Column("registered_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_devices_state", "devices", ["state", "device_id"])
    op.create_index("ix_devices_owner", "devices", ["owner_unit_id", "device_id"])
    op.create_index("ix_devices_site", "devices", ["site_id", "device_id"])
    op.create_index("ix_devices_category", "devices", ["place_category", "device_id"])
    op.create_index("ix_devices_division", "devices", ["division_code", "device_id"])
    op.create_table(
        "filings",
        sa.Column("unit_id", sa.String(18), sa.ForeignKey("units.unit_id"), primary_key=True),
        sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.site_id"), primary_key=True),
        sa.Column("filing_number", sa.String(128), nullable=False),
        sa.Column("filed_on", sa.Date, nullable=False),
        sa.Column("filed_facts", sa.JSON, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("filings")
    op.drop_table("devices")
    op.drop_table("sites")
    op.drop_table("units")
