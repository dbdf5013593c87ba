"""季度考核: the county's assessment rules as signed data, and the scoring they define.

Pure: msgspec, cryptography (through ``protocol.signing``) and the standard library. The rules
are a document the county signs like the catalogue (envelope magic ``SJA``), so a county changes
weights, deductions and grades without a release; every node scoring with the same rules, errand
records and office records computes the same figures.

Defaults (``default_rules``) follow the scoring sheets of seed 001 (正定县 工作人员考核实施办法 and
便民服务中心考核办法):

* staff: 100 points in five parts — 思想品德 conduct 15, 业务技能 skill 20, 出勤值勤 attendance 20,
  工作实绩 results 30, 廉洁自律 integrity 15; each part is "扣完为止" (never below 0); bonuses
  ("另行加分") come on top; 受理办件超过承诺时限，每超一天扣2分; 服务对象不满意，每起扣1分;
  办理出现差错 (a skipped supervision step) 3; a deemed approval the window answers for 3;
  a complaint upheld 3 in conduct and no 优秀 that quarter;
* grades: 优秀 only within the quarter's top 10 *and* at least 90; 称职 ≥ 75; 基本称职 ≥ 60;
  不称职 below;
* centres: base 100, deductions by item, bonuses capped at 20 a quarter, the top 5 are 红旗窗口;
  an overdue errand, an upheld complaint or an exposure takes a centre out of the running
  (取消当季评先资格).

Every point carries its source (an errand, an office entry, an appeal decision), so any figure
can be traced back.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Literal

import msgspec

from protocol import envelope
from protocol.deadlines import CalendarUnknown, WorkCalendar
from protocol.encoding import encode
from protocol.errors import FrameError, SanjiError, SignatureError
from protocol.names import name_key
from protocol.signing import KeyRecord, SigningKey, verify

RULES = "assessment_rules"  # the document kind nodes store the signed rules under
MAGIC = b"SJA"
FORMAT_VERSION = 1
MAX_RULES_BYTES = 256 * 1024
# Of MAX_RULES_BYTES, the envelope around the encoded rules (as ``protocol.catalogue.SIGNED_ROOM``): exact.
SIGNED_ROOM = 3 + 2 + 16 + 4 + 2 + 64

Target = Literal["staff", "centre"]
StaffKey = tuple[str, str]  # (name, the centre or department the person is scored under)


class RulesError(SanjiError):
    code = "invalid_assessment_rules"
    default_hint = "Correct the assessment rules and publish them again."


class Part(msgspec.Struct, frozen=True, kw_only=True):
    """One part of a staff member's score (德 能 勤 绩 廉): its full points."""

    code: str
    name: str
    points: float


class Item(msgspec.Struct, frozen=True, kw_only=True):
    """Something the office records (or the errands show) and what it is worth each time.

    ``points`` < 0 deducts, > 0 adds (a bonus). ``part`` is the staff part it falls in ('' for
    centres). ``disqualifies``: no 优秀 / 红旗 that quarter, whatever the score.
    """

    code: str
    name: str
    target: Target
    points: float
    part: str = ""
    disqualifies: bool = False


