"""联办件: each co-handling department closes its own sub-task at its desk at the county.

The lead window (the township holding the errand) is refused with ``subtask_department_only``;
the county department is allowed while the township holds the errand, and its answer takes no
version of the main line, so the lead window and the departments never compete for one; a
received batch carrying a sub-task closed by the lead window is refused the same way.
"""

from __future__ import annotations

import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_kit import COUNTY_ID, ERRAND, OTHER_TOWN, TOWN_ID, VILLAGE_ID, make
from sqlalchemy import select

from protocol.actions import Accept, Action, Assign, Decide, HandOff, Receive, Register, SubtaskDone
from protocol.batch import open_frame, seal
from protocol.errand import ACCEPTED, ErrandState, judge, project
from protocol.hlc import HybridClock
from protocol.matter import Matter
from protocol.menu import allowed_steps
from protocol.refusals import english, refuse
from protocol.topology import Directory
from sanji.auth.roles import APPROVER, DIRECTOR, WINDOW_A, action_refusal
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import schema as t
from sanji.workcalendar import load_calendar
from tests.conftest import NetworkFactory

CO = ("县人社局", "县卫健局")
# The errand is bound to an entry whose departments answer at their own desks (catalogues from 0.4).
_MZ001 = default_catalogue().get("MZ-001")
assert _MZ001 is not None
# The lead window may decide it (rules 2 leave a refusal, as an approval, to the levels that may approve).
ENTRY = msgspec.structs.replace(
    _MZ001, joint_departments=CO, joint_answers_at_departments=True, approve_levels=("town", "county")
)


def joint_errand(entry: Matter | None = ENTRY) -> list[Action]:
    """A village errand, received and accepted at the township as 联办件 with two co-departments."""
    bound = (
        {"matter": entry.code, "matter_entry": entry, "catalogue_version": 1, "missing_confirmed": True}
        if entry
        else {}
    )
    return [
        make(Register, node=VILLAGE_ID, id="m00", base=0, materials=("身份证复印件",), **bound),
        make(HandOff, node=VILLAGE_ID, id="m01", base=1, to=TOWN_ID, purpose="submit"),
        make(Receive, node=TOWN_ID, id="m02", base=2),
        make(Accept, node=TOWN_ID, id="m03", base=3, errand_kind="联办件", co_departments=CO, due="2024-05-10"),
    ]


def accepted(directory: Directory) -> ErrandState:
    proj = project(ERRAND, joint_errand(), directory)
    assert proj.rejected == {} and proj.state is not None and proj.state.stage == ACCEPTED
    return proj.state


def answer(node: str, department: str, id: str, *, base: int = 4, outcome: str = "agreed") -> Action:
    return make(SubtaskDone, node=node, id=id, base=base, department=department, outcome=outcome, note="意见")


def test_the_lead_window_is_refused_with_the_code(directory: Directory) -> None:
    state = accepted(directory)
    assert state.holder == TOWN_ID
    assert judge(state, answer(TOWN_ID, "县人社局", "x"), directory) == refuse(
        "subtask_department_only", department="县人社局"
    )
    # ... and so are the village and another township; the menu offers the step to none of them.
    assert judge(state, answer(VILLAGE_ID, "县人社局", "x"), directory) is not None
    assert judge(state, answer(OTHER_TOWN, "县人社局", "x"), directory) is not None
    assert "subtask_done" not in allowed_steps(state, TOWN_ID, directory)


def test_the_department_at_the_county_is_allowed_beside_the_holder(directory: Directory) -> None:
    state = accepted(directory)
    assert judge(state, answer(COUNTY_ID, "县人社局", "x"), directory) is None
    assert "subtask_done" in allowed_steps(state, COUNTY_ID, directory)
    # Only its open sub-task: a department that is not co-handling has none.
    assert judge(state, answer(COUNTY_ID, "县公安局", "x"), directory) == refuse(
        "no_open_subtask", department="县公安局"
    )

    actions = [*joint_errand(), answer(COUNTY_ID, "县人社局", "d1")]
    proj = project(ERRAND, actions, directory)
    assert proj.rejected == {} and proj.state is not None
    assert proj.state.subtasks == {"县人社局": "agreed", "县卫健局": "pending"}
    assert proj.state.version == 4 and proj.state.holder == TOWN_ID  # no version taken, custody unchanged
    assert "d1" in proj.notes and "d1" not in proj.main


