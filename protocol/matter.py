"""One entry of the matter catalogue (事项目录): the facts an errand is bound to.

Kept apart from ``protocol.catalogue`` (signing, checking, the envelope) because actions
carry a copy of the entry their errand is bound to (``Register.matter_entry``), and the
wire types must not depend on the catalogue's signing code.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

Level = Literal["village", "town", "county"]
Category = Literal["许可", "给付", "确认", "征收", "公共服务", "其他"]
LimitUnit = Literal["working", "calendar"]

LEVELS: tuple[str, ...] = get_args(Level)
CATEGORIES: tuple[str, ...] = get_args(Category)
LIMIT_UNITS: tuple[str, ...] = get_args(LimitUnit)


class Material(msgspec.Struct, frozen=True, kw_only=True):
    """One document the applicant brings. Main ones (主件) must all be there to accept;
    secondary ones (副件) may follow under a signed commitment (容缺受理, 001_74fbf89f6caad6fd.txt)."""

    name: str
    main: bool
    note: str = ""

    @property
    def optional(self) -> bool:
        """Brought only where it applies (the catalogue's note 如有, "if any"): never owed nor asked for."""
        return self.note.strip().startswith("如有")


class Matter(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the catalogue. Day counts are per ``limit_unit``; 0 on an immediate matter means same day."""

    code: str
    name: str
    name_en: str
    category: Category
    legal_basis: str
    accept_levels: tuple[Level, ...]
    handle_levels: tuple[Level, ...]
    approve_levels: tuple[Level, ...]
    proxy_allowed: bool
    in_person: bool
    materials: tuple[Material, ...]
    statutory_limit: int
    committed_limit: int
    limit_unit: LimitUnit
    township_limit: int
    county_limit: int
    fee: str
    agency_fee: int = 0
    window: str
    department: str
    immediate: bool
    joint_departments: tuple[str, ...] = ()
    # 联办: each co-handling department answers its sub-task at its own desk at the county (True), or,
    # as catalogues before 0.4 said by leaving it out, the lead window ticks the sub-tasks off. An errand
    # keeps the rule of the entry it is bound to, so errands in flight at an upgrade finish as they began.
    joint_answers_at_departments: bool = False
    deemed_approval: bool = False
    illustrative: bool = True
    # 延期: at most this many working days of extensions in all; None means the statutory limit.
    extension_limit: int | None = None
    special_limit: int | None = None  # 特办件: its own (shorter) limit; None means the committed limit
    # The generation of errand rules an errand bound to this entry is judged by: 0 those of 0.3.0 (as
    # catalogues before 0.4 said by leaving it out), 1 those added in 0.4.0 (one rating, by the applicant
    # at the registering desk, after delivery). A 0.3.0 node does not read it and judges by the old rules,
    # so a county signs a catalogue carrying 1 only once every node runs 0.4.0 (protocol/VERSIONING.md).
    rules: int = 0

    @property
    def extension_cap(self) -> int:
        return self.statutory_limit if self.extension_limit is None else self.extension_limit

    @property
    def main_materials(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.materials if m.main)

    @property
    def secondary_materials(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.materials if not m.main)

    @property
    def reported_upward(self) -> bool:
        """上报件: the township accepts, a county department approves."""
        return bool(self.department)
