"""Errand actions: the only things that ever change an errand.

Actions are append-only; an errand's state is derived from them (see
``protocol.errand``). Every action names the errand, the scope (the node the
errand belongs to), the node that wrote it, the person and role acting, a hybrid
logical timestamp, and — for main-line actions — the errand version it was
based on. Annotations (notes) commute and carry no base version.

Evolution follows msgspec's rules (see VERSIONING.md): new fields get defaults,
nothing is retyped, reordered or removed, and tags are never reused.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class Applicant(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    id_number: str = ""
    phone: str = ""


class _Action(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    id: str
    errand: str
    scope: str
    node: str
    actor: str
    role: str
    at: int
    base: int = 0


class Register(_Action, tag="register", frozen=True, kw_only=True):
    """Village agent (or township window) records an errand with the villager's mandate (委托)."""

    matter: str
    applicant: Applicant
    mandate: bool = True
    materials: tuple[str, ...] = ()
    summary: str = ""


class HandOff(_Action, tag="handoff", frozen=True, kw_only=True):
    """The custodian gives the errand to a neighbour (签名交接); the receiver must acknowledge."""

    to: str
    purpose: Literal["submit", "escalate", "result"]
    department: str = ""
    note: str = ""


class Receive(_Action, tag="receive", frozen=True, kw_only=True):
    """The receiver acknowledges a hand-off and becomes the custodian."""


class Accept(_Action, tag="accept", frozen=True, kw_only=True):
    """The township accepts the errand (受理)."""

    errand_kind: Literal["即办件", "承诺件", "上报件", "联办件"] = "承诺件"
    note: str = ""


class Decide(_Action, tag="decide", frozen=True, kw_only=True):
    """The handling window or county department completes the errand (办结): approve or refuse."""

    outcome: Literal["approved", "refused"]
    document: str = ""
    department: str = ""


class Deliver(_Action, tag="deliver", frozen=True, kw_only=True):
    """The result is handed to the applicant, who confirms with a signature (签名核对)."""

    confirmed_by: str
    signature: str = ""


class Note(_Action, tag="note", frozen=True, kw_only=True):
    """A commuting annotation by any node on the path: progress notes, supervision remarks."""

    text: str


Action = Register | HandOff | Receive | Accept | Decide | Deliver | Note

MAIN_LINE_KINDS = frozenset({"register", "handoff", "receive", "accept", "decide", "deliver"})


def kind_of(action: Action) -> str:
    return type(action).__struct_config__.tag  # type: ignore[return-value]


def is_main_line(action: Action) -> bool:
    return not isinstance(action, Note)
