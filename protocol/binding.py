"""The catalogue binds: the rules that read the matter entry an errand is bound to.

An errand is bound to the catalogue entry of its matter when it is registered (the
registering node copies the entry of the catalogue version it holds into ``Register``), or,
if the registering node held no catalogue yet, when it is accepted (``Accept.matter_entry``).
From then on every replica judges it by that entry, carried in its own signed actions, so a
newer catalogue never changes an errand already running and every node reaches the same
verdict. Errands with no entry at all are from before binding: they keep the old rules.

Pure functions, called by ``protocol.errand.judge`` and by ``sanji.service`` before it builds
an action (``bind`` and ``local_refusal``: what a desk may not even ask for).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime

from protocol.catalogue import Catalogue, normalise_material
from protocol.deadlines import business_today
from protocol.hlc import wall_seconds
from protocol.matter import Matter
from protocol.refusals import LEVEL_EN, LEVEL_ZH, Refusal, refuse

SYSTEM_ACTOR = "系统(电子监察)"  # the only actor that writes a deemed approval (超时默许)
DEEMED_ROLE = "超时默许"
# Posts above the window that may grant an extension (延期审批): the centre's leaders and the
# county department's head or approver. Role labels as staff accounts write them (sanji.auth.roles).
EXTENSION_GRANTORS = frozenset(
    {"director", "approver", "中心主任", "分管领导", "部门负责人", "部门审批", "部门审批人员", "局长", "科长"}
)
STEP_ZH = {"accept": "受理", "handle": "承办", "decide": "审批决定", "escalate": "上报"}


def business_date(hlc: int) -> date:
    """The China Standard Time date of a hybrid-clock timestamp (the action's own signed time)."""
    return business_today(datetime.fromtimestamp(wall_seconds(hlc), UTC))


def bind(catalogue: Catalogue | None, code: str) -> Matter | Refusal | None:
    """The entry a new registration is bound to; a refusal if the held catalogue lacks the code.

    None: this node holds no catalogue yet, so the errand is registered unbound and bound when
    a node holding one accepts it (a village works alone, invariant 7).
    """
    if catalogue is None:
        return None
    entry = catalogue.get(code)
    if entry is None:
        return refuse("matter_unknown", matter=code, version=catalogue.version)
    return entry


def registration_refusal(
    entry: Matter | None,
    *,
    matter: str,
    in_person: bool,
    mandate: bool,
    materials: Collection[str] = (),
    missing_confirmed: bool = True,
) -> Refusal | None:
    """Proxy or in person, the villager's mandate, and the main materials (主件)."""
    if entry is None:  # an unbound errand (from before binding) keeps the old rules
        return None
    if not in_person and not mandate:
        return refuse("mandate_missing")
    if entry.code != matter:
        return refuse("matter_mismatch", matter=matter)
    if not in_person and entry.in_person:
        return refuse("in_person_only", name=entry.name, matter=entry.code)
    if not in_person and not entry.proxy_allowed:
        return refuse("proxy_not_allowed", name=entry.name, matter=entry.code)
    have = {normalise_material(m) for m in materials}
    missing = [name for name in entry.main_materials if normalise_material(name) not in have]
    if missing and not missing_confirmed:
        return refuse("materials_missing", items=missing, matter=entry.code)
    return None


def level_refusal(entry: Matter, step: str, level: str) -> Refusal | None:
    """Whether a node of ``level`` may accept / handle / decide this matter (accept/handle/approve_levels)."""
    levels = {"accept": entry.accept_levels, "handle": entry.handle_levels, "decide": entry.approve_levels}[step]
    if level in levels:
        return None
    if step == "accept":
        where_zh = "或".join(LEVEL_ZH.get(v, v) for v in levels)
        return refuse("accept_level", where_zh=where_zh, where=" or ".join(LEVEL_EN.get(v, v) for v in levels))
    return refuse(
        "level_not_allowed",
        step=step,
        step_zh=STEP_ZH[step],
        level=level,
        levels=", ".join(levels),
        levels_zh="或".join(LEVEL_ZH.get(v, v) for v in levels),
    )


def escalation_refusal(entry: Matter, department: str) -> Refusal | None:
    if not entry.department or "county" not in entry.approve_levels:
        return refuse("not_reported_upward", matter=entry.code)
    if department.strip() != entry.department:
        return refuse("wrong_department", department=department, expected=entry.department)
    return None


def deemed_refusal(entry: Matter | None, *, actor: str, outcome: str, due: str, at: int, matter: str) -> Refusal | None:
    """超时默许 is a checkable fact: the system writes it, the matter allows it, the deadline has passed."""
    if actor != SYSTEM_ACTOR:
        return refuse("deemed_not_system", actor=actor)
    if outcome != "approved":
        return refuse("deemed_refusal")
    if entry is None or not entry.deemed_approval:
        return refuse("deemed_not_allowed", matter=matter)
    day = business_date(at)
    if not due or day <= date.fromisoformat(due):
        return refuse("deemed_too_early", due=due or "—", day=day.isoformat())
    return None


def extension_refusal(entry: Matter, *, role: str, used: int, days: int) -> Refusal | None:
    if role not in EXTENSION_GRANTORS:
        return refuse("extension_not_leader", role=role)
    if used + days > entry.extension_cap:
        return refuse("extension_over_limit", limit=entry.extension_cap, used=used)
    return None
