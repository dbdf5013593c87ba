"""actions(kind, at, id), partial as in 0023: annotations of one kind, newest first, ties by id

電子监察 counts the newest ratings up to a window (``Views.annotation_counts``). Ordered by time alone, two
ratings with the same time at the window's edge fell either way, so the same store could count either one:
the query now orders by time then id, and the id in the index keeps that order a walk of the index, with
no sort. The condition is 0023's; the kinds in it, the rows, the digests do not change.

Revision ID: 0024
Revises: 0023
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
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
        op.f("ix_actions_kind_at_id"),
        "actions",
        ["kind", "at", "id"],
        sqlite_where=sa.text(ANNOTATED),
        postgresql_where=sa.text(ANNOTATED),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_actions_kind_at_id"), table_name="actions")
    op.create_index(
        op.f("ix_actions_kind_at"),
        "actions",
        ["kind", "at"],
        sqlite_where=sa.text(ANNOTATED),
        postgresql_where=sa.text(ANNOTATED),
    )
