"""A benchmark corpus made by really running a county: real stores, real staff steps, real signed frames.

Each township's subtree (the township, its villages and the county's side of their
errands) is simulated in its own worker process, so the build uses every core. That
changes nothing in what is produced: the county writes about an errand only in the
stream of the errand's scope, so its streams for one township's villages never touch
another's. Inside a worker every node is a ``Store`` on its own SQLite file, staff move
errands with ``ErrandService`` and every child runs ``sync_once`` with its parent over
``LocalTransport``, round after round, until every errand has been delivered. Every
push the township makes to the county is recorded verbatim, with its round number.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import msgspec

from protocol.session import PushRequest, PushResponse
from protocol.signing import SigningKey
from protocol.topology import COUNTY, TOWN, VILLAGE, Directory, NodeEntry
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.demo.population import MATTERS, Matter, matter_by_code, person, valid_id_number
from sanji.forms import ActionForm, RegisterForm
from sanji.layout import Layout, county_layout
from sanji.service import ErrandService
from sanji.store import Database, Store, open_database
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from sanji.workcalendar import load_calendar

REGISTRATION_ROUNDS = 15  # errands are registered over this many sync rounds, then drained
MAX_ROUNDS = 200
MATERIALS = ("身份证复印件", "户口簿复印件", "申请书")
TOWN_NOTES = ("材料齐全，已核验原件", "已电话告知申请人办理进度", "申请人补充提交了收入证明")
Outcome = Literal["approved", "refused"]
ErrandKind = Literal["即办件", "承诺件", "上报件", "联办件"]
TITLES = {VILLAGE: "代办员", TOWN: "综合窗口", COUNTY: "县民政局 审批员"}


@dataclass
class Push:
    round: int
    town: str
    frames: tuple[bytes, ...]


@dataclass
class SubtreeResult:
    """What one worker sends back: plain data only (it crosses a process boundary)."""

    town: str
    pushes: list[Push]
    errands: int
    escalated: int
    actions_by_role: dict[str, int]
    rounds: int
    county_digests: dict[str, str]
    seconds: float


@dataclass
class Corpus:
    layout: Layout
    directory: Directory
    county: str
    workdir: Path
    pushes: list[Push]  # in the order a single county would have received them
    errands: int = 0
    escalated: int = 0
    actions_by_role: Counter[str] = field(default_factory=Counter)
    rounds: int = 0
    county_digests: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    workers: int = 1

    @property
    def towns(self) -> list[str]:
        return self.layout.ids(TOWN)

    @property
    def frames(self) -> list[bytes]:
        return [frame for push in self.pushes for frame in push.frames]

    def db_url(self, node: str) -> str:
        return f"sqlite:///{self.workdir / node}.db"

    async def open_store(self, node: str) -> tuple[Store, Database]:
        """Reopen a node's store as the build left it (used to push a township's frames over HTTP).

        No migration: the build already created the schema, and the tree may change under a long run.
        """
        db = await open_database(self.db_url(node), migrate=False)
        store = Store(db, node_id=node, key=self.layout.keys[node], directory=self.directory)
        await store.start()
        return store, db


class RecordingTransport(LocalTransport):
    """A ``LocalTransport`` that keeps every push it carries: exactly what the county received."""

    def __init__(self, server: SyncServer, town: str, pushes: list[Push]) -> None:
        super().__init__(server)
        self.town = town
        self.pushes = pushes
        self.round = 0

    async def push(self, request: PushRequest) -> PushResponse:
        self.pushes.append(Push(round=self.round, town=self.town, frames=request.frames))
        return await super().push(request)


@dataclass
class Desk:
    node_id: str
    role: str
    actor: str
    service: ErrandService


SCANS = (("身份证.jpg", "image/jpeg"), ("户口簿.jpg", "image/jpeg"), ("申请书.pdf", "application/pdf"))


def attachment_form(actor: str, rng: random.Random, scan: int) -> ActionForm:
    """A scan of a material as the village's desk attaches it: a photo or PDF of 80-400 KB, by hash."""
    name, mime = SCANS[scan % len(SCANS)]
    return ActionForm(
        kind="attach",
        actor=actor,
        blob=rng.randbytes(32).hex(),
        size=rng.randint(80_000, 400_000),
        name=name,
        mime=mime,
    )


