"""Which departments and windows a node can seat an account at: read for the accounts page and ``sanji accounts``.

The rule is ``roles.unknown_place``; this module only gathers what it compares with, from the catalogue the node
holds, the departments its live errands still name (escalated to one, or owing it a 联办 sub-task: an errand keeps
the entry it was bound under, though a later catalogue renamed or dropped the department), the windows its
settings give a duty phone (``[sms.windows]``) and the windows its errands were assigned to
(``roles.KnownPlaces``). Without a held catalogue there is nothing to compare with (None), and any place passes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy import Select, select

from protocol.catalogue import Catalogue, open_catalogue, publisher_keys
from protocol.topology import Directory
from sanji.auth.roles import KnownPlaces
from sanji.context import CATALOGUE
from sanji.store import Database
from sanji.store import schema as t
from sanji.store.inbox import inbox_departments
from sanji.store.subtasks import subtask_departments

# The windows in use read from the errands: a centre has a handful; the bound keeps one odd store from making a
# form's check read without end.
MAX_WINDOWS = 500
# The departments named by live errands: a county has a few dozen; the same bound for the same reason.
MAX_DEPARTMENTS = 500


def catalogue_places(catalogue: Catalogue) -> tuple[frozenset[str], frozenset[str]]:
    """The departments (approving and 联办) and the windows the catalogue names."""
    matters = catalogue.matters
    departments = {m.department for m in matters if m.department} | {d for m in matters for d in m.joint_departments}
    return frozenset(departments), frozenset(m.window for m in matters if m.window)


def windows_query(node_id: str, at_most: int = MAX_WINDOWS) -> Select[tuple[str]]:
    """The first ``at_most`` windows by name the errands ``node_id`` holds were assigned to: the rows the
    ``holder`` index finds, never the whole table (the county's replicas of its townships' errands, which name
    the townships' windows, are not its staff's to sit at)."""
    e = t.errands.c
    return (
        select(e.window).where(e.holder == node_id, e.window != "").distinct().order_by(e.window).limit(max(0, at_most))
    )


async def windows_in_use(db: Database, node_id: str, *, at_most: int = MAX_WINDOWS) -> frozenset[str]:
    """The windows the errands held here were assigned to (承办), typed at the desk or taken from the catalogue:
    at most ``at_most``, the first by name, so the set a place is checked against is the same on every read."""
    async with db.reader.connect() as conn:
        return frozenset(str(w) for w in (await conn.execute(windows_query(node_id, at_most))).scalars())


async def departments_in_use(db: Database, node_id: str) -> frozenset[str]:
    """The departments the live errands held here still name, at most ``MAX_DEPARTMENTS`` by name: those in the
    部门收件箱 (escalated here, ``errands.department``) and those owing a 联办 sub-task (the sub-tasks' keys)."""
    named = {*await inbox_departments(db, node_id), *await subtask_departments(db, read_at_most=MAX_DEPARTMENTS)}
    return frozenset(sorted(named)[:MAX_DEPARTMENTS])


async def known_places(
    db: Database, catalogue: Catalogue | None, node_id: str, *, configured_windows: Iterable[str] = ()
) -> KnownPlaces | None:
    """What ``roles.unknown_place`` checks a place against; None when the node holds no catalogue.

    ``configured_windows``: the windows the node's settings give a duty phone (``[sms.windows]``), known before
    any errand is assigned there."""
    if catalogue is None:
        return None
    departments, windows = catalogue_places(catalogue)
    return KnownPlaces(
        departments=departments | await departments_in_use(db, node_id),
        windows=windows | frozenset(w for w in configured_windows if w) | await windows_in_use(db, node_id),
    )


async def held_catalogue(db: Database, directory: Callable[[], Awaitable[Directory]], node_id: str) -> Catalogue | None:
    """The catalogue the node's database holds, opened as the node opens it (its county's signature checked), for a
    command that runs beside the node without its context (``sanji accounts``). ``directory`` is asked only when a
    catalogue is held: a node not yet enrolled has neither, and its first administrator is made before it is."""
    query = select(t.documents.c.blob).where(t.documents.c.kind == CATALOGUE)
    async with db.reader.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return open_catalogue(bytes(row[0]), publisher_keys(await directory(), node_id))