class Grade(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    min_score: float
    top: int = 0  # only the quarter's top N may have it (0: no such limit)


class AssessmentRules(msgspec.Struct, frozen=True, kw_only=True):
    county: str
    version: int
    published_at: str
    parts: tuple[Part, ...]
    items: tuple[Item, ...]
    grades: tuple[Grade, ...]  # best first; the last is what is left
    centre_base: float = 100
    centre_bonus_cap: float = 20
    red_flag_top: int = 5
    staff_bonus_cap: float = 0  # 0: staff bonuses are not capped
    # Items the errand data give (codes into ``items``): the engine looks these up by role.
    overdue_item: str = "overdue_day"
    dissatisfied_item: str = "dissatisfied"
    skipped_item: str = "skipped_step"
    deemed_item: str = "deemed_approval"
    centre_overdue_item: str = "centre_overdue"
    centre_callback_item: str = "centre_callback_dissatisfied"

    def item(self, code: str) -> Item | None:
        for item in self.items:
            if item.code == code:
                return item
        return None


def _i(code: str, name: str, target: Target, points: float, part: str = "", disqualifies: bool = False) -> Item:
    return Item(code=code, name=name, target=target, points=points, part=part, disqualifies=disqualifies)


def default_rules(county: str = "C", *, version: int = 1, published_at: str = "2026-10-01") -> AssessmentRules:
    """Seed 001's two scoring sheets as data."""
    return AssessmentRules(
        county=county,
        version=version,
        published_at=published_at,
        parts=(
            Part(code="conduct", name="思想品德", points=15),
            Part(code="skill", name="业务技能", points=20),
            Part(code="attendance", name="出勤值勤", points=20),
            Part(code="results", name="工作实绩", points=30),
            Part(code="integrity", name="廉洁自律", points=15),
        ),
        items=(
            # from the errands
            _i("overdue_day", "受理办件超过承诺时限(每工作日)", "staff", -2, "results"),
            _i("dissatisfied", "服务对象不满意(每起)", "staff", -1, "results"),
            _i("skipped_step", "办理环节缺失(差错)", "staff", -3, "results"),
            _i("deemed_approval", "超时默许(窗口担责)", "staff", -3, "results"),
            _i("centre_overdue", "办件超时限办结", "centre", 0, disqualifies=True),
            _i("centre_callback_dissatisfied", "回访不满意", "centre", -3),
            # staff entries by the office
            _i("rule_breach", "违反规章制度、不服从管理", "staff", -5, "conduct"),
            _i("study_absent", "不参加政治学习、文体活动", "staff", -2, "conduct"),
            _i("complaint_upheld", "服务态度引起投诉(查实)", "staff", -3, "conduct", disqualifies=True),
            _i("quarrel", "与服务对象争吵", "staff", -3, "conduct"),
            _i("media_county", "新闻媒体宣传表扬(县级)", "staff", 5, "conduct"),
            _i("media_city", "新闻媒体宣传表扬(市级)", "staff", 10, "conduct"),
            _i("thanks_letter", "服务对象书面感谢表扬", "staff", 3, "conduct"),
            _i("banner", "受赠锦旗", "staff", 5, "conduct"),
            _i("consult_error", "不能及时准确解答咨询", "staff", -2, "skill"),
            _i("policy_error", "执行政策出现偏差", "staff", -3, "skill"),
            _i("computer_rule", "违反计算机管理规定", "staff", -3, "skill"),
            _i("late", "迟到、早退、擅自离岗", "staff", -2, "attendance"),
            _i("absent", "旷工", "staff", -5, "attendance"),
            _i("manner", "上岗不示证、着装不规范等", "staff", -1, "attendance"),
            _i("error_uncorrected", "办理差错未及时改正", "staff", -3, "results"),
            _i("dept_honour", "获部门表彰", "staff", 2, "results"),
            _i("county_honour", "获县级及以上荣誉", "staff", 5, "results"),
            _i("corruption", "吃拿卡要报(查实)", "staff", -10, "integrity", disqualifies=True),
            _i("fee_violation", "违反收费管理规定", "staff", -5, "integrity"),
            _i("discipline_case", "被纪检监察查处", "staff", -10, "integrity", disqualifies=True),
            # centre entries by the office (便民服务中心考核办法)
            _i("standard_missing", "未按建设标准落实", "centre", -3),
            _i("no_one_time_notice", "未做到一次性告知", "centre", -2),
            _i("report_missing", "未按要求报送台账信息", "centre", -1),
            _i("staff_late", "工作人员迟到早退(人次)", "centre", -1),
            _i("off_post", "擅自离岗10分钟以上(人次)", "centre", -2),
            _i("ten_rules", "违反十不准十必须", "centre", -5),
            _i("quarrel_centre", "服务忌语或争吵", "centre", -5),
            _i("complaint_centre", "群众投诉经核查属实", "centre", 0, disqualifies=True),
            _i("exposed", "被明查暗访或媒体曝光", "centre", 0, disqualifies=True),
            _i("award_first", "县级以上活动一等奖", "centre", 15),
            _i("award_second", "县级以上活动二等奖", "centre", 10),
            _i("award_third", "县级以上活动三等奖", "centre", 5),
            _i("praise_letter", "表扬信", "centre", 5),
            _i("banner_centre", "锦旗", "centre", 10),
            _i("extended_service", "延时、预约服务(每例)", "centre", 2),
            _i("home_service", "上门服务(每例)", "centre", 3),
            _i("proxy_service", "领办、代办服务(每例)", "centre", 2),
            _i("suggestion", "合理化建议被采纳", "centre", 5),
        ),
        grades=(
            Grade(code="excellent", name="优秀", min_score=90, top=10),
            Grade(code="competent", name="称职", min_score=75),
            Grade(code="basic", name="基本称职", min_score=60),
            Grade(code="unqualified", name="不称职", min_score=0),
        ),
    )


MAX_POINTS = 1000


class RulesProblem(msgspec.Struct, frozen=True):
    """One fault of an assessment rules document, Chinese and English (as ``AppealProblem`` carries them); ``str``
    is the English, the text a refusal joins."""

    zh: str
    en: str

    def __str__(self) -> str:
        return self.en


def check_rules(rules: AssessmentRules) -> list[RulesProblem]:
    problems: list[RulesProblem] = []
    parts = {p.code for p in rules.parts}
    if len(parts) != len(rules.parts):
        problems.append(RulesProblem("有两个考核部分的编码相同", "two parts share a code"))
    codes = [i.code for i in rules.items]
    if len(set(codes)) != len(codes):
        problems.append(RulesProblem("有两个考核项目的编码相同", "two items share a code"))
    for item in rules.items:
        if item.target == "staff" and item.part not in parts:
            problems.append(
                RulesProblem(
                    f"考核项目 {item.code}：所属部分 {item.part!r} 不在 {'、'.join(sorted(parts))} 之中",
                    f"item {item.code}: part {item.part!r} is not one of {sorted(parts)}",
                )
            )
    for code in (rules.overdue_item, rules.dissatisfied_item, rules.skipped_item, rules.deemed_item):
        found = rules.item(code)
        if found is None or found.target != "staff":
            problems.append(
                RulesProblem(
                    f"办件扣分项目 {code!r} 须为工作人员考核项目", f"errand item {code!r} must be a staff item"
                )
            )
    for code in (rules.centre_overdue_item, rules.centre_callback_item):
        found = rules.item(code)
        if found is None or found.target != "centre":
            problems.append(
                RulesProblem(f"办件扣分项目 {code!r} 须为中心考核项目", f"errand item {code!r} must be a centre item")
            )
    if not rules.grades or any(a.min_score < b.min_score for a, b in zip(rules.grades, rules.grades[1:], strict=False)):
        problems.append(
            RulesProblem(
                "考核等次须从高到低排列，最低分数逐级下降", "grades are listed best first, with falling minimum scores"
            )
        )
    if rules.centre_bonus_cap < 0 or rules.staff_bonus_cap < 0 or rules.red_flag_top < 0:
        problems.append(RulesProblem("加分上限和红旗名额不能为负数", "caps and the red-flag count are not negative"))
    return problems


# What a number of the rules is, in Chinese, by the English name ``publish_problems`` gives it.
_NUMBER_ZH = {"part": "考核部分", "item": "考核项目", "grade": "考核等次"}
_FIELDS_ZH = {"centre_base": "中心基础分", "centre_bonus_cap": "中心加分上限", "staff_bonus_cap": "工作人员加分上限"}


def publish_problems(rules: AssessmentRules) -> list[RulesProblem]:
    """``check_rules``, and what a county signs from this release on: a real publication day and points a person
    can read. Received rules are held to ``check_rules`` alone, so a document an earlier release signed is still
    taken up."""
    problems = check_rules(rules)
    try:
        published = date.fromisoformat(rules.published_at)
    except ValueError:
        published = None
    if published is None or published.isoformat() != rules.published_at or not 2000 <= published.year <= 2100:
        problems.append(
            RulesProblem(
                f"发布日期（published_at）须为形如 2026-10-01 的日期，而不是 {rules.published_at!r}",
                f"published_at must be a day like 2026-10-01, not {rules.published_at!r}",
            )
        )
    # Scores are points a person can read: finite, within a thousand either way (a part's points not negative).
    numbers = [
        *(("part", p.code, p.points) for p in rules.parts),
        *(("item", i.code, i.points) for i in rules.items),
        *(("grade", g.code, g.min_score) for g in rules.grades),
        ("centre_base", "", rules.centre_base),
        ("centre_bonus_cap", "", rules.centre_bonus_cap),
        ("staff_bonus_cap", "", rules.staff_bonus_cap),
    ]
    for kind, code, value in numbers:
        if not math.isfinite(value) or abs(value) > MAX_POINTS:
            name = f"{kind} {code}" if code else kind
            name_zh = f"{_NUMBER_ZH[kind]} {code}" if code else _FIELDS_ZH[kind]
            problems.append(
                RulesProblem(
                    f"{name_zh}：{value!r} 不是 ±{MAX_POINTS} 以内的分值",
                    f"{name}: {value!r} is not a number of points within ±{MAX_POINTS}",
                )
            )
    if any(p.points < 0 for p in rules.parts):
        problems.append(RulesProblem("考核部分的满分不能为负数", "a part's full points are not negative"))
    # Signed, they must fit the document every node takes (``open_rules``): said here as the rules' fault.
    size, room = len(encode(rules)), MAX_RULES_BYTES - SIGNED_ROOM
    if size > room:
        problems.append(
            RulesProblem(
                f"考核细则过大（编码后 {size} 字节，最多 {room} 字节）：请缩短名称或减少项目",
                f"the rules are {size} bytes encoded; at most {room} fit in the signed document: shorten names "
                "or drop items",
            )
        )
    return problems


# -- the signed document -----------------------------------------------------------------------

_rules_decoder = msgspec.msgpack.Decoder(AssessmentRules)


def sign_rules(rules: AssessmentRules, key: SigningKey) -> bytes:
    problems = publish_problems(rules)
    if problems:
        raise RulesError("assessment rules cannot be signed: " + "; ".join(p.en for p in problems))
    payload = encode(rules)
    return envelope.seal(MAGIC, payload, key, version=FORMAT_VERSION)


def open_rules(blob: bytes, keys: Mapping[str, KeyRecord]) -> AssessmentRules:
    """Check the signature (a key of the county's), then decode and check the rules."""
    # An oversized document has always been a plain FrameError here (its code is what a client sees).
    key_id, signed, signature, payload = envelope.open_envelope(
        blob,
        magic=MAGIC,
        version=FORMAT_VERSION,
        max_bytes=MAX_RULES_BYTES,
        what="signed assessment rules document",
        too_large=FrameError,
    )
    record = keys.get(key_id)
    if record is None or record.revoked:
        raise SignatureError(f"assessment rules are signed by key {key_id}, not one the county publishes with")
    verify(record, signed, signature)
    try:
        rules = _rules_decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise FrameError(f"assessment rules do not decode: {exc}") from None
    problems = check_rules(rules)
    if problems:
        raise RulesError("assessment rules are refused: " + "; ".join(p.en for p in problems))
    return rules


# -- quarters ---------------------------------------------------------------------------------


def quarter_span(quarter: str) -> tuple[date, date]:
    """'2026Q4' -> (2026-10-01, 2026-12-31)."""
    text = quarter.strip().upper()
    if len(text) != 6 or text[4] != "Q" or not text[:4].isdigit() or text[5] not in "1234":
        raise ValueError(f"a quarter is written like 2026Q4, not {quarter[:20]!r}")
    year, q = int(text[:4]), int(text[5])
    start = date(year, 3 * (q - 1) + 1, 1)
    end = date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1) - timedelta(days=1)
    return start, end