REASONS = "经核查不符合申请条件"  # a refusal states its reasons (rules 2)


def pick_matter(rng: random.Random) -> Matter:
    # Matters a township decides itself weigh double, so about half of all errands go up to the county.
    weights = [1 if m.department else 2 for m in MATTERS]
    return rng.choices(MATTERS, weights=weights)[0]


def next_form(desk: Desk, errand: dict[str, Any], rng: random.Random) -> ActionForm | None:
    """What the person at this desk does next with this errand (None if it is not theirs to move)."""
    actor, version = desk.actor, errand["version"]
    if errand["pending_to"] == desk.node_id:
        return ActionForm(kind="receive", actor=actor, expected_version=version)
    if errand["pending_to"]:
        return None
    stage = errand["stage"]
    known = matter_by_code(errand["matter"])
    department = known.department if known else ""
    if desk.role == VILLAGE and stage == "registered":
        return ActionForm(kind="submit", actor=actor, role="代办员", text="材料已收齐", expected_version=version)
    if desk.role == TOWN and stage == "received":
        kind: ErrandKind = "上报件" if department else ("即办件" if known and known.immediate else "承诺件")
        return ActionForm(kind="accept", actor=actor, errand_kind=kind, expected_version=version)
    if desk.role == TOWN and stage == "accepted":
        if department:
            return ActionForm(kind="escalate", actor=actor, department=department, expected_version=version)
        outcome: Outcome = "refused" if rng.random() < 0.1 else "approved"
        document = "准予办理通知书" if outcome == "approved" else "不予办理决定书"
        return ActionForm(
            kind="decide",
            actor=actor,
            outcome=outcome,
            document=document,
            reasons=REASONS if outcome == "refused" else "",
            expected_version=version,
        )
    if desk.role == COUNTY and stage == "at_department":
        verdict: Outcome = "refused" if rng.random() < 0.15 else "approved"
        document = "审批决定书" if verdict == "approved" else "不予办理决定书"
        return ActionForm(
            kind="decide",
            actor=actor,
            role="审批员",
            outcome=verdict,
            document=document,
            reasons=REASONS if verdict == "refused" else "",
            department=errand["department"],
            expected_version=version,
        )
    if stage in ("decided", "result_ready"):
        if errand["scope"] == desk.node_id:
            name = errand["applicant_name"]
            return ActionForm(
                kind="deliver",
                actor=actor,
                role="代办员",
                confirmed_by=name,
                signature=f"签名:{name}",
                expected_version=version,
            )
        return ActionForm(kind="send_result", actor=actor, expected_version=version)
    return None


