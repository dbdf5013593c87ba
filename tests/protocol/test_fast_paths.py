"""The shortcuts replaying an errand takes answer exactly what the plain computation answers."""

from __future__ import annotations

import msgspec
from protocol_kit import ERRAND, TOWN_ID, VILLAGE_ID, happy_path, make, new_layout

from bench.digest import old_digest
from protocol import errand
from protocol.actions import ANNOTATIONS, CallBack, Note, is_annotation, is_main_line
from protocol.errand import digest_of, project
from sanji.catalogue import default_catalogue


class _LaterNote(Note, tag="later_note", frozen=True, kw_only=True):
    """A subclass, as a later release might define: ``isinstance`` counts it as a note."""


def test_is_annotation_is_isinstance_of_the_annotations() -> None:
    main = happy_path(escalate=True)
    notes = [make(Note, node=VILLAGE_ID, id="k00", text="t"), make(CallBack, node=TOWN_ID, id="k01", reached=True)]
    samples: list[object] = [*main, *notes, "note", None, 3, msgspec.structs.replace(main[0], id="x")]
    later = _LaterNote(id="n", errand=ERRAND, scope="s", node="n", actor="a", role="r", at=1, text="t")
    for value in [*samples, later, later]:  # twice: the second answer is the remembered one
        assert is_annotation(value) == isinstance(value, ANNOTATIONS)
    assert is_annotation(later) and not is_main_line(later)
    assert all(is_main_line(a) == (not isinstance(a, ANNOTATIONS)) for a in main)


def test_the_digest_of_a_remembered_entry_is_the_digest_encoded_in_full() -> None:
    """Every state stepped from one registration shares its entry: its bytes are encoded once and kept,
    and the digests are those of the old method (decode and re-encode) each time, and after the entry
    was pushed out of the cache."""
    directory = new_layout().directory
    main = happy_path(escalate=True)
    entry = default_catalogue().matters[2]
    errand._digested_matter.clear()
    for n in range(1, len(main) + 1):
        proj = project(ERRAND, main[:n], directory)
        assert proj.state is not None
        state = msgspec.structs.replace(proj.state, matter_entry=entry)
        args = (ERRAND, state, list(proj.main), list(proj.notes), proj.rejected)
        assert digest_of(*args) == old_digest(*args)
        assert digest_of(*args) == old_digest(*args)  # the second time from the kept bytes
    assert len(errand._digested_matter) == 1 and errand._digested_matter.holds(entry)
    # Pushed out by other entries and encoded again: the same digest.
    for i in range(errand._digested_matter.entries):
        errand._digested_matter(msgspec.structs.replace(entry, code=f"{entry.code}-{i}"))
    assert not errand._digested_matter.holds(entry)
    assert digest_of(*args) == old_digest(*args)
    # An entry equal in value but another object is encoded on its own, to the same bytes.
    copy = msgspec.structs.replace(entry)
    assert copy is not entry and errand._digested_matter(copy) == errand._digested_matter(entry)
    # Another entry in the same state: another digest, the old method's.
    other = msgspec.structs.replace(state, matter_entry=default_catalogue().matters[3])
    assert digest_of(ERRAND, other, *args[2:]) == old_digest(ERRAND, other, *args[2:]) != digest_of(*args)
