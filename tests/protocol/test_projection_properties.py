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

from protocol.actions import ANNOTATIONS, Action, Applicant, CallBack, HandOff, Note, Register
from protocol.encoding import encode
from protocol.errand import STAGES, Projection, basis, basis_scope, fold, project, project_with_line
from protocol.matter import Matter
from protocol.topology import COUNTY, ROLES, TOWN, VILLAGE, Directory, NodeEntry
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


def deliveries(draw: st.DrawFn, main: list[Action], strays: list[Action]) -> list[list[Action]]:
    """The actions cut into batches: the main line in order with noise slipped in (the common case), or
    any order at all (out of order, repeats); each cut anywhere."""
    if draw(st.booleans()):
        order = list(main)
        for stray in strays:
            order.insert(draw(st.integers(min_value=0, max_value=len(order))), stray)
    else:
        order = arrivals(draw, main + strays)
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(order)), max_size=len(order))))
    return [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]


def held_of(actions: list[Action]) -> dict[str, int | None]:
    return {a.id: None if isinstance(a, ANNOTATIONS) else a.base for a in actions}


def waiting_of(kept: Projection, actions: list[Action]) -> list[Action]:
    """The bodies of what waits in ``kept``, one per id as ``project`` keeps it (the encoding sorting first)."""
    chosen: dict[str, Action] = {}
    for a in actions:
        if a.id in kept.waiting and (a.id not in chosen or encode(a) < encode(chosen[a.id])):
            chosen[a.id] = a
    return list(chosen.values())


@PROPERTY_SETTINGS
@given(story=histories(), data=st.data())
def test_folding_a_batch_onto_the_kept_projection_equals_projecting_everything(
    story: tuple[list[Action], list[Action]], data
) -> None:
    """What the store does per received batch: fold it onto the projection kept from the last one, or,
    when fold declines, project the whole history; either way the same as projecting everything."""
    main, strays = story
    if strays and data.draw(st.booleans()):  # a little noise, so that folding is often possible
        strays = data.draw(st.lists(st.sampled_from(strays), max_size=2, unique_by=lambda a: id(a)))
    # Rivals of main-line actions (same version, another id, sorting before or after it, from a node
    # that may or may not write it): the competitors a kept projection must not overlook.
    for i, rivalled in enumerate(data.draw(st.lists(st.sampled_from(main), max_size=3)) if main else []):
        node = data.draw(st.sampled_from([rivalled.node, OUTSIDER]))
        rival_id = data.draw(st.sampled_from(["a", "z"])) + f"r{i}"
        strays = [*strays, msgspec.structs.replace(rivalled, id=rival_id, node=node)]
    held: list[Action] = []
    kept = project(ERRAND, [], DIRECTORY)
    for batch in deliveries(data.draw, main, strays):
        folded = fold(kept, held_of(held), batch, DIRECTORY, waiting=waiting_of(kept, held))
        held += batch
        everything = project(ERRAND, held, DIRECTORY)
        if folded is not None:
            assert folded == everything
        # The store's full projection does not walk the bounds of what it applied before again.
        assert project(ERRAND, held, DIRECTORY, bounded={*kept.main, *kept.notes}) == everything
        kept = everything


@PROPERTY_SETTINGS
@given(escalate=st.booleans(), data=st.data())
def test_an_errand_arriving_in_order_is_folded_batch_by_batch(escalate: bool, data) -> None:
    """The common case is really taken: a history arriving in order, in batches of any size, is folded
    every time and never re-projected."""
    main = happy_path(escalate=escalate)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(main)), max_size=5)))
    kept = project(ERRAND, [], DIRECTORY)
    for a, b in zip([0, *cuts], [*cuts, len(main)], strict=True):
        folded = fold(kept, held_of(main[:a]), main[a:b], DIRECTORY)
        assert folded == project(ERRAND, main[:b], DIRECTORY)
        kept = folded


