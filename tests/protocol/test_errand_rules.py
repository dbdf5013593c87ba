"""The errand state machine: custody, stages, conflicts and refusals, through project() and judge()."""

from __future__ import annotations

import msgspec
import pytest
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
    happy_steps,
    make,
    note,
)

from protocol.actions import Accept, Action, Decide, Deliver, HandOff, Note, Receive, Register, is_main_line, kind_of
from protocol.errand import STAGES, ErrandState, Projection, judge, project
from protocol.topology import Directory


def state_after(actions: list[Action], directory: Directory) -> ErrandState:
    proj = project(ERRAND, actions, directory)
    assert proj.rejected == {}, proj.rejected
    assert proj.state is not None
    return proj.state


def rejected_only(proj: Projection, action_id: str, *fragments: str) -> bool:
    """``action_id`` is the only rejected action, and its reason mentions every fragment."""
    assert set(proj.rejected) == {action_id}, proj.rejected
    reason = proj.rejected[action_id]
    assert all(f in reason for f in fragments), reason
    return True


def refusal(actions: list[Action], extra: Action, directory: Directory) -> str:
    """Project ``actions`` plus ``extra``; ``extra`` must be rejected and the rest unchanged."""
    before = project(ERRAND, actions, directory)
    after = project(ERRAND, [*actions, extra], directory)
    assert extra.id in after.rejected, f"{kind_of(extra)} by {extra.node} was not rejected"
    assert after.main == before.main
    assert after.state == before.state
    assert after.digest != before.digest  # the rejection itself is recorded
    return after.rejected[extra.id]


# --- the whole life of an errand ----------------------------------------------------------------


@pytest.mark.parametrize("escalate", [False, True], ids=["town-decides", "county-decides"])
def test_happy_path_step_by_step(directory: Directory, escalate: bool) -> None:
    steps = happy_steps(escalate=escalate)
    actions = happy_path(escalate=escalate)
    holder = VILLAGE_ID
    for i, (_, node, fields, stage) in enumerate(steps):
        proj = project(ERRAND, actions[: i + 1], directory)
        assert proj.rejected == {} and proj.waiting == ()
        assert proj.main == tuple(a.id for a in actions[: i + 1])
        state = proj.state
        assert state is not None
        assert state.stage == stage
        assert state.version == i + 1
        if isinstance(actions[i], HandOff):
            assert state.pending_to == fields["to"]
            assert state.holder == holder  # custody stays until the receiver acknowledges
        else:
            assert state.pending_to is None
            holder = node
            assert state.holder == holder
        assert state.updated_at == actions[i].at


def test_happy_path_through_the_county_records_what_happened(directory: Directory) -> None:
    actions = happy_path(escalate=True)
    proj = project(ERRAND, actions, directory)
    state = proj.state
    assert state is not None
    expected = {
        "id": ERRAND,
        "scope": VILLAGE_ID,
        "matter": "MZ-001 最低生活保障(低保)申请",
        "applicant_name": applicant().name,
        "stage": "delivered",
        "holder": VILLAGE_ID,
        "pending_to": None,
        "version": len(actions),
        "errand_kind": "上报件",
        "department": DEPARTMENT,
        "outcome": "approved",
        "registered_at": actions[0].at,
        "updated_at": actions[-1].at,
    }
    assert {name: getattr(state, name) for name in expected} == expected
    assert all(is_main_line(a) for a in actions)


def test_town_decided_errand_records_the_outcome(directory: Directory) -> None:
    state = state_after(happy_path(escalate=False), directory)
    assert (state.stage, state.outcome, state.errand_kind, state.department) == ("delivered", "refused", "承诺件", "")


