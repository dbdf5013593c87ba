"""The catalogue binds: the rules that read the matter entry an errand is bound to.

An errand is bound to the catalogue entry of its matter when it is registered (the
registering node copies the entry of the catalogue version it holds into ``Register``), or,
if the registering node held no catalogue yet, when it is accepted (``Accept.matter_entry``).
From then on every replica judges it by that entry, carried in its own signed actions, so a
newer catalogue never changes an errand already running and every node reaches the same
verdict. Errands with no entry at all are from before binding: they keep the old rules.

Pure functions, called by ``protocol.errand.judge`` and by ``sanji.service`` before it builds
an action (``bind``, and ``binding_refusal``: what a desk may not even ask for).

``judge`` takes the bound entry as the registration carries it: it cannot compare it with the
county's catalogue of that version, because not every replica holds that version and every
replica must reach the same verdict. The desks compare it (``binding_refusal``), before a township
or county signs a step judged by the entry (``BOUND_STEPS``), with the catalogue of that version
as this node holds it: an entry the registering node invented is refused there, never written.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, date, datetime

import msgspec

from protocol.actions import Action, MaterialsReceived, Register, Supply
from protocol.catalogue import Catalogue, normalise_material
from protocol.deadlines import business_today
from protocol.encoding import encode
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
# The desk steps judged by the errand's bound entry (its levels, limits, extension cap, deemed approval): a desk
# signs none of them on an errand whose entry differs from the county's catalogue (``binding_refusal``). Not
# accepting, returning or terminating the errand stay open, so a desk can still turn such an errand away.
BOUND_STEPS = frozenset({"accept", "assign", "review", "extend", "escalate", "decide"})
# Entry fields a release before 0.4.0 does not know, so cannot carry: a 0.3.0 node registering under a catalogue
# that sets them binds the errand to the entry with them at their defaults, and every replica judges it so (the
# old rules). ``binding_refusal`` takes that form of the county's entry as the county's too: an errand so bound is
# no more lenient than one a 0.3.0 village registers, which a mixed tree must take during an upgrade.
UNKNOWN_BEFORE_0_4 = ("joint_answers_at_departments", "rules")


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


# The county's entries encoded once (``binding_refusal``'s ``encoded``): (catalogue version, its county, code, in
# the form a 0.3.0 node carries) -> that entry's canonical encoding. Cleared when it reaches ENCODED_KEPT.
EncodedEntries = dict[tuple[int, str, str, bool], bytes]
ENCODED_KEPT = 4096


def never_held(code: str, version: int) -> Refusal:
    """``binding_mismatch`` for an entry bound to a catalogue version this node cannot have missed and does not
    hold (``binding_refusal``): a registering node naming ``v0`` or a version never published to skip the check."""
    return refuse(
        "binding_mismatch",
        matter=code,
        version=version,
        fields=f"this node never held catalogue v{version}",
        fields_zh="本节点从未收到该版目录",
    )


# Those fields' defaults: how a 0.3.0 node's entry holds them.
_OLD_DEFAULTS = {f.name: f.default for f in msgspec.structs.fields(Matter) if f.name in UNKNOWN_BEFORE_0_4}


def binding_refusal(
    entry: Matter | None,
    held: Catalogue | None,
    *,
    version: int,
    newest: int | None = None,
    every_version_from: int | None = None,
    lost: Collection[tuple[int, int | None]] = (),
    encoded: EncodedEntries | None = None,
) -> Refusal | None:
    """Whether the entry an errand is bound to is the county's: the entry of its code in the signed catalogue
    of ``version`` (the version its registration, or its acceptance, names), as this node holds it.

    Compared by canonical encoding (``protocol.encoding.encode``) of both as this build decodes them, field by
    field, never by identity. None when they are the same, when the errand is unbound (``entry`` None: it is bound
    at acceptance from the accepting desk's own catalogue), or when it cannot be checked: ``held`` is None or of
    another version (this node never held ``version``, or replaced it before it kept every version, migration
    0026). A refusal (``binding_mismatch``, naming the fields that differ) when that catalogue lacks the code or
    says otherwise: a registering node that invented a lenient entry (proxy allowed, no materials, long limits).
    The county's entry with the fields a 0.3.0 node cannot carry at their defaults is the county's too
    (``UNKNOWN_BEFORE_0_4``): a tree mixing releases registers such errands honestly.

    A version this node cannot have missed is refused as never held (``never_held``), not let through: one
    ``<= 0``, one above ``newest`` (the newest catalogue version this node holds: a genuine errand never names a
    version newer than its township's or county's, as catalogues reach villages only through their township, and
    a desk binding at acceptance binds from what it holds), or, where given, one at or above
    ``every_version_from`` that is not held (the county holds every version it published since migration 0026,
    so a version it lacks from its floor up was never published), except within ``lost``: ranges (low, high; high
    None: no end yet) of versions it may have published and lost, as a restore from an older copy loses those
    published after the copy was taken, which cannot be checked. ``newest`` None: not known (no refusal for it).

    ``encoded``: the county's entries already encoded, by catalogue and code (a caller's cache, e.g.
    ``NodeContext``'s): 电子监察 compares many errands with the same few entries and encodes each once.

    A desk asks it; ``judge`` never does, since a replica that does not hold the version would reach
    another verdict.
    """
    if entry is None:
        return None
    if held is None or held.version != version:
        if (
            version <= 0
            or (newest is not None and version > newest)
            or (
                every_version_from is not None
                and version >= every_version_from
                and not any(low <= version and (high is None or version <= high) for low, high in lost)
            )
        ):
            return never_held(entry.code, version)
        return None
    signed = held.get(entry.code)
    if signed is None:
        return refuse(
            "binding_mismatch",
            matter=entry.code,
            version=version,
            fields="that version has no such matter",
            fields_zh="该版目录没有此事项",
        )
    old = all(getattr(entry, name) == value for name, value in _OLD_DEFAULTS.items())
    if old:
        signed = msgspec.structs.replace(signed, **_OLD_DEFAULTS)  # as a 0.3.0 node carries it
    # a version of a county's catalogue is kept once and never overwritten (``put_document``): its entries'
    # bytes are named by version, county and code, and no catalogue is kept alive by the cache
    key = (held.version, held.county, entry.code, old)
    county_bytes = encoded.get(key) if encoded is not None else None
    if county_bytes is None:
        county_bytes = encode(signed)
        if encoded is not None:
            if len(encoded) >= ENCODED_KEPT:
                encoded.clear()
            encoded[key] = county_bytes
    if encode(entry) == county_bytes:
        return None
    differ = [
        name
        for name, ours, theirs in zip(
            entry.__struct_fields__, msgspec.structs.astuple(entry), msgspec.structs.astuple(signed), strict=True
        )
        if encode(ours) != encode(theirs)
    ]
    shown = ", ".join(differ) or "encoding"
    return refuse("binding_mismatch", matter=entry.code, version=version, fields=shown, fields_zh="不同之处：" + shown)


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


# The desk steps that take the errand's materials as complete: accepting it (受理, provisional or not). Asked by
# the desk (``sanji.service``) and the menu (``protocol.menu.allowed_steps``) with ``acceptance_refusal``.
MATERIAL_STEPS = frozenset({"accept"})


class HeldMaterials(msgspec.Struct, frozen=True, kw_only=True):
    """What an errand's materials are now, read from its history (``held_materials``).

    ``held``: what the registering desk took in, then what a custodian recorded as received (材料补齐, 容缺 补交),
    each once, in that order. ``missing_main`` / ``missing_secondary``: the bound entry's main (主件) and required
    secondary materials not held (an optional one, 如有, is never owed). ``supplied``: what the village agent said it
    is carrying up (补交材料) and no custodian has recorded yet.
    """

    held: tuple[str, ...] = ()
    missing_main: tuple[str, ...] = ()
    missing_secondary: tuple[str, ...] = ()
    supplied: tuple[str, ...] = ()

    @property
    def missing(self) -> tuple[str, ...]:
        """Everything still owed, main first: what a one-time notice (一次性告知) lists."""
        return (*self.missing_main, *self.missing_secondary)


def material_steps(actions: Iterable[Action]) -> list[tuple[str, Sequence[str]]]:
    """The (kind, names) of the steps that name materials, for ``held_materials``: an errand's applied actions."""
    out: list[tuple[str, Sequence[str]]] = []
    for action in actions:
        if isinstance(action, Register):
            out.append(("register", action.materials))
        elif isinstance(action, MaterialsReceived):
            out.append(("materials_received", action.items))
        elif isinstance(action, Supply):
            out.append(("supply", action.items))
    return out


def held_materials(entry: Matter | None, steps: Iterable[tuple[str, Sequence[str]]]) -> HeldMaterials:
    """The materials an errand holds and those still owed, from the applied steps of its history in order, each as
    (kind, names): a registration's ``materials``, a ``materials_received`` or ``supply``'s ``items``
    (``material_steps`` makes them from actions; a page makes them from its history rows).

    Held: the registration's and every 材料补齐 (``materials_received``): the custodian saying the papers are in
    its hands. A 补交材料 (``supply``) is not: it is the village agent's annotation that it collected them and is
    carrying them up, written before the window has seen them, so acceptance never rests on it; it is kept apart
    (``supplied``) for the window to check the papers against. ``entry`` None (an unbound errand, or a matter this
    node's catalogue lacks): nothing is known to be owed.
    """
    held: dict[str, str] = {}
    supplied: dict[str, str] = {}
    for kind, names in steps:
        if kind in ("register", "materials_received"):
            for name in names:
                held.setdefault(normalise_material(name), name)
        elif kind == "supply":
            for name in names:
                supplied.setdefault(normalise_material(name), name)
    main: list[str] = []
    secondary: list[str] = []
    if entry is not None:
        for m in entry.materials:
            if m.optional or normalise_material(m.name) in held:
                continue
            (main if m.main else secondary).append(m.name)
    return HeldMaterials(
        held=tuple(held.values()),
        missing_main=tuple(main),
        missing_secondary=tuple(secondary),
        supplied=tuple(name for key, name in supplied.items() if key not in held),
    )


def acceptance_refusal(entry: Matter | None, materials: HeldMaterials) -> Refusal | None:
    """Whether a desk may accept (受理) an errand holding ``materials``: not while a main material (主件) is missing.

    DOMAIN.md, "The life of an errand", and seed 001: an errand missing materials gets ONE notice of them all
    (一次性告知, ``request_supplement``) and is accepted once they arrive (``materials_received``); 容缺受理 needs the
    main ones complete (the secondary ones are promised, ``_judge_documents`` holds that of the provisional list).
    A desk-side check like ``binding_refusal``: ``judge`` cannot ask it, as an errand's state does not carry what
    was registered, and changing what it derives would change the verdicts of errands other nodes already hold.
    Unbound errands (``entry`` None, from before binding or bound only at acceptance) keep the old rules.
    """
    if entry is None or not materials.missing_main:
        return None
    return refuse("accept_mains_missing", items=materials.missing_main, matter=entry.code)


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
