"""``make dist``: the wheel carries templates, migrations and the catalogue, installs into a clean
virtual environment from the locked requirements and serves a node from there."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from dist_check import build, install, serve_once  # noqa: E402


@pytest.mark.processes
@pytest.mark.timeout(1200)
def test_the_wheel_installs_and_serves_outside_the_checkout(tmp_path: Path) -> None:
    wheel = build(tmp_path / "dist")
    assert wheel.name.startswith("sanji-")
    sanji = install(wheel, tmp_path / "dist" / "requirements.txt", tmp_path / "venv")
    said = serve_once(sanji, tmp_path / "run")
    assert said.startswith("sanji ") and "(git" not in said  # an installed wheel is not a checkout
