"""actions(kind, at), partial: only the annotation kinds read by kind are in it (issue 15: the database side
of a push)

Migration 0022's index held every action, so every action a push inserts added an entry to it, though the
duties, the screens and the archive only ask it for urgings and their answers, complaints, extensions,
ratings and attachments: a few actions among a push's handoffs, receipts, registrations and decisions.
Over the 1,000-errand corpus (8,693 actions, none of those kinds) on SQLite: the ingest writes 555 fewer
pages to the WAL (8,660 -> 8,105, 6 %), and the action inserts take 66 CPU-ms instead of 73 (61 with no
such index at all; a ``kind IN (...)`` condition took 94: SQLite builds the list's lookup table for every
row, so the condition is written as comparisons). A query names the same condition to take it
(``sanji.store.schema.IN_KIND_INDEX``: SQLite proves nothing from ``kind = 'extend'``). Queries for an
errand's actions of another kind (its registration, its accepts) no longer walk every action of that kind in
this index, which SQLite, without statistics, preferred to ``ix_actions_errand``.
An index only: no row changes, no digest changes.

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# As ``sanji.store.schema.ANNOTATED`` says it today; written out, so that this migration makes the same index
# whatever the schema says later.
ANNOTATED = (
    "(kind = 'supervise' OR kind = 'answer_urging' OR kind = 'complain' OR kind = 'extend' OR kind = 'rate'"
    " OR kind = 'attach')"
)


def upgrade() -> None:
    op.drop_index(op.f("ix_actions_kind_at"), table_name="actions")
    op.create_index(
        op.f("ix_actions_kind_at"),
        "actions",
        ["kind", "at"],
        sqlite_where=sa.text(ANNOTATED),
        postgresql_where=sa.text(ANNOTATED),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_actions_kind_at"), table_name="actions")
    op.create_index(op.f("ix_actions_kind_at"), "actions", ["kind", "at"])
