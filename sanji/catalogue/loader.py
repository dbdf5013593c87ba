"""Read a county's matter catalogue (事项目录) from TOML, JSON or an XLSX spreadsheet.

Every fault is collected, never just the first: the county's staff fix a
spreadsheet in one pass. Each problem names where it is — ``row 7`` of a sheet
(with its column), ``[[matters]] #3`` of a TOML file, ``matters[2]`` of a JSON
file, or ``catalogue`` for the header fields — and which field is wrong. The
result is a ``protocol.catalogue.Catalogue`` that ``check_catalogue`` passes.

Shapes accepted:

* TOML / JSON: top-level ``county``, ``version``, ``published_at`` and a list
  ``matters`` of tables whose keys are the ``Matter`` field names.
* XLSX: a sheet ``matters`` (or ``事项``; else the first sheet), one row per matter,
  row 1 holding field names or their Chinese headings (``事项编码``, ``承诺时限`` ...);
  an optional sheet ``catalogue`` (or ``目录``) of key/value rows for the header fields.

In every format a list may be written as one text cell: levels ``"town;county"``,
materials ``"身份证(主);户口簿(主);照片(副:近期二寸)"``. Spreadsheet cells also
take 是/否 for true/false, 村/乡镇/县 for levels and 工作日/自然日 for the limit unit.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
import tomllib
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from xml.parsers import expat

import msgspec

from protocol.catalogue import (
    CATEGORIES,
    LEVELS,
    LIMIT_UNITS,
    MAX_MATTERS,
    Catalogue,
    CatalogueError,
    Matter,
    check_catalogue,
)

DEFAULT_RESOURCE = "illustrative.toml"

MATTER_FIELDS = {f.name: f for f in msgspec.structs.fields(Matter)}
HEADER_FIELDS = ("county", "version", "published_at")
_LIST_FIELDS = ("accept_levels", "handle_levels", "approve_levels", "joint_departments")
_LEVEL_FIELDS = ("accept_levels", "handle_levels", "approve_levels")
_BOOL_FIELDS = tuple(n for n, f in MATTER_FIELDS.items() if f.type is bool)
_INT_FIELDS = tuple(n for n, f in MATTER_FIELDS.items() if f.type is int)
_STR_FIELDS = tuple(n for n, f in MATTER_FIELDS.items() if f.type is str)

# Chinese column headings a county's spreadsheet may use instead of the field names.
HEADING_ALIASES: dict[str, str] = {
    "事项编码": "code",
    "编码": "code",
    "事项名称": "name",
    "英文名称": "name_en",
    "事项类别": "category",
    "类别": "category",
    "设定依据": "legal_basis",
    "法律依据": "legal_basis",
    "受理层级": "accept_levels",
    "承办层级": "handle_levels",
    "审批层级": "approve_levels",
    "可代办": "proxy_allowed",
    "本人亲自办理": "in_person",
    "申报材料": "materials",
    "法定时限": "statutory_limit",
    "承诺时限": "committed_limit",
    "时限单位": "limit_unit",
    "乡镇时限": "township_limit",
    "县级时限": "county_limit",
    "收费标准": "fee",
    "代办费": "agency_fee",
    "办理窗口": "window",
    "县级部门": "department",
    "审批部门": "department",
    "即办件": "immediate",
    "联办部门": "joint_departments",
    "部门答复联办": "joint_answers_at_departments",
    "办件规则": "rules",
    "规则版本": "rules",
    "超时默许": "deemed_approval",
    "示例数据": "illustrative",
    "县": "county",
    "县名": "county",
    "版本": "version",
    "发布日期": "published_at",
}
_LEVEL_ALIASES = {"村": "village", "社区": "village", "乡": "town", "镇": "town", "乡镇": "town", "县": "county"}
_UNIT_ALIASES = {"工作日": "working", "自然日": "calendar", "日历日": "calendar"}
# A spreadsheet is a zip of XML: bound what openpyxl is given before it opens it (a 1 KB file
# can declare a million rows, or hold a member that inflates to gigabytes), and read at most
# this many rows and columns of any sheet, however large its <dimension> claims to be.
MAX_XLSX_UNCOMPRESSED = 20 * 1024 * 1024  # all members together, as inflated
MAX_XLSX_MEMBERS = 200
MAX_XLSX_RATIO = 200  # inflated / compressed, for any member over 1 MB inflated
MAX_SHEET_ROWS = MAX_MATTERS + 50  # the heading row, every matter, and some blank rows
MAX_SHEET_COLUMNS = len(MATTER_FIELDS) + 10

_TRUE = {"true", "yes", "y", "1", "是", "√", "✓"}
_FALSE = {"false", "no", "n", "0", "否", "×", "✗"}
_SEPARATORS = re.compile(r"[;；\n]+")
_LEVEL_SEPARATORS = re.compile(r"[;；,，、/\s]+")
_MATERIAL = re.compile(r"^(?P<name>.+?)\s*[(（]\s*(?P<kind>主件|副件|主|副)\s*(?:[:：]\s*(?P<note>.*?))?\s*[)）]$")


class _Row(msgspec.Struct):
    """One matter as read, before conversion: where it is, its raw values and which column each came from."""

    label: str
    values: dict[str, Any]
    columns: dict[str, str] = {}


# ------------------------------------------------------------------------------------------ public API


def load_catalogue(
    path: str | Path,
    *,
    county: str | None = None,
    version: int | None = None,
    published_at: str | None = None,
) -> Catalogue:
    """Load and check a catalogue file; the format follows the suffix (.toml, .json, .xlsx).

    The keyword arguments override (or, for a spreadsheet without a ``catalogue``
    sheet, supply) the header fields. Raises CatalogueError listing every problem.
    """
    path = Path(path)
    overrides: dict[str, Any] = {
        k: v for k, v in (("county", county), ("version", version), ("published_at", published_at)) if v is not None
    }
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return load_toml(path, **overrides)
    if suffix == ".json":
        return load_json(path, **overrides)
    if suffix in (".xlsx", ".xlsm"):
        return load_xlsx(path, **overrides)
    raise CatalogueError(f"{path}: unknown catalogue format {suffix or '(no suffix)'}; use .toml, .json or .xlsx")


NESTED_TOO_DEEPLY = "lists or tables are nested too deeply (a catalogue needs two levels)"


def load_toml(path: str | Path, **overrides: Any) -> Catalogue:
    path = Path(path)
    data = _parsed(path, "TOML", tomllib.loads, tomllib.TOMLDecodeError)
    return catalogue_from_mapping(data, source=str(path), label=lambda i: f"[[matters]] #{i + 1}", **overrides)


def load_json(path: str | Path, **overrides: Any) -> Catalogue:
    path = Path(path)
    data = _parsed(path, "JSON", json.loads, json.JSONDecodeError)
    return catalogue_from_mapping(data, source=str(path), label=lambda i: f"matters[{i}]", **overrides)


def _parsed(path: Path, what: str, parse: Callable[[str], Any], malformed: type[ValueError]) -> Any:
    """The file's text as ``parse`` reads it; every way a file can fail to parse is a ``CatalogueError``."""
    try:
        return parse(_read_text(path))
    except malformed as exc:
        raise CatalogueError(f"{path} is not valid {what}", [str(exc)]) from None
    except RecursionError:  # a crafted file of arrays inside arrays: the parser's recursion runs out
        raise CatalogueError(f"{path} is not valid {what}", [NESTED_TOO_DEEPLY]) from None
    except ValueError as exc:  # Python's own bound on turning digits into an int (a 5,000-digit number)
        raise CatalogueError(f"{path} is not valid {what}", [_number_problem(exc)]) from None


