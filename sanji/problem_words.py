"""A catalogue's or calendar's problems, Chinese first: the place and the kind of each in Chinese, the English
detail kept after it. One table for the county's upload screens and for ``sanji catalogue check`` and ``sanji
calendar check`` (``sanji.cli.say``); it loads nothing of the web stack.

The checkers (``sanji.catalogue.loader``, ``protocol.catalogue.check_catalogue``, ``protocol.calendar_doc``,
``sanji.workcalendar``) word every problem in English: "row 3 (MZ-001), field committed_limit (column D): 'abc'
is not a whole number". A screen and a command show each as a ``Pair``: the place (第3行（MZ-001）“承诺时限”栏
（D列）) and the kind (应为整数) from the tables below, then that English line whole. A problem of a kind no table
names still leads in Chinese (请核对此项), never in English alone. ``HINTS_ZH`` words the checkers' hints.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from protocol.calendar_doc import SIGN_HINT
from protocol.catalogue import CatalogueError
from protocol.deadlines import CalendarError, CalendarInvalid
from sanji.bilingual import Pair, split_pair
from sanji.catalogue.loader import HEADING_ALIASES
from sanji.workcalendar import FORMAT_HINT, PROBLEMS_HINT

# A field by the heading a county's spreadsheet gives it (the first alias of each), and the rest by hand.
FIELD_ZH: dict[str, str] = {}
for _heading, _key in HEADING_ALIASES.items():
    FIELD_ZH.setdefault(_key, _heading)
FIELD_ZH.update(
    {
        "county": "县名",
        "matters": "事项列表",
        "holidays": "放假日",
        "workdays": "调休上班日",
        "years": "年份",
        "year": "年份",
        "note": "说明",
        "source": "来源",
    }
)

# (kind, pattern on the English, the kind in Chinese): the first that matches names the problem. Order matters
# where one pattern's words lie inside another's.
KINDS: tuple[tuple[str, str, str], ...] = (
    # the file as a whole
    ("not_readable", r"^cannot read |does not exist$", "无法读取（文件不存在，或没有读取权限）"),
    ("not_toml", r"not valid TOML", "不是有效的 TOML 文件"),
    ("not_json", r"not valid JSON", "不是有效的 JSON 文件"),
    (
        "xml_dtd",
        r"declares a DTD or entities",
        "不是可读取的 XLSX 表格：含有 DTD 或实体声明（正常保存的表格没有），读取前已拒绝",
    ),
    (
        "xml_damaged",
        r"is damaged or cut short",
        "不是可读取的 XLSX 表格：文件已损坏或不完整，请在 Excel/WPS 中重新保存后上传",
    ),
    (
        "xlsx_encrypted",
        r"is encrypted \(password protected\)",
        "不是可读取的 XLSX 表格：文件已加密（设有密码），请取消密码后重新保存再上传",
    ),
    ("not_xlsx", r"not a readable XLSX workbook|BadZipFile|is not a zip file", "不是可读取的 XLSX 表格"),
    ("long_number", r"more digits than any", "数字位数过多：没有哪一栏需要这么长的数字"),
    ("not_utf8", r"not UTF-8 text|codec can't decode", "不是 UTF-8 编码的文本"),
    ("nested", r"nested too deeply", "列表或表嵌套过深（目录只需两层）"),
    ("syntax", r"at line \d+, column \d+|line \d+ column \d+", "文件格式有误（语法错误，行列见英文）"),
    (
        "archive",
        r"the archive holds|inflates|refused before it is read",
        "不像正常保存的表格（部件过多或解压后过大），读取前已拒绝",
    ),
    (
        "sheet_rows",
        r"reaches past row|too many rows",
        "工作表行数超过上限：请删除最后一个事项以下的行（包括空白但带格式的行）",
    ),
    ("no_heading", r"no heading row|is empty$", "工作表没有标题行"),
    ("top_level", r"the top level must be a table", "文件顶层应为含 county、version、published_at、matters 的表"),
    ("too_many_matters", r"lists \d+ matters; the limit is", "事项数量超过上限"),
    ("too_big_to_sign", r"bytes encoded; at most", "目录编码后过大，无法签发：请缩短最长的文字或减少事项"),
    ("no_matters", r"lists no matters", "目录没有列出任何事项"),
    ("matters_missing", r"missing, or not a list of tables", "缺少事项列表，或不是由表组成的列表"),
    # fields and columns
    ("unknown_field", r"unknown field|unexpected (top-level )?key", "未知字段"),
    ("not_matter_field", r"not a matter field", "不是事项字段"),
    ("column_twice", r"the column appears twice", "该列重复出现"),
    ("missing", r"^missing$|is required|required \(", "缺少此项（必填）"),
    ("not_table", r"must be a table", "应为表"),
    # a matter's values
    (
        "main_or_secondary",
        r"does not say whether it is main or secondary",
        "材料未注明主件或副件：请写 名称(主) 或 名称(副)",
    ),
    ("duplicate_code", r"duplicate code", "事项编码重复"),
    ("too_many_materials", r"materials; the limit is", "材料数量超过上限"),
    ("no_main", r"has no main material", "没有主件材料，至少需要一项"),
    ("material_no_name", r"material without a name", "有材料没有名称"),
    ("in_person_proxy", r"must handle in person", "本人亲自办理的事项不能设为可代办"),
    ("agency_fee", r"always free|agency_fee|must be 0, not", "代办一律无偿，代办费应为 0"),
    ("committed_over_statutory", r"exceeds the statutory limit", "承诺时限超过了法定时限"),
    ("stages_over_committed", r"days exceed the committed limit", "乡镇时限与县级时限之和超过了承诺时限"),
    ("immediate_zero", r"must be 0 for an immediate matter", "即办件的时限应为 0"),
    ("township_decides", r"must be 0 when the township decides", "由乡镇办结的事项，县级时限应为 0"),
    ("at_least_a_day", r"must be at least 1 day", "时限至少为 1 天"),
    ("department_needed", r"is empty but approve_levels includes county", "审批层级含县级，但未填写县级部门"),
    ("approve_county", r"must include county when the county department", "由县级部门审批的事项，审批层级须含县级"),
    ("joint_empty", r"empty department name", "联办部门名称为空"),
    ("joint_lead", r"repeats the lead department", "联办部门与牵头部门重复"),
    ("joint_immediate", r"cannot be joint", "即办件不能是联办件"),
    ("deemed_immediate", r"no deadline to time out", "即办件没有时限，不能超时默许"),
    ("rules", r"generation of errand rules", "办件规则版本超出范围"),
    ("category", r"is not a category|unknown category", "不是有效的事项类别"),
    ("unit", r"is not a unit|unknown unit", "不是有效的时限单位（工作日/自然日）"),
    ("level", r"level", "层级填写有误（村/乡镇/县）"),
    ("bool", r"true or false", "应填“是”或“否”（true/false）"),
    ("whole_number", r"whole number", "应为整数"),
    ("negative", r"must not be negative", "不能为负数"),
    ("text", r"is not text|must be text|must be a string|must be the publishing", "应为文字"),
    ("empty", r"must not be empty|name is required", "不能为空"),
    ("too_long", r"characters; the limit is|at most \d+ characters", "字数超过上限"),
    ("listed_twice", r"twice", "重复列出"),
    ("must_be_list", r"must be a list", "应为列表"),
    # the calendar
    ("statutory", r"is a statutory holiday and must be listed", "是法定节假日，必须列出"),
    ("both", r"both a holiday and a working day|both as a holiday", "同一天既列为放假又列为上班"),
    ("already_working", r"already a working day", "该日本来就是工作日，不必列为调休上班日"),
    ("not_in_year", r"is not in \d{4}", "日期不在该年份内"),
    ("not_a_year", r"not a year between|must be four digits", "年份不对"),
    ("no_year", r"publishes no year", "日历没有发布任何年份"),
    ("days_limit", r"days; the limit is", "天数超过上限"),
    ("years_limit", r"years; the limit is", "年份数超过上限"),
    ("date", r"ISO date|YYYY-MM-DD|is not a date", "应为日期（YYYY-MM-DD）"),
)
OTHER_ZH = "请核对此项"

# What to do about a catalogue or calendar that does not check, in Chinese, by the checker's (English) hint.
HINTS_ZH: dict[str, str] = {
    str(CatalogueError.default_hint): "请逐条改正目录中所列的问题，再重新发布",
    SIGN_HINT: "请逐条改正所列问题（可先用 sanji calendar check 检查），再重新发布",
    PROBLEMS_HINT: "请逐条改正所列问题；当年国务院办公厅部分节假日安排的通知列有全部日期",
    FORMAT_HINT: (
        '日历文件依次写 county = "县名"、version = 版本号、published_at = "YYYY-MM-DD"，再每年一个 [year.YYYY] 表，'
        '含 holidays = [...]，可选 workdays = [...] 和 source = "..."；参见 deploy/calendar.example.toml'
    ),
    str(CalendarError.default_hint): "工作日历无法回答此问题，请核对县级工作日历",
    str(CalendarInvalid.default_hint): "请改正日历数据：所列每一天须属于已知年份，且只能是放假日或上班日之一",
}
_KINDS = tuple((kind, re.compile(pattern), zh) for kind, pattern, zh in KINDS)


def kind_of(said: str) -> tuple[str, str]:
    """The kind of a problem worded ``said`` (English) and its Chinese; ('other', 请核对此项) when no table names it."""
    for kind, pattern, zh in _KINDS:
        if pattern.search(said):
            return kind, zh
    return "other", OTHER_ZH


def _field(name: str) -> str:
    zh = FIELD_ZH.get(name)
    return f"“{zh}”栏" if zh else f"“{name}”栏"


def _code(code: str | None) -> str:
    return f"（{code}）" if code else ""


_PLACES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"^catalogue, field (\S+)$"), lambda m: f"目录表头{_field(m[1])}"),
    (
        re.compile(r"^row (\d+)(?: \((.+?)\))?(?:, field (\S+)(?: \(column ([A-Z]+)\))?)?$"),
        lambda m: f"第{m[1]}行{_code(m[2])}" + (_field(m[3]) if m[3] else "") + (f"（{m[4]}列）" if m[4] else ""),
    ),
    (
        re.compile(r"^\[\[matters\]\] #(\d+)(?: \((.+?)\))?(?:, field (\S+))?$"),
        lambda m: f"第{m[1]}个事项{_code(m[2])}" + (_field(m[3]) if m[3] else ""),
    ),
    (
        re.compile(r"^matters\[(\d+)\](?: \((.+?)\))?(?:, field (\S+))?$"),
        lambda m: f"第{int(m[1]) + 1}个事项{_code(m[2])}" + (_field(m[3]) if m[3] else ""),
    ),
    (re.compile(r"^sheet (.+) column ([A-Z]+), field (.+)$"), lambda m: f"工作表“{m[1]}”{m[2]}列（{m[3]}）"),
    (re.compile(r"^sheet (.+) row (\d+), field (.+)$"), lambda m: f"工作表“{m[1]}”第{m[2]}行{_field(m[3])}"),
    (re.compile(r"^sheet (.+)$"), lambda m: f"工作表“{m[1]}”"),
    (
        re.compile(r"^\[?year[ .](\d+)(?:\.(\w+))?\]?$"),
        lambda m: f"{m[1]}年" + (f"的{FIELD_ZH.get(m[2], m[2])}" if m[2] else ""),
    ),
    (re.compile(r"^(county|version|published_at|years|note)$"), lambda m: _field(m[1])),
)


def place_of(where: str) -> str | None:
    """A problem's place (the text before its first ': ') in Chinese; None when it is no place the checkers name."""
    for pattern, say in _PLACES:
        m = pattern.match(where)
        if m:
            return say(m)
    return None