# -- inputs -----------------------------------------------------------------------------------


class ErrandRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the assessment needs from one errand (a ledger row gives it)."""

    errand: str
    receipt: str = ""
    handler: str
    centre: str  # the township answering for it
    # Where the handler took the step: the township centre, or at the county the department (else the county's
    # node). A person is scored there, not under the errand's township: a county approver is not a township's.
    handler_centre: str = ""
    due: str = ""
    answered_on: str = ""
    rating: str = ""
    skipped_steps: tuple[str, ...] = ()
    deemed: bool = False
    callbacks_dissatisfied: int = 0


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """An office record: something seen, counted ``count`` times (attendance, inspections, praise)."""

    id: str
    quarter: str
    target: Target
    subject: str
    item: str
    count: int = 1
    note: str = ""
    errand: str = ""
    by: str = ""
    centre: str = ""  # staff: the centre or department the person is scored under ('' where the name is unique)


class Appeal(msgspec.Struct, frozen=True, kw_only=True):
    """申诉 and its decision: an upheld appeal changes the score by ``points`` in ``part``, with its reason."""

    id: str
    quarter: str
    target: Target
    subject: str
    reason: str
    status: Literal["pending", "upheld", "rejected"] = "pending"
    points: float = 0
    part: str = ""
    decision: str = ""
    by: str = ""
    decided_by: str = ""
    # the account (its id at the office's node) that filed / decided it, where one was logged in; None: a name typed
    # in open demo mode, or an appeal recorded before accounts were kept with it
    by_account: int | None = None
    decided_by_account: int | None = None


# -- outputs ----------------------------------------------------------------------------------


class Line(msgspec.Struct, kw_only=True):
    """One contribution to a score and where it comes from."""

    item: str
    name: str
    part: str
    points: float
    source: Literal["errand", "entry", "appeal"]
    ref: str
    detail: str = ""


class StaffScore(msgspec.Struct, kw_only=True):
    name: str
    centre: str
    parts: dict[str, float]
    bonus: float
    total: float
    rank: int = 0
    grade: str = ""
    grade_name: str = ""
    eligible: bool = True
    errands: int = 0
    lines: list[Line] = msgspec.field(default_factory=list)


class CentreScore(msgspec.Struct, kw_only=True):
    centre: str
    base: float
    deductions: float
    bonus: float
    bonus_claimed: float
    total: float
    rank: int = 0
    red_flag: bool = False
    eligible: bool = True
    lines: list[Line] = msgspec.field(default_factory=list)


class Assessment(msgspec.Struct, kw_only=True):
    quarter: str
    rules_version: int
    county: str
    staff: list[StaffScore]
    centres: list[CentreScore]
    pending_appeals: list[str]


# -- appeals ----------------------------------------------------------------------------------
# The office's rule for an appeal (申诉), asked by the book (``sanji.office.book``) that records it: the API, the
# screen and any later command all go through it. An appeal contests points deducted from a subject scored that
# quarter; an upheld appeal gives back at most what was deducted, within the part it names, and is decided by
# someone other than the person who filed it or whom it concerns (an office cannot raise its own score).

MAX_APPEAL_POINTS = 100


class AppealProblem(msgspec.Struct, frozen=True):
    """Why the office refuses an appeal or its decision: Chinese, English, and whether the sender named something
    unknown (``invalid``: a subject or part not there, 400) or the rule refuses the decision (409)."""

    zh: str
    en: str
    invalid: bool = False


def appeal_subject_problem(target: Target, subject: str, scored: Assessment) -> AppealProblem | None:
    """An appeal is about a score the quarter has: a person scored (a handler on its errands, a subject of its
    entries) or one of the county's township centres."""
    if target == "staff":
        if subject in {s.name for s in scored.staff}:
            return None
        return AppealProblem(
            f"{scored.quarter}没有“{subject[:40]}”的考核得分（申诉对象应为该季度办件的经办人或考核记录的对象）",
            f"no one named {subject[:40]!r} is scored in {scored.quarter} (an appeal concerns a handler of its "
            "errands or the subject of its entries)",
            invalid=True,
        )
    if subject in {c.centre for c in scored.centres}:
        return None
    return AppealProblem(
        f"本县没有编号为“{subject[:40]}”的乡镇便民服务中心（请填写中心编号，如 T01）",
        f"no township centre {subject[:40]!r} in this county (name a centre by its node id, e.g. T01)",
        invalid=True,
    )


