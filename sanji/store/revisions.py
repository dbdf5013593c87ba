"""Which migration a store is at, against the migrations this code carries.

A store migrated by a newer release is refused before anything touches it, naming both
releases (the store records the release that last opened it in ``meta``), or, when a newer build
of this same release migrated it, both schemas: an older Sanji must never write into a schema it
does not know. A store behind the code is backed up before it is
migrated, so an upgrade can always be rolled back by installing the old release and restoring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from protocol.errors import SanjiError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
RELEASE_KEY = "sanji_release"  # meta: the release that last opened (and migrated) this store


class DatabaseNewer(SanjiError):
    """``message`` is the English; ``message_zh`` the Chinese a command says first (``sanji.cli.say``)."""

    code = "database_newer"

    def __init__(self, message: str, *, zh: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.message_zh = zh


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
    # Alembic is imported only to migrate: a node whose store is current never loads it (≈ 10 MB
    # resident on a village laptop, issue 16's footprint).
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


_REVISION = re.compile(r'^revision\s*=\s*"([^"]+)"', re.MULTILINE)
_DOWN = re.compile(r'^down_revision\s*=\s*(?:None|"([^"]+)")', re.MULTILINE)


@cache
def carried() -> dict[str, str | None]:
    """Each migration this code carries and the one it follows, read from the files Alembic runs
    (tests/store checks this against Alembic's own reading)."""
    chain: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN.search(source)
        if revision is None or down is None:
            raise RuntimeError(f"{path.name} does not say its revision and down_revision")
        chain[revision.group(1)] = down.group(1)
    return chain


def code_head() -> str:
    chain = carried()
    followed = {down for down in chain.values() if down is not None}
    heads = [revision for revision in chain if revision not in followed]
    if len(heads) != 1:
        raise RuntimeError(f"the migrations must form one line, but they end in {sorted(heads)}")
    return heads[0]


def read_revisions(connection: Connection) -> Revisions:
    head = code_head()
    tables = set(inspect(connection).get_table_names())
    current = None
    if "alembic_version" in tables:
        row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
        current = str(row[0]) if row else None
    known = current is None or current in carried()
    written_by = ""
    if "meta" in tables:
        row = connection.execute(text("SELECT value FROM meta WHERE key = :k"), {"k": RELEASE_KEY}).first()
        written_by = str(row[0]) if row else ""
    return Revisions(current=current, head=head, known=known, written_by=written_by)


def refuse_if_newer(rev: Revisions, release: str) -> None:
    if rev.known:
        return
    restore = "restore the backup taken before the upgrade (`sanji restore --config ... --from ...`)."
    if rev.written_by == release:
        # One release, two builds: a build with a migration more than this one (a patched build, or one
        # built from a later commit) opened the store. "Install sanji X or later" would name this very release.
        raise DatabaseNewer(
            f"this store was migrated by a newer build of sanji {release} (schema {rev.current}); "
            f"this build knows schemas up to {rev.head}",
            zh=f"数据库已由 sanji {release} 的较新构建升级（数据库结构 {rev.current}），"
            f"本构建只认识到 {rev.head} 的结构，不能打开",
            hint=f"Install the build of sanji {release} that migrated it (schema {rev.current}) or a later one "
            f"to open it, or {restore}",
        )
    by = f"sanji {rev.written_by}" if rev.written_by else "a newer Sanji"
    by_zh = f"sanji {rev.written_by}" if rev.written_by else "较新版本的 Sanji"
    raise DatabaseNewer(
        f"this store was migrated by {by} (schema {rev.current}); this is sanji {release}, "
        f"which knows schemas up to {rev.head}",
        zh=f"数据库已由 {by_zh} 升级（数据库结构 {rev.current}），本程序是 sanji {release}，"
        f"只认识到 {rev.head} 的结构，不能打开",
        hint=f"Install {by.removeprefix('a ')} or later to open it, or, to go back to sanji {release}, {restore}",
    )


def record_release(connection: Connection, release: str) -> None:
    connection.execute(text("DELETE FROM meta WHERE key = :k"), {"k": RELEASE_KEY})
    connection.execute(text("INSERT INTO meta (key, value) VALUES (:k, :v)"), {"k": RELEASE_KEY, "v": release})
