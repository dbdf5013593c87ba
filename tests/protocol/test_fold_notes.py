"""Folding onto a projection that holds notes: every held note is judged again over the longer main line.

What the store does per received batch, step by step: fold the batch onto the projection (and the main
line's own state, ``Replayed.line``) left by the last one, or project everything when fold declines, and
go on from whichever answered. Whenever fold answers it must be what projecting everything gives, byte for
byte (the digest), and so must the main line's state it hands on; errors would compound from batch to batch.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_kit import AT0, COUNTY_ID, ERRAND, OUTSIDER, TOWN_ID, VILLAGE_ID, happy_path, make, new_layout
from test_projection_properties import held_of, stray_action, waiting_of

from protocol.actions import (
    Accept,
    Action,
    AnswerUrging,
    Assign,
    CallBack,
    Complain,
    Decide,
    Deliver,
    HandOff,
    Note,
    Rate,
    Receive,
    Register,
    SubtaskDone,
    Supervise,
    is_annotation,
)
from protocol.binding import business_date
from protocol.encoding import encode
from protocol.errand import DELIVERED, Replayed, fold_with_line, project, project_with_line
from sanji.catalogue import default_catalogue

DIRECTORY = new_layout().directory
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

CO = ("县人社局", "县卫健局")
_MZ001 = default_catalogue().get("MZ-001")
assert _MZ001 is not None
# Departments answering at their own desks: their answers are taken beside the holder (``beside_holder``).
# The township may decide it (rules 2 leave a refusal, as an approval, to the levels in approve_levels).
JOINT_ENTRY = msgspec.structs.replace(
    _MZ001, joint_departments=CO, joint_answers_at_departments=True, approve_levels=("town", "county")
)
ANSWER_BY = (business_date(AT0) + timedelta(days=7)).isoformat()


def joint_path() -> list[Action]:
    """A 联办件 at the township, decided and delivered; the departments' answers come beside it."""
    bound = {"matter": JOINT_ENTRY.code, "matter_entry": JOINT_ENTRY, "catalogue_version": 1, "missing_confirmed": True}
    return [
        make(Register, node=VILLAGE_ID, id="m00", base=0, materials=("身份证复印件",), **bound),
        make(HandOff, node=VILLAGE_ID, id="m01", base=1, to=TOWN_ID, purpose="submit"),
        make(Receive, node=TOWN_ID, id="m02", base=2),
        make(Accept, node=TOWN_ID, id="m03", base=3, errand_kind="联办件", co_departments=CO, due="2024-05-10"),
        make(Assign, node=TOWN_ID, id="m04", base=4, window="民政窗口", handler="王芳"),
        make(
            Decide, node=TOWN_ID, id="m05", base=5, outcome="refused", document="不符合条件告知书", reasons="收入超标"
        ),
        make(HandOff, node=TOWN_ID, id="m06", base=6, to=VILLAGE_ID, purpose="result"),
        make(Receive, node=VILLAGE_ID, id="m07", base=7),
        make(Deliver, node=VILLAGE_ID, id="m08", base=8, confirmed_by="杜凤", signature="签名图像#1"),
    ]


def at(draw: st.DrawFn) -> int:
    return AT0 + draw(st.integers(min_value=0, max_value=20_000))


