"""blob_archive: attachments whose bytes this node dropped because an ancestor acknowledged holding them
(issue 16: village laptops have small disks; ``sanji archive``)

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table, not columns on ``blobs``: nothing of the attachments' table is rewritten on a laptop
    # whose disk is already short.
    op.create_table(
        "blob_archive",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("held_at", sa.String(length=64), nullable=False),
        sa.Column("archived_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_blob_archive")),
    )


def downgrade() -> None:
    op.drop_table("blob_archive")