def test_fold_declines_what_is_not_a_simple_continuation() -> None:
    main = happy_path(escalate=False)
    kept = project(ERRAND, main[:4], DIRECTORY)
    held = held_of(main[:4])
    # A gap (version 4 is missing): what is past it waits, as when everything is projected, and is taken
    # up when version 4 comes; without the bodies of what waits, nothing is folded.
    gapped = fold(kept, held, main[5:7], DIRECTORY)
    assert gapped == project(ERRAND, [*main[:4], *main[5:7]], DIRECTORY) and len(gapped.waiting) == 2
    gap_held = held_of([*main[:4], *main[5:7]])
    assert fold(gapped, gap_held, [main[4]], DIRECTORY) is None
    assert fold(gapped, gap_held, [main[4]], DIRECTORY, waiting=main[5:7]) == project(ERRAND, main[:7], DIRECTORY)
    assert fold(kept, held, [main[3]], DIRECTORY) is None  # already held
    rival = msgspec.structs.replace(main[2], id="a00")  # sorts before the winner of version 2
    assert fold(kept, held, [rival], DIRECTORY) is None
    remark = make(Note, node=VILLAGE_ID, id="k00", at=AT0, text="进度说明")
    assert fold(kept, held, [remark], DIRECTORY) == project(ERRAND, [*main[:4], remark], DIRECTORY)
    noted, line = project_with_line(ERRAND, [*main[:4], remark], DIRECTORY)
    noted_held = {**held, "k00": None}
    # Every held note is judged again over the longer main line: without its body, nothing is folded; an
    # applied note changed the state, so without the main line's own state (``line``) neither.
    assert fold(noted, noted_held, [main[4]], DIRECTORY) is None
    assert fold(noted, noted_held, [main[4]], DIRECTORY, notes=[remark]) is None
    assert fold(noted, noted_held, [main[4]], DIRECTORY, notes=[remark, remark]) is None
    everything = project(ERRAND, [*main[:5], remark], DIRECTORY)
    assert fold(noted, noted_held, [main[4]], DIRECTORY, notes=[remark], line=line) == everything
    # A call-back refused as too early is allowed once the errand is delivered: judged again, it is applied.
    early = make(CallBack, node=TOWN_ID, id="k01", at=AT0, reached=True)
    waiting_for_delivery = project(ERRAND, [*main[:-1], early], DIRECTORY)
    assert "k01" in waiting_for_delivery.rejected
    assert project(ERRAND, [*main, early], DIRECTORY).notes == ("k01",)
    early_held = {**held_of(main[:-1]), "k01": None}
    assert fold(waiting_for_delivery, early_held, main[-1:], DIRECTORY) is None
    assert fold(waiting_for_delivery, early_held, main[-1:], DIRECTORY, notes=[early]) == project(
        ERRAND, [*main, early], DIRECTORY
    )
    forged = msgspec.structs.replace(kept, digest="0" * 64)
    assert fold(forged, held, [main[4]], DIRECTORY) is None  # a row that is not what it claims
    # What is held must be exactly what the projection decided: an action held but not in it (one it was not
    # made of), or one it decided that is not held, stops the fold.
    assert fold(kept, {**held, "a01": 1}, [main[4]], DIRECTORY) is None
    assert fold(kept, {aid: base for aid, base in held.items() if aid != main[1].id}, [main[4]], DIRECTORY) is None
    assert fold(kept, held, [main[4]], DIRECTORY) == project(ERRAND, main[:5], DIRECTORY)


def test_only_the_bounds_of_actions_allowed_before_are_taken_as_read() -> None:
    """``bounded`` skips the walk over the values, nothing else; a body other than the one allowed is walked."""
    main = happy_path(escalate=False)
    loud = msgspec.structs.replace(main[1], actor="李\x07代办")  # a control character: out of bounds
    refused = project(ERRAND, [*main[:1], loud], DIRECTORY)
    assert refused.rejected[loud.id] == "actor contains a character not allowed in a name (U+0007)"
    assert project(ERRAND, [*main[:1], loud], DIRECTORY, bounded={loud.id}).main == (main[0].id, loud.id)
    # Two bodies under one id: which one passed is unknown, so both are walked.
    assert project(ERRAND, [*main[:2], loud], DIRECTORY, bounded={loud.id}) == project(
        ERRAND, [*main[:2], loud], DIRECTORY
    )


# -- the basis a kept projection is continued under (protocol.errand.basis) ------------------------------

NEW_NODES = [OUTSIDER, "T03", "T01V03"]


@st.composite
def edited_directories(draw: st.DrawFn) -> tuple[Directory, bool]:
    """``DIRECTORY`` with one to three edits: a node added (under any node, any role; ``OUTSIDER``, whom the
    strays name, among them), a leaf removed, a role changed, a node moved under another. And whether every
    edit was an addition."""
    entries = {n.id: n for n in DIRECTORY.nodes()}
    only_added = True
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        edit = draw(st.sampled_from(["add", "add", "remove", "role", "parent"]))
        ids = sorted(entries)
        if edit == "add" and (new := [n for n in NEW_NODES if n not in entries]):
            node = draw(st.sampled_from([new[0], *new]))  # OUTSIDER most often
            role = draw(st.sampled_from([VILLAGE, TOWN, COUNTY]))
            entries[node] = NodeEntry(id=node, role=role, parent=draw(st.sampled_from(ids)))
            continue
        only_added = False
        if edit == "remove":
            leaves = [n for n in ids if not any(e.parent == n for e in entries.values())]
            del entries[draw(st.sampled_from(leaves))]
        elif edit == "role":
            node = draw(st.sampled_from(ids))
            entries[node] = msgspec.structs.replace(entries[node], role=draw(st.sampled_from(ROLES)))
        else:
            node = draw(st.sampled_from(ids))
            below = Directory(entries.values()).subtree(node)
            parent = draw(st.sampled_from([None, *(n for n in ids if n not in below)]))
            entries[node] = msgspec.structs.replace(entries[node], parent=parent)
    return Directory(entries.values()), only_added


