"""errands.basis: the directory tree an errand's kept projection was made under (issue 15: fold received
batches onto the kept projection instead of projecting every action again)

Revision ID: 0017
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before have no basis: each is projected again from all its actions the first time a
    # batch touches it, and continued from then on.
    with op.batch_alter_table("errands") as batch:
        batch.add_column(sa.Column("basis", sa.String(length=64), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("errands") as batch:
        batch.drop_column("basis")
