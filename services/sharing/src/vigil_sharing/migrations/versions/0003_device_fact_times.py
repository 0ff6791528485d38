"""What each cached device's facts are as of, in the registry's time: its own fields and its site's.

Kept so that facts arriving out of order (device and site events on different partitions, registry
answers, a restart's reload) never replace newer ones (domain.model.newer_facts). Rows from before are
NULL: older than anything that carries a time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil_kit.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sharing_devices") as batch:
        batch.add_column(sa.Column("device_time", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("site_time", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sharing_devices") as batch:
        batch.drop_column("site_time")
        batch.drop_column("device_time")
