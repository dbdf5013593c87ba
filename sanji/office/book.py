"""The office's own records: assessment entries, appeals (申诉) and their decisions.

Append-only. Each record is canonical msgpack, signed by the node's key over the previous
record's hash and its own bytes, and chained (``hash = sha256(prev + body)``), so a changed,
removed or reordered record is found by ``verify`` — who recorded what, when, is evidence.
A decision never edits its appeal: the appeal's state is derived from the records, like an
errand's from its actions.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Literal

import msgspec
from sqlalchemy import insert, select

from protocol.assessment import Appeal, Entry, quarter_span
from protocol.encoding import encode
from protocol.errors import SanjiError
from protocol.signing import verify
from sanji.store import Store
from sanji.store import schema as t

CHAIN_START = "0" * 64
MAX_TEXT = 1000


class OfficeRefused(SanjiError):
    """A record the office's rules refuse (answered 409, like a refused step on an errand): ``message`` in English,
    ``message_zh`` in Chinese where a screen shows it (the JSON body carries it too, when there is one)."""

    code = "office_refused"
    default_hint = "Correct the record and send it again."

    def __init__(self, message: str, *, zh: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.message_zh = zh

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        if self.message_zh:
            out["message_zh"] = self.message_zh
        return out


# The office's form fields as the screens label them (a refusal names the field in Chinese too).
FIELD_NAMES_ZH = {
    "subject": "考核对象",
    "item": "考核项目",
    "note": "备注",
    "errand": "办件编号",
    "by": "记录人",
    "reason": "理由",
    "part": "考核部分",
}


def problem_text(exc: Exception) -> str:
    """What an office screen says of a refused form: "中文 English" (the ``bi`` filter puts them in the reader's
    order); a refusal with no Chinese of its own (a malformed field, a quarter typed wrong) under a Chinese lead."""
    message = exc.message if isinstance(exc, SanjiError) else str(exc)
    zh = getattr(exc, "message_zh", "") or "未保存，请检查填写的内容"
    return f"{zh} {message}"


class OfficeRecordUnknown(OfficeRefused):
    """The record named is not held here (answered 404)."""

    code = "not_found"
    default_hint = "Check the record's id: it is listed by GET /api/office/assessment."


class EntryRecord(msgspec.Struct, frozen=True, kw_only=True, tag="entry", tag_field="kind"):
    entry: Entry
    at: float


class AppealRecord(msgspec.Struct, frozen=True, kw_only=True, tag="appeal", tag_field="kind"):
    appeal: Appeal
    at: float


class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True, tag="decision", tag_field="kind"):
    appeal: str
    quarter: str
    subject: str
    upheld: bool
    points: float
    part: str
    reason: str
    by: str
    at: float


Record = EntryRecord | AppealRecord | DecisionRecord
_decoder = msgspec.msgpack.Decoder(Record)


def _text(value: str, name: str, *, required: bool = True) -> str:
    value = value.strip()
    label = FIELD_NAMES_ZH.get(name, name)
    if required and not value:
        raise OfficeRefused(f"{name} is required", zh=f"请填写{label}")
    if len(value) > MAX_TEXT or any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise OfficeRefused(f"{name} is too long or holds control characters", zh=f"{label}太长或含有控制字符")
    return value


class OfficeBook:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def _append(self, record: Record, *, id: str, kind: str, quarter: str, subject: str) -> None:
        body = encode(record)
        async with self.store.db.write() as conn:
            prev = await conn.scalar(select(t.office_records.c.hash).order_by(t.office_records.c.seq.desc()).limit(1))
            prev = prev or CHAIN_START
            key = self.store.key
            await conn.execute(
                insert(t.office_records).values(
                    id=id,
                    kind=kind,
                    quarter=quarter,
                    subject=subject,
                    at=time.time(),
                    body=body,
                    key_id=key.key_id,
                    signature=key.sign(prev.encode() + body),
                    hash=hashlib.sha256(prev.encode() + body).hexdigest(),
                )
            )

    async def add_entry(
        self,
        *,
        quarter: str,
        target: Literal["staff", "centre"],
        subject: str,
        item: str,
        count: int = 1,
        note: str = "",
        errand: str = "",
        by: str,
    ) -> Entry:
        quarter_span(quarter)
        if not 1 <= count <= 100:
            raise OfficeRefused("count is 1 to 100", zh="次数应为1至100")
        entry = Entry(
            id="EN-" + uuid.uuid4().hex[:12],
            quarter=quarter.upper(),
            target=target,
            subject=_text(subject, "subject")[:96],
            item=_text(item, "item")[:64],
            count=count,
            note=_text(note, "note", required=False),
            errand=_text(errand, "errand", required=False)[:96],
            by=_text(by, "by"),
        )
        await self._append(
            EntryRecord(entry=entry, at=time.time()),
            id=entry.id,
            kind="entry",
            quarter=entry.quarter,
            subject=entry.subject,
        )
        return entry

    async def file_appeal(
        self, *, quarter: str, target: Literal["staff", "centre"], subject: str, reason: str, by: str
    ) -> Appeal:
        quarter_span(quarter)
        appeal = Appeal(
            id="AP-" + uuid.uuid4().hex[:12],
            quarter=quarter.upper(),
            target=target,
            subject=_text(subject, "subject")[:96],
            reason=_text(reason, "reason"),
            by=_text(by, "by"),
        )
        await self._append(
            AppealRecord(appeal=appeal, at=time.time()),
            id=appeal.id,
            kind="appeal",
            quarter=appeal.quarter,
            subject=appeal.subject,
        )
        return appeal

    async def decide_appeal(
        self, appeal_id: str, *, upheld: bool, points: float = 0, part: str = "", reason: str, by: str
    ) -> Appeal:
        appeals = {a.id: a for a in await self.appeals()}
        appeal = appeals.get(appeal_id)
        if appeal is None:
            raise OfficeRecordUnknown(f"no appeal {appeal_id[:40]}", zh=f"没有编号为 {appeal_id[:40]} 的申诉")
        if appeal.status != "pending":
            raise OfficeRefused(
                f"appeal {appeal_id} was already decided ({appeal.status})", zh=f"申诉 {appeal_id} 已经作出决定"
            )
        if upheld and not points:
            raise OfficeRefused("an upheld appeal says how many points it changes", zh="支持申诉时请填写调整的分数")
        if not -100 <= points <= 100:
            raise OfficeRefused("an appeal changes at most 100 points", zh="申诉调整的分数最多100分")
        record = DecisionRecord(
            appeal=appeal_id,
            quarter=appeal.quarter,
            subject=appeal.subject,
            upheld=upheld,
            points=points if upheld else 0,
            part=_text(part, "part", required=False)[:32],
            reason=_text(reason, "reason"),
            by=_text(by, "by"),
            at=time.time(),
        )
        await self._append(
            record, id="DE-" + uuid.uuid4().hex[:12], kind="decision", quarter=appeal.quarter, subject=appeal.subject
        )
        return (await self._appeal_map())[appeal_id]

    async def records(self, quarter: str | None = None) -> list[Record]:
        query = select(t.office_records.c.body).order_by(t.office_records.c.seq)
        if quarter:
            query = query.where(t.office_records.c.quarter == quarter.upper())
        async with self.store.db.reader.connect() as conn:
            bodies = (await conn.execute(query)).scalars().all()
        return [_decoder.decode(b) for b in bodies]

    async def entries(self, quarter: str | None = None) -> list[Entry]:
        return [r.entry for r in await self.records(quarter) if isinstance(r, EntryRecord)]

    async def _appeal_map(self, quarter: str | None = None) -> dict[str, Appeal]:
        appeals: dict[str, Appeal] = {}
        for r in await self.records(quarter):
            if isinstance(r, AppealRecord):
                appeals[r.appeal.id] = r.appeal
            elif isinstance(r, DecisionRecord) and r.appeal in appeals:
                appeals[r.appeal] = msgspec.structs.replace(
                    appeals[r.appeal],
                    status="upheld" if r.upheld else "rejected",
                    points=r.points,
                    part=r.part,
                    decision=r.reason,
                    decided_by=r.by,
                )
        return appeals

    async def appeals(self, quarter: str | None = None) -> list[Appeal]:
        return list((await self._appeal_map(quarter)).values())

    async def verify(self) -> list[str]:
        """Every problem with the chain or a signature ([] when all records check out)."""
        problems: list[str] = []
        async with self.store.db.reader.connect() as conn:
            rows = (await conn.execute(select(t.office_records).order_by(t.office_records.c.seq))).mappings().all()
        prev = CHAIN_START
        directory = self.store.directory
        for row in rows:
            body = bytes(row["body"])
            if hashlib.sha256(prev.encode() + body).hexdigest() != row["hash"]:
                problems.append(f"record {row['id']}: the chain breaks here (changed, removed or reordered)")
            record = directory.key(row["key_id"])
            if record is None:
                problems.append(f"record {row['id']}: signed by unknown key {row['key_id']}")
            else:
                try:
                    verify(record, prev.encode() + body, bytes(row["signature"]))
                except SanjiError:
                    problems.append(f"record {row['id']}: the signature does not hold")
            prev = row["hash"]
        return problems