def problem_pair(text: str) -> Pair:
    """One problem line: Chinese (its place and kind) first, the English line whole after."""
    where, sep, said = text.partition(": ")
    place = place_of(where) if sep else None
    if place is None:
        place, said = "", text
    _, zh = kind_of(said)
    return Pair(f"{place}：{zh}" if place else zh, text)


def problem_pairs(problems: list[str]) -> list[Pair]:
    return [problem_pair(p) for p in problems]


_COUNTED = re.compile(r"(\d+) problem\(s\)")


def headline_pair(message: str, what: str, file_name: str = "") -> Pair:
    """An upload's refusal line (``x.toml: 3 problem(s) in the catalogue``, ``x.toml is not valid TOML``) Chinese
    first: ``what`` names the document (目录, 日历). A line already Chinese first is split as it is."""
    found = split_pair(message)
    if found is not None:
        return found
    counted = _COUNTED.search(message)
    if counted:
        return Pair(f"{what}文件有 {counted[1]} 处问题，请逐条改正", message)
    rest = message
    if file_name and rest.startswith(file_name):
        rest = rest[len(file_name) :].lstrip(": ")
    kind, zh = kind_of(rest)
    if kind.startswith("not_"):
        return Pair(f"{what}文件{zh}", message)
    return Pair(f"{what}文件未通过检查：{problem_pair(rest).zh}", message)
