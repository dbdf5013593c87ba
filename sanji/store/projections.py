"""Kept errand projections: a received batch is folded onto what the `errands` row holds (issue 15).

Re-projecting an errand reads, decodes and judges every action it holds; a batch that only continues
the main line need not. Whether it does, and what the continued projection is, is
``protocol.errand.fold``; this module only reads what the row and the actions' columns say (no action
body is decoded) and hands back the errands it could fold. Everything else (something waiting, a note,
a rival at the frontier, an action out of order or refused, a row from another directory tree or from
before migration 0017) is left to ``Store._recompute``'s full projection, which writes the same rows.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol import ledger
from protocol.actions import ANNOTATIONS, Action
from protocol.errand import ErrandState, Projection, basis, fold, project
from protocol.topology import Directory
from sanji import __version__
from sanji.store import schema as t

NOTE_KINDS = frozenset(cls.__struct_config__.tag for cls in ANNOTATIONS)
_state_decoder = msgspec.msgpack.Decoder(ErrandState)


@lru_cache(maxsize=4)
def basis_of(directory: Directory) -> str:
    """What a kept row was projected under: the directory's tree (``protocol.errand.basis``) and this
    software's version, whose rules and bounds may differ from the last one's (an upgraded node projects
    each errand from all its actions once). Once per directory object: a store swaps it, never edits it."""
    return hashlib.sha256(f"{__version__}\n{basis(directory)}".encode()).hexdigest()


async def fold_kept(conn: AsyncConnection, fresh: Sequence[Action], directory: Directory) -> dict[str, Projection]:
    """The errands ``fresh`` (actions just admitted, none of them projected yet) could be folded onto
    their kept projection, with the projection each now has. The rest are not in the answer."""
    by_errand: dict[str, list[Action]] = defaultdict(list)
    for action in fresh:
        by_errand[action.errand].append(action)
    ids = list(by_errand)
    fresh_ids = {a.id for a in fresh}
    kept = {
        row.id: row
        for row in await conn.execute(
            select(t.errands.c.id, t.errands.c.state, t.errands.c.digest, t.errands.c.basis).where(
                t.errands.c.id.in_(ids)
            )
        )
    }
    held: dict[str, list[tuple[str, int, str, str, str]]] = defaultdict(list)
    for aid, errand_id, base, kind, status, reason in await conn.execute(
        select(
            t.actions.c.id,
            t.actions.c.errand,
            t.actions.c.base,
            t.actions.c.kind,
            t.actions.c.status,
            t.actions.c.reason,
        ).where(t.actions.c.errand.in_(ids), t.actions.c.status != ledger.FOREIGN)
    ):
        if aid not in fresh_ids:
            held[errand_id].append((aid, base, kind, status, reason))
    current = basis_of(directory)
    out: dict[str, Projection] = {}
    for errand_id, actions in by_errand.items():
        row = kept.get(errand_id)
        if row is None:
            before = project(errand_id, [], directory)  # nothing held yet: fold from the empty projection
        elif row.basis != current:
            continue
        else:
            before_or_none = _kept(errand_id, row.state, row.digest, held[errand_id])
            if before_or_none is None:
                continue
            before = before_or_none
        bases = {aid: None if kind in NOTE_KINDS else base for aid, base, kind, _, _ in held[errand_id]}
        proj = fold(before, bases, actions, directory)
        if proj is not None:
            out[errand_id] = proj
    return out


def _kept(
    errand_id: str, state: bytes | None, digest: str, held: list[tuple[str, int, str, str, str]]
) -> Projection | None:
    """The projection an `errands` row and its actions' statuses stand for (``fold`` checks its digest)."""
    main: list[tuple[int, str]] = []
    notes: list[str] = []
    rejected: dict[str, str] = {}
    waiting: list[str] = []
    for aid, base, kind, status, reason in held:
        if status == "applied":
            if kind in NOTE_KINDS:
                notes.append(aid)
            else:
                main.append((base, aid))
        elif status == "rejected":
            rejected[aid] = reason
        elif status == "waiting":
            waiting.append(aid)
        else:
            return None  # a status this module does not know: project everything
    try:
        decoded = None if state is None else _state_decoder.decode(state)
    except msgspec.DecodeError:
        return None
    return Projection(
        errand=errand_id,
        state=decoded,
        main=tuple(aid for _, aid in sorted(main)),
        notes=tuple(notes),
        rejected=rejected,
        waiting=tuple(waiting),
        digest=digest,
    )
