"""What every benchmark's result and served nodes rest on (``bench.harness``, ``bench.nodes``): the result's
envelope in the order readers and the chart expect, a scratch directory that goes unless kept, and a node
config the real loader accepts, with logins and the database only where asked."""

from __future__ import annotations

import json
from pathlib import Path

from bench import harness, nodes
from protocol.topology import TOWN
from sanji.config import load_settings
from sanji.layout import county_layout


def test_the_result_wraps_what_was_measured_in_one_envelope(tmp_path: Path) -> None:
    run = harness.Run("example")
    out = tmp_path / "example.json"
    assert run.publish({"figures": [], "measured": 1}, out, head={"quick": True}, tmpdir="/tmp") == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert list(result) == ["benchmark", "at", "quick", "machine", "figures", "measured", "seconds"]
    machine = result["machine"]
    assert result["benchmark"] == "example" and machine["tmpdir"] == "/tmp"
    assert list(machine)[-2:] == ["tmpdir", "load_average_1m"]  # the caller's extras, then the load
    assert {"git_commit", "git_tracked_files_modified", "packages", "cpu_count"} <= machine.keys()
    assert machine["load_average_1m"].keys() == {"before", "after"}


def test_the_common_flags_and_the_scratch_directory(tmp_path: Path) -> None:
    parser = harness.arguments("example", "First line.\nMore.", quick="small", seed=7)
    args = parser.parse_args(["--quick", "--keep"])
    assert (args.quick, args.seed, args.keep, args.out) == (True, 7, True, harness.RESULTS / "example.json")
    assert not hasattr(harness.arguments("example", None, keep=None).parse_args([]), "keep")
    run = harness.Run("example")
    with run.scratch("gone-", parent=tmp_path) as gone:
        (gone / "x").write_text("x")
    with run.scratch("kept-", keep=True, parent=tmp_path) as kept:
        pass
    assert not gone.exists() and kept.is_dir()


def test_a_served_nodes_config_loads_as_written(tmp_path: Path) -> None:
    layout = county_layout(1, 1)
    for db_url, logins in ((None, True), ("sqlite:///elsewhere.db", False)):
        node = nodes.Node("T01", TOWN, layout.keys["T01"], layout.entries, f"serve-{logins}", db_url, logins)
        config = nodes.write_config(tmp_path, node, port=8123)
        settings = load_settings(config, role=TOWN)
        assert (settings.node.id, settings.node.port) == ("T01", 8123)
        assert ("db = " in config.read_text()) == (db_url is not None)
        assert settings.auth.required is logins
    assert (tmp_path / "directory.json").is_file()  # one directory file for the nodes of one workdir
