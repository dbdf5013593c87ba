"""Errand rules generation 3: the desk a walk-in was registered at gives the one-time notice (一次性告知).

An applicant who walks in to the township's window missing a main material (主件) is told once what to bring
(DOMAIN.md, "The life of an errand"), the clock stopped until it arrives, then accepted at the same desk. Under
generations 0 to 2 the notice came only once an errand was received from a village, and those entries keep that
verdict: a node judging a held batch by either generation reaches the one the errand's entry names.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import msgspec
import pytest

from protocol.actions import Accept, Action, Extend, HandOff, MaterialsReceived, Receive, Register, RequestSupplement
from protocol.binding import acceptance_refusal, held_materials, material_steps
from protocol.deadlines import compute_due
from protocol.errand import ErrandState, judge, project, walk_in_notice
from protocol.hlc import wall_seconds
from protocol.matter import Matter
from protocol.menu import allowed_steps
from protocol.refusals import Refusal
from protocol.stages import ACCEPTED, REGISTERED, SUPPLEMENT
from sanji.catalogue import default_catalogue
from sanji.context import due_from_acceptance
from sanji.layout import county_layout
from sanji.workcalendar import load_calendar
from tests.protocol.protocol_kit import AT0, TOWN_ID, VILLAGE_ID, make

DIRECTORY = county_layout(2, 2).directory
CALENDAR = load_calendar()
DAY = (24 * 3600 * 1000) << 16  # a day on the hybrid clock
_MZ003 = default_catalogue().get("MZ-003")  # 临时救助: accepted at the village station or the township
assert _MZ003 is not None
GENERATION_3 = msgspec.structs.replace(_MZ003, rules=3)
GENERATION_2 = msgspec.structs.replace(_MZ003, rules=2)
TOWN_ONLY = msgspec.structs.replace(GENERATION_3, accept_levels=("town",))
COUNTY_LEVEL = msgspec.structs.replace(GENERATION_3, accept_levels=("county",))
BROUGHT = ("申请书", "身份证复印件")  # 户口簿复印件 (主件) left at home
MISSING = ("户口簿复印件", "困难情况证明材料")


def walk_in(entry: Matter, *, at: str = TOWN_ID) -> Register:
    action = make(
        Register,
        node=at,
        scope=at,
        id="r0",
        matter=entry.code,
        matter_entry=entry,
        catalogue_version=1,
        materials=BROUGHT,
        in_person=True,
        missing_confirmed=True,
    )
    assert isinstance(action, Register)
    return action


def state_of(actions: list[Action]) -> ErrandState:
    projection = project("E1", actions, DIRECTORY)
    assert projection.rejected == {}, projection.rejected
    assert projection.state is not None
    return projection.state


def notice(state: ErrandState, *, node: str = TOWN_ID, at: int | None = None) -> RequestSupplement:
    action = make(RequestSupplement, node=node, scope=state.scope, id="n1", base=state.version, items=MISSING, at=at)
    assert isinstance(action, RequestSupplement)
    return action


def code_of(refusal: Refusal | None) -> str:
    return refusal.code if refusal is not None else ""


def test_generation_3_lets_the_walk_in_desk_give_the_notice_and_generation_2_still_refuses_it() -> None:
    for entry, code in ((GENERATION_3, ""), (GENERATION_2, "handling_desk_only")):
        state = state_of([walk_in(entry)])
        assert state.stage == REGISTERED
        assert code_of(judge(state, notice(state), DIRECTORY)) == code, entry.rules
    # Unbound errands (registered before the node held a catalogue) keep the oldest rules: generation 3 binds.
    unbound = state_of([msgspec.structs.replace(walk_in(GENERATION_3), matter_entry=None, catalogue_version=0)])
    assert code_of(judge(unbound, notice(unbound), DIRECTORY)) == "handling_desk_only"


def test_the_rest_of_the_notice_rule_still_holds_for_a_walk_in() -> None:
    state = state_of([walk_in(GENERATION_3)])
    empty = msgspec.structs.replace(notice(state), items=())
    assert code_of(judge(state, empty, DIRECTORY)) == "notice_items_missing"
    asked = state_of([walk_in(GENERATION_3), notice(state)])
    back = make(MaterialsReceived, node=TOWN_ID, scope=TOWN_ID, id="m1", base=asked.version, items=MISSING)
    again = state_of([walk_in(GENERATION_3), notice(state), back])
    assert again.stage == REGISTERED
    second = msgspec.structs.replace(notice(again), id="n2")
    assert code_of(judge(again, second, DIRECTORY)) == "notice_already_issued"  # once: ALL the missing ones


def test_no_extension_while_a_notice_before_acceptance_waits_under_generation_3_only() -> None:
    """No deadline runs before 受理, so a notice given before it leaves nothing to extend (rules 3); generation 2
    allowed the extension and keeps that verdict."""

    def extension(state: ErrandState) -> Extend:
        action = make(
            Extend,
            node=TOWN_ID,
            scope=state.scope,
            id="x1",
            base=state.version,
            days=5,
            reason="等待补正",
            due="2030-01-01",
            role="分管领导",
        )
        assert isinstance(action, Extend)
        return action

    for entry, code in ((GENERATION_3, "extend_stage"), (GENERATION_2, "")):
        town_only = msgspec.structs.replace(entry, accept_levels=("town",))
        registered = walk_in(town_only, at=VILLAGE_ID)
        submit = make(HandOff, node=VILLAGE_ID, id="h1", base=1, to=TOWN_ID, purpose="submit")
        received = [registered, submit, make(Receive, node=TOWN_ID, id="h2", base=2)]
        asked = state_of([*received, notice(state_of(received))])
        assert asked.stage == SUPPLEMENT
        assert code_of(judge(asked, extension(asked), DIRECTORY)) == code, entry.rules
    walked_in = state_of([walk_in(GENERATION_3)])
    asked = state_of([walk_in(GENERATION_3), notice(walked_in)])
    assert code_of(judge(asked, extension(asked), DIRECTORY)) == "extend_stage"


def test_a_village_registered_errand_gets_the_townships_notice_only_once_received() -> None:
    registered = walk_in(TOWN_ONLY, at=VILLAGE_ID)
    state = state_of([registered])
    # the village station may not accept this matter: no notice there; the township does not hold the errand yet
    assert code_of(judge(state, notice(state, node=VILLAGE_ID), DIRECTORY)) == "handling_desk_only"
    assert code_of(judge(state, notice(state), DIRECTORY)) == "not_custodian"
    submit = make(HandOff, node=VILLAGE_ID, id="h1", base=1, to=TOWN_ID, purpose="submit")
    received = state_of([registered, submit, make(Receive, node=TOWN_ID, id="h2", base=2)])
    assert code_of(judge(received, notice(received), DIRECTORY)) == ""


def test_a_village_station_that_may_accept_the_matter_is_its_own_walk_in_desk() -> None:
    """The same level rule as the acceptance: 临时救助 may be accepted at the village station (小事不出村)."""
    state = state_of([walk_in(GENERATION_3, at=VILLAGE_ID)])
    assert code_of(judge(state, notice(state, node=VILLAGE_ID), DIRECTORY)) == ""
    older = state_of([walk_in(GENERATION_2, at=VILLAGE_ID)])
    assert code_of(judge(older, notice(older, node=VILLAGE_ID), DIRECTORY)) == "handling_desk_only"


def test_a_county_level_matter_registered_at_a_township_is_no_walk_in_desk_for_it() -> None:
    state = state_of([walk_in(COUNTY_LEVEL)])
    assert code_of(judge(state, notice(state), DIRECTORY)) == "handling_desk_only"
    accept = make(Accept, node=TOWN_ID, scope=TOWN_ID, id="a1", base=1, errand_kind="承诺件", due="2024-05-10")
    assert code_of(judge(state, accept, DIRECTORY)) == "accept_level"  # the same level rule, the same answer


def test_the_menu_offers_the_walk_in_desk_the_notice_under_generation_3_only() -> None:
    for entry, offered in ((GENERATION_3, True), (GENERATION_2, False), (COUNTY_LEVEL, False)):
        actions: list[Action] = [walk_in(entry)]
        state = state_of(actions)
        held = held_materials(entry, material_steps(actions))
        steps = allowed_steps(state, TOWN_ID, DIRECTORY, materials=held)
        assert ("request_supplement" in steps) == offered, (entry.rules, entry.accept_levels, steps)
        assert "accept" not in steps  # a main material missing: not while it is (acceptance_refusal)


def test_the_printed_notice_asks_the_rule_whether_it_was_the_walk_in_desks() -> None:
    """``walk_in_notice``: the paper says "accepted once supplied" exactly for a notice the walk-in rule allowed, at
    any later point of the errand; a notice on an errand received from a village is a stopped clock."""
    walked = [walk_in(GENERATION_3)]
    told = notice(state_of(walked))
    back = make(MaterialsReceived, node=TOWN_ID, scope=TOWN_ID, id="m1", base=2, items=MISSING)
    accept = make(Accept, node=TOWN_ID, scope=TOWN_ID, id="a1", base=3, errand_kind="即办件")
    later = [*walked, told, back, accept]
    assert state_of(later).stage == ACCEPTED
    for held in ([*walked, told], later, list(reversed(later))):  # whatever followed, in whatever order it is read
        assert walk_in_notice("E1", held, told, DIRECTORY)
    registered = walk_in(TOWN_ONLY, at=VILLAGE_ID)
    submit = make(HandOff, node=VILLAGE_ID, id="h1", base=1, to=TOWN_ID, purpose="submit")
    received = [registered, submit, make(Receive, node=TOWN_ID, id="h2", base=2)]
    at_town = notice(state_of(received))
    assert state_of([*received, at_town]).resume_stage == "received"
    assert not walk_in_notice("E1", [*received, at_town], at_town, DIRECTORY)
    assert not walk_in_notice("E1", later, back, DIRECTORY)  # not a notice at all
    # The village station that accepted first, then asked: the clock runs, so the notice stops it.
    village = [walk_in(GENERATION_3, at=VILLAGE_ID)]
    accepted = make(Accept, node=VILLAGE_ID, scope=VILLAGE_ID, id="a1", base=1, errand_kind="承诺件", due="2030-01-01")
    after = notice(state_of([*village, accepted]), node=VILLAGE_ID)
    assert state_of([*village, accepted, after]).stage == SUPPLEMENT
    assert not walk_in_notice("E1", [*village, accepted, after], after, DIRECTORY)


def _day(hlc: int) -> date:
    return datetime.fromtimestamp(wall_seconds(hlc), UTC).date()


@pytest.mark.parametrize("pause_days", [0, 3])
def test_a_walk_in_is_told_once_then_accepted_when_the_materials_arrive(pause_days: int) -> None:
    """Walk-in → 一次性告知 → 材料补齐 → 受理, at one desk. The pause is recorded (``pauses``) and stops no
    whole-errand clock: that clock starts at the acceptance (受理), so the deadline counts from that day."""
    actions: list[Action] = [walk_in(GENERATION_3)]
    registered = state_of(actions)
    asked_at = AT0 + 1000
    actions.append(notice(registered, at=asked_at))
    asked = state_of(actions)
    assert (asked.stage, asked.resume_stage, asked.supplement_items) == (SUPPLEMENT, REGISTERED, MISSING)
    assert asked.paused_since == asked_at and asked.notices_by == (TOWN_ID,)
    in_hand = held_materials(GENERATION_3, material_steps(actions))
    assert in_hand.missing_main == ("户口簿复印件",)
    assert acceptance_refusal(GENERATION_3, in_hand) is not None

    arrived_at = asked_at + pause_days * DAY + 2000
    back = make(
        MaterialsReceived, node=TOWN_ID, scope=TOWN_ID, id="m1", base=asked.version, items=MISSING, at=arrived_at
    )
    actions.append(back)
    resumed = state_of(actions)
    assert (resumed.stage, resumed.supplement_items, resumed.resume_stage) == (REGISTERED, (), "")
    assert resumed.paused_since == 0 and resumed.pauses == ((asked_at, arrived_at),)
    complete = held_materials(GENERATION_3, material_steps(actions))
    assert complete.missing_main == () and complete.missing_secondary == ()
    assert acceptance_refusal(GENERATION_3, complete) is None  # 受理 may now be taken
    assert "accept" in allowed_steps(resumed, TOWN_ID, DIRECTORY, materials=complete)

    accepted_at = arrived_at + 1000
    accepted_on = _day(accepted_at)
    due = compute_due(accepted_on, GENERATION_3.committed_limit, GENERATION_3.limit_unit, calendar=CALENDAR)
    accept = make(
        Accept,
        node=TOWN_ID,
        scope=TOWN_ID,
        id="a1",
        base=resumed.version,
        at=accepted_at,
        errand_kind="承诺件",
        due=due.isoformat(),
        limit_days=GENERATION_3.committed_limit,
        limit_unit=GENERATION_3.limit_unit,
    )
    assert isinstance(accept, Accept)
    actions.append(accept)
    done = state_of(actions)
    assert (done.stage, done.responsible, done.due) == (ACCEPTED, TOWN_ID, due.isoformat())
    # The desk's count again from what the errand recorded: the pause before the acceptance adds no day.
    assert due_from_acceptance(accept, done.pauses, 0, calendar=CALENDAR, date_of=_day) == due.isoformat()
