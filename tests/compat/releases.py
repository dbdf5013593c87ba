"""The previous release beside this code: its tree from git (nothing downloaded), each run from its own path.

``previous_release.toml`` names the release by commit hash, not tag: a clone may lack tags, but a full
``git clone`` holds every commit of main. A commit missing here (a shallow clone) fails with what to
run, never a silent skip: the compatibility proof is the point of these tests.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from sanji import __version__

CHECKOUT = Path(__file__).resolve().parents[2]
RECORD = Path(__file__).with_name("previous_release.toml")


@dataclass(frozen=True)
class Release:
    version: str
    import_path: str  # os.pathsep-separated: this release's metadata, then its source tree
    tree: Path

    def __str__(self) -> str:
        return f"sanji {self.version}"


def recorded() -> tuple[str, str]:
    data = tomllib.loads(RECORD.read_text(encoding="utf-8"))
    return str(data["version"]), str(data["commit"])


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True, timeout=120, check=False)


def _metadata(where: Path, version: str) -> Path:
    """A dist-info for ``version`` ahead of the installed one on the path: ``sanji --version``, ``/healthz`` and
    the release a store records then name the release really running, as they would in its own install."""
    info = where / f"sanji-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: sanji\nVersion: {version}\n", encoding="utf-8")
    return where


def current(workdir: Path) -> Release:
    meta = _metadata(workdir / "current-meta", __version__)
    return Release(version=__version__, import_path=os.pathsep.join([str(meta), str(CHECKOUT)]), tree=CHECKOUT)


def previous(workdir: Path) -> Release:
    version, commit = recorded()
    if _git("rev-parse", "--git-dir").returncode != 0:
        pytest.fail(f"{CHECKOUT} is not a git checkout: the previous release ({version}, {commit}) comes from git")
    if _git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        shallow = _git("rev-parse", "--is-shallow-repository").stdout.decode().strip() == "true"
        how = "this clone is shallow: run `git fetch --unshallow`" if shallow else "fetch main's full history"
        pytest.fail(
            f"the previous release sanji {version} (commit {commit}, tests/compat/previous_release.toml) "
            f"is not in this clone; {how}",
            pytrace=False,
        )
    archive = _git("archive", "--format=tar", commit)
    assert archive.returncode == 0, archive.stderr.decode()
    tree = workdir / f"sanji-{version}"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    declared = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert declared == version, f"commit {commit} is sanji {declared}, the record says {version}"
    _warn_if_locks_differ(commit)
    meta = _metadata(workdir / "previous-meta", version)
    return Release(version=version, import_path=os.pathsep.join([str(meta), str(tree)]), tree=tree)


def _locked(text: str) -> dict[str, object]:
    packages = tomllib.loads(text).get("package", [])
    return {str(p.get("name")): p.get("version") for p in packages if p.get("name") != "sanji"}


def _warn_if_locks_differ(commit: str) -> None:
    """Both releases run on this checkout's virtualenv: say so when the old one was locked to other versions.

    A package the old release never used (one this release added) changes nothing it runs on.
    """
    then = _git("show", f"{commit}:uv.lock")
    now = _locked((CHECKOUT / "uv.lock").read_text(encoding="utf-8"))
    before = _locked(then.stdout.decode()) if then.returncode == 0 else {}
    if any(now.get(name) != version for name, version in before.items()):
        warnings.warn(
            f"uv.lock changed since {commit[:10]}: the previous release runs on this release's dependencies",
            stacklevel=2,
        )
