"""Fixtures for the desk screens and printed documents.

``village`` / ``town``  litestar TestClients of one node each (SQLite in ``tmp_path``), holding the
                        county's signed catalogue as if it had arrived with the first exchange.
``live_village`` / ``live_town``  the same nodes served by uvicorn on a free loopback port (a background
                        thread), for the real browser; the base URL.
``chromium``            the path of the Debian ``chromium`` binary. Skips LOUDLY when it is missing,
                        unless ``SANJI_REQUIRE_BROWSER=1``, which turns the skip into a failure (CI).
                        Install it with ``apt-get install -y chromium``; never ``playwright install``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import make_app, prepared_node, served

CHROMIUM = "/usr/bin/chromium"
_browser_skips: list[str] = []


@pytest.fixture
def village(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    _, settings = prepared_node(tmp_path, "T01V01")
    with TestClient(make_app(settings)) as client:
        yield client


@pytest.fixture
def town(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    _, settings = prepared_node(tmp_path, "T01")
    with TestClient(make_app(settings)) as client:
        yield client


@pytest.fixture
def bare_village(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    """A village that has not exchanged with its township yet: no catalogue."""
    _, settings = prepared_node(tmp_path, "T01V01", catalogue=False)
    with TestClient(make_app(settings)) as client:
        yield client


@pytest.fixture
def live_village(tmp_path: Path) -> Iterator[str]:
    _, settings = prepared_node(tmp_path, "T01V01")
    with served(make_app(settings), name="village", start_within=15) as base:
        yield base


@pytest.fixture
def live_town(tmp_path: Path) -> Iterator[str]:
    _, settings = prepared_node(tmp_path, "T01")
    with served(make_app(settings), name="town", start_within=15) as base:
        yield base


@pytest.fixture(scope="session")
def chromium() -> str:
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    problem = f"no Chromium at {CHROMIUM} (found on PATH: {shutil.which('chromium') or 'none'})"
    if os.environ.get("SANJI_REQUIRE_BROWSER", "") == "1":
        pytest.fail(f"SANJI_REQUIRE_BROWSER=1 but {problem}. Install it: apt-get install -y chromium", pytrace=False)
    reason = (
        f"{problem} -- the real-browser screen tests did NOT run. Install it with "
        "`apt-get install -y chromium` (never `playwright install`), or set SANJI_REQUIRE_BROWSER=1 "
        "to make this a failure."
    )
    _browser_skips.append(reason)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _browser_skips:
        terminalreporter.write_sep("!", "browser screen tests SKIPPED: no Chromium", red=True, bold=True)
        terminalreporter.write_line(_browser_skips[0], red=True)
