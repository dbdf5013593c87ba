"""Secure by default: deployed configs and `sanji <tier> serve` require logins; only the demo runs open.

The first start of a real node process with no account prints a one-time administrator password,
which logs in over real HTTP; the second start prints nothing. The open demo mode says so on every page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from sanji.config import AuthSection, NodeSection, NodeSettings, load_settings
from sanji.demo.cluster import Cluster
from tests.screens.screens_kit import make_app, prepared_node

REPO = Path(__file__).resolve().parents[2]
BANNER = "演示模式：未要求登录"


def test_logins_are_required_unless_a_config_says_otherwise() -> None:
    assert AuthSection().required is True
    assert NodeSettings(node=NodeSection(id="X", role="town", key_file="k")).auth.required is True
    for tier in ("city", "county", "town", "village"):
        settings = load_settings(REPO / "deploy" / f"{tier}.toml")
        assert settings.auth.required is True, tier
        assert settings.node.public_url.startswith("https://"), tier  # receipts' QR codes: the public site


def test_only_the_open_demo_mode_shows_the_banner_on_every_page(tmp_path: Path) -> None:
    _, settings = prepared_node(tmp_path / "open", "T01V01")
    assert settings.auth.required is False
    with TestClient(make_app(settings)) as client:
        for path in ("/", "/register", "/lookup", "/public", "/complain", "/supervision", "/print/guide/MZ-001"):
            page = client.get(path)
            assert page.status_code == 200 and BANNER in page.text, path
    closed = Cluster.prepare(tmp_path / "closed", towns=1, villages_per_town=1)
    settings = load_settings(closed.nodes["T01V01"].config)
    assert settings.auth.required is True
    with TestClient(make_app(settings)) as client:
        for path in ("/login", "/lookup", "/public"):
            page = client.get(path)
            assert page.status_code == 200 and BANNER not in page.text, path
        assert client.get("/", follow_redirects=False).status_code == 303  # to /login


def _start(config: Path, out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as sink:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sanji.cli.main",
                "county",
                "serve",
                "--config",
                str(config),
                "--log-level",
                "warning",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _wait_ready(url: str, proc: subprocess.Popen[bytes], out: Path) -> None:
    deadline = time.monotonic() + 240  # a loaded two-core machine takes tens of seconds to import and migrate
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the node stopped: {out.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/login", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the node did not answer within 240 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.processes
def test_the_first_start_prints_a_one_time_admin_password_that_logs_in_and_must_be_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1)
    hub = cluster.nodes["C"]
    first = tmp_path / "first.log"
    proc = _start(hub.config, first)
    try:
        _wait_ready(hub.url, proc, first)
        printed = first.read_text(encoding="utf-8")
        found = re.search(r"one-time password: (\S+)", printed)
        assert found, printed
        password = found.group(1)
        with httpx.Client(base_url=hub.url, timeout=10) as browser:
            assert browser.get("/", follow_redirects=False).status_code == 303  # nothing open
            form = browser.get("/login")
            csrf = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
            assert csrf
            wrong = browser.post("/login", data={"name": "admin", "password": "guess-guess", "_csrf_token": csrf[1]})
            assert wrong.status_code == 401
            form = browser.get("/login")
            csrf = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
            assert csrf
            r = browser.post(
                "/login", data={"name": "admin", "password": password, "_csrf_token": csrf[1], "next": "/api/node"}
            )
            assert r.status_code == 303 and "sanji_session" in r.headers.get("set-cookie", "")
            assert r.headers["location"] == "/account/password"  # a printed password: changed before anything else
            refused = browser.get("/api/node")
            assert refused.status_code == 403 and refused.json()["error"] == "must_change_password"
            page = browser.get("/account/password")
            csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
            assert csrf
            own = "the administrator's own 1"
            changed = browser.post(
                "/account/password", data={"current": password, "new": own, "again": own, "_csrf_token": csrf[1]}
            )
            assert changed.status_code == 200, changed.text
            assert browser.get("/api/node").status_code == 200  # node health: what an administrator may see
            assert browser.get("/api/errands").status_code == 403  # personal data: not an administrator's
    finally:
        _stop(proc)
    with TestClient(make_app(load_settings(hub.config))):  # the second start, in process: nothing made, nothing printed
        pass
    assert "one-time password" not in capsys.readouterr().out


def test_accounts_create_makes_the_first_administrator_before_the_first_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sanji.cli.main import main

    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1)
    config = cluster.nodes["T01"].config
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a long enough password\n"))
    assert (
        main(["accounts", "create", "--config", str(config), "--name", "李主任", "--role", "admin", "--password-stdin"])
        == 0
    )
    assert "李主任" in capsys.readouterr().out
    with TestClient(make_app(load_settings(config))):  # an account exists: no admin made, nothing printed
        pass
    assert "one-time password" not in capsys.readouterr().out