def deducted(scored: Assessment, target: Target, subject: str, part: str) -> float:
    """The points errands and entries deducted from ``subject`` that quarter, within ``part`` for staff (a centre's
    deductions have no parts), as a positive number; appeals already decided are not counted here."""
    if target == "staff":
        lines = next((s.lines for s in scored.staff if s.name == subject), [])
        return -sum(ln.points for ln in lines if ln.source != "appeal" and ln.points < 0 and ln.part == part)
    lines = next((c.lines for c in scored.centres if c.centre == subject), [])
    return -sum(ln.points for ln in lines if ln.source != "appeal" and ln.points < 0)


class Person(msgspec.Struct, frozen=True, kw_only=True):
    """Someone the rule that nobody decides their own appeal tells apart: the name they go by, the account they act
    under (its id; None where none is known) and the node they belong to where known (the node that account is
    kept at; for a person scored at a township, that township's id; '' where unknown). Accounts are per node:
    account 3 at the county and account 3 at a township are two people. ``also``: other names they go by (an
    account's display name, 张三 for the login zhangsan), compared as their name is."""

    name: str
    account: int | None = None
    node: str = ""
    also: tuple[str, ...] = ()


def _keys(person: Person) -> dict[str, str]:
    """Each name ``person`` goes by, by its ``name_key`` (a blank one names no one)."""
    keyed: dict[str, str] = {}
    for name in (person.name, *person.also):
        if key := name_key(name):
            keyed.setdefault(key, name)
    return keyed