@PROPERTY_SETTINGS
@given(story=histories(), edited=edited_directories(), data=st.data())
def test_a_projection_whose_basis_holds_is_what_projecting_again_gives(
    story: tuple[list[Action], list[Action]], edited: tuple[Directory, bool], data
) -> None:
    """The store continues a kept projection under another directory only when the basis it was made under
    is the same there: then projecting everything there gives the very same projection, and folding a batch
    onto it gives what projecting everything there gives. Adding nodes never changes the basis of a
    projection that holds nothing refused or waiting."""
    main, strays = story
    # Rival registrations from a node the directory may not hold yet: enrolled, one may win version 0.
    rivals = []
    for i in range(data.draw(st.integers(min_value=0, max_value=2)) if main else 0):
        node = data.draw(st.sampled_from([OUTSIDER, OUTSIDER, "T01V03", SISTER_VILLAGE]))
        rival_id = data.draw(st.sampled_from(["a", "z"])) + f"g{i}"
        rivals.append(msgspec.structs.replace(main[0], id=rival_id, node=node, scope=node))
    actions = [*rivals, *main, *strays]  # the rivals first: most often among what a kept projection holds
    after, only_added = edited
    cut = data.draw(st.integers(min_value=0, max_value=len(actions)))
    held, batch = actions[:cut], actions[cut:]
    kept = project(ERRAND, held, DIRECTORY)
    scope = basis_scope(kept)
    if only_added and scope is not None:
        assert basis(after, scope) == basis(DIRECTORY, scope)
    if scope is None and only_added:
        assert basis(after) != basis(DIRECTORY)  # an enrollment changes the tree
    if basis(after, scope) != basis(DIRECTORY, scope):
        return  # the store projects everything again
    assert project(ERRAND, held, after) == kept
    folded = fold(kept, held_of(held), batch, after)
    if folded is not None:
        assert folded == project(ERRAND, actions, after)


def test_a_registration_refused_for_a_node_not_enrolled_yet_keeps_its_projection_under_the_whole_tree() -> None:
    """The case the tree basis is kept for: enrolled, the node's earlier registration wins version 0."""
    main = happy_path(escalate=False)[:3]
    early = msgspec.structs.replace(main[0], id="a00", node=OUTSIDER, scope=OUTSIDER)
    before = project(ERRAND, [*main, early], DIRECTORY)
    assert before.main == tuple(a.id for a in main) and "a00" in before.rejected
    assert basis_scope(before) is None
    entries = [*DIRECTORY.nodes(), NodeEntry(id=OUTSIDER, role=VILLAGE, parent=TOWN_ID)]
    enrolled = Directory(entries)
    assert basis(enrolled) != basis(DIRECTORY)
    assert project(ERRAND, [*main, early], enrolled).main == ("a00",)


def test_the_path_basis_follows_the_path_only() -> None:
    settled = project(ERRAND, happy_path(escalate=False)[:3], DIRECTORY)
    assert basis_scope(settled) == VILLAGE_ID
    entries = {n.id: n for n in DIRECTORY.nodes()}

    def edited(**changes: NodeEntry | None) -> Directory:
        out = {**entries, **changes}
        return Directory(e for e in out.values() if e is not None)

    same = basis(DIRECTORY, VILLAGE_ID)
    assert basis(edited(T01V03=NodeEntry(id="T01V03", role=VILLAGE, parent=TOWN_ID)), VILLAGE_ID) == same
    assert basis(edited(T02V02=None), VILLAGE_ID) == same  # off the path
    assert basis(edited(T01V02=msgspec.structs.replace(entries[SISTER_VILLAGE], role=TOWN)), VILLAGE_ID) == same
    village = entries[VILLAGE_ID]
    assert basis(edited(T01V01=None), VILLAGE_ID) != same
    assert basis(edited(T01V01=msgspec.structs.replace(village, role=TOWN)), VILLAGE_ID) != same
    assert basis(edited(T01V01=msgspec.structs.replace(village, parent=OTHER_TOWN)), VILLAGE_ID) != same
    assert basis(edited(T01=msgspec.structs.replace(entries[TOWN_ID], role=COUNTY)), VILLAGE_ID) != same
    assert basis(DIRECTORY, VILLAGE_ID) != basis(DIRECTORY)
