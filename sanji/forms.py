"""What people submit at a desk: typed, validated request bodies (wire types for the JSON API)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Text = Annotated[str, msgspec.Meta(max_length=4000)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class RegisterForm(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """代办登记: the village agent registers an errand on the villager's behalf."""

    matter: Short
    applicant_name: Name
    applicant_id_number: Annotated[str, msgspec.Meta(max_length=18, pattern=r"^(\d{17}[\dX])?$")] = ""
    applicant_phone: Annotated[str, msgspec.Meta(max_length=20, pattern=r"^[\d+\- ]*$")] = ""
    mandate: bool = True
    materials: Annotated[list[Annotated[str, msgspec.Meta(max_length=200)]], msgspec.Meta(max_length=100)] = []
    summary: Text = ""
    actor: Name
    role: Short = "代办员"


class ActionForm(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One step on an errand. Which fields matter depends on ``kind``."""

    kind: Literal["submit", "receive", "accept", "escalate", "decide", "send_result", "deliver", "note"]
    actor: Name
    role: Short = "工作人员"
    errand_kind: Literal["即办件", "承诺件", "上报件", "联办件"] = "承诺件"
    department: Annotated[str, msgspec.Meta(max_length=64)] = ""
    outcome: Literal["approved", "refused", ""] = ""
    document: Text = ""
    confirmed_by: Annotated[str, msgspec.Meta(max_length=64)] = ""
    signature: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    text: Text = ""
    expected_version: int | None = None