@st.composite
def a_note(draw: st.DrawFn, *, index: int) -> Action:
    """A note of a kind whose verdict follows the state: allowed, refused, or allowed only later."""
    nid = draw(st.sampled_from(["a", "k", "z"])) + f"n{index:02d}"  # before, between or after the others
    kind = draw(st.integers(min_value=0, max_value=7))
    if kind == 0:
        node = draw(st.sampled_from([COUNTY_ID, TOWN_ID, VILLAGE_ID, OUTSIDER]))  # off the path: refused
        return make(Note, node=node, id=nid, at=at(draw), text="进度说明")
    if kind == 1:  # refused until the errand is delivered
        return make(CallBack, node=TOWN_ID, id=nid, at=at(draw), reached=True, satisfied="满意")
    if kind == 2:  # an urging, whose answers are judged by the urgings applied before them
        return make(Supervise, node=COUNTY_ID, id="u1", at=at(draw), text="请办结", answer_by=ANSWER_BY, to=TOWN_ID)
    if kind == 3:
        return make(AnswerUrging, node=TOWN_ID, id=nid, at=at(draw), urging="u1", text="已加快办理")
    if kind == 4:
        return make(Complain, node=VILLAGE_ID, id=nid, at=at(draw), text=draw(st.sampled_from(["", "态度差"])))
    if kind == 5:
        return make(Rate, node=VILLAGE_ID, id=nid, at=at(draw), level="满意")
    if kind == 6:  # a department's answer: beside the holder, or refused when written by the holder
        node = draw(st.sampled_from([COUNTY_ID, COUNTY_ID, TOWN_ID]))
        base = draw(st.integers(min_value=2, max_value=9))
        department = draw(st.sampled_from(CO))
        return make(SubtaskDone, node=node, id=nid, base=base, at=at(draw), department=department, outcome="agreed")
    return make(Note, node=VILLAGE_ID, id=nid, at=at(draw), text="已电话告知申请人", acting_for="A岗")


@st.composite
def noted_histories(draw: st.DrawFn) -> tuple[list[Action], list[Action]]:
    """(main line, everything else): a happy or joint errand, cut anywhere (even before its registration),
    with notes of every kind, stray actions (some waiting past the line's end), rivals and rewrites."""
    main = draw(st.sampled_from([happy_path(escalate=False), happy_path(escalate=True), joint_path()]))
    main = main[: draw(st.integers(min_value=0, max_value=len(main)))]
    others = [draw(a_note(index=i)) for i in range(draw(st.integers(min_value=0, max_value=6)))]
    for i in range(draw(st.integers(min_value=0, max_value=3))):
        others.append(draw(stray_action(prefix=draw(st.sampled_from(["a", "z"])), index=i, top=len(main))))
    # A node restored from a backup re-wrote some action under the same id with other content.
    pool = main + others
    if pool and draw(st.booleans()):
        victim = draw(st.sampled_from(pool))
        others.append(msgspec.structs.replace(victim, at=victim.at + 1, actor="restored"))
    return main, others


def batches_of(draw: st.DrawFn, main: list[Action], others: list[Action]) -> list[list[Action]]:
    """The main line in order with the rest slipped in anywhere (the common case), or any order at all;
    cut into batches anywhere."""
    if draw(st.integers(min_value=0, max_value=3)):
        order = list(main)
        for other in others:
            order.insert(draw(st.integers(min_value=0, max_value=len(order))), other)
    else:
        order = list(draw(st.permutations(main + others)))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(order)), max_size=len(order))))
    return [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]


def notes_of(held: list[Action]) -> list[Action]:
    """The bodies of the notes held, one per id as ``project`` keeps it (the encoding sorting first)."""
    chosen: dict[str, Action] = {}
    for a in held:
        if is_annotation(a) and (a.id not in chosen or encode(a) < encode(chosen[a.id])):
            chosen[a.id] = a
    return list(chosen.values())


def fold_step(kept: Replayed, held: list[Action], batch: list[Action], *, made_here: bool = True) -> Replayed | None:
    before, line = kept
    return fold_with_line(
        before,
        held_of(held),
        batch,
        DIRECTORY,
        made_here=made_here,
        waiting=waiting_of(before, held),
        notes=notes_of(held),
        line=line,
    )


def replay_in_batches(batches: list[list[Action]], *, made_here: bool = True) -> int:
    """Fold each batch onto what the last one left, as the store does; returns how many were folded.
    ``made_here`` False: as for a row read back, the digest is checked and no note's bounds taken as read."""
    kept = project_with_line(ERRAND, [], DIRECTORY)
    held: list[Action] = []
    folds = 0
    for batch in batches:
        folded = fold_step(kept, held, batch, made_here=made_here)
        held += batch
        everything = project_with_line(ERRAND, held, DIRECTORY)
        if folded is not None:
            folds += 1
            assert folded.projection.digest == everything.projection.digest
            assert folded.projection == everything.projection
            assert folded.line == everything.line
            kept = folded
        else:
            kept = everything
    return folds