NUMBER_TOO_LONG = "a number is written with more digits than any catalogue field holds (Python reads at most 4300)"


def _number_problem(exc: ValueError) -> str:
    """What a parser's ValueError that is no syntax error means: in practice the digit limit of ``int()``."""
    return NUMBER_TOO_LONG if "digits" in str(exc) else f"the file cannot be read: {str(exc)[:200]}"


def catalogue_from_mapping(
    data: object, *, source: str = "catalogue", label: Callable[[int], str] | None = None, **overrides: Any
) -> Catalogue:
    """Build a catalogue from decoded TOML/JSON data (a mapping with ``matters``)."""
    name = label or (lambda i: f"matters[{i}]")
    if not isinstance(data, Mapping):
        raise CatalogueError(f"{source}: the top level must be a table with county, version, published_at, matters")
    problems: list[str] = []
    header = {k: v for k, v in data.items() if k != "matters"}
    for key in header:
        if key not in HEADER_FIELDS:
            problems.append(f"catalogue, field {key}: unknown field{_suggest(key, (*HEADER_FIELDS, 'matters'))}")
    header.update(overrides)
    raw_matters = data.get("matters")
    rows: list[_Row] = []
    if not isinstance(raw_matters, list):
        problems.append("catalogue, field matters: missing, or not a list of tables")
    elif len(raw_matters) > MAX_MATTERS:
        # Refused before any matter is looked at: checking each would be work without bound (and a page of
        # millions of problems), for a catalogue that cannot be published anyway.
        raise CatalogueError(
            f"{source}: lists {len(raw_matters)} matters; the limit is {MAX_MATTERS}",
            [f"catalogue, field matters: lists {len(raw_matters)} matters; the limit is {MAX_MATTERS}"],
        )
    else:
        for i, item in enumerate(raw_matters):
            if isinstance(item, Mapping):
                rows.append(_Row(label=name(i), values=dict(item)))
            else:
                problems.append(f"{name(i)}: must be a table of matter fields, not {type(item).__name__}")
    return _build(source, header, rows, problems)


