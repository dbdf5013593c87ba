"""errands(holder, window): the windows a node's errands were assigned to, read from the index alone

``sanji.auth.places.windows_in_use`` (each account place an administrator sets is checked against it) asks
the distinct windows of the errands a node holds, first by name. With the ``holder`` index alone it found
the node's rows and then read each one (≈ 1.4 KB with its projected state) for its window and sorted them:
at a township, every errand it ever held. With ``(holder, window)`` the index holds both columns in the
order asked, so the read walks the index and stops at the bound, touching no row and sorting nothing.
Not partial on ``window <> ''``: the query binds the empty string as a parameter, and neither SQLite nor a
generic PostgreSQL plan matches a partial index's condition against a parameter. An index only: no row
changes, no digest changes.

Revision ID: 0028
Revises: 0027
"""

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_errands_holder_window"), "errands", ["holder", "window"])


def downgrade() -> None:
    op.drop_index(op.f("ix_errands_holder_window"), table_name="errands")
