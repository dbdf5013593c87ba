"""Kept errand projections: a received batch is folded onto what the `errands` row holds (issue 15).

Re-projecting an errand decodes and judges every action it holds; a batch that only continues the
main line need not. Whether it does, and what the continued projection is, is
``protocol.errand.fold``; this module only reads what the row and the actions' columns say (no action
body is decoded). Everything else (something waiting, a note, a rival at the frontier, an action out
of order or refused, a row from another directory tree or release, or from before migration 0017) is
left to ``Store._recompute``'s full projection, which writes the same rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import msgspec

from protocol import ledger
from protocol.actions import ANNOTATIONS, Action
from protocol.errand import ErrandState, Projection, basis, fold, project
from protocol.topology import Directory
from sanji import __version__

NOTE_KINDS = frozenset(cls.__struct_config__.tag for cls in ANNOTATIONS)
_state_decoder = msgspec.msgpack.Decoder(ErrandState)


class Held(Protocol):
    """The columns of one stored action this module reads (a row of `actions`)."""

    id: str
    base: int
    kind: str
    status: str
    reason: str


@lru_cache(maxsize=4)
def basis_of(directory: Directory) -> str:
    """What a kept row was projected under: the directory's tree (``protocol.errand.basis``) and this
    software's version, whose rules and bounds may differ from the last one's (an upgraded node projects
    each errand from all its actions once). Once per directory object: a store swaps it, never edits it."""
    return hashlib.sha256(f"{__version__}\n{basis(directory)}".encode()).hexdigest()


def fold_kept(
    errand_id: str, row: Any, held: Sequence[Held], fresh: Sequence[Action], directory: Directory
) -> Projection | None:
    """``errand_id``'s projection with ``fresh`` (actions just admitted, not projected yet) folded onto its
    kept ``row`` (None: no row yet), or None when ``fold`` declines. The caller checks the row's basis."""
    fresh_ids = {a.id for a in fresh}
    others = [h for h in held if h.id not in fresh_ids and h.status != ledger.FOREIGN]
    if row is None:
        before = project(errand_id, [], directory)  # nothing projected yet: fold from the empty projection
    else:
        kept = _kept(errand_id, row.state, row.digest, others)
        if kept is None:
            return None
        before = kept
    bases = {h.id: None if h.kind in NOTE_KINDS else h.base for h in others}
    return fold(before, bases, fresh, directory)


def _kept(errand_id: str, state: bytes | None, digest: str, held: Sequence[Held]) -> Projection | None:
    """The projection an `errands` row and its actions' statuses stand for (``fold`` checks its digest)."""
    main: list[tuple[int, str]] = []
    notes: list[str] = []
    rejected: dict[str, str] = {}
    waiting: list[str] = []
    for h in held:
        if h.status == "applied":
            if h.kind in NOTE_KINDS:
                notes.append(h.id)
            else:
                main.append((h.base, h.id))
        elif h.status == "rejected":
            rejected[h.id] = h.reason
        elif h.status == "waiting":
            waiting.append(h.id)
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
