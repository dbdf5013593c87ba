"""sanji.lean_import: a package put in place with a few names answers every other one as the whole package would.

Each case runs in a fresh interpreter: the package must not have been imported before.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

LEAN_THEN_WHOLE = """
import sys, threading
from sanji.lean_import import lean_package
lean = lean_package("json", {"decoder": ("JSONDecodeError",)})
held = "dumps" in vars(lean)
answers = []
def ask():
    answers.append(lean.dumps([1]))
threads = [threading.Thread(target=ask) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
import json
print(held, json is lean, json.JSONDecodeError is sys.modules["json.decoder"].JSONDecodeError, sorted(set(answers)))
try:
    json.no_such_name
except AttributeError:
    print("AttributeError")
"""

ALREADY_IMPORTED = """
import json
from sanji.lean_import import lean_package
print(lean_package("json", {"decoder": ("JSONDecodeError",)}) is json, "dumps" in vars(json))
"""


def run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()


def test_a_lean_package_holds_its_names_and_completes_itself_once_when_asked_for_another() -> None:
    assert run(LEAN_THEN_WHOLE) == ["False", "True", "True", "['[1]']", "AttributeError"]


def test_a_package_already_imported_is_left_as_it_is() -> None:
    assert run(ALREADY_IMPORTED) == ["True", "True"]