def test_walk_in_at_the_township(directory: Directory) -> None:
    """Registered at the township window itself: accepted there directly, results delivered there."""
    scope = TOWN_ID
    story: list[tuple[type[Action], str, dict]] = [
        (Register, TOWN_ID, {}),
        (Accept, TOWN_ID, {"errand_kind": "即办件"}),
        (Decide, TOWN_ID, {"outcome": "approved"}),
        (Deliver, TOWN_ID, {"confirmed_by": "王伟"}),
    ]
    actions = [make(c, node=n, id=f"w{i}", base=i, scope=scope, **f) for i, (c, n, f) in enumerate(story)]
    state = state_after(actions, directory)
    assert (state.stage, state.holder, state.scope) == ("delivered", TOWN_ID, TOWN_ID)
    # No hand-off down: the township is where the applicant asked.
    result = make(HandOff, node=TOWN_ID, id="w9", base=3, scope=scope, to=VILLAGE_ID, purpose="result")
    assert "goes down towards" in refusal(actions[:3], result, directory)


def test_notes_commute_and_never_move_the_main_line(directory: Directory) -> None:
    actions = happy_path(escalate=False)[:3]
    notes = [note(COUNTY_ID, "k2", at=AT0 + 5), note(VILLAGE_ID, "k1", at=AT0 + 5), note(TOWN_ID, "k0", at=AT0 + 9)]
    proj = project(ERRAND, [*notes, *actions], directory)
    assert proj.main == tuple(a.id for a in actions)
    assert proj.notes == ("k1", "k2", "k0")  # by time, then id
    assert proj.state is not None and proj.state.version == 3
    assert proj.state.updated_at == max(a.at for a in actions)


def test_note_before_registration_waits(directory: Directory) -> None:
    proj = project(ERRAND, [note(TOWN_ID, "k1")], directory)
    assert proj.state is None and proj.waiting == ("k1",) and proj.rejected == {}
    proj = project(ERRAND, [note(TOWN_ID, "k1"), *happy_path(escalate=False)[:1]], directory)
    assert proj.notes == ("k1",) and proj.waiting == ()


# --- custody --------------------------------------------------------------------------------------


def test_only_the_custodian_advances_the_main_line(directory: Directory) -> None:
    received = happy_path(escalate=False)[:3]  # the township holds it
    by_village = make(Accept, node=VILLAGE_ID, id="x1", base=3)
    assert "not the custodian" in refusal(received, by_village, directory)
    by_county = make(Decide, node=COUNTY_ID, id="x1", base=3, outcome="approved")
    assert "not the custodian" in refusal(received, by_county, directory)
    hand_back = make(HandOff, node=VILLAGE_ID, id="x1", base=3, to=TOWN_ID, purpose="submit")
    assert "not the custodian" in refusal(received, hand_back, directory)


def test_in_transit_only_the_receipt_of_the_target_may_follow(directory: Directory) -> None:
    submitted = happy_path(escalate=False)[:2]  # on its way to the township
    on_the_way = "on its way to T01"
    assert on_the_way in refusal(submitted, make(Accept, node=TOWN_ID, id="x1", base=2), directory)
    again = make(HandOff, node=VILLAGE_ID, id="x1", base=2, to=TOWN_ID, purpose="submit")
    assert on_the_way in refusal(submitted, again, directory)
    deliver = make(Deliver, node=VILLAGE_ID, id="x1", base=2, confirmed_by="王伟")
    assert on_the_way in refusal(submitted, deliver, directory)
    wrong_receiver = make(Receive, node=COUNTY_ID, id="x1", base=2)
    reason = refusal(submitted, wrong_receiver, directory)
    assert "nothing is being handed to C" in reason and "on its way to T01" in reason
    sender_receives = make(Receive, node=VILLAGE_ID, id="x1", base=2)
    assert "nothing is being handed to T01V01" in refusal(submitted, sender_receives, directory)
    # Notes are fine in transit, and the target's receipt is accepted.
    ok = project(ERRAND, [*submitted, note(VILLAGE_ID, "k1"), make(Receive, node=TOWN_ID, id="x1", base=2)], directory)
    assert ok.rejected == {} and ok.main[-1] == "x1" and ok.notes == ("k1",)


