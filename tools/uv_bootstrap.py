"""Print the pip requirement that installs uv itself at the version and hashes in uv.lock.

uv installs everything else from the lock; this is the one package pip must fetch first, so
its pin is derived from the same lock (tests/test_lock.py checks the two agree).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def uv_requirement(lock_path: Path) -> str:
    lock = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    for package in lock["package"]:
        if package["name"] == "uv":
            hashes = [wheel["hash"] for wheel in package.get("wheels", [])]
            if "sdist" in package:
                hashes.append(package["sdist"]["hash"])
            lines = [f"uv=={package['version']} \\"]
            lines += [f"    --hash={h} \\" for h in hashes[:-1]]
            lines.append(f"    --hash={hashes[-1]}")
            return "\n".join(lines) + "\n"
    raise SystemExit("uv.lock has no uv package: add uv to the dev extra in pyproject.toml")


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    sys.stdout.write("# Generated from uv.lock by tools/uv_bootstrap.py (`make lock`); do not edit.\n")
    sys.stdout.write(uv_requirement(root / "uv.lock"))
