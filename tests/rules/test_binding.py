"""The catalogue binds: judge() decides a bound errand by the entry its own actions carry."""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from protocol.actions import Accept, Action, Decide, Extend, HandOff, Receive, Register
from protocol.binding import SYSTEM_ACTOR
from protocol.errand import ErrandState, judge, project
from protocol.menu import allowed_outcomes, allowed_steps
from protocol.refusals import Refusal
from sanji.catalogue import default_catalogue
from sanji.layout import county_layout
from tests.protocol.protocol_kit import AT0, COUNTY_ID, TOWN_ID, VILLAGE_ID, make

CATALOGUE = default_catalogue()
DIRECTORY = county_layout(2, 2).directory


def entry(code: str) -> Any:
    found = CATALOGUE.get(code)
    assert found is not None
    return found


def bound(code: str, **fields: Any) -> Register:
    matter = entry(code)
    fields = {"matter": code, "materials": matter.main_materials, "matter_entry": matter, **fields}
    action = make(Register, node=VILLAGE_ID, id="r0", catalogue_version=CATALOGUE.version, **fields)
    assert isinstance(action, Register)
    return action


def run(actions: list[Action]) -> ErrandState:
    projection = project("E1", actions, DIRECTORY)
    assert projection.rejected == {}, projection.rejected
    assert projection.state is not None
    return projection.state


def code_of(state: ErrandState | None, action: Action) -> str:
    refusal = judge(state, action, DIRECTORY)
    return refusal.code if isinstance(refusal, Refusal) else ""


def at_town(code: str) -> ErrandState:
    return run([bound(code), *at_town_steps()])


def at_town_steps() -> list[Action]:
    """Submitted, received and accepted (承诺件, its deadline named) at the township."""
    return [
        make(HandOff, node=VILLAGE_ID, id="h1", base=1, to=TOWN_ID, purpose="submit"),
        make(Receive, node=TOWN_ID, id="h2", base=2),
        make(Accept, node=TOWN_ID, id="h3", base=3, window="综合窗口", due="2024-05-10"),
    ]


def test_registration_rules_come_from_the_entry() -> None:
    assert code_of(None, bound("RS-004")) == "in_person_only"
    assert code_of(None, bound("DJ-001")) == "proxy_not_allowed"
    assert code_of(None, bound("RS-004", in_person=True)) == ""
    assert code_of(None, bound("MZ-001", mandate=False)) == "mandate_missing"
    assert code_of(None, bound("MZ-001", materials=())) == "materials_missing"
    assert code_of(None, bound("MZ-001", materials=(), missing_confirmed=True)) == ""
    assert code_of(None, bound("MZ-001", matter="MZ-002")) == "matter_mismatch"


def test_a_township_cannot_approve_a_county_matter_but_the_county_can() -> None:
    state = at_town("MZ-001")  # 低保: approve_levels = county
    approve = make(Decide, node=TOWN_ID, id="d", base=state.version, outcome="approved")
    assert code_of(state, approve) == "level_not_allowed"
    # Rules 2: a refusal is the approving level's too (a township reports the errand up, or returns it) ...
    refusal = make(Decide, node=TOWN_ID, id="d", base=state.version, outcome="refused", reasons="收入超标")
    assert code_of(state, refusal) == "level_not_allowed"
    up: dict[str, Any] = {"node": TOWN_ID, "id": "e", "base": state.version, "to": COUNTY_ID, "purpose": "escalate"}
    assert code_of(state, make(HandOff, **up, department="县残联")) == "wrong_department"
    assert code_of(state, make(HandOff, **up, department="县民政局")) == ""
    assert "decide" not in allowed_steps(state, TOWN_ID, DIRECTORY)  # so its desk offers no decision at all
    assert allowed_outcomes(state, TOWN_ID, DIRECTORY) == []
    # ... while an errand bound to an entry of rules 1 keeps the old rule: refusing stays the handling desk's.
    older = run([bound("MZ-001", matter_entry=replace(entry("MZ-001"), rules=1)), *at_town_steps()])
    refusal = make(Decide, node=TOWN_ID, id="d", base=older.version, outcome="refused")
    assert code_of(older, refusal) == ""
    assert allowed_outcomes(older, TOWN_ID, DIRECTORY) == ["refused"]
    local = at_town("MZ-003")  # 临时救助: decided at the township, nothing to escalate
    escalate = make(HandOff, **{**up, "base": local.version}, department="x")
    assert code_of(local, escalate) == "not_reported_upward"
    assert "escalate" not in allowed_steps(local, TOWN_ID, DIRECTORY)
    assert allowed_outcomes(local, TOWN_ID, DIRECTORY) == ["approved", "refused"]


