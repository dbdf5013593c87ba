"""What a desk needs besides errands: the catalogue, the pre-check, node health, supervision."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, QueryParameter

from protocol.bounds import MAX_NODE_ID, NODE_ID_PATTERN, whole
from protocol.catalogue import Matter, Precheck, precheck
from protocol.errand import skipped_steps
from protocol.errors import RouteError
from protocol.refusals import Refusal, bilingual
from protocol.session import NodeReport
from protocol.stages import ANSWERED, shown_stage
from protocol.topology import Directory, regional
from sanji.auth.guard import Caller
from sanji.complaints import present
from sanji.context import NodeContext, bound_of
from sanji.forms import BoundedForm
from sanji.store import Store
from sanji.urgings import UrgingRow, urging_rows
from sanji.urgings import counts as urging_counts
from sanji.web.views import ErrandSummary, summarise

URGINGS_LIMIT = 500  # the newest urgings read (as the supervision screen does)
# Errands read for one 电子监察 report, of each kind: every errand not yet answered (a county has thousands in
# hand, never this many), and the newest answered ones (a county passes this in a year or two; the oldest
# would otherwise crowd out the newest).
SUPERVISED_AT_MOST = 100_000
# Ratings (Rate actions) counted for one report: the newest this many; the screen says so when there are more.
RATED_AT_MOST = 100_000


class UrgingList(msgspec.Struct, kw_only=True):
    items: list[UrgingRow]
    counts: dict[str, Any]  # open / answered / overdue among all read
    total: int  # how many match the filters (items holds at most ``limit``)


class CatalogueView(msgspec.Struct, kw_only=True):
    county: str
    version: int
    published_at: str
    matters: list[Matter]


class PrecheckForm(BoundedForm, frozen=True, kw_only=True, forbid_unknown_fields=True):
    matter: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    materials: Annotated[list[Annotated[str, msgspec.Meta(max_length=200)]], msgspec.Meta(max_length=100)] = []
    by_proxy: bool = True


class DeemedApproval(msgspec.Struct, kw_only=True):
    """One 超时默许: the errand, its deadline, and the window that answers for it (the accepting one)."""

    errand: str
    matter: str
    due: str
    decided_at: int
    decided_by: str  # the node whose system wrote it
    responsible: str  # the node that accepted the errand
    window: str  # the window that accepted it there


class BindingMismatch(msgspec.Struct, kw_only=True):
    """An errand bound to an entry that differs from the county's catalogue of its version, as this node holds it
    (``protocol.binding.binding_refusal``): applied like any other (``judge`` cannot know), refused at the desks."""

    errand: str
    matter: str
    scope: str  # the node that registered it
    version: int  # the catalogue version its binding names
    fields: str  # the fields of the entry that differ ("that version has no such matter" for an invented one)
    zh: str
    en: str
    # False: a version this node does not hold and cannot tell was never published (below the oldest it kept, or
    # lost in a restore from a copy): 无法核对, let through, listed so the supervisor knows it was not checked.
    checked: bool = True
    # True: already answered or closed (a village approving its own matter decides it with no desk of a township
    # or county asked): 已按不一致条目办结, listed so the supervisor still sees it. Only mismatches, not unchecked.
    answered: bool = False


class BindingStatus(msgspec.Struct, kw_only=True):
    """How the entry one errand is bound to stands against the county's catalogue of its version, as this node can
    tell (``NodeContext.binding_status``): ``GET /api/errands/{id}``'s ``binding`` and ``sanji errand show``'s. An
    errand bound to the county's entry, unbound, or of another county has none (null), so a client asks one field."""

    # mismatch: refused at the desks (steps judged by the entry); unchecked: a version below the oldest kept here;
    # behind: a version this township or village has not received yet (the county checks it). Both let through.
    status: Literal["mismatch", "unchecked", "behind"]
    matter: str
    version: int  # the catalogue version its binding names
    fields: str = ""  # mismatch: the fields that differ, or why ("that version has no such matter", never held)
    message_zh: str
    message: str  # the English half, as an error body's ``message`` beside its ``message_zh``


