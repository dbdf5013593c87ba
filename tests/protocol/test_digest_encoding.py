"""The digest's encoding of a state is byte for byte what decoding and re-encoding it gave (<= 0.4).

``protocol.errand.digest_of`` encodes the state once through mirror structs that leave out the
fields added since 0.3.0 while they hold their defaults. Until then every digest decoded the
canonical encoding, deleted those fields and encoded it again; ``old_digest`` is that method,
kept in ``bench.digest`` (the baseline it is timed against) and used here as the oracle: every
digest stored by an earlier release must still match.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_kit import happy_path, new_layout

from bench.digest import old_digest
from protocol.errand import DERIVED, LATER_DEFAULTS, NEVER_DIGESTED, ErrandState, digest_of, project
from protocol.matter import Matter
from protocol.urging import Urging
from sanji.catalogue import default_catalogue

TEXT = st.one_of(st.sampled_from(["", "王伟", "C", "T01", "T01V01", "2026-10-01", "民政局"]), st.text(max_size=12))
MATTERS = default_catalogue().matters


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    if hint is str:
        return TEXT
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.one_of(st.integers(0, 40), st.integers(-(2**63), 2**63 - 1))
    if origin in (types.UnionType, typing.Union):
        return st.one_of(*(strategy_for(arg) for arg in typing.get_args(hint)))
    if hint is type(None):
        return st.none()
    if hint is Matter:
        return st.builds(
            msgspec.structs.replace,
            st.sampled_from(MATTERS),
            joint_answers_at_departments=st.booleans(),
            rules=st.integers(0, 1),
            joint_departments=st.lists(TEXT, max_size=3).map(tuple),
        )
    if hint is Urging:
        return st.builds(
            Urging,
            id=TEXT,
            by=TEXT,
            to=TEXT,
            window=TEXT,
            answer_by=TEXT,
            at=st.integers(0, 2**40),
            answer=TEXT,
            answered_at=st.integers(0, 2**40),
        )
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
        return st.tuples(*(strategy_for(arg) for arg in args))
    if origin is dict:
        key, value = typing.get_args(hint)
        return st.dictionaries(strategy_for(key), strategy_for(value), max_size=4)  # any insertion order
    raise AssertionError(f"no strategy for {hint!r}")


HINTS = typing.get_type_hints(ErrandState)


@st.composite
def states(draw: st.DrawFn) -> ErrandState:
    """Any state: each optional field at its default or at a random value (later fields often default)."""
    values: dict[str, Any] = {}
    for f in msgspec.structs.fields(ErrandState):
        if f.required or draw(st.booleans()):
            values[f.name] = draw(strategy_for(HINTS[f.name]))
    return ErrandState(**values)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    state=st.one_of(st.none(), states()),
    errand=TEXT,
    main=st.lists(TEXT, max_size=3),
    notes=st.lists(TEXT, max_size=3),
    rejected=st.dictionaries(TEXT, TEXT, max_size=3),
)
def test_the_digest_equals_decode_and_re_encode(
    state: ErrandState | None, errand: str, main: list[str], notes: list[str], rejected: dict[str, str]
) -> None:
    assert digest_of(errand, state, main, notes, rejected) == old_digest(errand, state, main, notes, rejected)


def test_every_projection_of_an_errands_life_digests_as_before() -> None:
    directory = new_layout().directory
    for escalate in (False, True):
        actions = happy_path(escalate=escalate)
        for end in range(1, len(actions) + 1):
            proj = project(actions[0].errand, actions[:end], directory)
            old = old_digest(proj.errand, proj.state, list(proj.main), list(proj.notes), proj.rejected)
            assert proj.digest == old


def test_a_later_field_counts_once_it_leaves_its_default() -> None:
    actions = happy_path(escalate=False)
    state = project(actions[0].errand, actions, new_layout().directory).state
    assert state is not None and not state.urgings
    urged = msgspec.structs.replace(state, urgings=(Urging(id="u", by="C", to="T01", answer_by="2026-10-09", at=1),))
    assert digest_of("e", state, [], [], {}) != digest_of("e", urged, [], [], {})
    assert LATER_DEFAULTS == ("urgings",) and NEVER_DIGESTED == ("joint_answers_at_departments", "rules")


def test_whether_an_errand_was_rated_is_not_digested() -> None:
    """``rated`` follows from the entry's ``rules`` and the notes applied, which the digest covers: left out, a
    0.3.0 replica (which cannot hold it) digests an errand rated once at its desk as 0.4.0 does."""
    actions = happy_path(escalate=False)
    state = project(actions[0].errand, actions, new_layout().directory).state
    assert state is not None and not state.rated
    rated = msgspec.structs.replace(state, rated=True)
    assert digest_of("e", state, [], ["r1"], {}) == digest_of("e", rated, [], ["r1"], {})
    assert DERIVED == ("rated",)
