"""The server's patterns and the published schema's read every string alike.

msgspec and Litestar check a ``pattern`` with Python's ``re``; the schema is read with ECMA-262 rules
(schemathesis, any client generator). Where the two engines differ — ``$`` before a final line feed,
``\\d`` on other scripts' digits — the server used to accept what the schema refuses, which
schemathesis reported now and then as "schema-violating request accepted".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sanji.forms import RegisterForm
from sanji.office.forms import AppealForm, EntryForm
from sanji.web.openapi_dump import schema


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


PATTERNS = sorted(set(_patterns(schema())))


def test_the_schema_has_patterns_to_check() -> None:
    assert len(PATTERNS) >= 10


_OTHER_DIGITS = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")


def _as_ecma_reads_it(pattern: str) -> re.Pattern[str]:
    """``pattern`` as ECMA-262 reads it, in Python: ``$`` only at the very end, ``\\d`` only 0-9."""
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern), re.ASCII)


@pytest.mark.parametrize("pattern", PATTERNS, ids=range(len(PATTERNS)))
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_python_and_ecma_read_every_pattern_alike(pattern: str, data: st.DataObject) -> None:
    value = data.draw(st.from_regex(re.compile(pattern)))
    ecma = _as_ecma_reads_it(pattern)
    for candidate in (value, value + "\n", value.translate(_OTHER_DIGITS)):
        server = re.search(pattern, candidate) is not None
        assert server == (ecma.search(candidate) is not None), f"{pattern!r} on {candidate!r}: server says {server}"


def _appeal(**changes: str) -> bytes:
    fields = {"quarter": "2026Q4", "target": "staff", "subject": "张三", "reason": "第一行\n第二行"} | changes
    return msgspec.json.encode(fields)


def test_an_appeal_as_the_schema_says_is_taken() -> None:
    appeal = msgspec.json.decode(_appeal(), type=AppealForm)
    assert appeal.reason == "第一行\n第二行"  # free text keeps its lines


@pytest.mark.parametrize(
    "changes",
    [
        {"quarter": "2026Q4\n"},  # Python's $ would take it
        {"quarter": "20\u0662\u0666Q4"},  # Arabic-Indic digits: Python's \d would take them
        {"subject": "张三\n"},  # a name is one line
        {"subject": "张\x01三"},  # a control character
        {"by": "\u202e王五"},  # a bidirectional override
    ],
)
def test_an_office_form_the_schema_refuses_is_refused(changes: dict[str, str]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(_appeal(**changes), type=AppealForm)


def test_an_entry_is_held_to_the_same_bounds() -> None:
    body = {"quarter": "2026Q4", "target": "centre", "subject": "一窗", "item": "超时\n"}
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode(body), type=EntryForm)


@pytest.mark.parametrize(
    "changes",
    [
        {"applicant_id_number": "11010519491231002X\n"},
        {"applicant_id_number": "\u0661" * 17 + "X"},
        {"applicant_phone": "13800138000\n"},
        {"applicant_phone": "\u0661\u0663\u0668"},
    ],
)
def test_a_registration_the_schema_refuses_is_refused(changes: dict[str, str]) -> None:
    body = {"matter": "M001", "applicant_name": "李四"} | changes
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode(body), type=RegisterForm)
