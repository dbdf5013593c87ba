"""Node ids have one bound (``protocol.bounds``: 1-64 of A-Z a-z 0-9 _ -), asked by every place that takes one.

The store's node, scope and peer columns are 64 characters wide, so a longer id issued at the screen or the
command line used to be accepted there and fail later (on PostgreSQL, at the first write naming it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from litestar.testing import TestClient

from protocol.bounds import MAX_NODE_ID, NODE_ID_PATTERN, node_id_problem, whole
from sanji.cli.main import main
from sanji.config import ConfigError, load_settings
from sanji.demo.cluster import Cluster
from sanji.layout import city_layout, county_layout
from sanji.tiers import create_app

LONGEST = "C1T01V" + "9" * (MAX_NODE_ID - 6)
TOO_LONG = LONGEST + "9"
REFUSED = [TOO_LONG, "", "T01\n", "T01 V09", "东岭村", "T01.V01", "T01/V01", "T01V01\u202e"]


def test_the_bound_is_built_like_the_other_patterns_and_fits_every_id_the_layouts_make() -> None:
    assert NODE_ID_PATTERN == whole(f"[A-Za-z0-9_-]{{1,{MAX_NODE_ID}}}") and MAX_NODE_ID == 64
    made = [e.id for e in county_layout(2, 2).entries] + [e.id for e in city_layout(2, 2, 2).entries]
    assert {"C", "T01", "T01V01", "S", "C1", "C1T01", "C1T01V01", "C2T02V02"} <= set(made)
    for node in [*made, LONGEST, "C_1", "t-01"]:
        assert node_id_problem(node) is None, node
    for node in REFUSED:
        problem = node_id_problem(node)
        assert problem is not None and "节点编号" in problem and "1-64 letters" in problem, node
        assert re.match(NODE_ID_PATTERN, node) is None  # what the schema publishes says the same


@pytest.mark.parametrize(
    "argv",
    [
        ["enroll", "issue", "--config", "no.toml", "--role", "village", "--node"],
        ["trust", "revoke", "--config", "no.toml", "--node"],
        ["trust", "init-root", "--out", "x", "--county"],
        ["keys", "init", "--out", "x.key", "--node"],
        ["directory", "add", "--directory", "d.json", "--role", "village", "--key-record", "{}", "--node"],
        ["export", "--config", "no.toml", "--out", "x.sjx", "--for"],
    ],
)
def test_every_command_taking_a_node_id_refuses_one_out_of_bounds_with_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([*argv, TOO_LONG])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "节点编号只能包含字母、数字、_ 和 -，最多64个字符" in err and "1-64 letters" in err
    assert "Traceback" not in err


def test_an_id_at_the_bound_is_taken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "init", "--node", LONGEST, "--out", str(tmp_path / "node.key")]) == 0
    assert LONGEST in capsys.readouterr().out  # the public key record names it


def test_a_config_with_an_id_out_of_bounds_stops_before_anything_starts(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1)
    config = cluster.nodes["T01V01"].config
    assert load_settings(config).node.id == "T01V01"
    config.write_text(config.read_text(encoding="utf-8").replace('id = "T01V01"', f'id = "{TOO_LONG}"'), "utf-8")
    with pytest.raises(ConfigError, match=r"node\.id .*1-64 letters"):
        load_settings(config)


def test_the_api_refuses_an_urged_node_out_of_bounds_with_a_400(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    with TestClient(create_app(load_settings(cluster.nodes["C"].config))) as client:
        assert client.get("/api/urgings", params={"to": LONGEST}).status_code == 200
        assert client.get("/api/urgings", params={"to": TOO_LONG}).status_code == 400
        assert client.get("/api/urgings", params={"to": "T01\n"}).status_code == 400