def test_receive_with_nothing_in_transit_is_refused(directory: Directory) -> None:
    accepted = happy_path(escalate=False)[:4]
    assert "nothing is being handed to T01" in refusal(
        accepted, make(Receive, node=TOWN_ID, id="x1", base=4), directory
    )


# --- registration -------------------------------------------------------------------------------


def test_register_by_a_node_other_than_the_scope_is_refused(directory: Directory) -> None:
    proj = project(ERRAND, [make(Register, node=TOWN_ID, id="r1", scope=VILLAGE_ID)], directory)
    assert proj.state is None and proj.main == ()
    assert rejected_only(proj, "r1", "can only be registered by T01V01")


def test_register_at_the_county_is_refused(directory: Directory) -> None:
    proj = project(ERRAND, [make(Register, node=COUNTY_ID, id="r1", scope=COUNTY_ID)], directory)
    assert rejected_only(proj, "r1", "registered at a village station or a township window")


def test_register_by_a_node_outside_the_directory_is_refused_not_raised(directory: Directory) -> None:
    proj = project(ERRAND, [make(Register, node=OUTSIDER, id="r1", scope=OUTSIDER)], directory)
    assert proj.state is None and "not in the directory" in proj.rejected["r1"]


def test_second_registration_is_refused(directory: Directory) -> None:
    first = happy_path(escalate=False)[:1]
    state = state_after(first, directory)
    again = make(Register, node=VILLAGE_ID, id="r2", base=1)
    assert "already registered" in str(judge(state, again, directory))
    assert "already registered" in refusal(first, again, directory)


def test_nothing_before_registration(directory: Directory) -> None:
    early = make(HandOff, node=VILLAGE_ID, id="h1", base=0, to=TOWN_ID, purpose="submit")
    assert "not registered yet" in str(judge(None, early, directory))
    proj = project(ERRAND, [early], directory)
    assert rejected_only(proj, "h1", "not registered yet")


