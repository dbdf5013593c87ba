"""Each tier serves its own desk and not another's: real apps of a county, a township and a village.

A route outside a node's desk is absent there (404 from routing: no handler runs, none asks the
node's role); a route of the shared plumbing is served everywhere; the menu links what the node
serves, and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from county_node.desk import DESK as COUNTY_DESK
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.tiers import create_app, desk
from sanji.web.app import build_app
from sanji.web.desk import serves
from town_node.desk import DESK as TOWN_DESK
from village_agent.desk import DESK as VILLAGE_DESK

Client = TestClient[Litestar]
C, T, V = "C", "T01", "T01V01"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Client]]:
    cluster = Cluster.prepare(tmp_path_factory.mktemp("desks") / "c", towns=1, villages_per_town=1, open_demo=True)
    clients = {n: TestClient(create_app(load_settings(cluster.nodes[n].config))) for n in (C, T, V)}
    for client in clients.values():
        client.__enter__()
    try:
        yield clients
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)


def absent(response: object) -> bool:
    """Routing's own 404 (its detail "Not Found"), not a record that is missing: the JSON error body under
    /api/, the error page (sanji.web.error_pages) elsewhere."""
    assert hasattr(response, "status_code") and hasattr(response, "json") and hasattr(response, "text")
    if response.status_code != 404:
        return False
    if response.headers.get("content-type", "").startswith("text/html"):
        return 'id="problem"' in response.text and "Not found: Not Found</span>" in response.text
    return bool(response.json()["error"] == "not_found" and response.json()["message"] == "Not Found")


# (method, path, body): which tiers serve it; a tier not named answers 404 from routing.
DESK_ROUTES = [
    ("GET", "/inbox", (C,)),
    ("GET", "/api/inbox", (C,)),
    ("GET", "/subtasks", (C,)),
    ("GET", "/api/subtasks", (C,)),
    ("GET", "/office/assessment/", (C,)),
    ("GET", "/api/office/assessment", (C,)),
    ("GET", "/api/office/assessment/appeals", (C,)),
    ("GET", "/api/office/platform/export", (C,)),
    ("POST", "/office/rules/publish", (C,)),
    ("GET", "/office/rules/", (C, T)),
    ("GET", "/api/office/rules", (C, T)),
    ("GET", "/office/business/", (C, T)),
    ("GET", "/api/office/business", (C, T)),
    ("GET", "/register", (C, T, V)),  # the county's page says it does not register (403)
]
SHARED = ["/", "/lookup", "/supervision", "/office/ledger", "/api/office/ledger", "/office/sms/", "/enroll", "/public"]


@pytest.mark.parametrize(("method", "path", "tiers"), DESK_ROUTES, ids=lambda v: str(v))
def test_each_tier_serves_its_own_desk_and_not_anothers(
    nodes: dict[str, Client], method: str, path: str, tiers: tuple[str, ...]
) -> None:
    for node, client in nodes.items():
        response = client.request(method, path, follow_redirects=False)
        if node in tiers:
            assert not absent(response), f"{method} {path} is not served at {node}"
            assert serves(client.app, path.rstrip("/") or "/", method)
        else:
            assert absent(response), f"{method} {path} is served at {node}: {response.status_code}"
            assert not serves(client.app, path.rstrip("/") or "/", method)


@pytest.mark.parametrize("path", SHARED)
def test_the_shared_plumbing_is_served_everywhere(nodes: dict[str, Client], path: str) -> None:
    for node, client in nodes.items():
        assert client.get(path).status_code == 200, f"{path} at {node}"


def test_only_the_county_publishes_rules(nodes: dict[str, Client]) -> None:
    """At the township the rules API is read-only: publishing is not routed (405 beside the GET)."""
    assert nodes[C].post("/api/office/rules", json={"version": "three"}).status_code == 400  # routed, then refused
    assert nodes[T].post("/api/office/rules", json={"version": "three"}).status_code == 405
    assert absent(nodes[V].post("/api/office/rules", json={"version": "three"}))
    page = nodes[C].get("/office/rules/").text
    assert 'action="/office/rules/publish"' in page  # the county's page offers publishing
    # each item says which way and how many points: "扣 2 分", "加 5 分", never "扣 -2"
    assert "扣 2 分" in page and "加 5 分" in page and "扣 -" not in page and "加 +" not in page


def test_registration_is_where_errands_come_in(nodes: dict[str, Client]) -> None:
    assert nodes[V].get("/register").status_code == 200
    assert nodes[T].get("/register").status_code == 200
    refused = nodes[C].get("/register")
    assert refused.status_code == 403 and "县级政务服务中心不登记办件" in refused.text


def menu(page: str) -> list[str]:
    menu_nav = r'<nav aria-label="(?:主菜单 Main menu|Main menu 主菜单)">'
    nav = re.split(menu_nav, page, maxsplit=1)[1].split("</nav>", 1)[0]
    return re.findall(r'<a href="([^"]+)"', nav)


def test_the_menu_links_what_the_desk_serves(nodes: dict[str, Client]) -> None:
    for node, client in nodes.items():
        links = menu(client.get("/").text)
        tier = desk(client.app.state.settings.node.role)
        assert links == [link.href for link in tier.menu if link.shown_to(None)], node  # open desk: no admin links
        assert not {"/admin/accounts", "/enroll"} & set(links), node
        for href in [link.href for link in tier.menu]:
            assert not absent(client.get(href)), f"{node} links {href}, which it does not serve"
    assert "/office/rules/" not in menu(nodes[V].get("/").text)
    assert "/register" not in menu(nodes[C].get("/").text)
    assert "/subtasks" in menu(nodes[C].get("/").text) and "/subtasks" not in menu(nodes[T].get("/").text)
    assert "/inbox" in menu(nodes[C].get("/").text) and "/inbox" not in menu(nodes[T].get("/").text)


def test_a_desk_serves_only_its_own_role(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    village = load_settings(cluster.nodes[V].config)
    for other in (COUNTY_DESK, TOWN_DESK):
        with pytest.raises(ValueError, match="this desk serves"):
            build_app(village, desk=other)
    assert build_app(village, desk=VILLAGE_DESK).state.desk is VILLAGE_DESK


def test_no_page_links_a_route_its_node_does_not_serve(nodes: dict[str, Client]) -> None:
    """The rules travel down to the village, but its home page names their version without linking a page it lacks."""
    nodes[C].get("/office/rules/")  # the county holds the seed rules from its first start
    blob = nodes[C].blocking_portal.call(nodes[C].app.state.runtime.get_context().rules_blob)
    assert blob is not None
    for below in (T, V):  # as the exchanges would carry them down
        nodes[below].blocking_portal.call(nodes[below].app.state.runtime.get_context().offer_rules, blob)
    for node, client in nodes.items():
        home = client.get("/").text
        held = home.split('考核细则 <span lang="en">Assessment rules</span>: ')[1][:80]
        assert "尚未收到" not in held, node
        for href in sorted(set(re.findall(r'<a href="(/[^"?#]*)', home))):
            assert not absent(client.get(href)), f"{node}'s home page links {href}, which it does not serve"
    assert 'href="/office/rules"' not in nodes[V].get("/").text
    assert 'href="/office/rules"' in nodes[T].get("/").text
