"""A county's tree of nodes (or a city's, over counties) with fresh keys: the demo, the tests and the benchmarks.

Every node gets a signing key and (unless ``sealing=False``) a sealing key; both public records
are listed in its directory entry, and ``Layout.keys[node]`` is a ``NodeKey`` carrying both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.sealing import SealingKey
from protocol.signing import SigningKey
from protocol.topology import CITY, COUNTY, TOWN, VILLAGE, Directory, NodeEntry
from sanji.keys import NodeKey

TOWN_NAMES = ["城关镇", "河口乡", "石桥镇", "柳溪乡", "青山镇", "白沙乡", "龙泉镇", "桃源乡"]
VILLAGE_NAMES = ["东村", "西村", "南岭村", "北坡村", "杨家村", "李家湾", "王庄", "马坊村"]


@dataclass
class Layout:
    entries: list[NodeEntry]
    keys: dict[str, SigningKey] = field(default_factory=dict)

    @property
    def directory(self) -> Directory:
        return Directory(self.entries)

    def ids(self, role: str) -> list[str]:
        return [e.id for e in self.entries if e.role == role]

    def sealing_key(self, node_id: str) -> SealingKey | None:
        key = self.keys[node_id]
        return key.sealing if isinstance(key, NodeKey) else None


def county_layout(
    towns: int = 2,
    villages_per_town: int = 2,
    *,
    county_id: str = "C",
    sealing: bool = True,
    parent: str | None = None,
    prefix: str = "",
) -> Layout:
    """``sealing=False``: no sealing keys, as before sealing existed (registrations travel in clear).

    ``parent``: the city above this county (None: the county is the root). ``prefix`` goes before the
    township ids (``T01`` -> ``C1T01``), so two counties under one city never share an id.
    """
    keys: dict[str, SigningKey] = {}
    entries: list[NodeEntry] = []

    def add(node_id: str, role: str, up: str | None, name: str) -> None:
        key = NodeKey.generate_pair() if sealing else NodeKey.generate()
        keys[node_id] = key
        entries.append(NodeEntry(id=node_id, role=role, parent=up, name=name, keys=key.records(node_id)))

    add(county_id, COUNTY, parent, f"{county_id}县政务服务中心" if parent else "县政务服务中心")
    for ti in range(1, towns + 1):
        town = f"{prefix}T{ti:02d}"
        add(town, TOWN, county_id, f"{TOWN_NAMES[(ti - 1) % len(TOWN_NAMES)]}便民服务中心")
        for vi in range(1, villages_per_town + 1):
            add(f"{town}V{vi:02d}", VILLAGE, town, f"{VILLAGE_NAMES[(vi - 1) % len(VILLAGE_NAMES)]}代办点")
    return Layout(entries=entries, keys=keys)


def city_layout(
    counties: int = 2, towns: int = 1, villages_per_town: int = 1, *, city_id: str = "S", sealing: bool = True
) -> Layout:
    """A city hub ``S`` above counties ``C1``, ``C2``…, each a ``county_layout`` whose ids start with its own.

    The city is one more entry at the top: every county below it is laid out exactly as a root county is.
    """
    city_key = NodeKey.generate_pair() if sealing else NodeKey.generate()
    entries = [NodeEntry(id=city_id, role=CITY, parent=None, name="市政务服务中心", keys=city_key.records(city_id))]
    keys: dict[str, SigningKey] = {city_id: city_key}
    for ci in range(1, counties + 1):
        county = f"C{ci}"
        part = county_layout(towns, villages_per_town, county_id=county, sealing=sealing, parent=city_id, prefix=county)
        entries.extend(part.entries)
        keys.update(part.keys)
    return Layout(entries=entries, keys=keys)
