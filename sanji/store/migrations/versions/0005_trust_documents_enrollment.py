"""trust documents, trust cursors, enrollment tokens, exchange leases

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trust_docs",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("peer", sa.String(length=64), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_trust_docs")),
        sa.UniqueConstraint("id", name=op.f("uq_trust_docs_id")),
    )
    op.create_table(
        "trust_peers",
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.Integer(), nullable=False),
        sa.Column("lease", sa.String(length=64), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("peer", name=op.f("pk_trust_peers")),
    )
    op.create_table(
        "trust_sent",
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("peer", "id", name=op.f("pk_trust_sent")),
    )
    op.create_table(
        "enrollments",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("issued_by", sa.String(length=64), server_default="", nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.Column("serial", sa.String(length=32), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_enrollments")),
    )
    op.create_table(
        "child_leases",
        sa.Column("child", sa.String(length=64), nullable=False),
        sa.Column("lease", sa.String(length=64), nullable=False),
        sa.Column("instance", sa.String(length=64), server_default="", nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("child", name=op.f("pk_child_leases")),
    )


def downgrade() -> None:
    for table in ("child_leases", "enrollments", "trust_sent", "trust_peers", "trust_docs"):
        op.drop_table(table)