async def _simulate(
    workdir: Path,
    layout: Layout,
    town: str,
    errands: int,
    seed: int,
    attachments: int = 0,
    village_errands: dict[str, int] | None = None,
    pace: int = 1,
) -> SubtreeResult:
    started = time.perf_counter()
    rng = random.Random(seed)
    directory = layout.directory
    county = layout.ids(COUNTY)[0]
    villages = directory.children(town)
    nodes = [county, town, *villages]
    stores: dict[str, Store] = {}
    dbs: list[Database] = []
    pushes: list[Push] = []
    by_role: Counter[str] = Counter()
    escalated = 0
    try:
        for node in nodes:
            # Each worker's county side lives in its own file; the township and villages keep theirs.
            name = f"{county}-{town}" if node == county else node
            db = await open_database(f"sqlite:///{workdir / name}.db")
            dbs.append(db)
            store = Store(db, node_id=node, key=layout.keys[node], directory=directory)
            await store.start()
            stores[node] = store
        up = RecordingTransport(SyncServer(stores[county]), town, pushes)
        links: dict[str, LocalTransport] = {town: up}
        links.update({v: LocalTransport(SyncServer(stores[town])) for v in villages})
        catalogue = default_catalogue()
        calendar = load_calendar()

        def desk_service(store: Store) -> ErrandService:
            # Nothing is accepted without the county's catalogue and a deadline counted on the working calendar:
            # every desk holds both (as tests' Network.service).
            context = NodeContext(store, calendar)
            context.catalogue = catalogue
            return ErrandService(store, context)

        desks = [
            Desk(node, directory.role(node), f"{TITLES[directory.role(node)]} {person(rng).name}", desk_service(s))
            for node, s in stores.items()
        ]
        village_desks = [d for d in desks if d.role == VILLAGE]
        per_round = max(1, math.ceil(errands / (len(villages) * REGISTRATION_ROUNDS)))
        # ``village_errands``: how many each village registers, ``pace`` a round each, so a village's batches
        # are cut alike whatever its total (one with fewer is done sooner); otherwise every village registers
        # ``per_round`` a round until ``errands`` are registered.
        quota = dict(village_errands or {})
        if village_errands is not None and sum(quota.get(v, 0) for v in villages) != errands:
            raise ValueError(f"{town}: village_errands must add up to {errands}")
        registered = idle = rounds = 0
        while idle < 2:
            rounds += 1
            up.round = rounds
            if rounds > MAX_ROUNDS:
                raise RuntimeError(f"{town}: the corpus did not drain in {MAX_ROUNDS} rounds")
            moved = 0
            for desk in village_desks:
                if village_errands is None:
                    this_round = min(per_round, errands - registered)
                else:
                    own = quota.get(desk.node_id, 0)
                    this_round = min(max(1, pace), own)
                    quota[desk.node_id] = own - this_round
                for _ in range(this_round):
                    who, what = person(rng), pick_matter(rng)
                    assert valid_id_number(who.id_number)
                    made = await desk.service.register(
                        RegisterForm(
                            matter=what.code,
                            applicant_name=who.name,
                            applicant_id_number=who.id_number,
                            applicant_phone=who.phone,
                            materials=list(MATERIALS),
                            summary=f"{who.name}申请{what.name}",
                            actor=desk.actor,
                        )
                    )
                    registered += 1
                    moved += 1
                    by_role[VILLAGE] += 1
                    for scan in range(attachments):  # references only: the bytes travel apart, as blobs
                        # past the desk's own checks (bytes held here, this errand's), which no made-up hash meets
                        await desk.service.act_as_system(made.errand, attachment_form(desk.actor, rng, scan))
                        by_role[VILLAGE] += 1
                    escalated += bool(what.department)
            for desk in desks:
                for errand in await desk.service.store.worklist():
                    form = next_form(desk, errand, rng)
                    if form is None:
                        continue
                    await desk.service.act(errand["id"], form)
                    moved += 1
                    by_role[desk.role] += 1
                    if form.kind == "accept" and rng.random() < 0.2:
                        note = ActionForm(kind="note", actor=desk.actor, text=rng.choice(TOWN_NOTES))
                        await desk.service.act(errand["id"], note)
                        by_role[desk.role] += 1
            for node in [*villages, town, *villages]:  # pushes climb, then pulls descend
                report = await sync_once(stores[node], links[node])
                if report.refused:
                    raise RuntimeError(f"{node}: {report.refused} batches refused while building the corpus")
            idle = idle + 1 if moved == 0 and registered == errands else 0
        for node in nodes:
            stages = (await stores[node].status())["errands_by_stage"]
            if not stages and village_errands is not None and node in villages and not village_errands.get(node):
                continue  # a village that was given no errand holds none
            if set(stages) != {"delivered"} or (node in (county, town) and sum(stages.values()) != errands):
                raise RuntimeError(f"{node}: not every errand was delivered: {stages}")
        everything, more = await stores[town].frames_for_parent({}, 1 << 40)
        if more or sorted(everything) != sorted(f for p in pushes for f in p.frames):
            raise RuntimeError(f"{town}: the recorded pushes differ from what frames_for_parent holds")
        digests = await stores[county].digests()
    finally:
        for db in dbs:
            await db.dispose()
    return SubtreeResult(
        town=town,
        pushes=pushes,
        errands=registered,
        escalated=escalated,
        actions_by_role=dict(by_role),
        rounds=rounds,
        county_digests=digests,
        seconds=time.perf_counter() - started,
    )


