"""The city's desk: the shared plumbing to read and supervise, nothing to register, publish or answer.

Real apps from the configs ``sanji demo --city`` prepares: the city hub above two counties, and a
county that now has a parent serving its own desk as before.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.regional.desk import DESKS
from sanji.tiers import create_app, desk

Client = TestClient[Litestar]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Client]]:
    cluster = Cluster.prepare(
        tmp_path_factory.mktemp("city") / "c", counties=2, towns=1, villages_per_town=1, open_demo=True
    )
    clients = {n: TestClient(create_app(load_settings(cluster.nodes[n].config))) for n in ("S", "C1")}
    for client in clients.values():
        client.__enter__()
    try:
        yield clients
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)


@pytest.mark.parametrize("path", ["/", "/lookup", "/supervision", "/office/ledger", "/api/office/ledger", "/enroll"])
def test_the_city_reads_its_counties(nodes: dict[str, Client], path: str) -> None:
    response = nodes["S"].get(path)
    assert response.status_code == 200, response.text[:500]


@pytest.mark.parametrize("path", ["/register", "/subtasks", "/office/assessment/", "/office/rules/"])
def test_the_city_serves_no_desk_that_writes_or_publishes(nodes: dict[str, Client], path: str) -> None:
    assert nodes["S"].get(path, follow_redirects=False).status_code == 404


def test_a_county_below_the_city_keeps_its_desk(nodes: dict[str, Client]) -> None:
    assert nodes["C1"].get("/").status_code == 200
    assert nodes["C1"].get("/subtasks").status_code == 200
    assert nodes["S"].get("/api/node").json()["role"] == "city"


def test_one_desk_serves_every_level_above_the_county() -> None:
    assert desk("city") is DESKS["city"] and desk("province") is DESKS["province"]
    assert DESKS["city"].handlers == DESKS["province"].handlers
