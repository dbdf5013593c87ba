"""The `errands.state` column is byte for byte ``encode(state)`` though each catalogue entry's bytes are kept.

``sanji.store.projections.stored_state`` splices the remembered encoding of the state's entry
(``msgspec.Raw``) in place of encoding it again: whatever the state, the entry, their types or the
cache's contents, the bytes stored must be those of the canonical encoding, which every reader decodes
and ``sanji verify`` compares.
"""

from __future__ import annotations

import msgspec
from hypothesis import HealthCheck, given, settings
from protocol_kit import ERRAND, happy_path, new_layout
from test_digest_encoding import states

from protocol.encoding import encode
from protocol.errand import ErrandState, project
from protocol.matter import Matter
from sanji.catalogue import default_catalogue
from sanji.store import projections
from sanji.store.projections import errand_row, stored_state

MATTERS = default_catalogue().matters


class _LaterState(ErrandState, kw_only=True):
    """A subclass, as a later release might define: its own fields are stored too."""

    later: str = "later"


class _CheckedState(ErrandState, kw_only=True):
    """A subclass checking its fields as it is made: never made with the entry's bytes in its place."""

    def __post_init__(self) -> None:
        if self.matter_entry is not None and not isinstance(self.matter_entry, Matter):
            raise TypeError("matter_entry is not a Matter")


class _LaterMatter(Matter, frozen=True, kw_only=True):
    later: tuple[str, ...] = ("x",)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=states())
def test_any_state_is_stored_as_encoded(state: ErrandState) -> None:
    assert stored_state(state) == encode(state)
    assert stored_state(state) == encode(state)  # the second time from the kept bytes


def test_every_state_of_an_errands_life_is_stored_as_encoded() -> None:
    directory = new_layout().directory
    projections._stored_matter.clear()
    for escalate, entry in ((False, MATTERS[2]), (True, MATTERS[5])):
        actions = happy_path(escalate=escalate)
        for end in range(1, len(actions) + 1):
            proj = project(actions[0].errand, actions[:end], directory)
            assert errand_row(proj, scope="s", basis="b")["state"] == (encode(proj.state) if proj.state else None)
            if proj.state is not None:  # as if the registration bound the entry: every state shares it
                state = msgspec.structs.replace(proj.state, matter_entry=entry)
                shared = msgspec.structs.replace(proj, state=state)
                assert errand_row(shared, scope="s", basis="b")["state"] == encode(state)
    assert len(projections._stored_matter) == 2
    assert projections._stored_matter.holds(MATTERS[2]) and projections._stored_matter.holds(MATTERS[5])


def test_a_kept_entry_is_only_ever_that_very_entry() -> None:
    proj = project(ERRAND, happy_path(escalate=True), new_layout().directory)
    assert proj.state is not None
    entry = MATTERS[2]
    state = msgspec.structs.replace(proj.state, matter_entry=entry)
    projections._stored_matter.clear()
    assert stored_state(state) == encode(state)
    assert len(projections._stored_matter) == 1 and projections._stored_matter.holds(entry)
    # Another entry's bytes filed under this one's id (its id reused after it was freed): not taken.
    projections._stored_matter._kept[id(entry)] = (MATTERS[3], msgspec.Raw(encode(MATTERS[3])))
    assert stored_state(state) == encode(state)
    # Pushed out by other entries and encoded again: the same bytes.
    projections._stored_matter.clear()
    stored_state(state)
    for i in range(projections._stored_matter.entries):
        stored_state(msgspec.structs.replace(state, matter_entry=msgspec.structs.replace(entry, code=f"c{i}")))
    assert not projections._stored_matter.holds(entry)
    assert stored_state(state) == encode(state)
    # An entry equal in value but another object: the same bytes.
    copy = msgspec.structs.replace(entry)
    assert stored_state(msgspec.structs.replace(state, matter_entry=copy)) == stored_state(state)


def test_odd_states_and_entries_are_stored_as_encoded() -> None:
    proj = project(ERRAND, happy_path(escalate=False), new_layout().directory)
    assert proj.state is not None
    base = msgspec.structs.asdict(proj.state)
    projections._stored_matter.clear()
    huge = msgspec.structs.replace(MATTERS[0], legal_basis="法" * 40_000)  # past what is kept
    odd: list[ErrandState] = [
        _LaterState(**base),
        _CheckedState(**{**base, "matter_entry": MATTERS[4]}),
        _LaterState(**{**base, "later": "其他", "matter_entry": _LaterMatter(**msgspec.structs.asdict(MATTERS[1]))}),
        msgspec.structs.replace(proj.state, matter_entry=_LaterMatter(**msgspec.structs.asdict(MATTERS[1]))),
        msgspec.structs.replace(proj.state, matter_entry=None),
        msgspec.structs.replace(proj.state, matter_entry=huge),
        # Not what the field says (nothing checks a struct's fields when it is made): encoded as it is.
        msgspec.structs.replace(proj.state, matter_entry={"code": "x"}),  # type: ignore[arg-type]
    ]
    for state in odd * 2:  # twice: the second time from whatever was kept
        assert stored_state(state) == encode(state)
    assert not projections._stored_matter.holds(huge)
    # A mutable stand-in for an entry is never remembered: changed, it is stored as it is now.
    entry: dict[str, str] = {"code": "x"}
    state = msgspec.structs.replace(proj.state, matter_entry=entry)  # type: ignore[arg-type]
    assert stored_state(state) == encode(state)
    entry["code"] = "y"
    assert stored_state(state) == encode(state)
