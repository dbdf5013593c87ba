"""accounts.department and accounts.window: where an account sits at its node

A county department's clerk answers for that department only (its 联办 sub-tasks, the 上报件 escalated to
it), a window's staff answer the urgings that name their window (``sanji.auth.roles.place_refusal``). Both
default to '': an account with neither acts for its whole node, as every account did before.

Revision ID: 0025
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

MAX_NAME = 200  # protocol.bounds.MAX_NAME today; written out, so that this migration makes the same columns later


def upgrade() -> None:
    # Server defaults: every existing account keeps acting for its whole node, and a row another release
    # inserts without them gets ''.
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("department", sa.String(MAX_NAME), nullable=False, server_default=""))
        batch.add_column(sa.Column("window", sa.String(MAX_NAME), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("window")
        batch.drop_column("department")
