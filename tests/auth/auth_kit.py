"""Helpers for the account tests: a node on disk with accounts, its app, logging in through the form.

``prepare(tmp_path, node, required=...)`` writes a one-town, one-village county and returns the
node's config path (with ``[auth] required = true`` appended when asked); ``add`` creates an
account through the CLI's own ``run``; ``token`` issues a bearer token; ``login`` logs in through
the HTML form and returns the session's CSRF token as the pages carry it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from sanji.auth import events as ev
from sanji.auth.book import AuthBook, Who
from sanji.auth.service import AuthService
from sanji.cli import accounts_cmd
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.store import open_database
from sanji.tiers import create_app
from tests.screens.screens_kit import _seed_catalogue as seed_catalogue

PASSWORD = "correct horse 9"
CSRF = re.compile(r'name="_csrf_token" value="([^"]*)"')
GOOD = {
    "matter": "MZ-001",
    "applicant_name": "张秀英",
    "applicant_id_number": "430621195007307791",
    "applicant_phone": "13812345678",
    "materials": ["申请书", "身份证复印件", "户口簿复印件"],  # every main material: the township may accept it
    "actor": "typed by the desk",
}


def prepare(tmp_path: Path, node: str, *, required: bool = False) -> Path:
    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=not required)
    config = cluster.nodes[node].config
    # The node holds the county's catalogue, as after its first exchange: nothing is accepted without one.
    asyncio.run(seed_catalogue(load_settings(config), cluster.layout.keys["C"]))
    return config


def app(config: Path) -> Litestar:
    return create_app(load_settings(config))


def add(config: Path, name: str, role: str, password: str = PASSWORD) -> None:
    assert accounts_cmd.run_add(str(config), name, role, password) == 0


def with_service(config: Path, work: Callable[[AuthService], Any]) -> Any:
    settings = load_settings(config)

    async def main() -> Any:
        db = await open_database(settings.db_url)
        try:
            service = AuthService(AuthBook(db), settings.auth, node_id=settings.node.id, node_role=settings.node.role)
            return await work(service)
        finally:
            await db.dispose()

    return asyncio.run(main())


def token(config: Path, name: str) -> str:
    async def work(service: AuthService) -> str:
        _, secret = await service.issue_token(name, "test", by=Who(account="test", via="cli"))
        return secret

    result: str = with_service(config, work)
    return result


def events(config: Path, **filters: Any) -> list[ev.Event]:
    async def work(service: AuthService) -> list[ev.Event]:
        return await service.book.events(**filters)

    result: list[ev.Event] = with_service(config, work)
    return result


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def csrf_of(html: str) -> str:
    found = CSRF.findall(html)
    assert found, "no _csrf_token field on the page"
    return str(found[-1])


def login(client: TestClient[Litestar], name: str, password: str = PASSWORD) -> str:
    """Log in through the form; return the session's CSRF token (from the home page's logout form)."""
    page = client.get("/login")
    assert page.status_code == 200, page.text
    r = client.post(
        "/login",
        data={"name": name, "password": password, "next": "/", "_csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    home = client.get("/lookup")  # any page with the header's logout form
    assert name in home.text
    return csrf_of(home.text)
