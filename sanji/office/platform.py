"""Exchange with the provincial platform (一体化政务服务平台 办件库): the national table shapes.

Export (``export_tables``): every errand that changed since a moment, as rows of the five
data-aggregation tables of ``shared/EXCHANGE.md`` §1 — accept 受理, process 过程 (one row per stage:
承办 审核 批准, with start and end time and the action 1 通过 / 2 退回 / 3 其他), result 办结,
special procedure 特别程序 (补正 with its pause, 延长), material 材料 — and the 好差评 rating records
(§3). Every row carries the sync metadata (``row_id``, ``operation`` I/U, ``sync_time``, ``batch_no``,
``data_source``) and is keyed by the errand number. Row ids are deterministic (errand + table +
action id), so a collector that receives a row twice keeps one; ``operation`` is ``I`` for a row
whose action happened after ``since`` and ``U`` for an older row re-sent because its errand changed.

Code lists (each a county may override with its province's; EXCHANGE.md says so):

* ``result_type``: approved 0 出证/准予, refused 1 不予许可, terminated 2 作废, withdrawn 3 删除,
  returned 5 退件, not accepted 6 不予受理 (the widely used list; no national list was found).
* ``project_type``: 1 即办件, 2 承诺件 (上报件 and 联办件 are 承诺件 with a promise date).
* ratings, five levels from our three, by the same words: 满意 → 4 满意, 基本满意 → 3 基本满意,
  不满意 → 2 不满意. Our rating device never offers 5 非常满意 or 1 非常不满意, so we never claim them.
* ``apply_type`` 1 窗口 (a village agent's proxy registration is a window application by mandate).

Not exported: the applicant's ID number and phone (``applyer_page_code``, contact mobile): they are
sealed to the errand's path, and leave only when the county decides the transport to the province
is encrypted (the provinces use SM2/SM4; not built here).

Matter codes: ``codes`` maps a Sanji matter code to its national ``catalog_code`` / ``task_code`` /
``task_handle_item`` / ``task_version`` (``read_implementation_list`` makes it); a matter without
an entry is sent under its own code in both fields.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

import msgspec
from sqlalchemy import select

from protocol import limits
from protocol.actions import (
    Accept,
    Action,
    Assign,
    Decide,
    Extend,
    MaterialsReceived,
    NotAccept,
    Rate,
    Register,
    RequestSupplement,
    ReturnErrand,
    Review,
    Terminate,
    Withdraw,
)
from protocol.batch import open_frame
from protocol.catalogue import CATEGORIES, MAX_CODE, MAX_MATERIALS, MAX_MATTERS, Catalogue, Material, Matter
from protocol.deadlines import CHINA_STANDARD_TIME, UNIT_NAMES
from protocol.encoding import decode_action
from protocol.errand import ErrandState
from protocol.errors import SanjiError
from protocol.hlc import pack, wall_seconds
from protocol.names import invisible
from protocol.topology import Directory
from sanji.store import Store
from sanji.store import schema as t

TABLES = ("accept", "process", "result", "special", "material", "rating")
LAST_EXPORT = "platform_last_export"  # meta key: when the last export began (ISO), for ``since=last``
RESULT_TYPES = {
    "approved": "0",
    "refused": "1",
    "terminated": "2",
    "withdrawn": "3",
    "returned": "5",
    "not_accepted": "6",
}
RATING_LEVELS = {"满意": ("4", "满意"), "基本满意": ("3", "基本满意"), "不满意": ("2", "不满意")}
STATUS_CODES = {"accepted": "1", "processing": "2", "done": "3"}
_state_decoder = msgspec.msgpack.Decoder(ErrandState)


class NationalCodes(msgspec.Struct, frozen=True, kw_only=True):
    catalog_code: str
    task_code: str
    task_handle_item: str = ""
    task_version: str = ""


def cst(hlc: int) -> str:
    return datetime.fromtimestamp(wall_seconds(hlc), UTC).astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M:%S")


def hlc_of(moment: datetime) -> int:
    return pack(int(moment.timestamp() * 1000), 0)


def errand_rows(
    state: ErrandState,
    actions: Sequence[Action],
    *,
    since: int,
    directory: Directory,
    catalogue: Catalogue | None,
    codes: Mapping[str, NationalCodes],
    meta: Mapping[str, str],
) -> dict[str, list[dict[str, Any]]]:
    """The national-table rows of one errand (only its applied actions count)."""
    acts = sorted(actions, key=lambda a: (a.at, a.id))
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    project_no = state.receipt or state.id
    matter = catalogue.get(state.matter) if catalogue else None
    national = codes.get(state.matter) or NationalCodes(catalog_code=state.matter, task_code=state.matter)

    def row(table: str, action: Action, **fields: Any) -> None:
        out[table].append(
            {
                "row_id": f"{state.id}:{table}:{action.id}",
                "operation": "I" if action.at >= since else "U",
                **meta,
                "project_no": project_no,
                **fields,
            }
        )

    register = next((a for a in acts if isinstance(a, Register)), None)
    accept = next((a for a in acts if isinstance(a, Accept)), None)
    if accept is not None:
        town = directory.get(accept.node) if accept.node in directory else None
        row(
            "accept",
            accept,
            catalog_code=national.catalog_code,
            task_code=national.task_code,
            task_handle_item=national.task_handle_item,
            task_name=matter.name if matter else state.matter,
            task_version=national.task_version,
            applyer_name=state.applicant_name,
            applyer_type="1",
            apply_date=cst(register.at) if register else "",
            apply_type="1",
            org_name=(town.name if town else "") or accept.node,
            org_code=accept.node,
            handle_user_name=accept.actor,
            accept_date=cst(accept.at),
            project_name=(register.summary if register and register.summary else "")
            or f"{state.applicant_name}{matter.name if matter else state.matter}",
            project_type="1" if accept.errand_kind == "即办件" else "2",
            promise_date=accept.due,
        )
    previous = accept.at if accept else (register.at if register else state.registered_at)
    unit_zh = UNIT_NAMES.get(accept.limit_unit if accept else "working", UNIT_NAMES["working"])[0]
    open_supplement: RequestSupplement | None = None
    for action in acts:
        stage = ""
        event = "1"
        explain = ""
        if isinstance(action, Assign):
            stage, explain = "承办", f"{action.window} {action.handler}".strip()
        elif isinstance(action, Review):
            stage, event, explain = "审核", "1" if action.passed else "2", action.note
        elif isinstance(action, Decide):
            stage, event = "批准", "1" if action.outcome == "approved" else "3"
            explain = action.document + (" (超时默许)" if action.deemed else "")
        elif isinstance(action, ReturnErrand):
            stage, event, explain = "退回", "2", action.reasons
        if stage:
            row(
                "process",
                action,
                process_name=stage,
                event_name=event,
                handle_user_name=action.actor,
                handle_explain=explain,
                event_start_time=cst(previous),
                event_end_time=cst(action.at),
            )
            previous = action.at
        if isinstance(action, RequestSupplement):
            open_supplement = action
        elif isinstance(action, MaterialsReceived) and open_supplement is not None:
            row(
                "special",
                open_supplement,
                special_type="补正",
                special_name="补正材料",
                start_time=cst(open_supplement.at),
                reason="、".join(open_supplement.items),
                end_time=cst(action.at),
                result="材料已补齐",
            )
            open_supplement = None
        elif isinstance(action, Extend):
            row(
                "special",
                action,
                special_type="延长",
                special_name=f"延长{action.days}{unit_zh}",
                start_time=cst(action.at),
                reason=action.reason,
                end_time=cst(action.at),
                result=f"期限至{action.due}",
            )
    if open_supplement is not None:
        row(
            "special",
            open_supplement,
            special_type="补正",
            special_name="补正材料",
            start_time=cst(open_supplement.at),
            reason="、".join(open_supplement.items),
            end_time="",
            result="",
        )
    answer = next((a for a in acts if isinstance(a, (Decide, NotAccept, ReturnErrand, Terminate, Withdraw))), None)
    rating = next((a for a in acts if isinstance(a, Rate)), None)  # the applicant's first (the rule: once)
    if answer is not None and state.outcome:
        explain = {
            Decide: lambda a: a.document,
            NotAccept: lambda a: a.reasons,
            ReturnErrand: lambda a: a.reasons,
            Terminate: lambda a: a.reason,
            Withdraw: lambda a: a.reason,
        }[type(answer)](answer)
        row(
            "result",
            answer,
            result_date=cst(answer.at),
            result_type=RESULT_TYPES.get(state.outcome, ""),
            result_explain=explain,
            certificate_name=explain if state.outcome == "approved" else "",
            is_delivery_results="0",
            satisfaction=RATING_LEVELS[rating.level][0] if rating else "",
        )
    if register is not None:
        received = [m for a in acts if isinstance(a, MaterialsReceived) for m in a.items]
        for index, name in enumerate([*register.materials, *received]):
            out["material"].append(
                {
                    "row_id": f"{state.id}:material:{index}",
                    "operation": "I" if register.at >= since else "U",
                    **meta,
                    "project_no": project_no,
                    "material_name": name,
                    "get_type": "1",
                    "get_num": 1,
                    "attachment_name": "",
                }
            )
    status = "done" if state.outcome else ("processing" if out["process"] else "accepted")
    for rate in (a for a in acts if isinstance(a, Rate)):
        code, name = RATING_LEVELS[rate.level]
        row(
            "rating",
            rate,
            catalog_code=national.catalog_code,
            task_code=national.task_code,
            dept_code=state.responsible or state.holder,
            area_code=state.scope,
            project_status=STATUS_CODES[status],
            channel="4",  # hall tablet: the 评价器 at the window
            rater_type="1",
            alternate=rate.level,
            evaluate_level=code,
            evaluate_level_name=name,
            evaluate_text=rate.comment,
            evaluate_time=cst(rate.at),
            first_or_second="1",
        )
    return out


async def export_tables(
    store: Store,
    catalogue: Catalogue | None,
    *,
    since: datetime,
    batch_no: str,
    data_source: str = "001",
    codes: Mapping[str, NationalCodes] | None = None,
    arrived_since: float | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every errand with an action dated at or after ``since``, as national-table rows (incremental).

    With ``arrived_since`` (seconds; ``since=last``), also every errand with an action that arrived at
    this node since then: a batch received late, or carried by hand, holds actions dated before the
    last export, which would otherwise never be sent.
    """
    since_hlc = hlc_of(since)
    meta = {
        "sync_time": datetime.now(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M:%S"),
        "batch_no": batch_no,
        "data_source": data_source,
    }
    query = (
        select(t.errands.c.id, t.errands.c.state)
        .where(t.errands.c.state.is_not(None), t.errands.c.updated_at >= since_hlc)
        .order_by(t.errands.c.updated_at, t.errands.c.id)
    )
    async with store.db.reader.connect() as conn:
        found = list((await conn.execute(query)).all())
        late = set()
        if arrived_since is not None:
            late = await _arrived_since(conn, store.directory, arrived_since) - {errand_id for errand_id, _ in found}
        for start in range(0, len(late_ids := sorted(late)), 500):
            found += (
                await conn.execute(
                    select(t.errands.c.id, t.errands.c.state).where(
                        t.errands.c.state.is_not(None), t.errands.c.id.in_(late_ids[start : start + 500])
                    )
                )
            ).all()
        acts: dict[str, list[Action]] = defaultdict(list)
        ids = [errand_id for errand_id, _ in found]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for errand_id, body in await conn.execute(
                select(t.actions.c.errand, t.actions.c.body).where(
                    t.actions.c.errand.in_(chunk), t.actions.c.status == "applied"
                )
            ):
                acts[errand_id].append(decode_action(body))
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for errand_id, blob in found:
        state = _state_decoder.decode(blob)
        rows = errand_rows(
            state,
            acts.get(errand_id, []),
            since=since_hlc,
            directory=store.directory,
            catalogue=catalogue,
            codes=codes or {},
            meta=meta,
        )
        for name in TABLES:
            tables[name].extend(rows[name])
    return tables


def derived_status(project_no: str, tables: Mapping[str, Iterable[Mapping[str, Any]]]) -> str:
    """What a collector derives (EXCHANGE.md §1): accept only 已受理, a process row 办理中, a result 已办结."""

    def has(name: str) -> bool:
        return any(r["project_no"] == project_no for r in tables.get(name, ()))

    if has("result"):
        return "已办结"
    if has("process"):
        return "办理中"
    return "已受理" if has("accept") else ""


# -- importing the national implementation list (事项实施清单) ----------------------------------

TASK_TYPES = {
    "01": "许可",
    "02": "其他",  # 处罚
    "03": "其他",  # 强制
    "04": "征收",
    "05": "给付",
    "06": "其他",  # 检查
    "07": "确认",
    "08": "其他",  # 奖励
    "09": "其他",  # 裁决
    "10": "其他",
    "20": "公共服务",
    "21": "公共服务",
}
UNITS = {"1": "working", "2": "calendar", "工作日": "working", "自然日": "calendar"}


MAX_LIST_BYTES = 16 * 1024 * 1024  # 2,000 matters (the catalogue's limit) with their materials: a few megabytes
MAX_LIST_DEPTH = 16  # a list nests 4 deep (tasks, a task, its materials, a material)
MAX_DAYS = 3650  # ten years: no time limit in any list is longer, and a larger one is a typo or an attack
MAX_NATIONAL_CODE = 64  # catalog_code 12, task_handle_item 33 characters seen (EXCHANGE.md §2)
NOT_UTF8 = "文件不是 UTF-8 编码（可能是 GBK），请另存为 UTF-8 / the file is not UTF-8 (perhaps GBK): save it as UTF-8"


class ImportProblem(ValueError):
    """The list cannot be imported; ``problems`` lists every fault (Chinese first, then English), one a line."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class _ListMaterial(msgspec.Struct, kw_only=True):
    material_name: str = ""
    is_need: str | int = "1"


class _ListFee(msgspec.Struct, kw_only=True):
    name: str = ""
    standard: str | int | float = ""


class _ListTask(msgspec.Struct, kw_only=True):
    """One implementation entry as the lists carry it: codes may come as numbers, days as numerals in text."""

    task_code: str = ""
    task_name: str = ""
    catalog_code: str | int = ""
    task_handle_item: str | int = ""
    task_version: str | int = ""
    task_type: str | int = ""
    dept_name: str = ""
    by_law: str = ""
    anticipate_day: int | str | None = None
    anticipate_type: str | int | None = None
    promise_day: int | str | None = None
    promise_type: str | int | None = None
    project_type: str | int = "2"
    limit_scene_num: int | str | None = None
    town_code: str | int | None = None
    village_code: str | int | None = None
    materials: list[_ListMaterial] | None = None
    fees: list[_ListFee] | None = None


class _ListTop(msgspec.Struct, kw_only=True):
    tasks: list[msgspec.Raw] = []


_FIELD_ZH = {
    "task_code": "实施编码",
    "task_name": "事项名称",
    "catalog_code": "目录编码",
    "task_handle_item": "业务办理项编码",
    "task_version": "版本",
    "task_type": "事项类型",
    "dept_name": "实施机构",
    "by_law": "设定依据",
    "anticipate_day": "法定办结时限",
    "anticipate_type": "法定时限单位",
    "promise_day": "承诺办结时限",
    "promise_type": "承诺时限单位",
    "project_type": "办件类型",
    "limit_scene_num": "到办事现场次数",
    "town_code": "乡镇编码",
    "village_code": "村编码",
    "materials": "申请材料",
    "fees": "收费项目",
}


# A JSON string, closed or running to the end: it always matches, so stripping strings stays linear in the text
# (a pattern that could fail would be tried again from every escaped quote of an unclosed string).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _too_deep(text: str) -> bool:
    """Whether the JSON ``text`` nests deeper than ``MAX_LIST_DEPTH`` (brackets inside strings do not count), so a
    recursive decoder is never handed more depth than it can take. Stops at the first bracket too deep."""
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_LIST_DEPTH:
            return True
    return False


def read_implementation_list(
    raw: bytes, *, county: str, version: int, published_at: str
) -> tuple[Catalogue, dict[str, NationalCodes]]:
    """The national list's bytes (a file, an upload) as a catalogue and codes, or ``ImportProblem`` listing every fault.

    Bounded before anything is decoded: size, then nesting (a recursive decoder would otherwise reach
    Python's recursion limit on ``[[[[...``), then a typed decode, so a value of the wrong shape is a listed
    problem, never an exception. A UTF-8 byte-order mark (Windows Notepad writes one) is accepted.
    """
    if len(raw) > MAX_LIST_BYTES:
        raise ImportProblem(
            f"文件过大（{len(raw)} 字节，上限 {MAX_LIST_BYTES}） / "
            f"the file of {len(raw)} bytes exceeds {MAX_LIST_BYTES}"
        )
    if raw.startswith(b"\xff\xfe") or raw.startswith(b"\xfe\xff"):
        raise ImportProblem("文件是 UTF-16 编码，请另存为 UTF-8 / the file is UTF-16: save it as UTF-8")
    try:
        text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError:
        raise ImportProblem(NOT_UTF8) from None
    if _too_deep(text):
        raise ImportProblem(
            f"文件嵌套超过 {MAX_LIST_DEPTH} 层，不是事项实施清单 / the file nests deeper than {MAX_LIST_DEPTH} levels: "
            "not an implementation list"
        )
    try:
        top = msgspec.json.decode(text, type=_ListTop)
    except msgspec.ValidationError as exc:
        raise ImportProblem(
            f"文件应是含 tasks 列表的 JSON 对象 / the file must be a JSON object with a 'tasks' list ({exc})"
        ) from None
    except msgspec.DecodeError as exc:
        raise ImportProblem(f"文件不是有效的 JSON / the file is not valid JSON ({exc})") from None
    if len(top.tasks) > MAX_MATTERS:  # before each row is decoded and a problem worded for it: bounded work
        raise ImportProblem(
            f"清单有 {len(top.tasks)} 条事项，上限 {MAX_MATTERS} / "
            f"the list has {len(top.tasks)} tasks; the limit is {MAX_MATTERS}"
        )
    tasks: list[_ListTask | str] = []  # a row that does not decode: its problem, listed in its place
    for index, item in enumerate(top.tasks):
        try:
            tasks.append(msgspec.json.decode(item, type=_ListTask))
        except msgspec.ValidationError as exc:
            path = str(exc).rpartition("`$.")[2].rstrip("`")
            field = re.split(r"[.\[]", path)[0] if "`$." in str(exc) else ""
            where = f"字段 {field}（{_FIELD_ZH.get(field, field)}）" if field else "整条"
            tasks.append(f"第 {index + 1} 条，{where}：类型不符 / row {index + 1}, {field or 'row'}: {exc}")
    catalogue, codes, problems = _import_tasks(tasks, county=county, version=version, published_at=published_at)
    if problems:
        raise ImportProblem(problems)
    return catalogue, codes


def _whole_days(value: int | str | None, default: int) -> int | None:
    """Days as the lists carry them (a number, or numerals in text), or None when out of 0..MAX_DAYS."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        value = value.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= 6):
            return None
        value = int(value)
    return value if 0 <= value <= MAX_DAYS else None


def _text_problem(value: str, *, limit: int, code: bool) -> str | None:
    """Why a text field of the list cannot be kept (Chinese / English), or None."""
    if any(invisible(c) for c in value):
        return "含控制字符或不可见字符 / holds a control or invisible character"
    if len(value) > limit:
        return f"长 {len(value)} 字符，上限 {limit} / is {len(value)} characters; the limit is {limit}"
    if code and any(c.isspace() for c in value):
        return "编码不能含空格 / a code holds no spaces"
    return None


def _import_tasks(
    tasks: Sequence[_ListTask | str], *, county: str, version: int, published_at: str
) -> tuple[Catalogue, dict[str, NationalCodes], list[str]]:
    """Each task (EXCHANGE.md §2) as a Sanji matter; the problems of each row, numbered from 1.

    Fields: task_code, catalog_code, task_name, task_type, task_version, dept_name, by_law,
    anticipate_day/_type, promise_day/_type, project_type (1 即办 / 2 承诺), limit_scene_num,
    town_code/village_code (lower levels that handle it), materials [{material_name, is_need (1 必要,
    2 非必要, 3 容缺后补)}], fees [{name, standard}]. The matter's Sanji code is the task_code (kept
    verbatim); the codes map keeps the rest.
    """
    problems: list[str] = []
    if not tasks:
        problems.append("清单没有事项（tasks 为空） / the implementation list has no tasks")
    elif len(tasks) > MAX_MATTERS:
        problems.append(
            f"清单有 {len(tasks)} 条事项，上限 {MAX_MATTERS} / "
            f"the list has {len(tasks)} tasks; the limit is {MAX_MATTERS}"
        )
        tasks = ()
    matters: list[Matter] = []
    codes: dict[str, NationalCodes] = {}
    first_row: dict[str, int] = {}
    for index, task in enumerate(tasks):
        if isinstance(task, str):
            problems.append(task)
            continue
        row = index + 1

        def bad(field: str, message: str, row: int = row) -> None:
            zh, _, en = message.partition(" / ")  # each half names the row and field in its own language
            problems.append(
                f"第 {row} 条，字段 {field}（{_FIELD_ZH.get(field, field)}）：{zh} / row {row}, {field}: {en}"
            )

        code = task.task_code.strip()
        name = task.task_name.strip()
        before = len(problems)
        if not code:
            bad("task_code", "必填 / task_code is required")
        elif why := _text_problem(code, limit=MAX_CODE, code=True):
            bad("task_code", why)
        elif code in first_row:
            bad("task_code", f"与第 {first_row[code]} 条重复 / duplicates row {first_row[code]}")
        else:
            first_row[code] = row
        if not name:
            bad("task_name", "必填 / task_name is required")
        national = {f: str(getattr(task, f)).strip() for f in ("catalog_code", "task_handle_item", "task_version")}
        for field, value in national.items():
            if why := _text_problem(value, limit=MAX_NATIONAL_CODE, code=True):
                bad(field, why)
        texts = {"task_name": name, "dept_name": task.dept_name.strip(), "by_law": task.by_law.strip()}
        for field, value in texts.items():
            if why := _text_problem(value, limit=limits.MAX_TEXT, code=False):
                bad(field, why)
        statutory = _whole_days(task.anticipate_day, 0)
        if statutory is None:
            bad("anticipate_day", f"须为 0 至 {MAX_DAYS} 的整数天 / must be whole days from 0 to {MAX_DAYS}")
        promised = _whole_days(task.promise_day, statutory or 0)
        if promised is None:
            bad("promise_day", f"须为 0 至 {MAX_DAYS} 的整数天 / must be whole days from 0 to {MAX_DAYS}")
        scenes = _whole_days(task.limit_scene_num, 0)
        if scenes is None:
            bad("limit_scene_num", f"须为 0 至 {MAX_DAYS} 的整数 / must be a whole number from 0 to {MAX_DAYS}")
        materials: list[Material] = []
        for m in task.materials or []:
            if why := _text_problem(m.material_name.strip(), limit=limits.MAX_TEXT, code=False):
                bad("materials", why)
            elif m.material_name.strip():
                is_need = str(m.is_need)
                materials.append(
                    Material(
                        name=m.material_name.strip(), main=is_need == "1", note="容缺后补" if is_need == "3" else ""
                    )
                )
        if len(materials) > MAX_MATERIALS:
            bad(
                "materials",
                f"有 {len(materials)} 项，上限 {MAX_MATERIALS} / lists {len(materials)}; the limit is {MAX_MATERIALS}",
            )
        fee_text = "；".join(f"{f.name} {f.standard}".strip() for f in task.fees or [])
        if why := _text_problem(fee_text, limit=limits.MAX_TEXT, code=False):
            bad("fees", why)
        if len(problems) > before or statutory is None or promised is None or scenes is None:
            continue
        category = TASK_TYPES.get(str(task.task_type).zfill(2), "其他")
        unit_code = task.promise_type if task.promise_type is not None else task.anticipate_type
        unit = UNITS.get(str(unit_code if unit_code is not None else "1"), "working")
        immediate = str(task.project_type) == "1"
        levels: list[str] = ["town"]
        if task.village_code:
            levels.insert(0, "village")
        department = texts["dept_name"]
        in_person = scenes >= 1 and not task.village_code
        handled_below = bool(task.town_code or task.village_code)
        matters.append(
            Matter(
                code=code,
                name=name,
                name_en="",
                category=category if category in CATEGORIES else "其他",  # type: ignore[arg-type]
                legal_basis=texts["by_law"] or "见国家事项实施清单",
                accept_levels=tuple(levels),  # type: ignore[arg-type]
                handle_levels=("town",) if handled_below else ("county",),
                approve_levels=("town",) if handled_below else ("county",),
                # 到办事现场次数 0 (or a village that handles it): an agent may carry it; else in person
                proxy_allowed=not in_person,
                in_person=in_person,
                materials=tuple(materials),
                statutory_limit=statutory,
                committed_limit=0 if immediate else promised,
                limit_unit=unit,  # type: ignore[arg-type]
                township_limit=0 if immediate else promised,
                county_limit=0 if (immediate or handled_below) else promised,
                fee=fee_text or "不收费",
                window=department or "综合窗口",
                department="" if handled_below else department,
                immediate=immediate,
                illustrative=False,
            )
        )
        codes[code] = NationalCodes(
            catalog_code=national["catalog_code"] or code,
            task_code=code,
            task_handle_item=national["task_handle_item"],
            task_version=national["task_version"],
        )
    catalogue = Catalogue(county=county, version=version, published_at=published_at, matters=tuple(matters))
    return catalogue, codes, problems


async def _arrived_since(conn: Any, directory: Directory, since: float) -> set[str]:
    """The errands of every batch this node received at or after ``since`` (seconds)."""
    query = (
        select(t.batches.c.frame)
        .where(t.batches.c.received_at >= since)
        .order_by(t.batches.c.received_at, t.batches.c.origin, t.batches.c.scope, t.batches.c.seq)
    )
    errands: set[str] = set()
    for offset in itertools.count(0, 200):
        frames = (await conn.execute(query.limit(200).offset(offset))).scalars().all()
        for frame in frames:
            try:
                errands.update(action.errand for action in open_frame(frame, directory).actions)
            except SanjiError:  # a key since revoked: what it carried was judged when it arrived
                continue
        if len(frames) < 200:
            return errands
    return errands


async def since_of(store: Store, text: str) -> tuple[datetime, float | None]:
    """``since`` as asked (a date, an ISO time or ``last``) and, for ``last``, the arrivals to add."""
    moment = parse_since(text, await store.meta_value(LAST_EXPORT))
    return moment, (moment.timestamp() if text == "last" else None)


def parse_since(text: str, last: str | None = None) -> datetime:
    """``2026-11-01`` (00:00 China Standard Time), an ISO time, or ``last``: when the last export began."""
    if text == "last":
        if not last:
            raise ValueError("no export has run yet: give the first one a date, e.g. 2026-11-01")
        text = last
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time.min, tzinfo=CHINA_STANDARD_TIME)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"since must be a date like 2026-11-01, an ISO time or 'last', not {text[:40]!r}") from None
    if not 2000 <= moment.year <= 2100:
        raise ValueError(f"since must fall between the years 2000 and 2100, not {text[:40]!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA_STANDARD_TIME)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1).encode()


async def export_files(
    store: Store,
    catalogue: Catalogue | None,
    *,
    since: datetime,
    data_source: str,
    batch_no: str = "",
    codes: Mapping[str, NationalCodes] | None = None,
    arrived_since: float | None = None,
) -> dict[str, bytes]:
    """One export as files: a JSON file per table and ``manifest.json`` (batch, since, counts).

    The command writes them into a directory, the county's screen hands them over as one ZIP; then
    ``remember_export`` keeps the moment it began, so the next one can ask for ``since=last`` and miss
    nothing (an errand changed while this one ran is in both, as an update the collector merges).
    """
    if not (len(data_source) == 3 and data_source.isdigit()):
        raise ValueError("the data source is a 3-digit code")
    began = datetime.now(CHINA_STANDARD_TIME)
    batch = batch_no or began.strftime("%Y%m%d%H%M%S")
    tables = await export_tables(
        store, catalogue, since=since, batch_no=batch, data_source=data_source, codes=codes, arrived_since=arrived_since
    )
    counts = {name: len(tables[name]) for name in TABLES}
    files = {f"{name}.json": _json(tables[name]) for name in TABLES}
    began_text = began.isoformat()  # to the microsecond: a batch that arrived just before is not sent again
    manifest = {"batch_no": batch, "since": since.isoformat(), "began": began_text, "data_source": data_source}
    files["manifest.json"] = _json(manifest | {"counts": counts})
    return files


async def remember_export(store: Store, files: Mapping[str, bytes]) -> None:
    """Once an export's files are written (or handed over), the next ``since=last`` starts where it began."""
    began = json.loads(files["manifest.json"])["began"]
    await store.set_meta(LAST_EXPORT, str(began))


def zipped(files: Mapping[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()
