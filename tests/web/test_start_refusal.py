"""A node that may not start says why, alone, and exits 2 — whatever in the start refused it.

``NodeRuntime.lifespan`` keeps any ``SanjiError`` of the start (``NodeRuntime.refused``): a key the directory
does not list for the node, a directory naming the node another tier, a start duty's refusal
(``tests/catalogue/test_version_step.py``). ``sanji <tier> serve`` prints it after the server's traceback as
``error: <中文> <English>`` and exits 2, not with uvicorn's bare exit 3.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from litestar.testing import TestClient

from protocol.errors import SanjiError
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.tiers import create_app
from tests.serve_kit import serve_refused


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True)


def with_townships_key(cluster: Cluster) -> Path:
    """The county's key file replaced by its township's: a key the directory does not list for the county."""
    county, town = load_settings(cluster.nodes["C"].config), load_settings(cluster.nodes["T01"].config)
    key_file = county.path(county.node.key_file)
    shutil.copyfile(town.path(town.node.key_file), key_file)
    return cluster.nodes["C"].config


def test_a_wrong_key_is_kept_as_the_refusal(cluster: Cluster) -> None:
    config = with_townships_key(cluster)
    app = create_app(load_settings(config))
    with pytest.raises(BaseExceptionGroup) as group, TestClient(app):  # the lifespan's error, in the test's task group
        pass
    assert group.value.subgroup(SanjiError) is not None
    refused = app.state.runtime.refused
    assert isinstance(refused, SanjiError) and "is not one the directory lists for C" in refused.message


def test_sanji_serve_says_a_wrong_key_alone_and_exits_2(cluster: Cluster) -> None:
    config = with_townships_key(cluster)
    last = serve_refused(config)
    said = last[-1]  # Chinese first: what failed, then the English naming the key
    assert said.startswith("error: 节点未能启动 the key in "), last[-5:]
    assert "is not one the directory lists for C" in said, last[-5:]