Compared = Literal["account", "name"]


def same_person(one: Person, other: Person) -> Compared | None:
    """How ``one`` and ``other`` were found to be one person, or None when they are two. Two accounts are two
    people whatever their names (two staff called 王伟) unless they are one account at one node; one account is
    one person however its name is written. Someone who belongs to another node than the node of the other's
    account is another person (a township's clerk scored at T01 holds no account of the county's office). Only
    where neither of these settles it is it the names, compared as ``protocol.names.name_key`` keys them
    ("王　伟 " is "王伟"): a name typed in open demo mode, a subject no account here is bound to."""
    if one.account is not None and other.account is not None:
        return "account" if (one.node, one.account) == (other.node, other.account) else None
    held = one if one.account is not None else other if other.account is not None else None
    if held is not None:
        unheld = other if held is one else one
        if held.node and unheld.node and held.node != unheld.node:
            return None
    return "name" if _keys(one).keys() & _keys(other).keys() else None


def own_appeal_problem(appeal: Appeal, decider: Person, subject: Person | None = None) -> AppealProblem | None:
    """The decider is neither who filed ``appeal`` nor, for a person's score, whom it concerns (``subject``: the
    appeal's subject as the office knows them, with the account they are bound to and the node they belong to
    where known; None: their name only). The filer's account is one of the office's node, as the decider's is.
    The refusal says what was compared, so a desk told no can see whether its login or its name was taken for
    the other's."""
    parties: list[tuple[str, str, Person]] = [
        ("提出人", "the person who filed it", Person(name=appeal.by, account=appeal.by_account, node=decider.node))
    ]
    if appeal.target == "staff":  # a centre's appeal concerns a township centre, never a person who could decide it
        parties.append(("被考核人", "the person it concerns", subject or Person(name=appeal.subject)))
    for zh, en, party in parties:
        how = same_person(decider, party)
        if how == "account":
            return AppealProblem(
                f"申诉不能由提出人或被考核人本人复核，请由其他人员作出决定（按登录账号核对：当前账号即{zh}）",
                f"an appeal is decided by someone other than the person who filed it or whom it concerns (compared "
                f"by login account at this node: this account is {en})",
            )
        if how == "name":
            mine, theirs = _keys(decider), _keys(party)
            key = next(k for k in mine if k in theirs)
            return AppealProblem(
                f"申诉不能由提出人或被考核人本人复核，请由其他人员作出决定（无法按登录账号核对，按姓名核对："
                f"“{mine[key][:40]}”与{zh}“{theirs[key][:40]}”为同一姓名）",
                f"an appeal is decided by someone other than the person who filed it or whom it concerns (no login "
                f"account known to compare, so names were: {mine[key][:40]!r} is the name of {en}, "
                f"{theirs[key][:40]!r})",
            )
    return None


