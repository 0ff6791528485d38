"""ListDevices' combined filters: a division code with a place category or a state, each ending in device_id.

A division prefix is read as one ordered branch per division code (see the store); with a second filter,
each branch is then an exact range of one of these indexes instead of a walk of the division's devices
that keeps the matching ones.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_devices_division_category", "devices", ["division_code", "place_category", "device_id"]
    )
    op.create_index("ix_devices_division_state", "devices", ["division_code", "state", "device_id"])


def downgrade() -> None:
    op.drop_index("ix_devices_division_state", table_name="devices")
    op.drop_index("ix_devices_division_category", table_name="devices")