def load_xlsx(path: str | Path, **overrides: Any) -> Catalogue:
    """Load a spreadsheet: one row per matter (see the module docstring for the layout)."""
    import openpyxl  # imported here: only the county's desk needs spreadsheets

    path = Path(path)
    check_xlsx_archive(path)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise CatalogueError(f"{path} is not a readable XLSX workbook", [_damaged(exc)]) from None
    try:
        header, rows, problems = _read_book(book, path, overrides)
    except CatalogueError:
        raise
    except Exception as exc:  # openpyxl reads a read-only sheet lazily: a damaged part fails here, not on open
        raise CatalogueError(f"{path} is not a readable XLSX workbook", [_damaged(exc)]) from None
    finally:
        book.close()
    return _build(str(path), header, rows, problems)


def _damaged(exc: Exception) -> str:
    return f"not a readable XLSX workbook: {type(exc).__name__}: {str(exc)[:200]}"


def _read_book(book: Any, path: Path, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], list[_Row], list[str]]:
    """The header fields, the matter rows as read and the problems found reading them (``_build`` checks them)."""
    from openpyxl.utils import get_column_letter

    names = book.sheetnames
    matter_sheet = next((n for n in names if n.strip().lower() in ("matters", "事项")), names[0])
    meta_sheet = next((n for n in names if n.strip().lower() in ("catalogue", "目录", "目录信息")), None)
    problems: list[str] = []
    header: dict[str, Any] = {}
    if meta_sheet is not None:
        for r, row in enumerate(_bounded_rows(book[meta_sheet], path, meta_sheet), start=1):
            if not row or row[0] is None or str(row[0]).strip() == "":
                continue
            key = HEADING_ALIASES.get(str(row[0]).strip(), str(row[0]).strip())
            if key not in HEADER_FIELDS:
                problems.append(f"sheet {meta_sheet} row {r}, field {key}: unknown field{_suggest(key, HEADER_FIELDS)}")
                continue
            value = row[1] if len(row) > 1 else None
            if isinstance(value, dt.datetime):
                value = value.date().isoformat()
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            elif isinstance(value, str) and key == "version" and value.strip().isdigit():
                value = int(value.strip())
            if value is not None:
                header[key] = value
    header.update(overrides)

    rows: list[_Row] = []
    sheet_rows = _bounded_rows(book[matter_sheet], path, matter_sheet)
    headings = next(sheet_rows, None)
    if headings is None:
        raise CatalogueError(f"{path}: sheet {matter_sheet} is empty", [f"sheet {matter_sheet}: no heading row"])
    fields: dict[int, str] = {}
    for c, heading in enumerate(headings):
        if heading is None or str(heading).strip() == "":
            continue
        text = str(heading).strip()
        field = HEADING_ALIASES.get(text, text)
        letter = get_column_letter(c + 1)
        if field not in MATTER_FIELDS:
            problems.append(
                f"sheet {matter_sheet} column {letter}, field {text}: not a matter field"
                f"{_suggest(text, tuple(MATTER_FIELDS))}"
            )
        elif field in fields.values():
            problems.append(f"sheet {matter_sheet} column {letter}, field {field}: the column appears twice")
        else:
            fields[c] = field
    for r, row in enumerate(sheet_rows, start=2):
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
            continue
        values: dict[str, Any] = {}
        columns: dict[str, str] = {}
        for c, field in fields.items():
            cell = row[c] if c < len(row) else None
            columns[field] = get_column_letter(c + 1)
            if cell is None or (isinstance(cell, str) and not cell.strip()):
                if field in _STR_FIELDS:
                    values[field] = ""
                continue
            values[field] = _from_cell(field, cell)
        rows.append(_Row(label=f"row {r}", values=values, columns=columns))
    return header, rows, problems


