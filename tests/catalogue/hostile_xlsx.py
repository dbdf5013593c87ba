"""Spreadsheets an attacker would upload, built in the test: tiny files that ask for unbounded work.

``dimension_trick``: about 1 KB; its sheet declares ``A1:XFD1048576`` and holds one row at
r=1048576, so openpyxl's read-only mode would pad a million rows of 16,384 cells.
``zip_bomb``: a real workbook plus a shared-strings part of a few KB that inflates past 20 MB.
``too_many_rows``: a real workbook with 2,100 matter rows.
``cut_short``: a real workbook whose sheet XML stops half way (the parser's "unclosed token" was a 500).
``entity_expansion``: a sheet declaring nested entities (billion laughs); ``external_entity``: one naming a file.
"""

from __future__ import annotations

import io
import zipfile

import openpyxl

from protocol.catalogue import MAX_MATTERS

SHEET = "xl/worksheets/sheet1.xml"


def _workbook(rows: int = 1) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "matters"
    sheet.append(["code", "name"])
    for i in range(rows):
        sheet.append([f"T-{i:05d}", "事项"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _replace(data: bytes, parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename not in parts:
                dst.writestr(info.filename, src.read(info.filename))
        for name, body in parts.items():
            dst.writestr(name, body, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


def dimension_trick() -> bytes:
    sheet = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<dimension ref="A1:XFD1048576"/><sheetData>'
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>code</t></is></c></row>'
        b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
        b"</sheetData></worksheet>"
    )
    return _replace(_workbook(), {SHEET: sheet})


def zip_bomb() -> bytes:
    filler = b"<si><t>" + b"A" * 1000 + b"</t></si>"
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">' + filler * (24 * 1024) + b"</sst>"
    )
    return _replace(_workbook(), {"xl/sharedStrings.xml": body})


def too_many_rows() -> bytes:
    return _workbook(MAX_MATTERS + 100)


def _sheet_xml() -> bytes:
    with zipfile.ZipFile(io.BytesIO(_workbook())) as book:
        return book.read(SHEET)


def cut_short() -> bytes:
    sheet = _sheet_xml()
    return _replace(_workbook(), {SHEET: sheet[: len(sheet) // 2]})


def entity_expansion() -> bytes:
    entities = b'<!ENTITY a0 "lol">' + b"".join(
        b'<!ENTITY a%d "%s">' % (i, b"&a%d;" % (i - 1) * 10) for i in range(1, 10)
    )
    sheet = (
        b'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE worksheet [' + entities + b"]>"
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>&a9;</t></is></c></row></sheetData></worksheet>'
    )
    return _replace(_workbook(), {SHEET: sheet})


def external_entity() -> bytes:
    sheet = (
        b'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE worksheet [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>&x;</t></is></c></row></sheetData></worksheet>'
    )
    return _replace(_workbook(), {SHEET: sheet})
