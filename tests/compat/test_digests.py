"""The same errand has the same digest under this release and the previous one.

Replicas compare digests across releases while a tree is upgraded, and `sanji verify` recomputes the
digests an earlier release stored: fields added to the errand's state since are left out of the digest
while they hold their defaults (``protocol.errand.digest_of``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.compat.releases import current, previous

PROBE = Path(__file__).with_name("digest_probe.py")


def digest_under(import_path: str, tree: Path) -> str:
    env = {**os.environ, "PYTHONPATH": import_path}
    done = subprocess.run(
        [sys.executable, str(PROBE)], cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_errands_digest_is_the_same_under_both_releases(tmp_path: Path) -> None:
    old, new = previous(tmp_path), current(tmp_path)
    assert digest_under(old.import_path, old.tree) == digest_under(new.import_path, new.tree)