def test_the_township_and_the_departments_writing_at_once_all_stand(directory: Directory) -> None:
    """The township assigns while both departments answer, all based on the same version: nothing is lost."""
    actions = [
        *joint_errand(),
        make(Assign, node=TOWN_ID, id="m04", base=4, window="民政窗口", handler="王芳"),
        answer(COUNTY_ID, "县人社局", "d1", base=4),
        answer(COUNTY_ID, "县卫健局", "a0", base=4, outcome="objected"),  # sorts before the township's id
    ]
    proj = project(ERRAND, actions, directory)
    assert proj.rejected == {}
    assert proj.state is not None and proj.state.window == "民政窗口"
    assert proj.state.subtasks == {"县人社局": "agreed", "县卫健局": "objected"}
    # The objection binds the lead window: no approval, a refusal is still its to give.
    approve = make(Decide, node=TOWN_ID, id="m05", base=5, outcome="approved")
    assert judge(proj.state, approve, directory) == refuse("subtask_objected")
    refuse_it = make(Decide, node=TOWN_ID, id="m05", base=5, outcome="refused", reasons="联办部门不同意")
    assert judge(proj.state, refuse_it, directory) is None


def test_a_sub_task_closed_by_the_lead_window_is_rejected_in_the_set(directory: Directory) -> None:
    actions = [*joint_errand(), answer(TOWN_ID, "县人社局", "m04")]
    proj = project(ERRAND, actions, directory)
    assert proj.rejected == {"m04": str(refuse("subtask_department_only", department="县人社局"))}
    assert proj.state is not None and proj.state.subtasks == {d: "pending" for d in CO}


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    outcomes=st.tuples(st.sampled_from(["agreed", "objected"]), st.sampled_from(["agreed", "objected"])),
    writers=st.tuples(st.sampled_from([COUNTY_ID, TOWN_ID]), st.sampled_from([COUNTY_ID, TOWN_ID])),
    bases=st.tuples(st.integers(min_value=4, max_value=6), st.integers(min_value=4, max_value=6)),
)
def test_answers_commute_and_only_the_countys_count(
    directory: Directory,
    seed: int,
    outcomes: tuple[str, str],
    writers: tuple[str, str],
    bases: tuple[int, int],
) -> None:
    """Whatever the arrival order and whichever version each answer was based on, the state is the same;
    an answer counts exactly when the county wrote it, and the township's main line is never disturbed."""
    actions = [
        *joint_errand(),
        make(Assign, node=TOWN_ID, id="m04", base=4, window="民政窗口", handler="王芳"),
        make(Assign, node=TOWN_ID, id="m05", base=5, window="民政窗口", handler="李娜"),
        *(
            answer(w, d, f"s{i}", base=b, outcome=o)
            for i, (w, d, b, o) in enumerate(zip(writers, CO, bases, outcomes, strict=True))
        ),
    ]
    reference = project(ERRAND, actions, directory)
    shuffled = random.Random(seed).sample(actions, k=len(actions))
    again = project(ERRAND, shuffled, directory)
    assert again == reference
    assert reference.main == ("m00", "m01", "m02", "m03", "m04", "m05")
    assert reference.state is not None and reference.state.handler == "李娜"
    expected = {d: (o if w == COUNTY_ID else "pending") for w, d, o in zip(writers, CO, outcomes, strict=True)}
    assert reference.state.subtasks == expected
    for i, writer in enumerate(writers):
        if writer == TOWN_ID:
            assert f"s{i}" in reference.rejected
        else:
            assert f"s{i}" in reference.notes


# -- a received batch -------------------------------------------------------------------------------


