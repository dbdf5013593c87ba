"""the county office's signed, chained records: assessment entries, appeals, decisions

Revision ID: 0011
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "office_records",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("quarter", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=96), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_office_records")),
        sa.UniqueConstraint("id", name=op.f("uq_office_records_id")),
    )
    op.create_index(op.f("ix_office_records_quarter"), "office_records", ["quarter"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_office_records_quarter"), table_name="office_records")
    op.drop_table("office_records")
