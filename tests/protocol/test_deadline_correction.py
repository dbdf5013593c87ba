"""deadline_corrected: only 暂定 deadlines are corrected, by the custodian, naming what the errand holds."""

from __future__ import annotations

from typing import Any

import pytest
from protocol_kit import COUNTY_ID, ERRAND, TOWN_ID, VILLAGE_ID, make

from protocol.actions import Accept, Action, CorrectDeadline, Extend, HandOff, Receive, Register
from protocol.errand import project
from protocol.topology import Directory


def accepted(*, provisional: bool) -> list[Action]:
    return [
        make(Register, node=VILLAGE_ID, id="m00", base=0, materials=("申请书",)),
        make(HandOff, node=VILLAGE_ID, id="m01", base=1, to=TOWN_ID, purpose="submit"),
        make(Receive, node=TOWN_ID, id="m02", base=2, stage_due="2027-01-05", stage_due_provisional=provisional),
        make(Accept, node=TOWN_ID, id="m03", base=3, due="2027-01-05", limit_days=10, due_provisional=provisional),
    ]


def correction(node: str = TOWN_ID, base: int = 4, **fields: Any) -> Action:
    values: dict[str, Any] = {
        "due": "2027-01-06",
        "previous_due": "2027-01-05",
        "stage_due": "2027-01-06",
        "previous_stage_due": "2027-01-05",
        "calendar_version": 1,
        "reason": "按县级工作日历第1版核定",
    }
    return make(CorrectDeadline, node=node, id="m04", base=base, **{**values, **fields})


def test_a_provisional_deadline_is_corrected_and_the_original_stays(directory: Directory) -> None:
    actions = [*accepted(provisional=True), correction()]
    proj = project(ERRAND, actions, directory)
    assert proj.rejected == {} and proj.state is not None
    state = proj.state
    assert (state.due, state.stage_due) == ("2027-01-06", "2027-01-06")
    assert not state.due_provisional and not state.stage_due_provisional and state.calendar_version == 1
    # the provisional date is still in the accept action of the history
    accept = next(a for a in actions if isinstance(a, Accept))
    assert accept.due == "2027-01-05" and accept.due_provisional
    assert proj.main[-1] == "m04"


def test_the_same_date_confirmed_on_the_official_calendar_clears_the_mark(directory: Directory) -> None:
    same = correction(due="2027-01-05", stage_due="2027-01-05")
    state = project(ERRAND, [*accepted(provisional=True), same], directory).state
    assert state is not None and state.due == "2027-01-05" and not state.due_provisional


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"previous_due": "2027-01-04"}, "other deadlines"),
        ({"stage_due": ""}, "replaces each deadline"),
        ({"due": "2027-13-40"}, "is not a day of the calendar"),  # protocol.bounds refuses it first
        ({"calendar_version": -1}, "it must be between 0 and"),  # protocol.bounds refuses it first
        (
            {"due": "2027-01-05", "stage_due": "2027-01-05", "due_provisional": True, "stage_due_provisional": True},
            "changes nothing",
        ),
    ],
)
def test_wrong_corrections_are_refused(directory: Directory, fields: dict[str, Any], reason: str) -> None:
    proj = project(ERRAND, [*accepted(provisional=True), correction(**fields)], directory)
    assert reason in proj.rejected["m04"], proj.rejected


def test_an_official_deadline_cannot_be_corrected(directory: Directory) -> None:
    proj = project(ERRAND, [*accepted(provisional=False), correction()], directory)
    assert "official calendar" in proj.rejected["m04"]


def test_only_the_custodian_corrects(directory: Directory) -> None:
    for node in (VILLAGE_ID, COUNTY_ID):
        proj = project(ERRAND, [*accepted(provisional=True), correction(node=node)], directory)
        assert "custodian" in proj.rejected["m04"], proj.rejected


def test_an_extension_over_a_provisional_year_keeps_the_mark(directory: Directory) -> None:
    extend = make(
        Extend, node=TOWN_ID, id="m04", base=4, days=5, reason="实地核查", due="2027-01-12", due_provisional=True
    )
    state = project(ERRAND, [*accepted(provisional=False), extend], directory).state
    assert state is not None and state.due == "2027-01-12" and state.due_provisional
