"""errands(pending_to), partial: the errands on their way to a node found by index, not by reading every
errand (issue 15: cost as work grows)

``Store.worklist`` (errands held here, or on their way here) read every row of ``errands``: its ``OR``
could not use the ``holder`` index alone. The duties read it three times each time a push wakes them,
so a county read its whole ``errands`` table (≈ 1.4 KB a row with its projected state: ≈ 1.4 GB at a
million errands) three times per push; on SQLite, warm, ≈ 0.04 CPU-s per read at 100,000 errands with
nothing to return, 0.02 with this index (bench/README.md). With it both halves of the ``OR`` are index
searches, and the read costs what it returns.
Only rows with a ``pending_to`` are in it (a query for ``pending_to IS NULL``, nearly every row, must
not take it). An index only: no row changes, no digest changes.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

IN_FLIGHT = "pending_to IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        op.f("ix_errands_pending_to"),
        "errands",
        ["pending_to"],
        sqlite_where=sa.text(IN_FLIGHT),
        postgresql_where=sa.text(IN_FLIGHT),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_errands_pending_to"), table_name="errands")
