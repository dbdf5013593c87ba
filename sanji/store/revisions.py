"""Which migration a store is at, against the migrations this code carries.

A store migrated by a newer release is refused before anything touches it, naming both
releases (the store records the release that last opened it in ``meta``): an older Sanji must
never write into a schema it does not know. A store behind the code is backed up before it is
migrated, so an upgrade can always be rolled back by installing the old release and restoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from protocol.errors import SanjiError

MIGRATIONS = Path(__file__).with_name("migrations")
RELEASE_KEY = "sanji_release"  # meta: the release that last opened (and migrated) this store


class DatabaseNewer(SanjiError):
    code = "database_newer"


@dataclass(frozen=True)
class Revisions:
    current: str | None  # None: an empty store
    head: str
    known: bool  # the code carries ``current``
    written_by: str  # the release that last opened the store ("" before releases were recorded)

    @property
    def pending(self) -> bool:
        return self.current != self.head


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def code_head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations directory has no head"
    return head


def read_revisions(connection: Connection) -> Revisions:
    script = ScriptDirectory.from_config(alembic_config())
    head = code_head()
    current = MigrationContext.configure(connection).get_current_revision()
    known = current is None or current in {s.revision for s in script.walk_revisions()}
    written_by = ""
    if "meta" in inspect(connection).get_table_names():
        row = connection.execute(text("SELECT value FROM meta WHERE key = :k"), {"k": RELEASE_KEY}).first()
        written_by = str(row[0]) if row else ""
    return Revisions(current=current, head=head, known=known, written_by=written_by)


def refuse_if_newer(rev: Revisions, release: str) -> None:
    if rev.known:
        return
    by = f"sanji {rev.written_by}" if rev.written_by else "a newer Sanji"
    raise DatabaseNewer(
        f"this store was migrated by {by} (schema {rev.current}); this is sanji {release}, "
        f"which knows schemas up to {rev.head}",
        hint=f"Install {by.removeprefix('a ')} or later to open it, or, to go back to sanji {release}, "
        "restore the backup taken before the upgrade (`sanji restore --config ... --from ...`).",
    )


def record_release(connection: Connection, release: str) -> None:
    connection.execute(text("DELETE FROM meta WHERE key = :k"), {"k": RELEASE_KEY})
    connection.execute(text("INSERT INTO meta (key, value) VALUES (:k, :v)"), {"k": RELEASE_KEY, "v": release})