def check_xlsx_archive(path: Path) -> None:
    """Refuse a spreadsheet whose zip would inflate past the bounds, before openpyxl reads any of it.

    The sizes checked are the ones the archive declares; Python's zipfile never inflates a
    member past its declared size (it stops there and reports a bad CRC), so they bound the work.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CatalogueError(f"{path} is not a readable XLSX workbook", [f"{type(exc).__name__}: {exc}"]) from None
    problems: list[str] = []
    if len(members) > MAX_XLSX_MEMBERS:
        problems.append(f"the archive holds {len(members)} parts; a workbook has at most {MAX_XLSX_MEMBERS}")
    total = sum(m.file_size for m in members)
    if total > MAX_XLSX_UNCOMPRESSED:
        problems.append(
            f"the archive inflates to {total} bytes; a catalogue workbook inflates to at most {MAX_XLSX_UNCOMPRESSED}"
        )
    for m in members:
        if m.file_size > 1024 * 1024 and m.file_size > MAX_XLSX_RATIO * max(m.compress_size, 1):
            problems.append(
                f"part {m.filename[:100]} inflates {m.file_size // max(m.compress_size, 1)} times "
                f"(at most {MAX_XLSX_RATIO}): not a spreadsheet a person saved"
            )
            break
    if problems:
        raise CatalogueError(f"{path} is refused before it is read: it is not a plain catalogue workbook", problems)
    _check_xml_parts(path)


class _Declared(Exception):
    """A DTD in a part: what a saved workbook never has, and what entity tricks need."""


def _refuse_dtd(*_: object) -> None:
    raise _Declared


def _check_xml_parts(path: Path) -> None:
    """Parse every XML part once with expat, refusing a DTD (entity expansion, external entities) or XML that does not
    parse (a part cut short), before openpyxl reads it: openpyxl uses the standard library's parser as it is, and its
    errors surfaced as a 500 and a traceback. Bounded by the sizes ``check_xlsx_archive`` checked first."""
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if not member.filename.lower().endswith((".xml", ".rels", ".vml")):
                    continue
                parser = expat.ParserCreate()
                parser.StartDoctypeDeclHandler = _refuse_dtd
                parser.EntityDeclHandler = _refuse_dtd
                name = member.filename[:100]
                if member.flag_bits & 0x1:  # zipfile would raise RuntimeError asking for a password
                    raise CatalogueError(
                        f"{path} is not a readable XLSX workbook",
                        [f"part {name} is encrypted (password protected): not a readable XLSX workbook"],
                    )
                try:
                    parser.Parse(archive.read(member), True)
                except _Declared:
                    raise CatalogueError(
                        f"{path} is not a readable XLSX workbook",
                        [
                            f"part {name} declares a DTD or entities, which no saved workbook has: not a readable XLSX "
                            "workbook"
                        ],
                    ) from None
                except expat.ExpatError as exc:
                    raise CatalogueError(
                        f"{path} is not a readable XLSX workbook",
                        [f"part {name} is damaged or cut short ({exc}): not a readable XLSX workbook"],
                    ) from None
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, RuntimeError) as exc:
        raise CatalogueError(f"{path} is not a readable XLSX workbook", [_damaged(exc)]) from None


def _bounded_rows(sheet: Any, path: Path, name: str) -> Iterator[tuple[Any, ...]]:
    """A sheet's rows, at most ``MAX_SHEET_ROWS`` of ``MAX_SHEET_COLUMNS`` cells whatever its dimension says.

    A sheet that reaches past ``MAX_SHEET_ROWS`` (a row there, even an empty one) is refused
    rather than cut short, so no matter below the limit is silently dropped.
    """
    count = 0
    for row in sheet.iter_rows(max_row=MAX_SHEET_ROWS + 1, max_col=MAX_SHEET_COLUMNS, values_only=True):
        count += 1
        if count > MAX_SHEET_ROWS:
            raise CatalogueError(
                f"{path}: too many rows in sheet {name}",
                [
                    f"sheet {name}: the sheet reaches past row {MAX_SHEET_ROWS}; a catalogue holds at most "
                    f"{MAX_MATTERS} matters: delete the rows below the last one (even empty, formatted ones)"
                ],
            )
        yield row


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The illustrative catalogue shipped with Sanji (its day counts are invented: the seeds give none)."""
    text = resources.files("sanji.catalogue").joinpath("data", DEFAULT_RESOURCE).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"shipped {DEFAULT_RESOURCE} is not valid TOML", [str(exc)]) from None
    return catalogue_from_mapping(data, source=DEFAULT_RESOURCE, label=lambda i: f"[[matters]] #{i + 1}")


