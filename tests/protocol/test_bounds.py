"""protocol.bounds: every replica refuses the same out-of-bounds values, and JSON is sized before decoding."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.actions import Action, Applicant, Attach, Note, Register
from protocol.bounds import (
    MAX_ATTACHMENT_BYTES,
    MAX_JSON_DEPTH,
    MAX_NAME,
    NODE_FIELDS,
    action_problem,
    fields_problem,
    json_problem,
    line_problem,
    node_fields_problem,
    text_problem,
)
from protocol.errand import judge, project
from protocol.limits import MAX_TEXT
from tests.protocol.protocol_kit import VILLAGE_ID, applicant, make, new_layout


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


# -- the quick walk agrees with the full one --------------------------------------------------------
# Every action kind, within bounds everywhere but one place (each field, nested ones too, in turn) where a
# value sits at or just past a bound: ``action_problem``'s quick walk must answer as ``fields_problem``.

_ODD_TEXT = [
    "x" * MAX_NAME,
    "x" * (MAX_NAME + 1),
    "y" * MAX_TEXT,
    "y" * (MAX_TEXT + 1),
    "a\nb",
    "a\tb",
    "a\rb",
    "\u202e名",
    "\x7f",
    "\x85",
]
_ODD_TEXT += ["\ue000", "\ufdd0", "\U0010fffe", ""]
_ODD_INT = [-1, 0, 3650, 3651, MAX_ATTACHMENT_BYTES, MAX_ATTACHMENT_BYTES + 1, 2**63 - 1, 2**63]


def _good(hint: Any) -> Any:
    """A value of ``hint`` within every bound (a union's first type that is not None)."""
    origin = typing.get_origin(hint)
    if hint is str:
        return "王伟"
    if hint is bool:
        return False
    if hint is int:
        return 1
    if hint is bytes:
        return b"sealed"
    if origin is typing.Literal:
        return typing.get_args(hint)[0]
    if origin in (types.UnionType, typing.Union):
        return _good(next(a for a in typing.get_args(hint) if a is not type(None)))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return (_good(args[0]),)
        return tuple(_good(a) for a in args)
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: _good(hints[f.name]) for f in msgspec.structs.fields(hint)})
    raise AssertionError(f"no value for {hint!r}")


def _odd(hint: Any, good: Any) -> list[Any]:
    """Values of ``hint`` at or past a bound in one place, the rest as ``good``."""
    origin = typing.get_origin(hint)
    if hint is str:
        return list(_ODD_TEXT)
    if hint is int:
        return list(_ODD_INT)
    if origin in (types.UnionType, typing.Union):
        return [None, *_odd(next(a for a in typing.get_args(hint) if a is not type(None)), good)]
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return [(odd,) for odd in _odd(args[0], good[0])] + [good * 100, good * 101, ()]
        return []
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        hints = typing.get_type_hints(hint)
        return [
            msgspec.structs.replace(good, **{f.name: odd})
            for f in msgspec.structs.fields(hint)
            for odd in _odd(hints[f.name], getattr(good, f.name))
        ]
    return []


@pytest.mark.parametrize("kind", typing.get_args(Action), ids=lambda kind: kind.__name__)
def test_the_quick_walk_never_passes_what_the_full_walk_refuses(kind: type[msgspec.Struct]) -> None:
    base = _good(kind)
    base = msgspec.structs.replace(base, **{f: "T01" for f in NODE_FIELDS if hasattr(base, f)})  # node ids
    assert action_problem(base) is None
    variants = _odd(kind, base)
    assert variants
    for action in variants:
        # The fields naming a node are node ids first (``node_id_problem``); the rest as the full walk says.
        assert action_problem(action) == (node_fields_problem(action) or fields_problem(action)), action