def decision_problem(
    appeal: Appeal,
    *,
    upheld: bool,
    points: float,
    part: str,
    decider: Person,
    rules: AssessmentRules,
    scored: Assessment,
    given_back: float,
    subject: Person | None = None,
) -> AppealProblem | None:
    """Whether ``decider`` may decide ``appeal`` so (``own_appeal_problem``). ``scored``: the appeal's quarter as
    assessed now; ``given_back``: points upheld appeals already gave back to the subject in ``part`` that quarter."""
    own = own_appeal_problem(appeal, decider, subject)
    if own is not None:
        return own
    if not upheld:
        return None
    if not points:
        return AppealProblem("支持申诉时请填写调整的分数", "an upheld appeal says how many points it changes")
    if not math.isfinite(points) or points < 0 or points > MAX_APPEAL_POINTS:
        return AppealProblem(
            f"支持申诉只能退还已扣的分数（1至{MAX_APPEAL_POINTS}分）",
            f"an upheld appeal gives back deducted points (more than 0, at most {MAX_APPEAL_POINTS})",
        )
    if appeal.target == "staff":
        parts = {p.code: p.name for p in rules.parts}
        if part not in parts:
            return AppealProblem(
                "支持申诉时请选择退还分数所在的考核部分（" + "、".join(parts.values()) + "）",
                f"an upheld appeal names the part it gives points back in, one of {', '.join(parts)}",
                invalid=True,
            )
    left = deducted(scored, appeal.target, appeal.subject, part if appeal.target == "staff" else "") - given_back
    if points > left + 1e-9:
        where = (
            f"“{dict((p.code, p.name) for p in rules.parts).get(part, part)}”部分" if appeal.target == "staff" else ""
        )
        return AppealProblem(
            f"{appeal.subject[:40]}本季度{where}被扣{max(left, 0):g}分可退还，支持申诉最多退还这些分数",
            f"{appeal.subject[:40]} has {max(left, 0):g} deducted points left to give back"
            f"{' in ' + part if appeal.target == 'staff' else ''} in {appeal.quarter}; an upheld appeal gives back "
            "at most that",
        )
    return None


# -- scoring ----------------------------------------------------------------------------------


def overdue_in(record: ErrandRecord, start: date, end: date, as_of: date, calendar: WorkCalendar) -> int:
    """Working days the errand was past its deadline inside [start, end] (never counted twice across quarters)."""
    if not record.due:
        return 0
    due = date.fromisoformat(record.due)
    finish = date.fromisoformat(record.answered_on) if record.answered_on else as_of
    finish = min(finish, end)
    first = max(due, start - timedelta(days=1))
    if finish <= first:
        return 0
    try:
        return calendar.working_days_between(first, finish)
    except CalendarUnknown:
        return 0


