"""Ledgers and statistics as CSV and XLSX with Chinese headers (Excel opens both as they are).

CSV is UTF-8 with a byte-order mark, which is what Excel on a county office PC needs to
show Chinese instead of mojibake. XLSX is written with openpyxl: a sheet for the ledger, and
for statistics one sheet per grouping plus the definitions the figures follow.

Names, windows and handlers come from what people typed: a text cell is always text, never a formula a
spreadsheet would run when the office opens the file (CSV/formula injection): apostrophed in CSV
(``cell_value``), a string cell marked as typed text in XLSX (``_sheet``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sanji.office.ledger import LEVEL_LABELS, LedgerRow
from sanji.office.stats import DIMENSION_LABELS, StatLine

if TYPE_CHECKING:
    from openpyxl import Workbook

Column = tuple[str, Callable[[LedgerRow], Any]]


# What makes Excel, WPS or LibreOffice read a cell as a formula (OWASP's list): such text gets a leading
# apostrophe, so ``=HYPERLINK(...)`` typed as an applicant's name is shown as it was typed, never run.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell_value(value: Any) -> Any:
    """A value as a spreadsheet cell: text that a spreadsheet would run is neutralised; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _yes(value: bool | None) -> str:
    return "" if value is None else ("是" if value else "否")


LEDGER_COLUMNS: tuple[Column, ...] = (
    ("办件编号", lambda r: r.errand),
    ("回执号", lambda r: r.receipt),
    ("登记节点", lambda r: r.scope),
    ("所属乡镇", lambda r: r.township),
    ("办理层级", lambda r: LEVEL_LABELS.get(r.level, r.level)),
    ("事项编码", lambda r: r.matter),
    ("事项名称", lambda r: r.matter_name),
    ("事项类别", lambda r: r.category),
    ("办件类型", lambda r: r.kind),
    ("代办件", lambda r: _yes(bool(r.service_kind))),
    ("申请人", lambda r: r.applicant_name),
    ("当前状态", lambda r: r.stage_label),
    ("办理结果", lambda r: r.outcome_label),
    ("承办部门", lambda r: r.department),
    ("窗口", lambda r: r.window),
    ("经办人", lambda r: r.handler),
    ("登记日期", lambda r: r.registered_on),
    ("受理日期", lambda r: r.accepted_on),
    ("办结日期", lambda r: r.answered_on),
    ("送达日期", lambda r: r.delivered_on),
    ("办结期限", lambda r: r.due),
    ("已答复", lambda r: _yes(r.answered)),
    ("按时办结", lambda r: _yes(r.on_time)),
    ("超期工作日", lambda r: r.overdue_days),
    ("办理工作日", lambda r: "" if r.working_days is None else r.working_days),
    ("延期次数", lambda r: r.extensions),
    ("延期工作日", lambda r: r.extended_days),
    ("超时默许", lambda r: _yes(r.deemed)),
    ("评价", lambda r: r.rating),
    ("投诉数", lambda r: r.complaints),
    ("缺失环节", lambda r: "、".join(r.skipped_steps)),
)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


STAT_COLUMNS: tuple[tuple[str, Callable[[StatLine], Any]], ...] = (
    ("分组", lambda s: s.label),
    ("办件量", lambda s: s.volume),
    ("办结量", lambda s: s.answered),
    ("按时办结", lambda s: s.on_time),
    ("超期", lambda s: s.late),
    ("按时办结率", lambda s: _pct(s.on_time_rate)),
    ("平均办理工作日", lambda s: "" if s.average_working_days is None else s.average_working_days),
    ("评价数", lambda s: s.ratings),
    ("满意率", lambda s: _pct(s.satisfaction)),
    ("投诉", lambda s: s.complaints),
    ("超时默许", lambda s: s.deemed),
    ("延期", lambda s: s.extensions),
    ("超期工作日合计", lambda s: s.overdue_days),
    ("代办件", lambda s: s.proxied),
)

DEFINITIONS = (
    ("办件量", "期间内登记的办件数"),
    ("办结量", "其中已有办理结果（准予、不予许可、不予受理、退回、终止、撤回）的件数"),
    ("按时办结率", "按期限办结件数 ÷ 有期限且已办结或已超期的件数"),
    ("平均办理工作日", "受理至办结的法定工作日，扣除补正停表的工作日"),
    ("满意率", "（满意 + 基本满意）÷ 评价数"),
    ("代办件", "村代办员受申请人委托代办登记的件数（与办件类型并存，如代办的承诺件）"),
)


def ledger_csv(rows: Sequence[LedgerRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([name for name, _ in LEDGER_COLUMNS])
    for row in rows:
        writer.writerow([cell_value(get(row)) for _, get in LEDGER_COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def stats_csv(groups: Mapping[str, Sequence[StatLine]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for by, lines in groups.items():
        writer.writerow([f"按{DIMENSION_LABELS.get(by, by).split()[0]}统计"])
        writer.writerow([name for name, _ in STAT_COLUMNS])
        for stat in lines:
            writer.writerow([cell_value(get(stat)) for _, get in STAT_COLUMNS])
        writer.writerow([])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _sheet(book: Workbook, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], first: bool) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    sheet = book.active if first and book.active is not None else book.create_sheet()
    sheet.title = title[:31]
    sheet.append(list(headers))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for values in rows:
        sheet.append(list(values))
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                # Text is a string cell, never a formula, whatever it begins with; marked as typed text
                # (quotePrefix, the cell style Excel and WPS give "'=…" typed by hand), so a spreadsheet shows
                # it as it was typed, no apostrophe added, and editing the cell does not turn it into a formula.
                cell.data_type = "s"
                if cell.value.startswith(FORMULA_STARTS):
                    cell.quotePrefix = True
    sheet.freeze_panes = "A2"
    for index, header in enumerate(headers, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = max(10, 2 * len(header) + 2)


def workbook_bytes(
    rows: Sequence[LedgerRow] | None,
    groups: Mapping[str, Sequence[StatLine]],
    *,
    title: str = "台账",
) -> bytes:
    """An XLSX: the ledger (if given), one sheet per grouping, and the definitions."""
    # openpyxl only when a workbook is asked for: ≈ 7 MB a village node would otherwise hold all day.
    from openpyxl import Workbook

    book = Workbook()
    first = True
    if rows is not None:
        _sheet(
            book,
            title,
            [name for name, _ in LEDGER_COLUMNS],
            [[get(r) for _, get in LEDGER_COLUMNS] for r in rows],
            first,
        )
        first = False
    for by, lines in groups.items():
        _sheet(
            book,
            "按" + DIMENSION_LABELS.get(by, by).split()[0] + "统计",
            [name for name, _ in STAT_COLUMNS],
            [[get(s) for _, get in STAT_COLUMNS] for s in lines],
            first,
        )
        first = False
    _sheet(book, "口径说明", ["指标", "口径"], DEFINITIONS, first)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