class Supervision(msgspec.Struct, kw_only=True):
    open_errands: int
    by_level: dict[str, int]
    overdue: list[ErrandSummary]
    warnings: list[ErrandSummary]
    missing_steps: dict[str, list[str]]
    acted_for_absent: int
    ratings: dict[str, int]
    complaints: list[dict[str, Any]]
    callback_sample: list[str]
    deemed: list[DeemedApproval] = msgspec.field(default_factory=list)
    # errands not yet answered (not delivered or closed), counted by stage: per township (the errand's
    # township, or this node itself above them) and per county department it was escalated to
    by_township: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    # above the counties (a city, a province): the same per county first, the county on the errand's path
    by_county: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    by_department: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    # The answered errands (delivered or closed) the figures about finished work cover: the newest
    # ``answered_counted`` of ``answered_total`` (all of them until a store holds more than SUPERVISED_AT_MOST).
    answered_counted: int = 0
    answered_total: int = 0
    # The errands not yet answered read (oldest first) of ``open_errands``: all of them below SUPERVISED_AT_MOST.
    unanswered_counted: int = 0
    # ``ratings`` counts the newest ``ratings_counted`` ratings; ``ratings_cut``: older ones were left out.
    ratings_counted: int = 0
    ratings_cut: bool = False
    # Errands whose bound catalogue entry differs from the county's of its version: a registering (or accepting)
    # node's key may be compromised (``BindingMismatch``). Those not yet answered (checked or not), then answered ones
    # (``answered``, among the newest answered counted, ``answered_counted``; mismatches alone).
    binding_mismatches: list[BindingMismatch] = msgspec.field(default_factory=list)


def department_of(directory: Directory, node: str, scope: str, department: str) -> str:
    """The row 电子监察 counts an escalated errand under: its county department; above the counties the county
    is named first (``C1 县民政局``), since every county has its own bureau of the same name."""
    if not department or not regional(directory.role(node) if node in directory else ""):
        return department
    county = directory.county_of(scope) if scope in directory else None
    return f"{county} {department}" if county else department


def township_of(directory: Directory, scope: str) -> str:
    """The township an errand of ``scope`` belongs to; the root itself for one registered above them; the scope
    itself for a node the directory no longer lists (its errands stay held)."""
    try:
        path = directory.path(scope)
    except (RouteError, KeyError, ValueError):
        return scope
    return next((node for node in path if directory.role(node) == "town"), path[0])


def county_of(directory: Directory, scope: str) -> str:
    """The county an errand of ``scope`` belongs to; the scope itself for one registered above the counties."""
    if scope not in directory:
        return scope
    return directory.county_of(scope) or scope


def stage_counts(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        if row["stage"] not in ANSWERED and (name := key(row)):
            table[name][shown_stage(row["stage"], row["outcome"])] += 1  # 不予受理 is not 已办结
    return {name: dict(table[name]) for name in sorted(table)}


class DeskController(Controller):
    path = "/api"
    tags = ["desk"]

    @get("/catalogue", summary="The matter catalogue this node holds, with its version")
    async def catalogue(self, context: NamedDependency[NodeContext]) -> CatalogueView:
        cat = context.catalogue
        if cat is None:
            raise NotFoundException("no catalogue received yet; it arrives with the first exchange with the parent")
        return CatalogueView(
            county=cat.county, version=cat.version, published_at=cat.published_at, matters=list(cat.matters)
        )

    @post("/precheck", summary="The agent's pre-check of materials against the catalogue", status_code=200)
    async def run_precheck(self, context: NamedDependency[NodeContext], data: JSONBody[PrecheckForm]) -> Precheck:
        matter = context.matter(data.matter)
        if matter is None:
            raise NotFoundException(f"matter {data.matter} is not in catalogue version {context.catalogue_version}")
        return precheck(matter, data.materials, by_proxy=data.by_proxy)

    @get("/reports", summary="Latest health report of every node below this one")
    async def reports(self, store: NamedDependency[Store]) -> list[NodeReport]:
        return await store.reports()

    @get(
        "/urgings",
        summary="督办: urgings on errands held here, newest first, with their answer date, status and answer",
    )
    async def urgings(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        to: Annotated[str | None, QueryParameter(min_length=1, max_length=MAX_NODE_ID, pattern=NODE_ID_PATTERN)] = None,
        status: Annotated[str | None, QueryParameter(pattern=whole("open|answered|overdue"))] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=URGINGS_LIMIT)] = 100,
    ) -> UrgingList:
        rows = await urging_rows(store, context.today(), to=to, limit=URGINGS_LIMIT)
        kept = [r for r in rows if status is None or r.status == status]
        return UrgingList(items=kept[:limit], counts=urging_counts(rows), total=len(kept))

    @get("/supervision", summary="电子监察: deadlines, overdue, skipped steps, ratings, complaints, call-back sample")
    async def supervision(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        caller: NamedDependency[Caller],
        sample: Annotated[int, QueryParameter(ge=0, le=50)] = 5,
        seed: Annotated[str, QueryParameter(max_length=32)] = "",
    ) -> Supervision:
        report = await supervision_report(store, context, sample=sample, seed=seed)
        # supervisors and inspectors only; a public complainant's identity opens at the county hub alone
        report.complaints = present(caller.visible_complaints(report.complaints), store.sealing_key)
        await caller.read_complaints(len(report.complaints), "/api/supervision")
        return report


