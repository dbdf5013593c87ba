"""protocol.bounds: every replica refuses the same out-of-bounds values, and JSON is sized before decoding."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.actions import Accept, Action, Applicant, Attach, HandOff, Note, Receive, Register, Supervise, Supply
from protocol.bounds import (
    DAY_FIELDS,
    MAX_ATTACHMENT_BYTES,
    MAX_JSON_DEPTH,
    action_problem,
    fields_problem,
    json_problem,
    line_problem,
    node_fields_problem,
    text_problem,
)
from protocol.errand import judge, project
from protocol.matter import Material
from protocol.menu import allowed_steps
from sanji.catalogue import default_catalogue
from sanji.forms import ActionForm
from tests.protocol.protocol_kit import COUNTY_ID, TOWN_ID, VILLAGE_ID, applicant, happy_path, make, new_layout


def registered() -> Register:
    action = make(Register, node=VILLAGE_ID, id="a1")
    assert isinstance(action, Register)
    return action


@pytest.mark.parametrize("size", [2**63, 2**64, MAX_ATTACHMENT_BYTES + 1, -1])
def test_an_attachment_size_out_of_bounds_is_rejected_by_every_replica(size: int) -> None:
    directory = new_layout().directory
    attach = make(Attach, node=VILLAGE_ID, id="b1", blob="0" * 64, size=size, name="户口簿.jpg")
    refusal = judge(project("E1", [registered()], directory).state, attach, directory)
    assert refusal is not None and refusal.code == "out_of_bounds" and "size" in refusal.params["detail"]
    projection = project("E1", [registered(), attach], directory)
    assert "b1" in projection.rejected and "size" in projection.rejected["b1"]
    assert "b1" not in projection.notes


def test_an_attachment_at_the_limit_is_kept() -> None:
    directory = new_layout().directory
    attach = make(Attach, node=VILLAGE_ID, id="b1", blob="0" * 64, size=MAX_ATTACHMENT_BYTES, name="scan.jpg")
    assert project("E1", [registered(), attach], directory).notes == ("b1",)


@pytest.mark.parametrize(
    "name",
    ["张\x00秀英", "张秀英\x1b[31m", "\u202eabc", "张\ue000", "张\U000f0001", "a\ud800", "\x85x", "x\ufffe", "a\nb"],
)
def test_names_with_control_private_use_or_bidi_characters_are_rejected(name: str) -> None:
    directory = new_layout().directory
    reg = make(Register, node=VILLAGE_ID, id="a1", applicant=Applicant(name=name))
    projection = project("E1", [reg], directory)
    assert projection.state is None and "a1" in projection.rejected
    assert "applicant.name" in projection.rejected["a1"]


def test_free_text_keeps_lines_and_refuses_controls() -> None:
    assert text_problem("note", "第一行\n第二行\t(注)\r\n") is None
    assert text_problem("note", "bell\x07") is not None
    assert text_problem("note", "长" * 4001) is not None
    assert line_problem("actor", "代办员 李建国") is None
    assert line_problem("actor", "a\tb") is not None
    assert line_problem("actor", "x" * 201) is not None


NOT_DAYS = [
    "X99",
    "2026-02-30",
    "20261231",
    "2026-W53-1",
    "2026-12-31 ",
    "２０２６-12-31",
    "2026-12-31T00:00",
    "0000-01-01",
]


@pytest.mark.parametrize("due", NOT_DAYS)
def test_a_deadline_that_is_not_a_day_is_refused_by_every_replica(due: str) -> None:
    """A deadline is counted from on every screen, in every warning and in 超时默许 (``judge`` itself): an
    acceptance whose ``due`` is not a day would have stopped them all wherever it was applied. (Found by
    TestErrandMachine: its model could not count a day past "X99", which the rules had let through.)"""
    directory = new_layout().directory
    *before, accept = happy_path(escalate=False)[:4]
    assert isinstance(accept, Accept)
    bad = msgspec.structs.replace(accept, due=due)
    projection = project("E1", [*before, bad], directory)
    assert bad.id in projection.rejected and "due" in projection.rejected[bad.id]
    assert projection.state is not None and projection.state.stage == "received"
    good = project("E1", [*before, msgspec.structs.replace(accept, due="2026-12-31")], directory)
    assert accept.id in good.main and good.state is not None and good.state.due == "2026-12-31"


def test_every_field_holding_a_day_is_bounded() -> None:
    for action, field in [
        (make(Receive, node=TOWN_ID, id="r1", base=2), "stage_due"),
        (make(Accept, node=TOWN_ID, id="a1", base=3), "promise_by"),
        (make(Supervise, node=COUNTY_ID, id="s1", to=TOWN_ID), "answer_by"),
    ]:
        assert field in DAY_FIELDS and action_problem(action) is None
        assert action_problem(msgspec.structs.replace(action, **{field: "2027-01-04"})) is None
        assert field in (action_problem(msgspec.structs.replace(action, **{field: "2027-13-01"})) or "")


@pytest.mark.parametrize("due", ["", "2026-12-31"])
def test_the_menu_still_offers_an_extension_whatever_deadline_is_held(due: str) -> None:
    """The menu asks the rule with a probe of each step: the extension's carries the deadline held (none where
    none is: no calendar, no time limit), never a placeholder that is not a day."""
    directory = new_layout().directory
    *before, accept = happy_path(escalate=False)[:4]
    state = project("E1", [*before, msgspec.structs.replace(accept, due=due)], directory).state
    assert state is not None and state.due == due
    assert "extend" in allowed_steps(state, TOWN_ID, directory)


def test_a_form_holds_a_day_to_its_shape_and_leaves_the_calendar_to_the_rule() -> None:
    """The form's schema says a day's shape, so a request of that shape is schema-valid: it is decoded (no
    400 claiming it does not match), and the action built from it is refused by the rule (a 409)."""
    shaped = msgspec.convert({"kind": "accept", "actor": "王芳", "promise_by": "2024-02-30"}, ActionForm)
    assert shaped.promise_by == "2024-02-30"
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"kind": "accept", "actor": "王芳", "promise_by": "2024-2-3"}, ActionForm)
    accept = make(Accept, node=TOWN_ID, id="a1", base=3, promise_by=shaped.promise_by)
    assert "promise_by" in (action_problem(accept) or "")


def test_lists_are_counted() -> None:
    reg = make(Register, node=VILLAGE_ID, id="a1", materials=tuple(f"m{i}" for i in range(101)))
    assert "materials" in (action_problem(reg) or "")


def test_ordinary_actions_are_within_bounds() -> None:
    assert action_problem(registered()) is None
    assert action_problem(make(Note, node=VILLAGE_ID, id="n1", text="电话已联系\n下周补交")) is None
    assert action_problem(make(Register, node=VILLAGE_ID, id="a1", applicant=applicant(3))) is None


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_json_nesting_is_found_without_decoding() -> None:
    assert json_problem(nested(MAX_JSON_DEPTH)) is None
    assert json_problem(nested(MAX_JSON_DEPTH + 1)) is not None
    assert json_problem(b"[" * 1_000_000) is not None
    assert json_problem(b'{"a":' * 1000 + b"1" + b"}" * 1000) is not None
    assert json_problem(json.dumps({"s": "[" * 5000 + '\\"{'}).encode()) is None  # brackets in strings do not count
    assert json_problem(b" " * (2 * 1024 * 1024)) is not None


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)))
def test_json_depth_agrees_with_a_decoder(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    found = json_problem(json.dumps(value).encode(), max_depth=3)
    assert (found is None) == (depth(value) <= 3)


# Characters on both sides of every refused range's edge, and ordinary ones.
_EDGES = "\x00\x08\t\n\x0b\x0c\r\x0e\x1f \x7f\x9f\xa0\ud7ff\ud800\udfff\ue000\uf8ff\uf900"
_EDGES += "\ufdcf\ufdd0\ufdef\ufdf0\ufffd\ufffe\uffff"
_EDGES += "\U0001fffd\U0001fffe\U000effff\U000f0000\U0010ffff\u2029\u202a\u202e\u202f\u2065\u2066\u2069\u206a"
_CHARS = st.sampled_from(list(_EDGES + "张秀英aZ9_-."))


_probe_strings = st.one_of(
    st.text(_CHARS, max_size=6),
    st.sampled_from([199, 200, 201, 3999, 4000, 4001]).map(lambda n: "长" * n),
)
_probe_ints = st.sampled_from([-1, 0, 7, 3650, 3651, 2**25, 2**25 + 1, 2**63 - 1, 2**63])
_probe_lists = st.tuples(st.lists(_probe_strings, max_size=2), st.sampled_from([0, 98, 99, 100])).map(
    lambda drawn: (*drawn[0], *("材料",) * drawn[1])
)


def _clean() -> list[Action]:
    return [
        make(Register, node=VILLAGE_ID, id="a1", applicant=applicant(3), materials=("户口簿",), summary="低保"),
        make(HandOff, node=VILLAGE_ID, id="a2", base=1, to="T01", purpose="submit", note="材料已收齐"),
        make(Supply, node=VILLAGE_ID, id="a3", items=("身份证",), note="补交"),
        make(Attach, node=VILLAGE_ID, id="a4", blob="0" * 64, size=1024, name="户口簿.jpg"),
        make(Note, node=VILLAGE_ID, id="a5", text="电话已联系"),
        make(Accept, node=TOWN_ID, id="a6", base=3, due="2026-12-31", promise_by="2026-12-20", provisional=("证明",)),
        make(Receive, node=TOWN_ID, id="a7", base=2, stage_due="2026-12-10"),
    ]


@st.composite
def _actions(draw: st.DrawFn) -> Action:
    """A clean action with one field (or the applicant's name) replaced by a value at or past a bound."""
    action = draw(st.sampled_from(_clean()))
    field = draw(st.sampled_from([*action.__struct_fields__, "applicant.name"]))
    if field == "applicant.name":
        if not isinstance(action, Register):
            return action
        return msgspec.structs.replace(action, applicant=Applicant(name=draw(_probe_strings)))
    value = getattr(action, field)
    if isinstance(value, bool) or not isinstance(value, (str, int, tuple)):
        return action
    if field in DAY_FIELDS:
        probe: object = draw(st.one_of(_probe_strings, st.sampled_from(["", "2027-01-04", *NOT_DAYS])))
    elif field in ("node", "scope", "to"):
        probe = draw(st.one_of(_probe_strings, st.sampled_from(["T01", "", "T 01", "x" * 64, "x" * 65])))
    else:
        probe = draw(
            _probe_strings if isinstance(value, str) else _probe_ints if isinstance(value, int) else _probe_lists
        )
    return msgspec.structs.replace(action, **{field: probe})


@settings(max_examples=1500)
@given(_actions())
def test_the_quick_bounds_check_agrees_with_the_walk(action: Action) -> None:
    walked = node_fields_problem(action) or fields_problem(action)
    assert action_problem(action) == walked


_ENTRIES = default_catalogue().matters[:4]


@st.composite
def _bound_registrations(draw: st.DrawFn) -> Register:
    """A registration carrying a catalogue entry with one of its fields, or of one of its materials', at or past
    a bound (or left as it is): the walk of an entry met before is answered from its bytes (``_matter_within``)."""
    entry = draw(st.sampled_from(_ENTRIES))
    target: msgspec.Struct = entry
    at_material = bool(entry.materials) and draw(st.booleans())
    if at_material:
        index = draw(st.integers(0, len(entry.materials) - 1))
        target = entry.materials[index]
    field = draw(st.sampled_from(target.__struct_fields__))
    value = getattr(target, field)
    if not isinstance(value, bool) and isinstance(value, (str, int, tuple)) and draw(st.booleans()):
        if isinstance(value, str):
            probe: object = draw(_probe_strings)
        elif isinstance(value, int):
            probe = draw(_probe_ints)
        else:
            probe = draw(_probe_lists) if not value or isinstance(value[0], str) else value * draw(st.integers(0, 40))
        target = msgspec.structs.replace(target, **{field: probe})
        if at_material:
            materials = list(entry.materials)
            materials[index] = target
            entry = msgspec.structs.replace(entry, materials=tuple(materials))
        else:
            entry = target
    return msgspec.structs.replace(registered(), matter_entry=entry)


@settings(max_examples=1000)
@given(_bound_registrations(), st.booleans())
def test_the_bounds_of_a_catalogue_entry_met_before_are_those_of_its_walk(action: Register, loose_first: bool) -> None:
    """Also with the entry's materials as dicts, of the same bytes, which the walk does not enter: met first
    or after, one answers for the other only where that is the walk's answer too."""
    assert action.matter_entry is not None
    materials = tuple(msgspec.to_builtins(m) for m in action.matter_entry.materials)
    loose = msgspec.structs.replace(
        action, matter_entry=msgspec.structs.replace(action.matter_entry, materials=materials)
    )
    both = [loose, action] if loose_first else [action, loose]
    for each in [*both, *both]:  # each again: its entry's answer remembered
        assert action_problem(each) == (node_fields_problem(each) or fields_problem(each))


class _MaterialWithMore(Material, frozen=True, kw_only=True):
    """A material built in process with a field no catalogue entry has (its bytes carry it; a typed decode
    of them drops it): the entry's answer is not taken from what those bytes decode to."""

    extra: str = ""


@pytest.mark.parametrize("extra", ["\u202e伪造", "ok"])
def test_an_entry_carrying_a_field_the_catalogue_lacks_is_walked(extra: str) -> None:
    entry = _ENTRIES[0]
    material = _MaterialWithMore(**msgspec.structs.asdict(entry.materials[0]), extra=extra)
    action = msgspec.structs.replace(
        registered(), matter_entry=msgspec.structs.replace(entry, materials=(material, *entry.materials[1:]))
    )
    for _ in range(2):  # the second time from the cache, if the answer was kept
        assert action_problem(action) == (node_fields_problem(action) or fields_problem(action))
