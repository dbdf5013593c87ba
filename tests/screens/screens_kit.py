"""Helpers for the screen tests: a node's app with the print routes, and a node directory holding the catalogue."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import uvicorn
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from protocol.catalogue import sign_catalogue
from protocol.signing import SigningKey
from sanji.catalogue import default_catalogue
from sanji.config import NodeSettings, load_settings
from sanji.context import NodeContext
from sanji.demo.cluster import Cluster, free_port
from sanji.keys import read_directory, read_key
from sanji.store import Store, open_database
from sanji.tiers import create_app


@contextmanager
def served(app: Litestar, *, name: str = "node", start_within: float = 30.0) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a background thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"{name}-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_within
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} node did not start within {start_within:.0f} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        # a node still running would serve (and warn) during later tests, which would take the blame
        assert not thread.is_alive(), f"the {name} node did not stop within 30 s"


def make_app(settings: NodeSettings) -> Litestar:
    """The node's app, as its tier package builds it (the print routes are shared plumbing)."""
    return create_app(settings)


async def _seed_catalogue(settings: NodeSettings, county_key: SigningKey) -> None:
    directory = read_directory(settings.path(settings.node.directory))
    key = read_key(settings.path(settings.node.key_file))
    db = await open_database(settings.db_url)
    try:
        store = Store(db, node_id=settings.node.id, key=key, directory=directory)
        await store.start()
        await NodeContext(store, None).offer(sign_catalogue(default_catalogue(), county_key))
    finally:
        await db.dispose()


def prepared_node(tmp_path: Path, node: str, *, catalogue: bool = True) -> tuple[Cluster, NodeSettings]:
    """A county of one town and one village on disk; ``node``'s database already holds the catalogue."""
    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes[node].config)
    if catalogue:
        asyncio.run(_seed_catalogue(settings, cluster.layout.keys["C"]))
    return cluster, settings


MZ003_ALL = ("申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料")
# 容缺: the secondary materials are promised within the deadline the acceptance counts from today (rules 2).
PROMISED = date.today() + timedelta(days=2)


def register(
    client: TestClient[Litestar],
    *,
    matter: str = "MZ-003",
    materials: Sequence[str] = MZ003_ALL,
    name: str = "张秀英",
    in_person: bool = False,
    **extra: str,
) -> str:
    """Register through the HTML form: review (nothing signed yet), then 确认登记; return the new errand's id."""
    data: dict[str, Any] = {
        "matter": matter,
        "applicant_name": name,
        "materials": list(materials),
        "actor": "李建国",
        "role": "代办员",
        "step": "review",
        "confirm": "1",
        **extra,
    }
    data["in_person" if in_person else "mandate"] = "1"
    r = client.post("/register", data=data, follow_redirects=False)
    assert r.status_code == 200 and 'value="confirm"' in r.text, r.text
    r = client.post("/register", data={**data, "step": "confirm"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith("/print/") and location.endswith("/receipt"), location
    return unquote(location.split("/")[2])


def act(client: TestClient[Litestar], errand_id: str, kind: str, **fields: str) -> Response:
    """Take one step through the errand page's HTML form; it must succeed (303 back to the errand)."""
    data = {"kind": kind, "actor": "王晓红", "role": "窗口工作人员", **fields}
    r = client.post(f"/errands/{quote(errand_id, safe='')}/act", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"].endswith(f"?done={kind}")
    return r