# --- stages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upto", "action", "reason"),
    [
        (
            3,
            make(Decide, node=TOWN_ID, id="x1", base=3, outcome="approved"),
            "cannot be decided here at stage received",
        ),
        (1, make(Decide, node=VILLAGE_ID, id="x1", base=1, outcome="approved"), "stage registered"),
        (5, make(Decide, node=TOWN_ID, id="x1", base=5, outcome="refused"), "stage decided"),
        (1, make(Accept, node=VILLAGE_ID, id="x1", base=1), "at the township"),
        (4, make(Accept, node=TOWN_ID, id="x1", base=4), "only a received errand can be accepted"),
        (3, make(Deliver, node=TOWN_ID, id="x1", base=3, confirmed_by="王伟"), "no result to deliver"),
        (3, make(HandOff, node=TOWN_ID, id="x1", base=3, to=VILLAGE_ID, purpose="result"), "no result to send"),
        (
            3,
            make(HandOff, node=TOWN_ID, id="x1", base=3, to=COUNTY_ID, purpose="escalate", department=DEPARTMENT),
            "only a township that accepted",
        ),
        (4, make(HandOff, node=TOWN_ID, id="x1", base=4, to=COUNTY_ID, purpose="escalate"), "must name the county"),
        (
            4,
            make(HandOff, node=TOWN_ID, id="x1", base=4, to=VILLAGE_ID, purpose="escalate", department=DEPARTMENT),
            "goes to the parent",
        ),
        (1, make(HandOff, node=VILLAGE_ID, id="x1", base=1, to=COUNTY_ID, purpose="submit"), "parent node T01"),
        (4, make(HandOff, node=TOWN_ID, id="x1", base=4, to=COUNTY_ID, purpose="submit"), "only a registered"),
        (5, make(HandOff, node=TOWN_ID, id="x1", base=5, to=SISTER_VILLAGE, purpose="result"), "next to T01V01"),
        (5, make(Deliver, node=TOWN_ID, id="x1", base=5, confirmed_by="王伟"), "delivered by T01V01"),
        (7, make(Deliver, node=VILLAGE_ID, id="x1", base=7, confirmed_by="  "), "applicant's confirmation"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_actions_at_the_wrong_stage_are_refused(directory: Directory, upto: int, action: Action, reason: str) -> None:
    history = happy_path(escalate=False)[:upto]
    assert reason in refusal(history, action, directory)


def test_county_decides_only_at_the_department(directory: Directory) -> None:
    at_department = happy_path(escalate=True)[:6]
    state = state_after(at_department, directory)
    assert state.stage == "at_department" and state.holder == COUNTY_ID
    decide = make(Decide, node=COUNTY_ID, id="x1", base=6, outcome="refused")
    assert judge(state, decide, directory) is None
    accept = make(Accept, node=COUNTY_ID, id="x1", base=6)
    assert "at the township" in str(judge(state, accept, directory))


def test_result_held_at_the_township_on_the_way_down_goes_on_to_the_village(directory: Directory) -> None:
    actions = happy_path(escalate=True)
    state = state_after(actions[:9], directory)
    assert (state.stage, state.holder) == ("result_ready", TOWN_ID)
    # The township may not deliver an errand of the village itself.
    deliver = make(Deliver, node=TOWN_ID, id="x1", base=9, confirmed_by="王伟")
    assert "delivered by T01V01" in str(judge(state, deliver, directory))


# --- conflicts -----------------------------------------------------------------------------------


def test_competing_actions_smallest_id_wins(directory: Directory) -> None:
    accepted = happy_path(escalate=True)[:4]
    decide = make(Decide, node=TOWN_ID, id="b-decide", base=4, outcome="approved")
    escalate = make(
        HandOff, node=TOWN_ID, id="a-escalate", base=4, to=COUNTY_ID, purpose="escalate", department=DEPARTMENT
    )
    proj = project(ERRAND, [*accepted, decide, escalate], directory)
    assert proj.main[-1] == "a-escalate"
    assert proj.state is not None and proj.state.stage == "escalated"
    assert rejected_only(proj, "b-decide", "conflicts with a-escalate", "version 4")
    # Rename them and the other wins: the id decides, not arrival order or kind.
    decide = msgspec.structs.replace(decide, id="a-decide")
    escalate = msgspec.structs.replace(escalate, id="b-escalate")
    proj = project(ERRAND, [*accepted, escalate, decide], directory)
    assert proj.main[-1] == "a-decide"
    assert proj.state is not None and proj.state.stage == "decided"
    assert rejected_only(proj, "b-escalate", "conflicts with a-decide", "version 4")


def test_an_invalid_smaller_id_does_not_block_a_valid_one(directory: Directory) -> None:
    accepted = happy_path(escalate=False)[:4]
    invalid = make(Decide, node=VILLAGE_ID, id="a0", base=4, outcome="approved")
    valid = make(Decide, node=TOWN_ID, id="a1", base=4, outcome="approved")
    proj = project(ERRAND, [*accepted, valid, invalid], directory)
    assert proj.main[-1] == "a1"
    assert "not the custodian" in proj.rejected["a0"]


def test_the_loser_of_a_conflict_takes_its_successors_with_it(directory: Directory) -> None:
    accepted = happy_path(escalate=True)[:4]
    winner = make(Decide, node=TOWN_ID, id="a", base=4, outcome="refused")
    loser = make(HandOff, node=TOWN_ID, id="b", base=4, to=COUNTY_ID, purpose="escalate", department=DEPARTMENT)
    after_loser = make(Receive, node=COUNTY_ID, id="c", base=5)
    proj = project(ERRAND, [*accepted, winner, loser, after_loser], directory)
    assert proj.main[-1] == "a"
    assert set(proj.rejected) == {"b", "c"}
    assert "nothing is being handed to C" in proj.rejected["c"]


def test_identical_replays_count_once(directory: Directory) -> None:
    actions = happy_path(escalate=False)
    once = project(ERRAND, actions, directory)
    assert project(ERRAND, actions + actions[::-1], directory) == once


def test_same_id_with_different_content_gives_one_answer_whatever_the_order(directory: Directory) -> None:
    actions = happy_path(escalate=False)
    decide = actions[4]
    assert isinstance(decide, Decide) and decide.outcome == "refused"
    # A node restored from a backup wrote "m04" again, this time approving.
    twin = msgspec.structs.replace(decide, outcome="approved")
    one = project(ERRAND, [*actions, twin], directory)
    other = project(ERRAND, [twin, *actions], directory)
    assert one == other
    assert one.main == tuple(a.id for a in actions)
    assert one.state is not None and one.state.outcome in ("approved", "refused")


# --- foreign and stale ---------------------------------------------------------------------------


def test_nodes_off_the_path_are_refused(directory: Directory) -> None:
    history = happy_path(escalate=False)[:3]
    for node in (SISTER_VILLAGE, OTHER_TOWN, FAR_VILLAGE, OUTSIDER):
        assert f"node {node} is not on the path" in refusal(history, note(node, "k1"), directory)
    foreign_receive = make(Receive, node=OTHER_TOWN, id="x1", base=3)
    assert "not on the path" in refusal(history, foreign_receive, directory)


def test_action_naming_another_scope_is_refused(directory: Directory) -> None:
    history = happy_path(escalate=False)[:3]
    wrong = note(TOWN_ID, "k1", scope=SISTER_VILLAGE)
    reason = refusal(history, wrong, directory)
    assert "scope T01V02" in reason and "belongs to T01V01" in reason
    wrong_main = make(Accept, node=TOWN_ID, id="x1", base=3, scope=SISTER_VILLAGE)
    assert "belongs to T01V01" in refusal(history, wrong_main, directory)


def test_stale_action_based_on_an_old_version_is_refused(directory: Directory) -> None:
    history = happy_path(escalate=False)  # complete: version 8
    stale = make(Accept, node=TOWN_ID, id="zz-stale", base=3)  # the township accepted twice, offline
    proj = project(ERRAND, [*history, stale], directory)
    assert rejected_only(proj, "zz-stale", "conflicts with m03", "version 3")
    assert proj.main == tuple(a.id for a in history)


def test_action_based_on_a_version_not_reached_yet_waits(directory: Directory) -> None:
    history = happy_path(escalate=False)[:3]
    early = happy_path(escalate=False)[5]  # the township's result hand-off, before its decision is here
    proj = project(ERRAND, [*history, early], directory)
    assert proj.waiting == (early.id,) and proj.rejected == {}
    assert proj.main == tuple(a.id for a in history)
    full = project(ERRAND, happy_path(escalate=False), directory)
    assert full.waiting == () and early.id in full.main


def test_negative_base_is_refused(directory: Directory) -> None:
    history = happy_path(escalate=False)[:2]
    odd = make(Receive, node=TOWN_ID, id="x1", base=-1)
    assert "based on version -1" in refusal(history, odd, directory)


def test_actions_of_another_errand_are_a_caller_error(directory: Directory) -> None:
    other = make(Note, node=VILLAGE_ID, id="k1", errand="E2", text="x")
    with pytest.raises(ValueError, match="belongs to errand E2"):
        project(ERRAND, [*happy_path(escalate=False)[:1], other], directory)


def test_projection_is_a_plain_value(directory: Directory) -> None:
    proj = project(ERRAND, happy_path(escalate=False), directory)
    assert isinstance(proj, Projection)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(proj), type=Projection) == proj
    assert len(proj.digest) == 64 and proj.state is not None and proj.state.stage in STAGES
    assert kind_of(note(VILLAGE_ID, "k")) == "note" and not is_main_line(note(VILLAGE_ID, "k"))
    assert isinstance(note(VILLAGE_ID, "k"), Note)
