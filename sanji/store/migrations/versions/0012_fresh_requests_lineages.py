"""request counters (fresh sync requests), lease lineages and frozen children (running copies of a node)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_counters",
        sa.Column("child", sa.String(length=64), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("refused", sa.Integer(), server_default="0", nullable=False),
        sa.Column("logged_at", sa.Float(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("child", name=op.f("pk_sync_counters")),
    )
    op.create_table(
        "child_lineages",
        sa.Column("lease", sa.String(length=64), nullable=False),
        sa.Column("child", sa.String(length=64), nullable=False),
        sa.Column("lineage", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("seen", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("lease", name=op.f("pk_child_lineages")),
    )
    op.create_index(op.f("ix_child_lineages_child"), "child_lineages", ["child"], unique=False)
    op.create_table(
        "frozen_children",
        sa.Column("child", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("child", name=op.f("pk_frozen_children")),
    )


def downgrade() -> None:
    op.drop_table("frozen_children")
    op.drop_index(op.f("ix_child_lineages_child"), table_name="child_lineages")
    op.drop_table("child_lineages")
    op.drop_table("sync_counters")
