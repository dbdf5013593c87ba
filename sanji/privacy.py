"""Personal data as screens and the API show it: masked unless someone asks to see it, audited when they do.

An applicant's ID number and phone are shown masked (``430621********7797``, ``139****1234``)
on every page and in every API answer. The full numbers appear only on an explicit "show"
(查看完整号码: ``POST /errands/{id}/reveal`` or ``GET /api/errands/{id}?reveal=true``) by an
account whose role may see them (``sanji.auth.roles.may(role, REVEAL)``) at a node on the
errand's path (a node off the path never holds the errand, and could not open its sealed
details if it did), and each show writes a ``PersonalDataRead`` event with what="reveal".
A complaint's sealed complainant never leaves the store as ciphertext.
"""

from __future__ import annotations

from typing import Any

from sanji.auth import roles
from sanji.auth.guard import Caller
from sanji.duties import mask_phone

__all__ = ["mask_applicant", "mask_history", "mask_id_number", "mask_phone", "may_reveal"]


def mask_id_number(id_number: str) -> str:
    """``430621195007307797`` -> ``430621********7797``: the region and the check digits, never the birth date."""
    if len(id_number) >= 10:
        return f"{id_number[:6]}{'*' * (len(id_number) - 10)}{id_number[-4:]}"
    return "*" * len(id_number)


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
