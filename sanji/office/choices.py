"""What an office screen's filters offer to choose from: the directory's townships and villages by name, the
catalogue's matters by code and name, the catalogue's departments.

A clerk picks 城关镇便民服务中心 from a list rather than typing ``T01``; links and the API keep passing ids, and a
value typed by hand may be an id or a name (``resolve``). A value that is neither is said to be unknown, not
answered with an empty table and no word.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from protocol.catalogue import Catalogue
from protocol.topology import TOWN, VILLAGE, Directory


class Choice(msgspec.Struct, frozen=True, kw_only=True):
    value: str  # what the filter keeps (a node id, a matter code, a department's name)
    label: str  # what the list shows


def townships(directory: Directory, within: str) -> list[Choice]:
    """The townships (便民服务中心) in ``within``'s subtree, by name."""
    return [
        Choice(value=e.id, label=e.name or e.id)
        for e in sorted(directory.nodes(), key=lambda e: e.id)
        if e.role == TOWN and directory.is_within(e.id, within)
    ]


def nodes(directory: Directory, within: str) -> list[Choice]:
    """Townships and their villages in ``within``'s subtree, each village under its township."""
    out: list[Choice] = []
    for town in townships(directory, within):
        out.append(town)
        for child in sorted(directory.children(town.value)):
            if child in directory and directory.role(child) == VILLAGE:
                name = directory.get(child).name or child
                out.append(Choice(value=child, label=f"{town.label} · {name}"))
    return out


def matters(catalogue: Catalogue | None) -> list[Choice]:
    if catalogue is None:
        return []
    return [Choice(value=m.code, label=f"{m.code} {m.name}") for m in sorted(catalogue.matters, key=lambda m: m.code)]


def departments(catalogue: Catalogue | None, also: Sequence[str] = ()) -> list[Choice]:
    """The county departments the catalogue names (approving or co-handling), and ``also`` (those seen in data)."""
    named = {d for d in also if d}
    for m in catalogue.matters if catalogue else ():
        named.update(d for d in (m.department, *m.joint_departments) if d)
    return [Choice(value=d, label=d) for d in sorted(named)]


def resolve(typed: str, choices: Sequence[Choice]) -> tuple[str, bool]:
    """``typed`` as the value a filter keeps: an id or code as it is, a name (the label, or a matter's name after
    its code) as its id. The flag says whether it is one of ``choices``."""
    text = typed.strip()
    if not text:
        return "", True
    for c in choices:
        if text == c.value:
            return c.value, True
    for c in choices:
        if text == c.label or c.label.endswith(" " + text) or c.label.endswith(" · " + text):
            return c.value, True
    return text, False
