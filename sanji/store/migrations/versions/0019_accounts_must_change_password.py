"""accounts.must_change_password: a password the system generated (the administrator's desk, the first
start) must be changed by its holder at the first login (issue 13: the admin post never keeps a working
password of another post)

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A column with a server default: existing accounts (passwords their holders chose, or set at the
    # command line) are not asked to change, and a row another release inserts without it gets false.
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("must_change_password")
