"""accounts.display_name: the name a person goes by, where their login is another (zhangsan for 张三)

The office's scores name people as errands and entries do (张三); an appeal's subject is bound to the account
whose login or display name is theirs (``sanji.office.book.OfficeBook.subject_person``), so the rule that
nobody decides their own appeal compares accounts, not names. Defaults to '': the login is the name, as every
account's was before.

Revision ID: 0032
Revises: 0031
"""

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

MAX_NAME = 200  # protocol.bounds.MAX_NAME today; written out, so that this migration makes the same columns later


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("display_name", sa.String(MAX_NAME), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("display_name")
