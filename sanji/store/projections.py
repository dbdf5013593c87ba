"""Kept errand projections: a received batch is folded onto what the `errands` row holds (issue 15).

Re-projecting an errand decodes and judges every action it holds; a batch that only continues the
main line (and adds notes) need not. Whether it does, and what the continued projection is, is
``protocol.errand.fold_with_line``; this module only reads what the row and the actions' columns say,
and decodes only the bodies of what waits and of the notes (each judged again). Everything else (a rival
at the frontier, an action out of order, a row made under another basis or release, or from before
migration 0017, a row read back whose notes were applied: the main line's own state is not stored) is
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
from protocol.encoding import encode
from protocol.errand import ErrandState, Projection, Replayed, basis, basis_scope, fold_with_line, project
from protocol.kept_bytes import KeptBytes
from protocol.matter import Matter
from protocol.topology import Directory
from sanji import __version__
from sanji.store.section import INCOMPLETE

NOTE_KINDS = frozenset(cls.__struct_config__.tag for cls in ANNOTATIONS)
_state_decoder = msgspec.msgpack.Decoder(ErrandState)


class Held(Protocol):
    """The columns of one stored action this module reads (a row of `actions`)."""

    id: str
    base: int
    kind: str
    status: str
    reason: str

    def decoded(self) -> Action: ...


@lru_cache(maxsize=4)
def _computed(directory: Directory) -> dict[str | None, str]:
    """The bases computed under ``directory``, by scope (None: the whole tree). Once per directory object:
    a store swaps it, never edits it."""
    return {}


def basis_of(directory: Directory, scope: str | None = None) -> str:
    """What a kept row was projected under: what ``judge`` read of the directory (``protocol.errand.basis``
    of ``scope``, see ``basis_scope``) and this software's version, whose rules and bounds may differ from
    the last one's (an upgraded node projects each errand from all its actions once)."""
    known = _computed(directory)
    out = known.get(scope)
    if out is None:
        out = known[scope] = hashlib.sha256(f"{__version__}\n{basis(directory, scope)}".encode()).hexdigest()
    return out


def basis_of_projection(proj: Projection, directory: Directory) -> str:
    """The basis ``proj``, made under ``directory``, is kept under."""
    return basis_of(directory, basis_scope(proj))


def kept_basis(row: Any, held: Sequence[Held], fresh: Sequence[Action], directory: Directory) -> str:
    """The basis a kept ``row`` must hold to be continued under ``directory``: ``basis_scope`` of the
    projection it stands for, read from its columns (registered: a state; nothing refused or waiting: every
    action it was made of applied)."""
    others = _others(held, fresh)
    settled = row.state is not None and all(h.status == "applied" for h in others)
    return basis_of(directory, row.scope if settled else None)


def fold_kept(
    errand_id: str, row: Any, held: Sequence[Held], fresh: Sequence[Action], directory: Directory
) -> Replayed | None:
    """``errand_id``'s projection with ``fresh`` (actions just admitted, not projected yet) folded onto its
    kept ``row`` (None: no row yet), or None when ``fold`` declines. The caller checks the row's basis."""
    others = _others(held, fresh)
    if row is None:
        before = project(errand_id, [], directory)  # nothing projected yet: fold from the empty projection
    else:
        kept = _kept(errand_id, row.state, row.digest, others)
        if kept is None:
            return None
        before = kept
    # The empty projection was made just now: its digest is its own, not checked again (``made_here``). A row
    # read back has no main-line state of its own (``Replayed.line``): fold declines it if it applied a note.
    return fold_with_line(
        before,
        _bases(others),
        fresh,
        directory,
        made_here=row is None,
        waiting=_waiting(before, others),
        notes=_notes(others),
    )


def fold_projected(
    before: Projection,
    held: Sequence[Held],
    fresh: Sequence[Action],
    directory: Directory,
    *,
    line: ErrandState | None,
) -> Replayed | None:
    """``before``, a projection this store made of ``held`` (their statuses written from it) under the
    current basis, continued by ``fresh``; None when ``fold`` declines. ``fold`` checks that it covers
    exactly what is held, as for a kept row; its digest is its own (``made_here``). ``line``: the state its
    main line reached, kept beside it (``Replayed.line``; None when not known)."""
    bases, waiting, notes = _split(before, held, fresh)
    return fold_with_line(before, bases, fresh, directory, made_here=True, waiting=waiting, notes=notes, line=line)


