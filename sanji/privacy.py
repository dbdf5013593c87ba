"""Personal data as screens and the API show it: masked unless someone asks to see it, audited when they do.

An applicant's ID number and phone are shown masked (``430621********7797``, ``139****1234``)
on every page and in every API answer. The full numbers appear only on an explicit "show"
(查看完整号码: ``POST /errands/{id}/reveal`` or ``GET /api/errands/{id}?reveal=true``) by an
account whose role may see them (``sanji.auth.roles.may(role, REVEAL)``) at a node on the
errand's path (a node off the path never holds the errand, and could not open its sealed
details if it did), and each show writes a ``PersonalDataRead`` event with what="reveal".
An account of a desk post (window, approver) sees them only on an errand its place is on the path of:
one that came to this node's desk, and, bound to a county department or a window, one that reached that
department (escalated to it) or window (``roles.reveal_refusal``, the rule the desk's steps follow); an
attachment's bytes (``GET /api/attachments/{digest}``: ID-card scans) need the same right and path on an errand that
attaches them. A refusal is a 403 (``message_zh`` and ``message``), audited as an ``AccessDenied`` row
(``reveal_check``); the masked view stays open.
A complaint's sealed complainant never leaves the store as ciphertext.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from protocol.errand import ErrandState
from sanji.auth import roles
from sanji.auth.guard import Caller, Forbidden
from sanji.duties import mask_phone

__all__ = [
    "mask_applicant",
    "mask_history",
    "mask_id_number",
    "mask_numbers_in_text",
    "mask_phone",
    "may_reveal",
    "reveal_check",
    "reveal_refusal",
]


def mask_id_number(id_number: str) -> str:
    """``430621195007307797`` -> ``430621********7797``: the region and the check digits, never the birth date."""
    if len(id_number) >= 10:
        return f"{id_number[:6]}{'*' * (len(id_number) - 10)}{id_number[-4:]}"
    return "*" * len(id_number)


# A run of digits, one space or dash allowed between any two (``430621 19500730 7797``, ``139-1234-5678``,
# full-width digits and spaces too), ending in an ID number's check letter or not.
_GAP = r"[ \u3000\-\u2010-\u2015\uff0d]?"
_NUMBER_RUN = re.compile(rf"\d(?:{_GAP}\d)*(?:{_GAP}[XxＸｘ](?![A-Za-z]))?")
# As many digits as a mobile number holds, or more (an ID number: 15 or 18; two numbers typed side by side):
# masked whole. A date, an amount or a document number holds fewer.
PERSONAL_DIGITS = 11


def mask_numbers_in_text(text: str) -> str:
    """Free text (a refusal's reasons) with every ID or phone number in it masked, however it was spaced: each
    digit (and an ID number's X) of a run of at least ``PERSONAL_DIGITS`` digits becomes ``*``, the spaces and
    dashes between them kept. Where text a desk typed leaves the errand's path (the public lookup), this is the
    one rule that says what of it is personal."""

    def masked(found: re.Match[str]) -> str:
        run = found.group()
        if sum(c.isdigit() for c in run) < PERSONAL_DIGITS:
            return run
        return "".join("*" if c.isdigit() or c in "XxＸｘ" else c for c in run)

    return _NUMBER_RUN.sub(masked, text)


def mask_applicant(applicant: dict[str, Any]) -> dict[str, Any]:
    out = dict(applicant)
    if out.get("id_number"):
        out["id_number"] = mask_id_number(str(out["id_number"]))
    if out.get("phone"):
        out["phone"] = mask_phone(str(out["phone"]))
    for field in ("income", "health"):
        if out.get(field):
            out[field] = "***"
    out["masked"] = True
    return out


def mask_history(history: list[dict[str, Any]], *, reveal: bool = False) -> list[dict[str, Any]]:
    """An errand's history as it may leave the node: applicants masked unless ``reveal``; no sealed bytes."""
    out = []
    for item in history:
        if item.get("kind") == "register" and isinstance(item.get("applicant"), dict) and not reveal:
            item = {**item, "applicant": mask_applicant(item["applicant"])}
        if item.get("kind") == "complain" and "complainant" in item:
            item = {k: v for k, v in item.items() if k != "complainant"} | {"identified": bool(item["complainant"])}
        out.append(item)
    return out


def may_reveal(caller: Caller) -> bool:
    """Whether this caller may ask for the full numbers: by role; anyone in the open demo mode."""
    if caller.principal is None:
        return not caller.auth.settings.required
    return roles.may(caller.principal.role, roles.REVEAL)


ROLE_REFUSAL = roles.NO_REVEAL_TEXTS


def reveal_refusal(
    caller: Caller, state: Mapping[str, Any] | ErrandState, history: Sequence[Mapping[str, Any]]
) -> roles.RevealRefused | None:
    """Why this caller's place may not see this errand's applicant in full or its attachments (None if it may):
    ``roles.reveal_refusal`` on the errand as this node holds it. The open demo (no account) is never refused."""
    p = caller.principal
    if p is None or not state:  # no state: no errand to show (a 404)
        return None
    if not (p.department or p.window or p.role in roles.DESK_POSTS):  # a post no place binds: the role decides
        return None
    node = caller.auth.node_id
    projected = state if isinstance(state, ErrandState) else msgspec.convert(state, ErrandState)
    return roles.reveal_refusal(
        projected,
        node,
        caller.node_role,
        department=p.department,
        window=p.window,
        history=history,
        role=p.role,
    )


def may_reveal_here(
    caller: Caller, state: Mapping[str, Any] | ErrandState, history: Sequence[Mapping[str, Any]]
) -> bool:
    """Whether a page offers 查看完整号码 and links the attachments: the role and the place."""
    return may_reveal(caller) and reveal_refusal(caller, state, history) is None


async def reveal_check(
    caller: Caller,
    errands: Sequence[tuple[str, Mapping[str, Any] | ErrandState, Sequence[Mapping[str, Any]]]],
    *,
    what: str,
) -> None:
    """Refuse (403, audited as ``AccessDenied`` naming ``what`` and the errand) unless the caller may see in full
    on one of ``errands`` (id, state, history): an attachment may be attached to more than one."""
    if not may_reveal(caller):
        errand = errands[0][0] if errands else ""
        await caller.denied(what, ROLE_REFUSAL[1], errand=errand)
        raise Forbidden(ROLE_REFUSAL[1], zh=ROLE_REFUSAL[0])
    first: roles.RevealRefused | None = None
    for _, state, history in errands:
        refused = reveal_refusal(caller, state, history)
        if refused is None:
            return
        first = first or refused
    if first is not None:
        await caller.denied(what, first.message, errand=first.errand)
        raise first
