"""A county hub process on a PostgreSQL hot standby (docs/scaling.md, 2.): it starts, serves the office's views
and exports of what the primary holds, follows the primary as it changes, and refuses every write with a
clear 503 (``read_replica``) instead of failing. Real servers: a private primary and its streaming standby
(``devtools.private_pg``), two real ``sanji county serve`` processes, real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bench.hub_processes import county
from bench.nodes import Node, serve, stop, write_config
from bench.profile_apply import build
from devtools.private_pg import PrivateClusterUnavailable, Server, private_cluster
from protocol.lookup import lookup_code
from sanji.demo.cluster import free_port
from sanji.keys import NodeKey
from sanji.store import ReadOnlyReplica, open_database

PASSWORD = "监察-standby-2026"
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[Server]]:
    try:
        with private_cluster(standby=True) as servers:
            yield servers
    except PrivateClusterUnavailable as exc:
        if os.environ.get("SANJI_REQUIRE_POSTGRES", "") == "1":
            pytest.fail(f"SANJI_REQUIRE_POSTGRES=1 but {exc}", pytrace=False)
        pytest.skip(str(exc))


async def caught_up(primary: httpx.AsyncClient, replica: httpx.AsyncClient, within: float = 30.0) -> dict[str, Any]:
    """The replica's errand list once it equals the primary's (streaming replication is asynchronous)."""
    deadline = time.monotonic() + within
    while True:
        want = (await primary.get("/api/errands", params={"limit": 1000})).json()
        got = await replica.get("/api/errands", params={"limit": 1000})
        assert got.status_code == 200, got.text
        if got.json() == want:
            return dict(want)
        behind = f"the replica holds {got.json()['total']} errands, the primary {want['total']}"
        assert time.monotonic() < deadline, behind
        await asyncio.sleep(0.2)


async def log_in(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    page = await client.get("/login")
    assert page.status_code == 200, page.text
    token = CSRF.findall(page.text)[-1]
    return await client.post(
        "/login", data={"name": name, "password": password, "next": "/", "_csrf_token": token}, follow_redirects=False
    )


async def test_a_hub_on_a_standby_serves_the_primarys_views_and_refuses_writes(
    tmp_path: Path, cluster: list[Server]
) -> None:
    primary_server, standby_server = cluster
    admin = await asyncpg.connect(primary_server.url())
    try:
        await admin.execute("CREATE DATABASE county")
    finally:
        await admin.close()
    primary_url, standby_url = primary_server.url("county"), standby_server.url("county")
    saved = await build(6, seed=5, villages_per_town=1)
    *first, last = saved.pushes
    store = await county(saved, primary_url)
    try:
        for town, frames in first:
            await store.receive(frames, peer=town)
    finally:
        await store.db.dispose()

    key = NodeKey.from_raw(saved.signing, saved.sealing)
    on_primary = Node(id=saved.county, role="county", key=key, entries=saved.entries, folder="p", db_url=primary_url)
    on_standby = Node(
        id=saved.county,
        role="county",
        key=key,
        entries=saved.entries,
        folder="s",
        db_url=standby_url,
        extra_toml="[sync]\nduties_interval = 0.5\n",  # how often it takes up documents published at the primary
    )
    config = write_config(tmp_path, on_primary, free_port())
    argv = ["accounts", "add", "--config", str(config), "--name", "监察员", "--role", "supervisor", "--password-stdin"]
    adding = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sanji.cli.main", *argv, stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(adding.communicate((PASSWORD + "\n").encode()), timeout=120)
    assert adding.returncode == 0, (out, err.decode())
    issuing = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sanji.cli.main", "accounts", "token", "--config", str(config), "--name", "监察员",
        stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(issuing.communicate(), timeout=120)
    assert issuing.returncode == 0, err.decode()
    token = re.findall(r"sanji_\S+", out.decode())[-1]
    hub = await serve(tmp_path, on_primary)
    reader = None
    try:
        reader = await serve(tmp_path, on_standby)
        async with (
            httpx.AsyncClient(base_url=hub.url, timeout=30) as primary,
            httpx.AsyncClient(base_url=reader.url, timeout=30) as replica,
        ):
            # Logins stay with the primary; its session, replicated, is what the replica reads.
            assert (await log_in(primary, "监察员", PASSWORD)).status_code == 303
            replica.cookies = primary.cookies
            listed = await caught_up(primary, replica)
            assert listed["total"] > 0

            # The office's views and exports, read from the standby.
            for path in ("/supervision", "/office/ledger", "/office/business"):
                page = await replica.get(path)
                assert page.status_code == 200, (path, page.text[:500])
                assert 'id="replica-banner"' in page.text  # every page says where it is
                assert 'action="/logout"' not in page.text  # a replica ends no session: the primary does
                at_primary = (await primary.get(path)).text
                assert 'id="replica-banner"' not in at_primary and 'action="/logout"' in at_primary
            # A script with a token reads there too (its use is noted at the primary, not here).
            async with httpx.AsyncClient(base_url=reader.url, timeout=30) as script:
                scripted = await script.get("/api/errands", headers={"Authorization": f"Bearer {token}"})
            assert scripted.status_code == 200 and scripted.json()["total"] == listed["total"], scripted.text

            # A complaint is read at the primary, where each read is audited; the replica shows none, and says so.
            errand_row = listed["items"][0]
            async with httpx.AsyncClient(base_url=hub.url, timeout=30) as villager:
                form = await villager.get("/complain")
                complained = await villager.post(
                    "/complain",
                    data={
                        "_public_token": re.findall(r'name="_public_token" value="([^"]+)"', form.text)[-1],
                        "receipt": errand_row["receipt"],
                        "code": lookup_code(errand_row["id"]),
                        "kind": "投诉",
                        "text": "窗口推诿",
                    },
                )
            assert complained.status_code == 200, complained.text[:500]
            assert len((await primary.get("/api/supervision")).json()["complaints"]) == 1
            await caught_up(primary, replica)
            page = await replica.get("/supervision")
            assert page.status_code == 200 and 'id="complaints-at-primary"' in page.text, page.text[-800:]
            report = await replica.get("/api/supervision")
            assert report.status_code == 200 and report.json()["complaints"] == [], report.text[:300]

            # A page this role may not open is refused as anywhere (403), though the replica cannot audit it.
            assert (await replica.get("/admin/accounts")).status_code == 403

            # One errand's detail is a read of personal data, audited as it is read: at the primary.
            errand = listed["items"][0]["id"]
            assert (await primary.get(f"/api/errands/{errand}")).status_code == 200
            detail = await replica.get(f"/api/errands/{errand}")
            assert detail.status_code == 503 and detail.json()["error"] == "read_replica", detail.text
            page = await replica.get(f"/errands/{errand}")
            assert page.status_code == 503 and page.json()["error"] == "read_replica", page.text
            sheet = await replica.get("/api/office/ledger/export", params={"format": "csv"})
            assert sheet.status_code == 200, sheet.text[:500]
            assert sheet.content == (await primary.get("/api/office/ledger/export", params={"format": "csv"})).content

            # Writes are refused, clearly, and nothing is lost: a login, a desk's registration.
            refused = await log_in(replica, "监察员", PASSWORD)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "read_replica" and refused.json()["retryable"] is False
            registered = await replica.post("/api/errands", json={"matter": "x"})
            assert registered.status_code in (400, 403, 503), registered.text  # refused before or at the write
            assert registered.status_code != 500

            # A push taken at the standby is refused before anything is written ...
            standby_store = await county(saved, standby_url, migrate=True)
            try:
                with pytest.raises(ReadOnlyReplica):
                    await standby_store.receive(last[1], peer=last[0])
            finally:
                await standby_store.db.dispose()
            # ... and the same push taken by the primary reaches the replica's views.
            store = await county(saved, primary_url, migrate=False)
            try:
                outcome = await store.receive(last[1], peer=last[0])
                assert outcome.applied_actions > 0
            finally:
                await store.db.dispose()
            after = await caught_up(primary, replica)
            assert after != listed

            # Rules published at the primary are taken up by the replica, which serves no sync request to learn it.
            shown = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sanji.cli.main", "rules", "show", "--config", str(config), "--json",
                stdout=PIPE, stderr=PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(shown.communicate(), timeout=120)
            assert shown.returncode == 0, err.decode()
            rules = json.loads(out)
            rules["version"] += 1
            (tmp_path / "rules.json").write_text(json.dumps(rules, ensure_ascii=False), encoding="utf-8")
            published = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sanji.cli.main", "rules", "publish", "--config", str(config),
                str(tmp_path / "rules.json"), stdout=PIPE, stderr=PIPE,
            )  # fmt: skip
            _, err = await asyncio.wait_for(published.communicate(), timeout=120)
            assert published.returncode == 0, err.decode()
            deadline = time.monotonic() + 30
            while (await replica.get("/api/node")).json()["rules_version"] != rules["version"]:
                assert time.monotonic() < deadline, "the replica did not take up the rules published at the primary"
                await asyncio.sleep(0.2)

        opened = await open_database(standby_url)
        assert opened.read_only
        await opened.dispose()
    finally:
        if reader is not None:
            await stop(reader)
        await stop(hub)
    assert "read-only replica" in reader.log_path.read_text(encoding="utf-8")
