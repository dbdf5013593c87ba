"""errands: an index in the order every list of errands is read, ``(registered_at, id)``

The home page's 全部办件 (newest first, a page at a time), the API's list and the duties order errands by
registration time, ties by id. Without an index in that order every page sorted the whole table, the state
blobs with it (``sanji.store.views.errands_query``); with it a page walks the index from one end and stops.

Revision ID: 0031
Revises: 0030
"""

from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_errands_registered_at_id"), "errands", ["registered_at", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_errands_registered_at_id"), table_name="errands")
