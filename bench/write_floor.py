"""The database's own cost of what one ingest writes, push by push (issue 15).

``bench.prefill.bulk_insert_limit`` times the rows an ingest leaves, inserted in one transaction: a floor
no push-by-push ingest can reach, because each push commits on its own (a township is answered only once
its push is durable) and an errand's row is written again by every push that moves it. This floor is the
other one: the very statements the store sent while it applied the pushes (inserts, upserts, updates,
savepoints), recorded as they went to the driver, then replayed through ``sqlite3`` onto a fresh store
with the same schema and pragmas, one ``BEGIN IMMEDIATE`` … ``COMMIT`` per push as the store commits.
What is left between this and the ingest is the store's Python (deciding, reads, building rows) and
what the driver adds per call; the replay is the database doing exactly the writes, nothing else.

Reads are not replayed: the store sends most of them past SQLAlchemy (``sanji.store.intake``), and they
cost the database little next to the writes (bench/README.md, phase split).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from sanji.store.engine import SqlitePages

# What is not a write, or is the transaction around it (the replay makes its own, one per push). A
# ``ROLLBACK TO`` a savepoint is kept: what it undoes was recorded and is undone again in the replay.
_SKIPPED = ("SELECT", "BEGIN", "PRAGMA", "COMMIT")
_ROLLBACK = "ROLLBACK"
_TO_SAVEPOINT = ("ROLLBACK TO", "ROLLBACK TRANSACTION TO")


@dataclass
class WriteLog:
    """The write statements one engine sent, grouped by push (``next_push`` starts a group)."""

    pushes: list[list[tuple[str, Any, bool]]] = field(default_factory=list)

    def next_push(self) -> None:
        self.pushes.append([])

    def _seen(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool) -> None:
        if not self.pushes:
            return
        said = statement.lstrip().upper()
        if said.startswith(_ROLLBACK) and not said.startswith(_TO_SAVEPOINT):
            self._rolled_back(_conn)
        elif not said.startswith(_SKIPPED):
            self.pushes[-1].append((statement, parameters, many))

    def _rolled_back(self, _conn: Any) -> None:
        """The push's transaction was rolled back: nothing of it was written (a push taken again after it
        records its writes anew)."""
        if self.pushes:
            self.pushes[-1].clear()

    @property
    def statements(self) -> int:
        return sum(len(p) for p in self.pushes)

    def attach(self, engine: Engine) -> None:
        """Record what ``engine`` (a sync engine: ``AsyncEngine.sync_engine``) writes, from the next push."""
        event.listen(engine, "before_cursor_execute", self._seen)
        event.listen(engine, "rollback", self._rolled_back)  # the driver's own rollback: no statement seen

    def detach(self, engine: Engine) -> None:
        event.remove(engine, "before_cursor_execute", self._seen)
        event.remove(engine, "rollback", self._rolled_back)


def replay(db_path: Path, log: WriteLog, pages: SqlitePages) -> float:
    """Replay ``log`` onto the store at ``db_path`` (migrated and started as the recorded one was, nothing
    else), one durable transaction per push; returns the seconds it took."""
    con = sqlite3.connect(db_path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")  # as every store commits (sanji.store.engine)
        con.execute("PRAGMA foreign_keys=ON")
        con.execute(f"PRAGMA cache_size=-{int(pages.writer_cache_kib)}")
        con.execute(f"PRAGMA wal_autocheckpoint={int(pages.wal_autocheckpoint)}")
        started = time.perf_counter()
        for push in log.pushes:
            con.execute("BEGIN IMMEDIATE")
            for statement, parameters, many in push:
                if many:
                    con.executemany(statement, parameters)
                else:
                    con.execute(statement, parameters)
            con.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        con.close()