def _line(item: Item, count: float, source: Literal["errand", "entry", "appeal"], ref: str, detail: str) -> Line:
    return Line(
        item=item.code,
        name=item.name,
        part=item.part,
        points=item.points * count,
        source=source,
        ref=ref,
        detail=detail,
    )


def assess(
    rules: AssessmentRules,
    quarter: str,
    records: Iterable[ErrandRecord],
    entries: Iterable[Entry],
    appeals: Iterable[Appeal],
    *,
    calendar: WorkCalendar,
    as_of: date,
    staff_centres: Mapping[str, str] | None = None,
    centres: Iterable[str] = (),
) -> Assessment:
    return _assess(rules, quarter, records, entries, appeals, calendar, as_of, staff_centres, tuple(centres))


def _assess(
    rules: AssessmentRules,
    quarter: str,
    records: Iterable[ErrandRecord],
    entries: Iterable[Entry],
    appeals: Iterable[Appeal],
    calendar: WorkCalendar,
    as_of: date,
    staff_centres: Mapping[str, str] | None,
    all_centres: tuple[str, ...],
) -> Assessment:
    """The quarter's scores. ``records`` are the errands answered in the quarter or open and late in it."""
    start, end = quarter_span(quarter)
    # A person is (name, centre): two 王芳 at two townships are two people, each scored where they work.
    staff_lines: dict[StaffKey, list[Line]] = defaultdict(list)
    centre_lines: dict[str, list[Line]] = defaultdict(list)
    for centre in all_centres:
        centre_lines[centre] = []  # every centre is scored, even one with nothing recorded
    known = dict(staff_centres or {})
    errand_count: dict[StaffKey, int] = defaultdict(int)
    disqualified_staff: set[StaffKey] = set()
    disqualified_centre: set[str] = set()
    items = {i.code: i for i in rules.items}
    for rec in records:
        answered_here = bool(rec.answered_on) and start.isoformat() <= rec.answered_on <= end.isoformat()
        days = overdue_in(rec, start, end, as_of, calendar)
        who: StaffKey | None = None
        if rec.handler:
            who = (rec.handler, rec.handler_centre or known.get(rec.handler) or rec.centre)
            errand_count[who] += answered_here
        ref = rec.receipt or rec.errand
        if days and who:
            staff_lines[who].append(
                _line(
                    items[rules.overdue_item], days, "errand", rec.errand, f"{ref} 超期{days}个工作日 (期限{rec.due})"
                )
            )
        if days and rec.centre:
            centre_lines[rec.centre].append(
                _line(items[rules.centre_overdue_item], 1, "errand", rec.errand, f"{ref} 超期{days}个工作日")
            )
            if items[rules.centre_overdue_item].disqualifies:
                disqualified_centre.add(rec.centre)
        if not answered_here:
            continue
        if rec.rating == "不满意" and who:
            staff_lines[who].append(_line(items[rules.dissatisfied_item], 1, "errand", rec.errand, f"{ref} 评价不满意"))
        if rec.skipped_steps and who:
            staff_lines[who].append(
                _line(
                    items[rules.skipped_item], 1, "errand", rec.errand, f"{ref} 缺少环节 {'、'.join(rec.skipped_steps)}"
                )
            )
        if rec.deemed and who:
            staff_lines[who].append(_line(items[rules.deemed_item], 1, "errand", rec.errand, f"{ref} 超时默许"))
        if rec.callbacks_dissatisfied and rec.centre:
            centre_lines[rec.centre].append(
                _line(
                    items[rules.centre_callback_item],
                    rec.callbacks_dissatisfied,
                    "errand",
                    rec.errand,
                    f"{ref} 回访不满意",
                )
            )
    places: dict[str, set[str]] = defaultdict(set)
    for name, place in errand_count:
        places[name].add(place)

    def person(name: str, centre: str = "") -> StaffKey:
        """An entry's or appeal's subject: at the centre it names, else where the errands put that name (when
        they put it in one place only), else the directory's word for the name (``staff_centres``)."""
        if centre:
            return (name, centre)
        seen = places.get(name, set())
        return (name, next(iter(seen))) if len(seen) == 1 else (name, known.get(name, ""))

    for entry in entries:
        if entry.quarter != quarter:
            continue
        item = items.get(entry.item)
        if item is None or item.target != entry.target:
            continue  # an entry under an item the current rules do not have is kept, not scored
        detail = entry.note + (f" ({entry.errand})" if entry.errand else "")
        line = _line(item, entry.count, "entry", entry.id, detail)
        if entry.target == "staff":
            key = person(entry.subject, entry.centre)
            staff_lines[key].append(line)
            if item.disqualifies:
                disqualified_staff.add(key)
        else:
            centre_lines[entry.subject].append(line)
            if item.disqualifies:
                disqualified_centre.add(entry.subject)
    pending: list[str] = []
    for appeal in appeals:
        if appeal.quarter != quarter:
            continue
        if appeal.status == "pending":
            pending.append(appeal.id)
            continue
        if appeal.status != "upheld" or not appeal.points:
            continue
        line = Line(
            item="appeal",
            name="申诉复核",
            part=appeal.part,
            points=appeal.points,
            source="appeal",
            ref=appeal.id,
            detail=appeal.decision,
        )
        if appeal.target == "staff":
            staff_lines[person(appeal.subject)].append(line)
        else:
            centre_lines[appeal.subject].append(line)
    staff = [_staff_score(rules, name, centre, lines) for (name, centre), lines in staff_lines.items()]
    for name, centre in set(errand_count) - set(staff_lines):
        staff.append(_staff_score(rules, name, centre, []))
    for s in staff:
        s.errands = errand_count.get((s.name, s.centre), 0)
        s.eligible = (s.name, s.centre) not in disqualified_staff
    _grade(rules, staff)
    centres = [_centre_score(rules, c, lines) for c, lines in centre_lines.items()]
    for c in centres:
        c.eligible = c.centre not in disqualified_centre
    centres.sort(key=lambda c: (-c.total, c.centre))
    totals = [c.total for c in centres]
    eligible_totals = [c.total for c in centres if c.eligible]
    for c in centres:
        c.rank = competition_rank(c.total, totals)
        # the top N of the eligible, ties sharing the place: equal scores are never told apart by their ids
        c.red_flag = c.eligible and competition_rank(c.total, eligible_totals) <= rules.red_flag_top
    return Assessment(
        quarter=quarter,
        rules_version=rules.version,
        county=rules.county,
        staff=staff,
        centres=centres,
        pending_appeals=sorted(pending),
    )