def simulate_subtree(
    workdir: str,
    entries: bytes,
    keys: dict[str, bytes],
    town: str,
    errands: int,
    seed: int,
    attachments: int = 0,
    village_errands: dict[str, int] | None = None,
    pace: int = 1,
) -> SubtreeResult:
    """Worker entry point: rebuild the layout from plain bytes and simulate one township's subtree."""
    layout = Layout(
        entries=msgspec.msgpack.decode(entries, type=list[NodeEntry]),
        keys={node: SigningKey.from_private_bytes(raw) for node, raw in keys.items()},
    )
    return asyncio.run(_simulate(Path(workdir), layout, town, errands, seed, attachments, village_errands, pace))


async def build_corpus(
    workdir: Path,
    errands: int,
    *,
    seed: int,
    towns: int = 2,
    villages_per_town: int = 3,
    workers: int = 2,
    attachments: int = 0,
    village_errands: dict[str, int] | None = None,
) -> Corpus:
    """Simulate ``errands`` whole errand lives across ``towns`` townships, one worker process per township.

    ``attachments``: scans the village attaches to each errand at registration (``attach`` actions naming a
    blob by hash and size; the blob bytes themselves are not made). ``village_errands``: how many errands
    each village registers (they must add up to ``errands``; a village not named registers none); by
    default the errands are shared evenly between the townships and between each township's villages. With
    it every village registers at one pace, the busiest village's total over the registration rounds, so a
    village's batches are cut alike whatever its total."""
    started = time.perf_counter()
    layout = county_layout(towns, villages_per_town)
    county = layout.ids(COUNTY)[0]
    town_ids = layout.ids(TOWN)
    shares = [errands // len(town_ids) + (1 if i < errands % len(town_ids) else 0) for i in range(len(town_ids))]
    if village_errands is not None:
        if sum(village_errands.values()) != errands:
            raise ValueError(f"village_errands add up to {sum(village_errands.values())}, not {errands}")
        shares = [sum(village_errands.get(v, 0) for v in layout.directory.children(town)) for town in town_ids]
    pace = math.ceil(max(village_errands.values(), default=0) / REGISTRATION_ROUNDS) if village_errands else 1
    entries = msgspec.msgpack.encode(layout.entries)
    keys = {node: key.private_bytes() for node, key in layout.keys.items()}
    loop = asyncio.get_running_loop()
    workers = max(1, min(workers, len(town_ids)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        results = await asyncio.gather(
            *(
                loop.run_in_executor(
                    pool,
                    simulate_subtree,
                    str(workdir),
                    entries,
                    keys,
                    town,
                    share,
                    seed * 100 + i,
                    attachments,
                    None
                    if village_errands is None
                    else {v: village_errands.get(v, 0) for v in layout.directory.children(town)},
                    pace,
                )
                for i, (town, share) in enumerate(zip(town_ids, shares, strict=True))
                if share > 0
            )
        )
    order = {town: i for i, town in enumerate(town_ids)}
    pushes = sorted((p for r in results for p in r.pushes), key=lambda p: (p.round, order[p.town]))
    corpus = Corpus(
        layout=layout,
        directory=layout.directory,
        county=county,
        workdir=workdir,
        pushes=pushes,
        workers=workers,
    )
    for r in results:
        corpus.errands += r.errands
        corpus.escalated += r.escalated
        corpus.actions_by_role.update(r.actions_by_role)
        corpus.rounds = max(corpus.rounds, r.rounds)
        corpus.county_digests.update(r.county_digests)
    corpus.seconds = time.perf_counter() - started
    return corpus