def default_catalogue_path() -> Path:
    return Path(str(resources.files("sanji.catalogue").joinpath("data", DEFAULT_RESOURCE)))


# ------------------------------------------------------------------------------------------ internals


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CatalogueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"{path} is not UTF-8 text", [str(exc)]) from None


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _from_cell(field: str, cell: object) -> object:
    """Turn a spreadsheet cell into the value TOML would have held; leave anything odd for conversion to report."""
    if isinstance(cell, str):
        text = cell.strip()
        if field in _BOOL_FIELDS:
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            return text
        if field in _INT_FIELDS:
            return int(text) if re.fullmatch(r"-?\d+", text) else text
        if field in _LEVEL_FIELDS:
            return [_LEVEL_ALIASES.get(p, p) for p in _LEVEL_SEPARATORS.split(text) if p]
        if field == "limit_unit":
            return _UNIT_ALIASES.get(text, text)
        return text
    if isinstance(cell, float) and cell.is_integer() and field in _INT_FIELDS:
        return int(cell)
    if isinstance(cell, int) and not isinstance(cell, bool) and field in _BOOL_FIELDS and cell in (0, 1):
        return bool(cell)
    if isinstance(cell, int | float) and not isinstance(cell, bool) and field in _STR_FIELDS:
        return str(cell)
    return cell


def _split_list(field: str, value: object) -> object:
    if not isinstance(value, str):
        return value
    pattern = _LEVEL_SEPARATORS if field in _LEVEL_FIELDS else _SEPARATORS
    return [p.strip() for p in pattern.split(value) if p.strip()]