async def supervision_report(store: Store, context: NodeContext, *, sample: int = 5, seed: str = "") -> Supervision:
    """电子监察 over the errands this node holds: the same figures for the API and the screen."""
    unanswered, unanswered_total = await store.errands(stages_not_in=ANSWERED, limit=SUPERVISED_AT_MOST)
    answered, answered_total = await store.errands(stages_in=ANSWERED, newest_first=True, limit=SUPERVISED_AT_MOST)
    rows = unanswered + answered
    today = context.today()
    views = [summarise(r, context, today) for r in unanswered]
    by_level: Counter[str] = Counter()
    overdue, warnings = [], []
    for view in views:
        deadline = view["deadline"]
        if deadline is None:  # not accepted yet (no clock runs), or a matter with no limit: counted, so they add up
            by_level["none"] += 1
            continue
        by_level[deadline.level] += 1
        if deadline.level == "red":
            overdue.append(msgspec.convert(view, ErrandSummary))
        elif deadline.level == "yellow":
            warnings.append(msgspec.convert(view, ErrandSummary))
    details = await store.errand_states([r["id"] for r in rows])
    missing: dict[str, list[str]] = {}
    acted_for = 0
    for errand_id, state in details.items():
        if state.get("acted_for"):
            acted_for += 1
        if state["stage"] in ANSWERED and state.get("outcome") == "approved":
            gaps = list(skipped_steps(state.get("steps", ())))
            if gaps:
                missing[errand_id] = gaps
    mismatches = await binding_mismatches(context, unanswered)
    mismatches += await binding_mismatches(context, answered, answered=True)
    deemed = [await _deemed(store, errand_id) for errand_id, state in sorted(details.items()) if state.get("deemed")]
    ratings, ratings_cut = await store.annotation_counts("rate", "level", limit=RATED_AT_MOST)
    closed = sorted(r["id"] for r in answered)
    rng = random.Random(seed or today.isoformat())
    above = store.node_id in store.directory and regional(store.directory.role(store.node_id))
    return Supervision(
        open_errands=unanswered_total,  # not yet answered, as every node's own report counts them
        by_level=dict(by_level),
        overdue=overdue,
        warnings=warnings,
        missing_steps=missing,
        acted_for_absent=acted_for,
        ratings=ratings,
        ratings_counted=sum(ratings.values()),
        ratings_cut=ratings_cut,
        complaints=await store.annotations("complain"),
        callback_sample=rng.sample(closed, min(sample, len(closed))),
        deemed=[d for d in deemed if d is not None],
        by_township=stage_counts(rows, lambda r: township_of(store.directory, r["scope"])),
        by_county=stage_counts(rows, lambda r: county_of(store.directory, r["scope"])) if above else {},
        by_department=stage_counts(
            rows, lambda r: department_of(store.directory, store.node_id, r["scope"], str(r.get("department") or ""))
        ),
        unanswered_counted=len(unanswered),
        answered_counted=len(answered),
        answered_total=answered_total,
        binding_mismatches=mismatches,
    )


