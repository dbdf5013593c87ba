"""A crafted catalogue or calendar file (lists inside lists, 200,000 deep) is a listed problem, not a traceback.

``json`` and ``tomllib`` parse nested lists by recursion and raise ``RecursionError`` on such a file; the admin
screens answered it with a bare English JSON body and ``sanji catalogue check`` crashed (adversarial run, session 20).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.errand_kit import sanji

DEEP = 200_000


@pytest.mark.parametrize(
    ("command", "name", "text"),
    [
        ("catalogue", "deep.json", '{"matters": ' + "[" * DEEP + "]" * DEEP + "}"),
        ("catalogue", "deep.toml", "matters = " + "[" * DEEP + "]" * DEEP + "\n"),
        ("calendar", "deep.toml", "county = " + "[" * DEEP + "]" * DEEP + "\n"),
    ],
)
def test_a_file_nested_too_deeply_is_refused_with_its_problem(
    tmp_path: Path, command: str, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    code, out, err = sanji(command, "check", str(path))
    assert code == 2, (out, err)
    assert "nested too deeply" in out + err and "Traceback" not in out + err
