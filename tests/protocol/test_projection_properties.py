"""project() depends on the set of actions only: every arrival order gives the same projection."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_kit import (
    AT0,
    COUNTY_ID,
    DEPARTMENT,
    ERRAND,
    FAR_VILLAGE,
    OTHER_TOWN,
    OUTSIDER,
    SISTER_VILLAGE,
    TOWN_ID,
    VILLAGE_ID,
    applicant,
    happy_path,
    make,
    new_layout,
)

from protocol.actions import Action, Applicant, HandOff, Note, Register
from protocol.encoding import encode
from protocol.errand import STAGES, Projection, project
from protocol.matter import Matter
from sanji.catalogue import default_catalogue

DIRECTORY = new_layout().directory
NODES = [COUNTY_ID, TOWN_ID, VILLAGE_ID, SISTER_VILLAGE, OTHER_TOWN, FAR_VILLAGE, OUTSIDER]
KINDS: list[type[Action]] = list(typing.get_args(Action))  # every kind there is, today and later

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


COMMON_FIELDS = set(Note.__struct_fields__) - {"text"}  # id, errand, scope, node, actor, role, at, base, ...


def value_of(hint: Any) -> st.SearchStrategy[Any]:
    """A small, plausible strategy for a field of an action (any kind, present or future)."""
    if typing.get_origin(hint) is typing.Literal:
        return st.sampled_from(typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return st.lists(st.sampled_from(["身份证复印件", "户口簿", "x"]), max_size=2).map(tuple)
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(min_value=0, max_value=30)
    if hint is str:
        return st.sampled_from(["", "王伟", DEPARTMENT, "2024-04-01", *NODES])
    if hint is Applicant:
        return st.just(applicant())
    if Matter in typing.get_args(hint):  # the bound catalogue entry: unbound, or one real entry
        return st.sampled_from([None, default_catalogue().matters[2]])
    return st.from_type(hint)


def kind_fields(draw: st.DrawFn, cls: type[Action]) -> dict[str, Any]:
    """Every required field of ``cls`` and, at random, some of its optional ones."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: draw(value_of(hints[f.name]))
        for f in msgspec.structs.fields(cls)
        if f.name not in COMMON_FIELDS and (f.required or draw(st.booleans()))
    }


@st.composite
def stray_action(draw: st.DrawFn, *, prefix: str, index: int, top: int) -> Action:
    """Any kind, from any node (on the path, off it, or unknown), at any base, mostly invalid."""
    cls = draw(st.sampled_from(KINDS))
    node = draw(st.sampled_from(NODES))
    scope = draw(st.sampled_from([VILLAGE_ID, VILLAGE_ID, VILLAGE_ID, SISTER_VILLAGE, node]))
    fields = kind_fields(draw, cls)
    if cls is HandOff:
        fields["to"] = draw(st.sampled_from(NODES))  # a node, not just any string
    base = draw(st.integers(min_value=-1, max_value=top + 2))
    at = AT0 + draw(st.integers(min_value=0, max_value=20_000))
    return make(cls, node=node, id=f"{prefix}{index:03d}", base=base, scope=scope, at=at, **fields)


@st.composite
def histories(draw: st.DrawFn, *, strays_win_ties: bool | None = None) -> tuple[list[Action], list[Action]]:
    """(main line so far, everything else): a valid errand, cut anywhere, plus noise."""
    main = happy_path(escalate=draw(st.booleans()))
    main = main[: draw(st.integers(min_value=0, max_value=len(main)))]
    if strays_win_ties is None:
        strays_win_ties = draw(st.booleans())
    prefix = "a" if strays_win_ties else "z"  # main-line ids are "m00".."m11"
    count = draw(st.integers(min_value=0, max_value=12))
    strays = [draw(stray_action(prefix=prefix, index=i, top=len(main))) for i in range(count)]
    # Valid notes from nodes on the path.
    for i in range(draw(st.integers(min_value=0, max_value=4))):
        node = draw(st.sampled_from([COUNTY_ID, TOWN_ID, VILLAGE_ID]))
        at = AT0 + draw(st.integers(min_value=0, max_value=20_000))
        strays.append(make(Note, node=node, id=f"k{i:02d}", at=at, text="进度说明"))
    # A node restored from a backup re-wrote some action under the same id with other content.
    pool = main + strays
    if pool and draw(st.booleans()):
        victim = draw(st.sampled_from(pool))
        strays.append(msgspec.structs.replace(victim, at=victim.at + 1, actor="restored"))
    return main, strays


