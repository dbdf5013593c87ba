"""Directory paths are computed once, at load: what ``judge`` asks per action (issue 15)."""

from __future__ import annotations

import pytest

from protocol.errors import RouteError
from protocol.topology import COUNTY, TOWN, VILLAGE, Directory, NodeEntry


def _tree() -> list[NodeEntry]:
    return [
        NodeEntry(id="C", role=COUNTY),
        NodeEntry(id="T1", role=TOWN, parent="C"),
        NodeEntry(id="T1V1", role=VILLAGE, parent="T1"),
        NodeEntry(id="T2", role=TOWN, parent="C"),
    ]


def test_paths_run_root_first_to_the_node() -> None:
    d = Directory(_tree())
    assert d.path("T1V1") == ("C", "T1", "T1V1")
    assert d.path("T2") == ("C", "T2")
    assert d.path("C") == ("C",)


def test_an_unknown_node_has_no_path() -> None:
    with pytest.raises(RouteError, match="'T9'"):
        Directory(_tree()).path("T9")


def test_a_cycle_is_refused_at_load() -> None:
    nodes = [NodeEntry(id="A", role=TOWN, parent="B"), NodeEntry(id="B", role=TOWN, parent="A")]
    with pytest.raises(ValueError, match="cycle"):
        Directory(nodes)
