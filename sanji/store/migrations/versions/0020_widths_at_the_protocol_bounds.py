"""Columns filled from an action's fields as wide as protocol.bounds lets the field be: a frame every
replica's ``judge`` accepts (a 150-character applicant name, a 100-character action id, a deadline
string of 11 characters) was stored by a SQLite township but refused by a PostgreSQL county ("value too
long for type character varying(128)"), rolling back every push that carried it — a stalled stream

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

NAME = 200  # protocol.bounds.MAX_NAME, written out: a migration never changes with the code after it

# (table, column, the type before, the type after); every one NOT NULL.
WIDENED: tuple[tuple[str, str, sa.types.TypeEngine[str], sa.types.TypeEngine[str]], ...] = (
    ("actions", "id", sa.String(64), sa.String(NAME)),
    ("actions", "errand", sa.String(96), sa.String(NAME)),
    ("outbox", "action_id", sa.String(64), sa.String(NAME)),
    ("errands", "id", sa.String(96), sa.String(NAME)),
    ("errands", "matter", sa.String(64), sa.String(NAME)),
    ("errands", "applicant_name", sa.String(128), sa.String(NAME)),
    ("errands", "department", sa.String(64), sa.String(NAME)),
    ("errands", "receipt", sa.String(48), sa.String(NAME)),
    ("errands", "due", sa.String(10), sa.String(NAME)),
    ("errands", "stage_due", sa.String(10), sa.String(NAME)),
    ("errands", "window", sa.String(64), sa.String(NAME)),
    ("errands", "handler", sa.String(64), sa.String(NAME)),
    ("notifications", "errand", sa.String(96), sa.String(NAME)),
    # A masked phone is as long as the number: a phone in clear is a line (MAX_NAME), a sealed one is bounded
    # only by its frame, and a township queues SMS for the errands it holds, registered by its villages.
    ("notifications", "phone", sa.String(32), sa.Text()),
    ("sms_outbox", "key", sa.String(160), sa.Text()),  # "warning_red:<errand>:<due>:leader"
    ("sms_outbox", "errand", sa.String(96), sa.String(NAME)),
    ("sms_outbox", "contact", sa.String(96), sa.String(NAME)),
    ("sms_outbox", "shown_to", sa.String(32), sa.Text()),
    # Clipped to the old widths when written (sanji.auth.book): a longer errand id's events went unfound.
    ("audit_events", "actor", sa.String(64), sa.String(NAME)),
    ("audit_events", "role", sa.String(64), sa.String(NAME)),
    ("audit_events", "acting_for", sa.String(64), sa.String(NAME)),
    ("audit_events", "errand", sa.String(96), sa.String(NAME)),
)


def _alter(*, widen: bool) -> None:
    tables = dict.fromkeys(table for table, *_ in WIDENED)
    for table in tables:
        # PostgreSQL: ALTER COLUMN ... TYPE, a change of the catalogue alone (a longer varchar or text is
        # binary-compatible: no row or index is rewritten). SQLite ignores lengths but declares them, so
        # the table is copied once with the new declaration (batch mode) and its schema matches the code's.
        with op.batch_alter_table(table) as batch:
            for name, column, before, after in WIDENED:
                if name == table:
                    batch.alter_column(
                        column,
                        existing_type=before if widen else after,
                        type_=after if widen else before,
                        existing_nullable=False,
                    )


def upgrade() -> None:
    _alter(widen=True)


def downgrade() -> None:
    # Fails on PostgreSQL if a row holds a longer value than the old width: the old release could not store it.
    _alter(widen=False)