def _staff_score(rules: AssessmentRules, name: str, centre: str, lines: list[Line]) -> StaffScore:
    deductions: dict[str, float] = defaultdict(float)
    bonus = 0.0
    for line in lines:
        if line.source == "appeal":
            # an upheld appeal gives back points within its part; one naming no part (recorded before the rule
            # said so) gives nothing, and never a bonus
            if line.part:
                deductions[line.part] += line.points
        elif line.points < 0:
            deductions[line.part] += line.points
        else:
            bonus += line.points
    if rules.staff_bonus_cap:
        bonus = min(bonus, rules.staff_bonus_cap)
    # 扣完为止: a part never goes below zero, nor above its full points
    parts = {p.code: min(p.points, max(0.0, p.points + deductions.get(p.code, 0.0))) for p in rules.parts}
    total = round(sum(parts.values()) + bonus, 2)
    return StaffScore(name=name, centre=centre, parts=parts, bonus=bonus, total=total, lines=lines)


def competition_rank(total: float, totals: Sequence[float]) -> int:
    """1 + how many scored higher: equal totals share a rank and the next rank skips (1, 1, 3)."""
    return 1 + sum(1 for other in totals if other > total)


def _grade(rules: AssessmentRules, staff: list[StaffScore]) -> None:
    staff.sort(key=lambda s: (-s.total, s.centre, s.name))
    totals = [s.total for s in staff]
    for s in staff:
        s.rank = competition_rank(s.total, totals)
        for grade in rules.grades:
            if s.total < grade.min_score:
                continue
            if grade.top and (s.rank > grade.top or not s.eligible):  # a tie at the Nth place shares it
                continue
            s.grade, s.grade_name = grade.code, grade.name
            break


def _centre_score(rules: AssessmentRules, centre: str, lines: Sequence[Line]) -> CentreScore:
    # an upheld appeal gives deducted points back (never more than were deducted), not a bonus under the cap
    taken = sum(line.points for line in lines if line.points < 0 and line.source != "appeal")
    deductions = min(0.0, taken + sum(line.points for line in lines if line.source == "appeal"))
    claimed = sum(line.points for line in lines if line.points > 0 and line.source != "appeal")
    bonus = min(claimed, rules.centre_bonus_cap)
    return CentreScore(
        centre=centre,
        base=rules.centre_base,
        deductions=deductions,
        bonus=bonus,
        bonus_claimed=claimed,
        total=round(rules.centre_base + deductions + bonus, 2),
        lines=list(lines),
    )
