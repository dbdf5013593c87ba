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
``task_handle_item`` / ``task_version`` (``import_implementation_list`` makes it); a matter without
an entry is sent under its own code in both fields.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

import msgspec
from sqlalchemy import select

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
from protocol.catalogue import CATEGORIES, Catalogue, Material, Matter
from protocol.deadlines import CHINA_STANDARD_TIME, UNIT_NAMES
from protocol.encoding import decode_action
from protocol.errand import ErrandState
from protocol.errors import SanjiError
from protocol.hlc import pack, wall_seconds
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


class ImportProblem(ValueError):
    pass


def import_implementation_list(
    data: Mapping[str, Any], *, county: str, version: int, published_at: str
) -> tuple[Catalogue, dict[str, NationalCodes]]:
    """A Sanji catalogue and the national codes of each matter, from the national list's shape.

    ``data["tasks"]`` is a list of implementation entries (EXCHANGE.md §2): task_code, catalog_code,
    task_name, task_type, task_version, dept_name, by_law, anticipate_day/_type, promise_day/_type,
    project_type (1 即办 / 2 承诺), limit_scene_num, town_code/village_code (lower levels that handle it),
    materials [{material_name, is_need (1 必要, 2 非必要, 3 容缺后补), ...}], fees [{name, standard}].
    The matter's Sanji code is the task_code (kept verbatim); the codes map keeps the rest.
    """
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ImportProblem("the implementation list has no tasks")
    problems: list[str] = []
    matters: list[Matter] = []
    codes: dict[str, NationalCodes] = {}
    for index, task in enumerate(tasks):
        where = f"tasks[{index}]"
        if not isinstance(task, dict):
            problems.append(f"{where}: not an object")
            continue
        code = str(task.get("task_code", "")).strip()
        name = str(task.get("task_name", "")).strip()
        if not code or not name:
            problems.append(f"{where}: task_code and task_name are required")
            continue
        category = TASK_TYPES.get(str(task.get("task_type", "")).zfill(2), "其他")
        unit = UNITS.get(str(task.get("promise_type", task.get("anticipate_type", "1"))), "working")
        try:
            statutory = int(task.get("anticipate_day", 0))
            promised = int(task.get("promise_day", statutory))
        except (TypeError, ValueError):
            problems.append(f"{where}: anticipate_day and promise_day are whole days")
            continue
        immediate = str(task.get("project_type", "2")) == "1"
        levels: list[str] = ["town"]
        if task.get("village_code"):
            levels.insert(0, "village")
        fees = task.get("fees") or []
        fee_text = "；".join(
            f"{f.get('name', '')} {f.get('standard', '')}".strip() for f in fees if isinstance(f, dict)
        )
        materials = tuple(
            Material(
                name=str(m.get("material_name", "")).strip(),
                main=str(m.get("is_need", "1")) == "1",
                note="容缺后补" if str(m.get("is_need", "")) == "3" else "",
            )
            for m in task.get("materials") or []
            if isinstance(m, dict) and str(m.get("material_name", "")).strip()
        )
        department = str(task.get("dept_name", "")).strip()
        try:
            in_person = int(task.get("limit_scene_num", 0) or 0) >= 1 and not task.get("village_code")
        except (TypeError, ValueError):
            problems.append(f"{where}: limit_scene_num is a whole number")
            continue
        handled_below = bool(task.get("town_code") or task.get("village_code"))
        matters.append(
            Matter(
                code=code,
                name=name,
                name_en="",
                category=category if category in CATEGORIES else "其他",  # type: ignore[arg-type]
                legal_basis=str(task.get("by_law", "")).strip() or "见国家事项实施清单",
                accept_levels=tuple(levels),  # type: ignore[arg-type]
                handle_levels=("town",) if handled_below else ("county",),
                approve_levels=("town",) if handled_below else ("county",),
                # 到办事现场次数 0 (or a village that handles it): an agent may carry it; else in person
                proxy_allowed=not in_person,
                in_person=in_person,
                materials=materials,
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
            catalog_code=str(task.get("catalog_code", "")).strip() or code,
            task_code=code,
            task_handle_item=str(task.get("task_handle_item", "")).strip(),
            task_version=str(task.get("task_version", "")).strip(),
        )
    if problems:
        raise ImportProblem("; ".join(problems))
    return Catalogue(county=county, version=version, published_at=published_at, matters=tuple(matters)), codes


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
