"""The tree of nodes, and who may see what.

Tiers form a tree. Its levels are ordered top down (``ROLES``): a province, cities, counties,
townships, villages. Every tree so far is rooted at a county; a city (or a province over cities) is
one more entry above the counties, with the same protocol, so a deeper tree is configuration. The
levels above the county (``REGIONAL``) supervise and read: they register, handle and annotate
nothing (``protocol.errand.judge``), so one rule covers a city and a province alike.

An errand belongs to a *scope*: the node where it was registered. Its *path* is the scope and all
of its ancestors; only nodes on the path hold the errand, and every action on it goes to the whole
path and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from protocol.bounds import node_id_problem
from protocol.errors import RouteError
from protocol.signing import X25519, KeyRecord

PROVINCE = "province"
CITY = "city"
COUNTY = "county"
TOWN = "town"
VILLAGE = "village"
# Top down: a node's children are of the next level (enrollment issues tokens by it).
ROLES = (PROVINCE, CITY, COUNTY, TOWN, VILLAGE)
# Above the county: supervision and reading only. One set, so a province needs no code of its own.
REGIONAL = frozenset({PROVINCE, CITY})


def regional(role: str) -> bool:
    """Whether ``role`` is a level above the county (reads its subtree, writes nothing on errands)."""
    return role in REGIONAL


def level_below(role: str) -> str | None:
    """The role a node of ``role`` has as children (None for a village)."""
    index = ROLES.index(role) + 1
    return ROLES[index] if index < len(ROLES) else None


def enrolls(role: str) -> bool:
    """Whether a node of ``role`` enrolls children (every level but the village).

    Such a node must know every id already used in the tree, not only on its path and below it: node ids are
    unique across the whole tree (``protocol.trust.TrustState.id_in_use``), so its parent sends it every
    certificate it holds (``sanji.store.trustbook.TrustBook.for_child``).
    """
    return level_below(role) is not None


class NodeEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A node's place in the tree and its public keys.

    ``keys`` holds the node's signing keys (Ed25519) and, once it has one, its sealing key
    (algorithm ``x25519``, see ``protocol.sealing``). An entry with no sealing key is still valid:
    applicant details on paths through it travel in clear, as before sealing existed.
    """

    id: str
    role: str
    parent: str | None = None
    name: str = ""
    keys: tuple[KeyRecord, ...] = ()


class Directory:
    """Read-only view of the tree plus the keys each node signs with."""

    def __init__(
        self,
        nodes: Iterable[NodeEntry],
        *,
        revoked_after: Mapping[str, Mapping[tuple[str, str], int]] | None = None,
    ) -> None:
        # key_id -> {(origin, scope): last seq the key may sign}: keys retired by rotation or
        # revocation (protocol.trust); a stream not named allows nothing more from that key.
        self._revoked_after = {k: dict(v) for k, v in (revoked_after or {}).items()}
        self._nodes: dict[str, NodeEntry] = {}
        for node in nodes:
            if problem := node_id_problem(node.id):  # the one bound, asked of every directory however it was made
                raise ValueError(f"node {node.id[:80]!r} is not a node id: {problem}")
            if node.role not in ROLES:
                raise ValueError(f"node {node.id}: unknown role {node.role!r}")
            self._nodes[node.id] = node
        self._keys: dict[str, KeyRecord] = {}
        for node in self._nodes.values():
            for key in node.keys:
                if key.node != node.id:
                    raise ValueError(f"key {key.key_id} is listed under {node.id} but names {key.node}")
                self._keys[key.key_id] = key
        for node in self._nodes.values():
            if node.parent is not None and node.parent not in self._nodes:
                raise ValueError(f"node {node.id}: parent {node.parent} is not in the directory")
        self._children: dict[str, list[str]] = {n: [] for n in self._nodes}
        for node in self._nodes.values():
            if node.parent is not None:
                self._children[node.parent].append(node.id)
        # Every node's path, computed once (rejecting cycles at load time): ``judge`` asks for paths many
        # times per action, and a directory is never edited (a store swaps it for a new one).
        self._paths: dict[str, tuple[str, ...]] = {}
        for node_id in self._nodes:
            self._paths[node_id] = self._walk_up(node_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def nodes(self) -> list[NodeEntry]:
        return list(self._nodes.values())

    def get(self, node_id: str) -> NodeEntry:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise RouteError(f"node {node_id!r} is not in this node's directory") from None

    def role(self, node_id: str) -> str:
        return self.get(node_id).role

    def parent(self, node_id: str) -> str | None:
        return self.get(node_id).parent

    def children(self, node_id: str) -> list[str]:
        return list(self._children.get(node_id, ()))

    def key(self, key_id: str) -> KeyRecord | None:
        return self._keys.get(key_id)

    def retired_after(self, key_id: str, origin: str, scope: str) -> int | None:
        """The last seq of stream (origin, scope) ``key_id`` may sign, or None if the key is not retired."""
        points = self._revoked_after.get(key_id)
        if points is None:
            return None
        return points.get((origin, scope), 0)

    def is_retired(self, key_id: str) -> bool:
        return key_id in self._revoked_after

    def revoked_after(self) -> dict[str, dict[tuple[str, str], int]]:
        return {k: dict(v) for k, v in self._revoked_after.items()}

    def sealing_key(self, node_id: str) -> KeyRecord | None:
        """The key personal data for ``node_id`` is sealed to: its last listed, unrevoked x25519 record."""
        current = [
            k
            for k in self.get(node_id).keys
            if k.algorithm == X25519 and not k.revoked and k.key_id not in self._revoked_after
        ]
        return current[-1] if current else None

    def path(self, scope: str) -> tuple[str, ...]:
        """Root first, ending with ``scope`` itself."""
        try:
            return self._paths[scope]
        except KeyError:
            raise RouteError(f"node {scope!r} is not in this node's directory") from None

    def _walk_up(self, scope: str) -> tuple[str, ...]:
        chain: list[str] = []
        current: str | None = scope
        while current is not None:
            if current in chain:
                raise ValueError(f"the directory has a cycle through {current}")
            chain.append(current)
            current = self.get(current).parent
        return tuple(reversed(chain))

    def audience(self, origin: str, scope: str) -> tuple[str, ...]:
        """Who must receive what ``origin`` writes about errands of ``scope``."""
        path = self.path(scope)
        if origin not in path:
            raise RouteError(f"node {origin} is not on the path of {scope} and may not write about its errands")
        return tuple(n for n in path if n != origin)

    def county_of(self, node_id: str) -> str | None:
        """The county on ``node_id``'s path (itself, or its nearest county ancestor); None above the counties.

        The county publishes what its subtree works by (catalogue, calendar, assessment rules), whether
        it is the root or sits below a city, so its documents are checked against this county's keys.
        """
        return next((n for n in reversed(self.path(node_id)) if self.role(n) == COUNTY), None)

    def is_within(self, node_id: str, ancestor: str) -> bool:
        """True if ``node_id`` is ``ancestor`` or below it."""
        return ancestor in self.path(node_id)

    def subtree(self, root: str) -> set[str]:
        out = {root}
        stack = [root]
        while stack:
            for child in self._children.get(stack.pop(), ()):
                out.add(child)
                stack.append(child)
        return out

    def next_hop_down(self, node_id: str, scope: str) -> str | None:
        """The child of ``node_id`` on the way to ``scope``; None if ``node_id`` is the scope."""
        path = self.path(scope)
        if node_id not in path:
            raise RouteError(f"{node_id} is not on the path of {scope}")
        index = path.index(node_id)
        return path[index + 1] if index + 1 < len(path) else None