def _parse_materials(value: object) -> tuple[object, list[str]]:
    """Accept a list of tables, a list of "名称(主)" strings, or one "a(主);b(副)" string."""
    items: list[object]
    if isinstance(value, str):
        items = [p.strip() for p in _SEPARATORS.split(value) if p.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return value, []
    out: list[object] = []
    errors: list[str] = []
    for item in items:
        if not isinstance(item, str):
            out.append(item)
            continue
        m = _MATERIAL.match(item.strip())
        if m is None:
            errors.append(f"material {item!r} does not say whether it is main or secondary: write 名称(主) or 名称(副)")
            continue
        out.append({"name": m["name"].strip(), "main": m["kind"].startswith("主"), "note": (m["note"] or "").strip()})
    return out, errors


def _where(row: _Row) -> str:
    code = row.values.get("code")
    return f"{row.label} ({code})" if isinstance(code, str) and code.strip() else row.label


def _at(row: _Row, field: str) -> str:
    column = row.columns.get(field)
    return f"{_where(row)}, field {field}" + (f" (column {column})" if column else "")


def _convert_row(row: _Row) -> tuple[Matter, set[str], list[str]]:
    """Convert one raw matter field by field so that every bad field is reported.

    Returns the matter (fields that did not convert hold None), the names of those
    fields, and the problems found so far.
    """
    errors: list[str] = []
    failed: set[str] = set()
    kwargs: dict[str, Any] = {}
    for key in row.values:
        if key not in MATTER_FIELDS:
            errors.append(f"{_where(row)}, field {key}: unknown field{_suggest(key, tuple(MATTER_FIELDS))}")
    for name, info in MATTER_FIELDS.items():
        if name not in row.values:
            if info.required:
                errors.append(f"{_at(row, name)}: missing")
                failed.add(name)
            continue
        value = row.values[name]
        if name in _LIST_FIELDS:
            value = _split_list(name, value)
        elif name == "materials":
            value, material_errors = _parse_materials(value)
            if material_errors:
                errors += [f"{_at(row, name)}: {e}" for e in material_errors]
                failed.add(name)
                continue
        if isinstance(value, dt.date):
            value = value.isoformat()
        try:
            kwargs[name] = msgspec.convert(value, type=info.type)
        except msgspec.ValidationError as exc:
            errors.append(f"{_at(row, name)}: {_explain(name, value, exc)}")
            failed.add(name)
    # A placeholder stands in for what did not convert, so the whole-matter checks can
    # still look at the rest of the row; such a matter never leaves this module.
    kwargs.update({name: None for name in failed})
    return Matter(**kwargs), failed, errors


def _explain(field: str, value: object, exc: msgspec.ValidationError) -> str:
    text = str(exc)
    if field == "category":
        return f"{value!r} is not a category; use one of {'/'.join(CATEGORIES)}"
    if field == "limit_unit":
        return f"{value!r} is not a unit; use {' or '.join(LIMIT_UNITS)} (工作日/自然日)"
    if field in _LEVEL_FIELDS and isinstance(value, list | tuple):
        unknown = [v for v in value if v not in LEVELS]
        if unknown:
            return f"unknown level {', '.join(map(repr, unknown))}; levels are {', '.join(LEVELS)}"
    if field in _BOOL_FIELDS:
        return f"{value!r} is not true or false"
    if field in _INT_FIELDS:
        return f"{value!r} is not a whole number"
    return text


def _build(source: str, header: Mapping[str, Any], rows: Sequence[_Row], problems: list[str]) -> Catalogue:
    matters: list[Matter] = []
    skip: dict[int, set[str]] = {}
    by_row: list[list[str]] = []
    for i, row in enumerate(rows):
        matter, failed, errors = _convert_row(row)
        by_row.append(errors)
        matters.append(matter)
        if failed:
            skip[i] = failed

    head: dict[str, Any] = {}
    for key, typ in (("county", str), ("version", int), ("published_at", str)):
        if key not in header:
            problems.append(f"catalogue, field {key}: missing")
            continue
        value = header[key]
        if isinstance(value, dt.date):
            value = value.isoformat()
        if isinstance(value, bool) or not isinstance(value, typ):
            problems.append(f"catalogue, field {key}: {value!r} is not {'a whole number' if typ is int else 'text'}")
            continue
        head[key] = value
    # Header fields that are missing or of the wrong type were reported above; harmless
    # placeholders let the rest be checked in the same pass.
    catalogue = Catalogue(
        county=head.get("county", "?"),
        version=head.get("version", 1),
        published_at=head.get("published_at", "1970-01-01"),
        matters=tuple(matters),
    )
    for p in check_catalogue(catalogue, skip=skip):
        if p.matter is None:
            problems.append(str(p))
            continue
        message = p.message
        if p.other is not None:
            message = f"duplicate code; {rows[p.other].label} has it"
        by_row[p.matter].append(f"{_at(rows[p.matter], p.field)}: {message}")
    # File and header problems first, then row by row in file order.
    problems += [text for errors in by_row for text in errors]
    if problems:
        raise CatalogueError(f"{source}: {len(problems)} problem(s) in the catalogue", problems)
    return catalogue