async def test_a_received_batch_with_a_lead_closed_sub_task_is_refused_the_same_way(network: NetworkFactory) -> None:
    """The township signs, in its own stream, a sub-task it closed itself. The county applies the batch
    (good signature, good chain) but the rule refuses the action, with the same code, and keeps it."""
    net = await network(1, 1)
    village_id, town_id, county_id = "T01V01", "T01", "C"
    ctx = {n: NodeContext(s, load_calendar()) for n, s in net.stores.items()}
    await ctx[county_id].publish(default_catalogue())
    blob = await ctx[county_id].catalogue_blob()
    assert blob is not None
    for node, c in ctx.items():
        if node != county_id:
            await c.offer(blob)
    matter = next(m for m in default_catalogue().matters if m.joint_departments)
    village = ErrandService(net.stores[village_id], ctx[village_id])
    town = ErrandService(net.stores[town_id], ctx[town_id])
    materials = [m.name for m in matter.materials]
    errand = (
        await village.register(
            RegisterForm(matter=matter.code, applicant_name="周桂英", materials=materials, actor="代办员")
        )
    ).errand
    await village.act(errand, ActionForm(kind="submit", actor="代办员"))
    await net.sync_all(2)
    await town.act(errand, ActionForm(kind="receive", actor="窗口"))
    department = matter.joint_departments[0]
    await town.act(errand, ActionForm(kind="accept", actor="窗口", errand_kind="联办件", co_departments=[department]))
    await net.sync_all(2)
    before = await net.stores[county_id].errand(errand)
    assert before is not None and before["stage"] == "accepted"

    # At the desk the township is refused with the code ...
    try:
        await town.act(errand, ActionForm(kind="subtask_done", actor="窗口", department=department))
    except Exception as exc:
        assert getattr(exc, "refusal", None) == refuse("subtask_department_only", department=department)
    else:
        raise AssertionError("the lead window closed a co-department's sub-task")

    # ... so it signs one itself and sends it up.
    tip = (0, b"")
    for frame in await net.stores[town_id].frames_for_node(county_id):
        batch = open_frame(frame, net.directory)
        if batch.origin == town_id and batch.scope == village_id and batch.payload.seq > tip[0]:
            tip = (batch.payload.seq, batch.hash)
    forged = SubtaskDone(
        id="lead-closed",
        errand=errand,
        scope=village_id,
        node=town_id,
        actor="窗口",
        role="window_a",
        at=HybridClock().now(),
        base=before["version"],
        department=department,
        outcome="agreed",
    )
    frame = seal(
        key=net.layout.keys[town_id],
        origin=town_id,
        scope=village_id,
        audience=net.directory.audience(town_id, village_id),
        seq=tip[0] + 1,
        prev=tip[1],
        created=forged.at,
        actions=[forged],
    )
    outcome = await net.stores[county_id].receive([frame], peer=town_id)
    assert outcome.applied_batches == 1
    async with net.stores[county_id].db.reader.connect() as conn:
        row = (
            await conn.execute(select(t.actions.c.status, t.actions.c.reason).where(t.actions.c.id == forged.id))
        ).one()
    assert row.status == "rejected"
    assert row.reason == english(refuse("subtask_department_only", department=department))
    state = (await net.stores[county_id].errand_states([errand]))[errand]
    assert state["subtasks"] == {department: "pending"}


def test_at_the_county_the_department_approver_answers() -> None:
    assert action_refusal(APPROVER, "subtask_done", "county") == ""
    assert "department approver" in action_refusal(WINDOW_A, "subtask_done", "county")
    assert "department approver" in action_refusal(DIRECTOR, "subtask_done", "county")


def test_an_errand_bound_before_departments_answered_keeps_the_lead_windows_rule(directory: Directory) -> None:
    """Errands in flight at an upgrade finish as they began: bound to an entry without
    ``joint_answers_at_departments`` (or to none), the lead window ticks the sub-tasks off and a
    county department is refused as not holding the errand."""
    for entry in (None, msgspec.structs.replace(ENTRY, joint_answers_at_departments=False)):
        proj = project(ERRAND, joint_errand(entry), directory)
        assert proj.state is not None and proj.state.stage == ACCEPTED, proj.rejected
        assert judge(proj.state, answer(TOWN_ID, CO[0], "x"), directory) is None
        county = judge(proj.state, answer(COUNTY_ID, CO[0], "y"), directory)
        assert county is not None and county.code == "not_custodian"
        closed = project(
            ERRAND, [*joint_errand(entry), answer(TOWN_ID, CO[0], "x"), answer(TOWN_ID, CO[1], "z", base=5)], directory
        )
        assert closed.rejected == {} and closed.state is not None
        assert closed.state.subtasks == {CO[0]: "agreed", CO[1]: "agreed"}
