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
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.assessment import (
    Appeal,
    AppealProblem,
    Assessment,
    AssessmentRules,
    Entry,
    Person,
    appeal_subject_problem,
    decision_problem,
    quarter_span,
)
from protocol.encoding import encode
from protocol.errors import SanjiError
from protocol.names import invisible, name_key
from protocol.signing import verify
from protocol.topology import TOWN
from sanji.store import Store, submissions
from sanji.store import schema as t
from sanji.store.submissions import Once

CHAIN_START = "0" * 64
DECISION_PREFIX = "DE-"  # a decision's record id: this and its appeal's id (one decision per appeal)
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
TARGET_ZH = {"staff": "工作人员", "centre": "便民服务中心"}


def problem_text(exc: Exception) -> str:
    """What an office screen says of a refused form: "中文 English" (the ``bi`` filter puts them in the reader's
    order); a refusal with no Chinese of its own (a malformed field, a quarter typed wrong) under a Chinese lead."""
    from sanji.web.error_pages import validation_text  # the screens' one wording of a validator's refusal

    message = exc.message if isinstance(exc, SanjiError) else str(exc)
    humane = validation_text(message)
    if humane is not None:
        return f"未保存，请检查填写的内容：{humane[0]} {humane[1]}"
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
    by_account: int | None = None  # the decider's account at this node, where one was logged in


Record = EntryRecord | AppealRecord | DecisionRecord
_decoder = msgspec.msgpack.Decoder(Record)


class OfficeInvalid(OfficeRefused):
    """A field naming what the office does not know: an item the rules held do not have, a centre that is not a
    township of this county, a subject holding an invisible character (answered 400: the sender's to correct)."""

    code = "office_invalid"


def _subject(value: str) -> str:
    """The subject as kept (clipped to its column), refused when empty or holding a character that shows nothing."""
    value = _text(value, "subject")
    if any(invisible(c) for c in value):  # as a person's name on a desk (protocol/names.py): 王\u200b芳 is not 王芳
        raise OfficeInvalid(
            "subject holds a character that shows as nothing (zero-width, format or filler)",
            zh="考核对象不能含有不可见字符",
        )
    return value[:96]


def _text(value: str, name: str, *, required: bool = True) -> str:
    value = value.strip()
    label = FIELD_NAMES_ZH.get(name, name)
    if required and not value:
        raise OfficeRefused(f"{name} is required", zh=f"请填写{label}")
    if len(value) > MAX_TEXT or any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise OfficeRefused(f"{name} is too long or holds control characters", zh=f"{label}太长或含有控制字符")
    return value


def refusal(problem: AppealProblem) -> OfficeRefused:
    """The office's rule's refusal (``protocol.assessment``) as the error the API and screens answer."""
    kind = OfficeInvalid if problem.invalid else OfficeRefused
    return kind(problem.en, zh=problem.zh)


def already_decided(appeal_id: str, status: str) -> OfficeRefused:
    return OfficeRefused(f"appeal {appeal_id} was already decided ({status})", zh=f"申诉 {appeal_id} 已经作出决定")


