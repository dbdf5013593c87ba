"""The lock is the only source of versions: pyproject.toml and uv.lock must say the same thing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from uv_bootstrap import uv_requirement  # noqa: E402


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _lock() -> dict[str, object]:
    return tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))


def _normalise(requirement: str) -> str:
    # "tuf>=7,<8" and the lock's {name, specifier} both become "tuf|<8,>=7": order-free.
    for i, ch in enumerate(requirement):
        if ch in "<>=!~;[ ":
            name, rest = requirement[:i], requirement[i:]
            break
    else:
        name, rest = requirement, ""
    extras = ""
    if rest.startswith("["):
        extras, rest = rest[1 : rest.index("]")], rest[rest.index("]") + 1 :]
    specifier = ",".join(sorted(part.strip() for part in rest.split(",") if part.strip()))
    return f"{name.lower().replace('_', '-')}[{extras}]|{specifier}"


def _locked_requirements() -> tuple[set[str], set[str]]:
    lock = _lock()
    packages = lock["package"]
    assert isinstance(packages, list)
    (root,) = [p for p in packages if p.get("source") == {"editable": "."}]
    runtime, dev = set(), set()
    for entry in root["metadata"]["requires-dist"]:
        extras = ",".join(entry.get("extras", []))
        specifier = ",".join(sorted(s.strip() for s in entry.get("specifier", "").split(",") if s.strip()))
        text = f"{entry['name']}[{extras}]|{specifier}"
        (dev if "extra == 'dev'" in entry.get("marker", "") else runtime).add(text)
    return runtime, dev


def test_every_dependency_in_pyproject_is_locked_with_the_same_range() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    declared_runtime = {_normalise(r) for r in project["dependencies"]}
    declared_dev = {_normalise(r) for r in project["optional-dependencies"]["dev"]}
    locked_runtime, locked_dev = _locked_requirements()
    assert declared_runtime == locked_runtime, "run `make lock`: pyproject.toml and uv.lock disagree"
    assert declared_dev == locked_dev, "run `make lock`: pyproject.toml and uv.lock disagree (dev extra)"


def test_every_locked_package_is_pinned_with_hashes() -> None:
    for package in _lock()["package"]:
        if package.get("source") == {"editable": "."}:
            continue
        assert package.get("version"), package["name"]
        artifacts = list(package.get("wheels", []))
        if "sdist" in package:
            artifacts.append(package["sdist"])
        assert artifacts and all(a.get("hash", "").startswith("sha256:") for a in artifacts), package["name"]


def test_the_uv_bootstrap_pin_is_derived_from_the_lock() -> None:
    committed = (ROOT / "requirements-uv.txt").read_text(encoding="utf-8")
    assert uv_requirement(ROOT / "uv.lock") in committed, "run `make lock` to re-derive requirements-uv.txt"


def test_uv_itself_finds_the_lock_current() -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed in this environment")
    done = subprocess.run(
        [uv, "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