def test_a_village_accepts_where_its_level_is_listed_and_the_township_takes_it_as_accepted() -> None:
    state = run([bound("MZ-003")])
    accept = make(Accept, node=VILLAGE_ID, id="a", base=1, due="2024-05-10")
    assert code_of(state, accept) == "" and "accept" in allowed_steps(state, VILLAGE_ID, DIRECTORY)
    assert code_of(run([bound("MZ-001")]), accept) == "accept_level"
    state = run(
        [
            bound("MZ-003"),
            accept,
            make(HandOff, node=VILLAGE_ID, id="s", base=2, to=TOWN_ID, purpose="submit"),
            make(Receive, node=TOWN_ID, id="r", base=3),
        ]
    )
    assert state.stage == "accepted" and state.responsible == VILLAGE_ID and state.holder == TOWN_ID
    assert code_of(state, make(Decide, node=TOWN_ID, id="d", base=4, outcome="approved")) == ""


def test_extensions_need_a_post_above_the_window_and_stop_at_the_limit() -> None:
    state = at_town("MZ-003")
    limit = entry("MZ-003").statutory_limit

    def extend(days: int, role: str) -> Action:
        action = make(Extend, node=TOWN_ID, id="x", base=state.version, days=days, reason="入户核查", due="2030-01-01")
        return type(action)(**{**{f: getattr(action, f) for f in action.__struct_fields__}, "role": role})

    assert code_of(state, extend(5, "窗口工作人员")) == "extension_not_leader"
    assert code_of(state, extend(5, "中心主任")) == ""
    assert code_of(state, extend(limit + 1, "中心主任")) == "extension_over_limit"


def test_deemed_approval_is_the_systems_only_where_allowed_and_only_after_the_deadline() -> None:
    def deemed(state: ErrandState, *, actor: str = SYSTEM_ACTOR, at: int = AT0) -> Action:
        return Decide(
            id="dd", errand="E1", scope=VILLAGE_ID, node=state.holder, actor=actor, role="超时默许",
            at=at, base=state.version, outcome="approved", deemed=True,
        )  # fmt: skip

    state = at_town("MZ-003")
    assert code_of(state, deemed(state)) == "deemed_not_allowed"  # no deemed rule for 临时救助
    department = entry("SJ-002").department  # SJ-002: deemed_approval = true, decided by the county department
    state = run(
        [
            bound("SJ-002"),
            make(HandOff, node=VILLAGE_ID, id="h1", base=1, to=TOWN_ID, purpose="submit"),
            make(Receive, node=TOWN_ID, id="h2", base=2),
            make(Accept, node=TOWN_ID, id="h3", base=3, due="2023-11-20"),
            make(
                HandOff,
                node=TOWN_ID,
                id="h4",
                base=4,
                to=COUNTY_ID,
                purpose="escalate",
                department=department,
            ),
            make(Receive, node=COUNTY_ID, id="h5", base=5),
        ]
    )
    # AT0 is 2023-11-14 (CST): before the due date, so too early; a week after it, allowed.
    assert code_of(state, deemed(state)) == "deemed_too_early"
    later = AT0 + ((10 * 86400 * 1000) << 16)
    assert code_of(state, deemed(state, at=later)) == ""
    assert code_of(state, deemed(state, actor="窗口 王芳", at=later)) == "deemed_not_system"


def test_an_errand_bound_at_its_acceptance_is_judged_by_the_entry_it_binds_to() -> None:
    """Registered before its node held a catalogue, the errand is bound by the acceptance itself: the acceptance
    is judged by the rules of the entry it carries (rules 2: its deadline named)."""
    unbound = make(Register, node=VILLAGE_ID, id="r0", matter="MZ-003", materials=entry("MZ-003").main_materials)
    state = run(
        [
            unbound,
            make(HandOff, node=VILLAGE_ID, id="h1", base=1, to=TOWN_ID, purpose="submit"),
            make(Receive, node=TOWN_ID, id="h2", base=2),
        ]
    )
    assert state.matter_entry is None and entry("MZ-003").rules >= 2
    binding = {"node": TOWN_ID, "id": "a", "base": state.version, "matter_entry": entry("MZ-003")}
    assert code_of(state, make(Accept, **binding)) == "due_missing"
    assert code_of(state, make(Accept, **binding, due="2024-05-10")) == ""
    owed_main = make(Accept, **binding, due="2024-05-10", provisional=("申请书",), promise_by="2024-04-20")
    assert code_of(state, owed_main) == "provisional_main"
    late = make(Accept, **binding, due="2024-05-10", provisional=("困难情况证明材料",), promise_by="2024-05-11")
    assert code_of(state, late) == "promise_after_due"
    on_time = make(Accept, **binding, due="2024-05-10", provisional=("困难情况证明材料",), promise_by="2024-05-10")
    assert code_of(state, on_time) == ""
