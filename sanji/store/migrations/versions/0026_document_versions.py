"""document_versions: every version of a document held, not only the newest

``documents`` keeps the newest version of each kind alone. A desk compares the catalogue entry an errand is bound
to (``Register.matter_entry``) with the county's signed catalogue of the version the registration names
(``protocol.binding.binding_refusal``), and errands outlive catalogue versions, so the older signed blobs are kept
here too (they are small). The versions held now are copied in; the ones replaced before this migration are gone,
and errands bound to them cannot be checked.

Revision ID: 0026
Revises: 0025
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "document_versions",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "version", name=op.f("pk_document_versions")),
    )
    op.execute(
        "INSERT INTO document_versions (kind, version, blob, digest, received_at) "
        "SELECT kind, version, blob, digest, received_at FROM documents"
    )


def downgrade() -> None:
    op.drop_table("document_versions")