class OfficeBook:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def _append(
        self,
        record: Record,
        *,
        id: str,
        kind: str,
        quarter: str,
        subject: str,
        check: Callable[[AsyncConnection], Awaitable[None]] | None = None,
        once: Once | None = None,
    ) -> None:
        """Sign, chain and insert ``record`` in one write transaction; ``check`` runs in it first and may refuse
        (raise), so what it reads cannot change before the record is written: the writer lock (the advisory
        lock on PostgreSQL) keeps every other writer, of this process or another, out until the commit.
        ``once``: the sending form's one-time key, read first and kept with the record (``AlreadySent``: the
        same form was sent before, and its record is ``action``)."""
        body = encode(record)
        async with self.store.db.write() as conn:
            if once is not None:
                await submissions.refuse_if_used(conn, once)
            if check is not None:
                await check(conn)
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
            if once is not None:
                await submissions.keep(conn, once, "", id)

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
        rules: AssessmentRules,
        centre: str = "",
        once: Once | None = None,
    ) -> Entry:
        """Record an entry under an item of ``rules`` (the rules held, ``sanji.office.assess.held_rules``) for
        its target: an item they do not have would be kept and score nothing, so it is refused (400). A staff
        member is named as the errands name the handler (free text: the county holds no township's accounts,
        and staff without errands are assessed too), a centre by its township's node id. ``centre``: for staff,
        the centre or department the person is scored under (two 王芳 at two townships are two people)."""
        quarter_span(quarter)
        if not 1 <= count <= 100:
            raise OfficeRefused("count is 1 to 100", zh="次数应为1至100")
        code = _text(item, "item")
        known = rules.item(code)
        if known is None or known.target != target:
            raise OfficeInvalid(
                f"the assessment rules (version {rules.version}) have no {target} item {code[:64]!r}",
                zh=f"考核细则（第{rules.version}版）中没有{TARGET_ZH[target]}考核项目“{code[:64]}”",
            )
        subject = _subject(subject)
        if target == "centre":
            self._centre(subject)
        entry = Entry(
            id="EN-" + uuid.uuid4().hex[:12],
            quarter=quarter.upper(),
            target=target,
            subject=subject,
            item=code[:64],
            count=count,
            note=_text(note, "note", required=False),
            errand=_text(errand, "errand", required=False)[:96],
            by=_text(by, "by"),
            centre=_text(centre, "centre", required=False)[:96] if target == "staff" else "",
        )
        await self._append(
            EntryRecord(entry=entry, at=time.time()),
            id=entry.id,
            kind="entry",
            quarter=entry.quarter,
            subject=entry.subject,
            once=once,
        )
        return entry

    def _centre(self, subject: str) -> None:
        """Refuse a centre that is not a township (便民服务中心) of this node's county, as the ledger names them."""
        directory = self.store.directory
        ours = directory.county_of(self.store.node_id)
        if subject not in directory or directory.role(subject) != TOWN or directory.county_of(subject) != ours:
            raise OfficeInvalid(
                f"no township centre {subject!r} in this county (name a centre by its node id, e.g. T01)",
                zh=f"本县没有编号为“{subject}”的乡镇便民服务中心（请填写中心编号，如 T01）",
            )

    async def file_appeal(
        self,
        *,
        quarter: str,
        target: Literal["staff", "centre"],
        subject: str,
        reason: str,
        by: str,
        scored: Assessment,
        by_account: int | None = None,
        once: Once | None = None,
    ) -> Appeal:
        """File an appeal against ``scored`` (the quarter as assessed now, ``sanji.office.assess``): its subject is
        one the quarter scores (``protocol.assessment.appeal_subject_problem``). ``by_account``: the filer's
        logged-in account, kept with it for the rule that the filer does not decide it."""
        quarter_span(quarter)
        subject = _subject(subject)
        if scored.quarter != quarter.upper():
            raise ValueError(f"the assessment given is of {scored.quarter}, not {quarter[:8]}")
        if target == "centre":
            self._centre(subject)
        problem = appeal_subject_problem(target, subject, scored)
        if problem is not None:
            raise refusal(problem)
        appeal = Appeal(
            id="AP-" + uuid.uuid4().hex[:12],
            quarter=quarter.upper(),
            target=target,
            subject=subject,
            reason=_text(reason, "reason"),
            by=_text(by, "by"),
            by_account=by_account,
        )
        await self._append(
            AppealRecord(appeal=appeal, at=time.time()),
            id=appeal.id,
            kind="appeal",
            quarter=appeal.quarter,
            subject=appeal.subject,
            once=once,
        )
        return appeal

    async def appeal(self, appeal_id: str) -> Appeal:
        appeal = (await self._appeal_map()).get(appeal_id)
        if appeal is None:
            raise OfficeRecordUnknown(f"no appeal {appeal_id[:40]}", zh=f"没有编号为 {appeal_id[:40]} 的申诉")
        return appeal

    async def decide_appeal(
        self,
        appeal_id: str,
        *,
        upheld: bool,
        points: float = 0,
        part: str = "",
        reason: str,
        by: str,
        rules: AssessmentRules,
        scored: Assessment,
        by_account: int | None = None,
        once: Once | None = None,
    ) -> Appeal:
        """Decide an appeal as ``protocol.assessment.decision_problem`` allows, ``scored`` being its quarter as
        assessed now; what earlier decisions gave back is read inside the write transaction that records this one.
        ``by_account``: the decider's logged-in account (None: a name typed in open demo mode), told apart from the
        filer's and the subject's (``subject_person``) by account at this node where both are known."""
        await submissions.sent_before(self.store.db, once)  # sent again: where the first landed, not 已经作出决定
        appeal = await self.appeal(appeal_id)
        if appeal.status != "pending":
            raise already_decided(appeal_id, appeal.status)
        if scored.quarter != appeal.quarter:
            raise ValueError(f"the assessment given is of {scored.quarter}, not the appeal's {appeal.quarter}")
        # a centre's score has no parts: what an appeal gives back offsets its deductions
        part = _text(part, "part", required=False)[:32] if upheld and appeal.target == "staff" else ""
        by = _text(by, "by")
        decider = Person(name=by, account=by_account, node=self.store.node_id, also=await self._goes_by(by_account))
        subject = await self.subject_person(appeal, scored) if appeal.target == "staff" else None

        def problem(given_back: float) -> None:
            found = decision_problem(
                appeal,
                upheld=upheld,
                points=points,
                part=part,
                decider=decider,
                rules=rules,
                scored=scored,
                given_back=given_back,
                subject=subject,
            )
            if found is not None:
                raise refusal(found)

        problem(0.0)  # what can be said before the write: who decides, the points, the part
        record = DecisionRecord(
            appeal=appeal_id,
            quarter=appeal.quarter,
            subject=appeal.subject,
            upheld=upheld,
            points=points if upheld else 0,
            part=part,
            reason=_text(reason, "reason"),
            by=by,
            at=time.time(),
            by_account=by_account,
        )

        async def still_pending(conn: AsyncConnection) -> None:
            """Refuse a second decision, read inside the write transaction: of two sent at once, the second to
            get the writer lock finds the first's record and is refused as it would be if sent afterwards."""
            bodies = await conn.scalars(
                select(t.office_records.c.body).where(
                    t.office_records.c.kind == "decision",
                    t.office_records.c.quarter == appeal.quarter,
                    t.office_records.c.subject == appeal.subject,
                )
            )
            given_back = 0.0
            for body in bodies:
                earlier = _decoder.decode(body)
                if not isinstance(earlier, DecisionRecord):
                    continue
                if earlier.appeal == appeal_id:
                    raise already_decided(appeal_id, "upheld" if earlier.upheld else "rejected")
                if earlier.upheld and earlier.part == part:  # same subject and quarter (the query's)
                    given_back += earlier.points
            problem(given_back)  # two upheld at once in one part give back no more than was deducted

        try:
            # the decision's id is the appeal's: the table's unique id is a second guard the database enforces
            await self._append(
                record,
                id=DECISION_PREFIX + appeal_id,
                kind="decision",
                quarter=appeal.quarter,
                subject=appeal.subject,
                check=still_pending,
                once=once,
            )
        except IntegrityError:
            raise already_decided(appeal_id, "decided") from None
        return (await self._appeal_map())[appeal_id]

    async def _goes_by(self, account_id: int | None) -> tuple[str, ...]:
        """The display name of this node's account ``account_id`` (张三 for zhangsan), where it has one: names are
        compared under it too where an account is not known for the other."""
        if account_id is None:
            return ()
        query = select(t.accounts.c.display_name).where(t.accounts.c.id == account_id)
        async with self.store.db.reader.connect() as conn:
            shown = await conn.scalar(query)
        return (shown,) if shown else ()

    async def subject_person(self, appeal: Appeal, scored: Assessment) -> Person:
        """The appeal's subject as this office knows them: the node they belong to and the account of this node they
        are bound to, where known. A person is scored under the centre their steps or entries name: one scored only
        at townships works there (that township is their node), and the county holds no township's accounts. One
        scored at this node (its id, a department of it, or no centre named) is bound to the one account here
        keyed as their name (``protocol.names.name_key``) by its login (the errands name a county handler by the
        login that signed) or its display name (张三 for the login zhangsan), and sitting where the score puts them:
        under a department a score names, an account of that department or of the whole node. Two such accounts
        bind neither, unless one sits at that very department: the rule then compares names."""
        directory = self.store.directory
        node = self.store.node_id
        scores = [s for s in scored.staff if s.name == appeal.subject]

        def township(centre: str) -> bool:
            return centre in directory and directory.role(centre) == TOWN

        here = [s for s in scores if not township(s.centre)]
        if not here:
            # scored at townships only: whichever it is, a node other than this one (the first, as ``deducted`` reads)
            return Person(name=appeal.subject, node=scores[0].centre if scores else "")
        departments = {s.centre for s in here} - {"", node}
        key = name_key(appeal.subject)
        columns = (t.accounts.c.id, t.accounts.c.name, t.accounts.c.display_name, t.accounts.c.department)
        async with self.store.db.reader.connect() as conn:
            rows = (await conn.execute(select(*columns))).all()
        keyed = [
            (account_id, department)
            for account_id, login, display_name, department in rows
            if key
            and key in (name_key(login), name_key(display_name))
            and all(department in ("", centre) for centre in departments)
        ]
        exact = [account_id for account_id, department in keyed if department and department in departments]
        bound = exact if len(keyed) > 1 else [account_id for account_id, _ in keyed]
        return Person(name=appeal.subject, account=bound[0] if len(bound) == 1 else None, node=node)

    async def records(self, quarter: str | None = None) -> list[Record]:
        query = select(t.office_records.c.body).order_by(t.office_records.c.seq)
        if quarter:
            query = query.where(t.office_records.c.quarter == quarter.upper())
        async with self.store.db.reader.connect() as conn:
            bodies = (await conn.execute(query)).scalars().all()
        return [_decoder.decode(b) for b in bodies]

    async def entries(self, quarter: str | None = None) -> list[Entry]:
        return [r.entry for r in await self.records(quarter) if isinstance(r, EntryRecord)]

    async def entry(self, entry_id: str) -> Entry:
        """One entry by its id (what an entry's form sent again under its key answers with)."""
        query = select(t.office_records.c.body).where(
            t.office_records.c.id == entry_id, t.office_records.c.kind == "entry"
        )
        async with self.store.db.reader.connect() as conn:
            body = await conn.scalar(query)
        record = _decoder.decode(body) if body is not None else None
        if not isinstance(record, EntryRecord):
            raise OfficeRecordUnknown(f"no entry {entry_id[:40]}", zh=f"没有编号为 {entry_id[:40]} 的考核记录")
        return record.entry

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
                    decided_by_account=r.by_account,
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
