"""attachments: the attachments applied attach actions name, one row an action, kept with the statuses

Every sync exchange (``blobs_wanted``, ``blobs_to_send``) and every download (``attachment_errands``) decoded
the body of every applied attach action held to learn the hash it names; they read these rows instead
(``sanji.store.attached``). Filled here from the applied attach actions already held, decoded as the store
decodes them.

Revision ID: 0030
Revises: 0029
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

PAGE = 1000  # actions decoded and inserted at a time: a county's store holds many


def upgrade() -> None:
    from protocol.encoding import decode_action

    table = op.create_table(
        "attachments",
        sa.Column("action", sa.String(length=200), nullable=False),  # protocol.bounds.MAX_NAME
        sa.Column("blob", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("errand", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("action", name=op.f("pk_attachments")),
    )
    assert table is not None
    op.create_index(op.f("ix_attachments_blob"), "attachments", ["blob"], unique=False)
    actions = sa.table(
        "actions",
        sa.column("id", sa.String()),
        sa.column("errand", sa.String()),
        sa.column("scope", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("status", sa.String()),
        sa.column("body", sa.LargeBinary()),
    )
    bind = op.get_bind()
    after = ""
    while True:  # by id, a page at a time: never every body in memory at once
        page = bind.execute(
            sa.select(actions.c.id, actions.c.errand, actions.c.scope, actions.c.body)
            .where(actions.c.kind == "attach", actions.c.status == "applied", actions.c.id > after)
            .order_by(actions.c.id)
            .limit(PAGE)
        ).all()
        if not page:
            break
        rows = []
        for aid, errand, scope, body in page:
            action = decode_action(bytes(body))
            rows.append(
                {
                    "action": aid,
                    "blob": str(getattr(action, "blob", "")),
                    "size": int(getattr(action, "size", 0)),
                    "errand": errand,
                    "scope": scope,
                }
            )
        bind.execute(sa.insert(table), rows)
        after = page[-1][0]


def downgrade() -> None:
    op.drop_index(op.f("ix_attachments_blob"), table_name="attachments")
    op.drop_table("attachments")
