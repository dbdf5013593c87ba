"""the county office's signed, chained records (assessment entries, appeals, decisions); the SMS outbox

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
    op.create_table(
        "sms_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("errand", sa.String(length=96), server_default="", nullable=False),
        sa.Column("recipient", sa.String(length=16), nullable=False),
        sa.Column("contact", sa.String(length=96), server_default="", nullable=False),
        sa.Column("shown_to", sa.String(length=32), server_default="", nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("gateway_id", sa.String(length=64), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_sms_outbox_key")),
    )
    op.create_index(op.f("ix_sms_outbox_status_next_at"), "sms_outbox", ["status", "next_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sms_outbox_status_next_at"), table_name="sms_outbox")
    op.drop_table("sms_outbox")
    op.drop_index(op.f("ix_office_records_quarter"), table_name="office_records")
    op.drop_table("office_records")
