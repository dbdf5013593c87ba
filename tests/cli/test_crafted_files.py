"""A crafted catalogue or calendar file (lists inside lists, 200,000 deep) is a listed problem, not a traceback.

``json`` and ``tomllib`` parse nested lists by recursion and raise ``RecursionError`` on such a file; the admin
screens answered it with a bare English JSON body and ``sanji catalogue check`` crashed (adversarial run, session 20).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.catalogue import hostile_xlsx
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


@pytest.mark.parametrize(
    ("command", "name", "says"),
    [
        ("catalogue", "cut.xlsx", "is damaged or cut short"),
        ("catalogue", "laughs.xlsx", "declares a DTD or entities"),
        ("catalogue", "long.json", "more digits than any catalogue field holds"),
        ("catalogue", "long.toml", "more digits than any catalogue field holds"),
        ("calendar", "long.toml", "more digits than any calendar field holds"),
    ],
)
def test_a_damaged_workbook_or_a_number_of_5000_digits_is_a_listed_problem(
    tmp_path: Path, command: str, name: str, says: str
) -> None:
    """Each was a traceback (``ParseError: unclosed token``, ``Exceeds the limit (4300 digits)``), session 21."""
    long = "9" * 5000
    path = tmp_path / name
    if name == "cut.xlsx":
        path.write_bytes(hostile_xlsx.cut_short())
    elif name == "laughs.xlsx":
        path.write_bytes(hostile_xlsx.entity_expansion())
    elif name.endswith(".json"):
        path.write_text('{"county": "C", "version": ' + long + ', "matters": []}', encoding="utf-8")
    elif command == "catalogue":
        path.write_text(f'county = "C"\nversion = {long}\n', encoding="utf-8")
    else:
        path.write_text(f'county = "C"\nversion = {long}\npublished_at = "2026-10-01"\n', encoding="utf-8")
    code, out, err = sanji(command, "check", str(path))
    assert code == 2, (out, err)
    assert says in out + err and "Traceback" not in out + err, out + err