def _split(
    before: Projection, held: Sequence[Held], fresh: Sequence[Action]
) -> tuple[dict[str, int | None], list[Action], list[Action]]:
    """``_bases``, ``_waiting`` and ``_notes`` of ``_others(held, fresh)`` in one pass over ``held``, in the
    same order. Every batch a push applies continues each errand it touches from the errand's rows: that
    took four passes over them (a list, a dict and two more lists) where one does."""
    fresh_ids = {a.id for a in fresh}
    waits = set(before.waiting) if before.waiting else None
    bases: dict[str, int | None] = {}
    waiting: list[Action] = []
    notes: list[Action] = []
    foreign, note_kinds = ledger.FOREIGN, NOTE_KINDS
    for h in held:
        aid = h.id
        if aid in fresh_ids or h.status == foreign:
            continue
        if h.kind in note_kinds:
            bases[aid] = None
            notes.append(h.decoded())
        else:
            bases[aid] = h.base
        if waits is not None and aid in waits:
            waiting.append(h.decoded())
    return bases, waiting, notes


def _others(held: Sequence[Held], fresh: Sequence[Action]) -> list[Held]:
    """The held actions a projection before ``fresh`` was made of (foreign copies are never projected)."""
    fresh_ids = {a.id for a in fresh}
    return [h for h in held if h.id not in fresh_ids and h.status != ledger.FOREIGN]


def _waiting(before: Projection, others: Sequence[Held]) -> list[Action]:
    """The bodies of what waits in ``before`` (decoded only when something waits)."""
    if not before.waiting:
        return []
    waits = set(before.waiting)
    return [h.decoded() for h in others if h.id in waits]


def _notes(others: Sequence[Held]) -> list[Action]:
    """The bodies of the notes held, applied, refused or waiting: fold judges each of them again."""
    return [h.decoded() for h in others if h.kind in NOTE_KINDS]


def _bases(others: Sequence[Held]) -> dict[str, int | None]:
    return {h.id: None if h.kind in NOTE_KINDS else h.base for h in others}


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


def errand_row(proj: Projection, *, scope: str, basis: str) -> dict[str, Any]:
    """The `errands` row of ``proj``; ``scope`` is the errand's while it has no state yet (no registration)."""
    s = proj.state
    return {
        "id": proj.errand,
        "scope": s.scope if s else scope,
        "matter": s.matter if s else "",
        "applicant_name": s.applicant_name if s else "",
        "stage": s.stage if s else INCOMPLETE,
        "holder": s.holder if s else "",
        "pending_to": s.pending_to if s else None,
        "version": s.version if s else 0,
        "errand_kind": s.errand_kind if s else "",
        "department": s.department if s else "",
        "outcome": s.outcome if s else "",
        "registered_at": s.registered_at if s else 0,
        "updated_at": s.updated_at if s else 0,
        "digest": proj.digest,
        "waiting": len(proj.waiting),
        "receipt": s.receipt if s else "",
        "due": s.due if s else "",
        "stage_due": s.stage_due if s else "",
        "responsible": s.responsible if s else "",
        "window": s.window if s else "",
        "handler": s.handler if s else "",
        "paused": bool(s and s.stage == "supplement"),
        "state": stored_state(s) if s else None,
        "basis": basis,
    }


# The stored encoding of each catalogue entry lately stored, by identity (``protocol.kept_bytes``), as the
# digest keeps its own: encoding the entry walked its materials each time a row was written. Spliced in place
# of the entry, the column holds byte for byte ``encode(state)``.
_stored_matter: KeptBytes[Matter] = KeptBytes(encode)


# By the state's type: whether ``replace`` makes a copy without running code of the type's own
# (``__post_init__``, which would see the entry's bytes in place of the entry).
_REPLACEABLE: dict[type, bool] = {}


def stored_state(state: ErrandState) -> bytes:
    """The `errands.state` column of ``state``: ``encode(state)``, its catalogue entry's bytes kept."""
    entry = state.matter_entry
    cls = type(state)
    replaceable = _REPLACEABLE.get(cls)
    if replaceable is None:
        replaceable = _REPLACEABLE[cls] = not hasattr(cls, "__post_init__")
    if not replaceable or not isinstance(entry, Matter):  # none, or not what the field says: as it is
        return encode(state)
    # ``replace`` keeps the state's own type (a subclass's fields too) and checks no field's type.
    return encode(msgspec.structs.replace(state, matter_entry=_stored_matter(entry)))
