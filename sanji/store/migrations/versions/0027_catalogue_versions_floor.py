"""document_versions: the catalogue alone, and the lowest version kept recorded (its floor)

Only the catalogue's older versions are ever compared (an errand's bound entry, ``protocol.binding``): the
calendar and rules versions 0026 copied in are dropped. The lowest catalogue version kept is recorded in ``meta``
(``catalogue_versions_floor``): the county holds every version it published from there up, so it refuses an
errand bound to a version from its floor up that it lacks (never published), while one below it, replaced before
0026 ran, cannot be checked. A node that keeps no catalogue yet records its floor when it keeps its first one
(``sanji.store.documents.Documents.put_document``).

Revision ID: 0027
Revises: 0026
"""

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM document_versions WHERE kind <> 'catalogue'")
    op.execute(
        "INSERT INTO meta (key, value) SELECT 'catalogue_versions_floor', CAST(MIN(version) AS VARCHAR(32)) "
        "FROM document_versions WHERE kind = 'catalogue' "
        "AND NOT EXISTS (SELECT 1 FROM meta WHERE key = 'catalogue_versions_floor') GROUP BY kind"
    )


def downgrade() -> None:
    op.execute("DELETE FROM meta WHERE key = 'catalogue_versions_floor'")
