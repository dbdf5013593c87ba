"""actions(kind, at): the annotations of one kind, newest first, found by index, not by reading every action
(issue 15: cost as work grows)

``Store.annotations`` (urgings and their answers, complaints, extensions, ratings) asked for the newest
actions of one kind; with no index on ``kind`` that read every row of ``actions`` (≈ 8 million at a
county's million errands), and the duties ask for extensions on every run. Times grow with the clock, so
each kind's entries are added at its end of the index: little for a push to write. An index only: no row
changes, no digest changes.

Revision ID: 0022
Revises: 0021
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_actions_kind_at"), "actions", ["kind", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_actions_kind_at"), table_name="actions")