def arrivals(draw: st.DrawFn, actions: list[Action]) -> list[Action]:
    """One arrival order, with some actions delivered more than once."""
    order = list(draw(st.permutations(actions)))
    if actions:
        order += draw(st.lists(st.sampled_from(actions), max_size=3))
        order = list(draw(st.permutations(order)))
    return order


def canonical(actions: list[Action]) -> Projection:
    return project(ERRAND, sorted(actions, key=lambda a: (a.id, encode(a))), DIRECTORY)


def check_sane(proj: Projection, actions: list[Action]) -> None:
    if proj.state is None:
        assert proj.main == () and proj.notes == ()
    else:
        assert proj.state.stage in STAGES
        assert proj.state.version == len(proj.main)
        registration = next(a for a in actions if a.id == proj.main[0])
        assert isinstance(registration, Register)
        assert proj.state.scope == registration.scope == registration.node
    ids = {a.id for a in actions}
    parts = [set(proj.main), set(proj.notes), set(proj.rejected), set(proj.waiting)]
    assert sum(len(p) for p in parts) == len(ids), "an action is in two places or missing"
    assert set().union(*parts) == ids


@PROPERTY_SETTINGS
@given(story=histories(), data=st.data())
def test_any_arrival_order_gives_the_same_projection(story: tuple[list[Action], list[Action]], data) -> None:
    main, strays = story
    actions = main + strays
    reference = canonical(actions)
    check_sane(reference, actions)
    for _ in range(3):
        proj = project(ERRAND, arrivals(data.draw, actions), DIRECTORY)
        assert proj.digest == reference.digest
        assert proj.main == reference.main
        assert proj.notes == reference.notes
        assert proj.rejected == reference.rejected
        assert proj.waiting == reference.waiting
        assert proj == reference
    assert project(ERRAND, actions[::-1], DIRECTORY) == reference


@PROPERTY_SETTINGS
@given(story=histories(strays_win_ties=False), data=st.data())
def test_noise_that_loses_ties_never_bends_the_main_line(story: tuple[list[Action], list[Action]], data) -> None:
    """Stray actions whose ids sort after the real ones cannot displace them: at most they extend a
    history that was cut short, and only from where it stopped."""
    main, strays = story
    proj = project(ERRAND, arrivals(data.draw, main + strays), DIRECTORY)
    main_ids = tuple(a.id for a in main)
    assert proj.main[: len(main)] == main_ids
    by_id = {a.id: a for a in strays if a.id not in main_ids}
    for extra in proj.main[len(main) :]:
        assert by_id[extra].base >= len(main)
    for stray in by_id.values():
        if stray.id in proj.waiting:
            assert stray.base > len(proj.main) or proj.state is None


@PROPERTY_SETTINGS
@given(story=histories())
def test_the_main_line_alone_reproduces_the_state(story: tuple[list[Action], list[Action]]) -> None:
    """Replaying just the winners gives the state that the noisy set produced."""
    main, strays = story
    noisy = canonical(main + strays)
    if noisy.state is None:
        return
    by_id: dict[str, Action] = {}
    for action in sorted(main + strays, key=encode, reverse=True):
        by_id[action.id] = action  # the smallest encoding of each id, as project() keeps it
    chosen = [by_id[i] for i in noisy.main]
    assert [a.base for a in chosen] == list(range(len(chosen)))
    clean = project(ERRAND, chosen, DIRECTORY)
    assert clean.main == noisy.main
    assert clean.rejected == {} and clean.waiting == ()
    assert clean.state is not None
    core = ("id", "scope", "stage", "holder", "pending_to", "version", "outcome", "registered_at")
    assert {f: getattr(clean.state, f) for f in core} == {f: getattr(noisy.state, f) for f in core}