@SETTINGS
@given(story=noted_histories(), data=st.data())
def test_folding_batches_with_notes_step_by_step_equals_projecting_everything(
    story: tuple[list[Action], list[Action]], data: st.DataObject
) -> None:
    main, others = story
    replay_in_batches(batches_of(data.draw, main, others), made_here=data.draw(st.booleans()))


@SETTINGS
@given(escalate=st.booleans(), data=st.data())
def test_an_errand_with_notes_arriving_in_order_is_folded_every_time(escalate: bool, data: st.DataObject) -> None:
    """The case taken is the common one: a main line in order with notes among it (allowed or refused, an
    urging and its answer, a call-back refused until delivery) is folded at every batch, never projected."""
    main = happy_path(escalate=escalate)
    notes = [
        make(Note, node=VILLAGE_ID, id="k00", at=at(data.draw), text="进度说明"),
        make(Note, node=OUTSIDER, id="k01", at=at(data.draw), text="进度说明"),
        make(CallBack, node=TOWN_ID, id="k02", at=at(data.draw), reached=True),
        make(Supervise, node=COUNTY_ID, id="u1", at=at(data.draw), text="请办结", answer_by=ANSWER_BY, to=TOWN_ID),
        make(AnswerUrging, node=TOWN_ID, id="k03", at=at(data.draw), urging="u1", text="已加快办理"),
    ]
    order = list(main)
    for note in data.draw(st.permutations(notes)):
        order.insert(data.draw(st.integers(min_value=0, max_value=len(order))), note)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(order)), max_size=6, unique=True)))
    batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
    assert replay_in_batches(batches) == len(batches)


def test_a_call_back_refused_too_early_is_applied_once_the_errand_is_delivered() -> None:
    main = happy_path(escalate=False)
    early = make(CallBack, node=TOWN_ID, id="k01", at=AT0, reached=True)
    remark = make(Note, node=VILLAGE_ID, id="k00", at=AT0 + 5, text="进度说明", acting_for="A岗")
    kept = project_with_line(ERRAND, [*main[:-1], early, remark], DIRECTORY)
    assert "k01" in kept.projection.rejected and kept.projection.notes == ("k00",)
    assert kept.line != kept.projection.state  # the applied note changed the state: the line is kept apart
    folded = fold_step(kept, [*main[:-1], early, remark], main[-1:])
    assert folded is not None and folded.projection.state is not None
    assert folded.projection.state.stage == DELIVERED
    assert folded.projection.notes == ("k01", "k00") and "k01" not in folded.projection.rejected
    assert folded.projection == project(ERRAND, [*main, early, remark], DIRECTORY)


def test_notes_before_the_registration_wait_and_are_judged_once_it_comes() -> None:
    main = happy_path(escalate=False)
    remark = make(Note, node=VILLAGE_ID, id="k00", at=AT0, text="进度说明")
    kept = project_with_line(ERRAND, [remark], DIRECTORY)
    assert kept.projection.state is None and kept.projection.waiting == ("k00",)
    folded = fold_step(kept, [remark], main[:2])
    assert folded is not None and folded.projection.notes == ("k00",) and folded.projection.waiting == ()
    assert folded.projection == project(ERRAND, [remark, *main[:2]], DIRECTORY)


def test_a_departments_answer_beside_the_holder_stays_before_the_notes() -> None:
    main = joint_path()
    answer = make(SubtaskDone, node=COUNTY_ID, id="d1", base=4, department=CO[0], outcome="agreed")
    remark = make(Note, node=COUNTY_ID, id="a00", at=AT0, text="进度说明")
    held = [*main[:5], answer, remark]
    kept = project_with_line(ERRAND, held, DIRECTORY)
    assert kept.projection.notes == ("d1", "a00")
    later = make(SubtaskDone, node=COUNTY_ID, id="c1", base=5, department=CO[1], outcome="agreed")
    folded = fold_step(kept, held, [later, main[5]])
    assert folded is not None and folded.projection.notes == ("d1", "c1", "a00")
    assert folded.projection == project(ERRAND, [*held, later, main[5]], DIRECTORY)
