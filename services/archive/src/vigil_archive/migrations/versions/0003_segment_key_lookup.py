"""One index fewer on the segment index: the object's unique key leads with `key`.

Look-ups by key alone (DeleteSegment, GetSegmentProof, the indexer's replay check, reconciliation) had
an index of their own on `key` beside the unique (bucket, key, version_id). With the unique constraint
ordered (key, version_id, bucket) it serves both, and every row indexed or expired maintains one
b-tree fewer (the expiry sweeper's deletes are about a quarter cheaper on SQLite).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_archive_segments_key", "archive_segments")
    # SQLite cannot drop a table constraint: batch mode copies the table there ("auto" alters in place
    # on PostgreSQL).
    with op.batch_alter_table("archive_segments", recreate="auto") as batch:
        batch.drop_constraint("uq_archive_segments_object", type_="unique")
        batch.create_unique_constraint("uq_archive_segments_object", ["key", "version_id", "bucket"])


def downgrade() -> None:
    with op.batch_alter_table("archive_segments", recreate="auto") as batch:
        batch.drop_constraint("uq_archive_segments_object", type_="unique")
        batch.create_unique_constraint("uq_archive_segments_object", ["bucket", "key", "version_id"])
    op.create_index("ix_archive_segments_key", "archive_segments", ["key"])