def unchecked_texts(code: str, version: int, *, behind: bool = False) -> tuple[str, str]:
    """What the errand page and 电子监察 say of an errand bound to a catalogue version this node cannot check:
    one it does not hold below the newest (below the oldest it kept, skipped while out of touch, or lost when it was
    restored from a copy), or (``behind``) one above the newest it has not received yet."""
    if behind:
        return (
            f"本节点尚未收到县级目录第{version}版，暂无法核对登记所附事项条目（{code}），请先与上级同步",
            f"this node has not received the county's catalogue v{version} yet, so the entry this errand is bound "
            f"to ({code}) cannot be checked here; exchange with the parent first",
        )
    return (
        f"登记所附事项条目（{code}）所依据的县级目录第{version}版本节点未保存（早于所存最早版本，或漏收、恢复备份后缺失），"
        "无法核对",
        f"the entry this errand is bound to ({code}) cannot be checked: this node does not hold the county's catalogue "
        f"v{version} (older than the oldest version it kept, missed, or lost in a restore from a backup)",
    )


async def errand_binding(context: NodeContext, state_blob: bytes | None) -> BindingStatus | None:
    """``BindingStatus`` of a stored errand state (``errands.state``); None when there is nothing to say."""
    bound = bound_of(state_blob)
    status = await context.binding_status(bound.matter_entry, bound.catalogue_version, bound.scope)
    if status is None or bound.matter_entry is None:
        return None
    code, version = bound.matter_entry.code, bound.catalogue_version
    if isinstance(status, Refusal):
        zh, en = bilingual(status)
        return BindingStatus(
            status="mismatch",
            matter=code,
            version=version,
            fields=status.params.get("fields", ""),
            message_zh=zh,
            message=en,
        )
    zh, en = unchecked_texts(code, version, behind=status == "behind")
    return BindingStatus(status=status, matter=code, version=version, message_zh=zh, message=en)


async def binding_mismatches(
    context: NodeContext, rows: Iterable[dict[str, Any]], *, answered: bool = False
) -> list[BindingMismatch]:
    """The errands of ``rows`` (store rows with their ``state``) bound to an entry that is not the county's entry
    of the version they name, as this node can tell (``NodeContext.binding_status``: it differs, or names a version
    this node cannot have missed), and those it cannot check (``checked`` False: a version below the oldest kept).
    ``answered``: the rows are answered or closed errands: mismatches alone, marked so (已按不一致条目办结)."""
    out = []
    for row in rows:
        bound = bound_of(row.get("state"))
        if bound.matter_entry is None:
            continue
        version = bound.catalogue_version
        status = await context.binding_status(bound.matter_entry, version, bound.scope)
        if status is None or status == "behind" or (answered and status == "unchecked"):
            continue  # behind: this node's catalogue is, not the errand (the county lists it if it differs)
        if status == "unchecked":
            zh, en = unchecked_texts(bound.matter_entry.code, version)
            fields = ""
        else:
            zh, en = bilingual(status)
            fields = status.params.get("fields", "")
            if answered:
                zh, en = f"已按不一致条目办结：{zh}", f"answered under the differing entry: {en}"
        out.append(
            BindingMismatch(
                errand=row["id"],
                matter=row["matter"],
                scope=row["scope"],
                version=version,
                fields=fields,
                zh=zh,
                en=en,
                checked=status != "unchecked",
                answered=answered,
            )
        )
    return out


async def _deemed(store: Store, errand_id: str) -> DeemedApproval | None:
    row = await store.errand(errand_id)
    if row is None:
        return None
    applied = [h for h in row["history"] if h.get("status", "applied") == "applied"]
    accept: dict[str, Any] = next((h for h in applied if h["kind"] == "accept"), {})
    decide: dict[str, Any] = next((h for h in applied if h["kind"] == "decide" and h.get("deemed")), {})
    return DeemedApproval(
        errand=errand_id,
        matter=row["matter"],
        due=str(accept.get("due", "")) if not row["due"] else row["due"],
        decided_at=int(decide.get("at", 0)),
        decided_by=str(decide.get("node", "")),
        responsible=row["responsible"],
        window=str(accept.get("window", "")),
    )
