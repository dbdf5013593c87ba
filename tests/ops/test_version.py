"""Releases are told apart: one version in pyproject, the code and the metadata; git describe in a checkout."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from sanji import __version__
from sanji.version import describe, git_describe, release


def test_one_version_everywhere() -> None:
    declared = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert __version__ == declared == release()
    lines = Path("CHANGELOG.md").read_text(encoding="utf-8").splitlines()
    headings = [line for line in lines if line.startswith("## ")]
    assert any(declared in h.replace("(", " ").replace(")", " ").split() for h in headings), "a CHANGELOG entry"


def test_version_from_a_checkout_names_the_commit() -> None:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
    out = subprocess.run(
        [sys.executable, "-m", "sanji.cli.main", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == f"sanji {describe()}"
    assert git_describe() and head.stdout.strip()[:7] in git_describe()
    assert out.startswith(f"sanji {release()} (git ")
