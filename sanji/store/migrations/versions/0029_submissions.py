"""submissions: the one-time keys of forms already sent, with the errand and action each wrote

A form sent twice (a double click on 确认登记, 督办 or 备注, a complaint sent again) takes its step once: the
step and its form's key are written in one transaction, the key the primary key (``sanji.store.submissions``).

Revision ID: 0029
Revises: 0028
"""

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("key", sa.String(length=96), nullable=False),
        sa.Column("errand", sa.String(length=200), nullable=False),  # protocol.bounds.MAX_NAME
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_submissions")),
    )
    op.create_index(op.f("ix_submissions_at"), "submissions", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_submissions_at"), table_name="submissions")
    op.drop_table("submissions")
