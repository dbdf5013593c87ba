"""The assessment office's forms (季度考核: entries, appeals, decisions), as the county's desk and the schema read them.

Kept in ``sanji`` rather than in ``county_node`` because the published schema names them
(``sanji.web.openapi_truth``), and ``sanji`` never imports a tier package.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from protocol.bounds import whole
from sanji.forms import BoundedForm

Short = Annotated[str, msgspec.Meta(max_length=96)]
Long = Annotated[str, msgspec.Meta(max_length=1000)]


class EntryForm(BoundedForm, frozen=True, kw_only=True, forbid_unknown_fields=True):
    quarter: Annotated[str, msgspec.Meta(pattern=whole("20[0-9]{2}Q[1-4]"))]
    target: Literal["staff", "centre"]
    subject: Short
    item: Annotated[str, msgspec.Meta(max_length=64)]
    count: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    note: Long = ""
    errand: Short = ""
    by: Short = ""
    centre: Short = ""  # staff: the centre (T01) or county department the person is scored under


class AppealForm(BoundedForm, frozen=True, kw_only=True, forbid_unknown_fields=True):
    quarter: Annotated[str, msgspec.Meta(pattern=whole("20[0-9]{2}Q[1-4]"))]
    target: Literal["staff", "centre"]
    subject: Short
    reason: Long
    by: Short = ""


class DecisionForm(BoundedForm, frozen=True, kw_only=True, forbid_unknown_fields=True):
    upheld: bool
    points: Annotated[float, msgspec.Meta(ge=-100, le=100)] = 0
    part: Annotated[str, msgspec.Meta(max_length=32)] = ""
    reason: Long
    by: Short = ""
