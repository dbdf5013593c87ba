"""A deterministic simulation of a county syncing over a bad network.

One seed fixes everything: the tree (a county, 2–3 townships, 2 villages each), the
nodes' signing keys, their clock skews, what staff do and when, and every fault.
Nodes are ``devtools.replica.Replica`` objects (the ledger rules of ``protocol.ledger`` and the
session steps of ``protocol.exchange``, as the real store and driver); a
simulated network carries the session messages of ``ChildSession``/``serve`` and may
drop a request or a response, deliver one twice, delay it past the sender's timeout
(so it arrives out of order, after newer ones), shuffle the frames inside a page,
cut a link for a while, and crash a node (it restarts from what it had committed,
sometimes after applying only part of a page). A dying disk takes longer to replace than any
message stays on the wire.

Then traffic stops, links heal, sessions run until nothing changes, and the checker
asks the invariants of DESIGN.md:

- no loss: every action recorded anywhere is held by every node on its errand's path;
- no double application: no node inserted an action or applied a batch twice, and
  replaying every frame to every node changes nothing;
- convergence: each errand has one digest on its whole path (the digest of all its
  actions), and no node holds an errand it is not on the path of;
- honest faults are not attacks: nothing quarantined, nothing refused.

``run(seed) -> Result``; ``python -m devtools.simulation --seeds 1000 [--start N]``
prints the failing seeds. A seed replays exactly: same trace, same result
(``--trace`` prints a failing seed's trace).

Beyond the honest faults, ``--backups N`` lets N disks die and their nodes come back
from an older backup (``Faults.backup_restores``); ``--no-fallback`` keeps villages from
syncing with the county while their township is dark.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from devtools.replica import (
    ChildSession,
    Replica,
    Request,
    Response,
    SessionReport,
    SessionRunaway,
    run_session,
    serve,
)
from protocol.actions import (
    Accept,
    Action,
    Applicant,
    Assign,
    CallBack,
    Close,
    Complain,
    Decide,
    Deliver,
    Extend,
    HandOff,
    MaterialsReceived,
    NotAccept,
    Note,
    Rate,
    Receive,
    Register,
    RequestSupplement,
    ReturnErrand,
    Review,
    SubtaskDone,
    Supervise,
    Supply,
    Terminate,
    Withdraw,
    is_main_line,
)
from protocol.batch import Batch, open_frame
from protocol.errand import CLOSED, ErrandState, Projection, judge, project
from protocol.errors import ActionRefused, SanjiError
from protocol.session import DEFAULT_BUDGET_BYTES, PullResponse, PushRequest, PushResponse
from protocol.signing import SigningKey
from protocol.stream import StreamKey
from protocol.topology import COUNTY, TOWN, VILLAGE, Directory, NodeEntry

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: the simulated wall clock starts here
DEPARTMENTS = ("县民政局", "县人社局", "县自然资源局", "县市场监管局")
DUPLICATE_LAG_MS = 500  # a duplicated message's copy comes up to this much after the original
ROLE_OF = {COUNTY: "department", TOWN: "window", VILLAGE: "agent"}


@dataclass(frozen=True)
class Faults:
    drop_request: float = 0.06
    drop_response: float = 0.06
    duplicate: float = 0.06  # the message arrives twice (the copy later)
    delay: float = 0.05  # the message arrives long after the sender gave up on it
    shuffle: float = 0.08  # the frames inside a page arrive in another order
    stray_pages: float = 0.5  # a late pull page is still taken by the child (frames may travel any path)
    crash_mid_apply: float = 0.03  # a node crashes after applying only part of a page
    partitions: int = 3  # link cuts during the run
    crashes: int = 3  # node crashes during the run
    stale: float = 0.08  # staff act on an old view of an errand, or try what the rules forbid
    # Not an honest fault, so off by default: a node's disk dies and it is restored from its last
    # nightly backup, losing what it committed since. What never left the node is lost with the disk
    # (the checker forgives that); everything that did leave it must still converge.
    backup_restores: int = 0

    @classmethod
    def none(cls) -> Faults:
        return cls(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


@dataclass(frozen=True)
class Config:
    towns: tuple[int, int] = (2, 3)  # inclusive range, drawn per seed
    villages_per_town: int = 2
    duration_ms: int = 20_000  # traffic, then faults stop
    grace_ms: int = 10_000  # faults off, timers still running
    act_interval_ms: tuple[int, int, int] = (900, 600, 1_500)  # mean time between actions: county, town, village
    sync_interval_ms: int = 1_500
    max_backoff_ms: int = 8_000
    timeout_ms: int = 1_000
    latency_ms: tuple[int, int] = (5, 120)
    long_delay_ms: tuple[int, int] = (1_500, 6_000)
    crash_downtime_ms: tuple[int, int] = (500, 4_000)
    partition_ms: tuple[int, int] = (1_000, 8_000)
    backup_interval_ms: int = 4_000  # how often each node's "nightly" backup is taken
    max_skew_ms: int = 7 * 60 * 1000  # some clocks beyond the 5 minutes a peer follows
    errands_per_node: int = 3
    budgets: tuple[int, ...] = (300, 900, 2_500, DEFAULT_BUDGET_BYTES)
    batch_actions: tuple[int, ...] = (1, 2, 3, 200)
    faults: Faults = field(default_factory=Faults)
    fallbacks: bool = True  # a village whose township cannot be reached syncs with the county
    settle_rounds: int = 12
    max_requests: int = 2_000  # a session still going after this many requests is stuck
    keep_trace: bool = False


@dataclass(frozen=True)
class Result:
    seed: int
    ok: bool
    problems: tuple[str, ...]
    trace_digest: str
    state_digest: str  # over every node's errand digests at the end
    stats: tuple[tuple[str, int], ...]
    trace: tuple[str, ...] = ()

    def stat(self, name: str) -> int:
        return dict(self.stats).get(name, 0)


# -- the tree ------------------------------------------------------------------------------------


def make_tree(rng: random.Random, config: Config, seed: int) -> tuple[Directory, dict[str, SigningKey]]:
    """County C; T01..T0n; villages T0iV01.. — keys derived from the seed, so frames replay byte for byte."""
    towns = rng.randint(*config.towns)
    keys: dict[str, SigningKey] = {}
    entries: list[NodeEntry] = []

    def add(node: str, role: str, parent: str | None) -> None:
        raw = hashlib.sha256(f"sanji-sim:{seed}:{node}".encode()).digest()
        keys[node] = SigningKey.from_private_bytes(raw)
        entries.append(NodeEntry(id=node, role=role, parent=parent, keys=(keys[node].record(node),)))

    add("C", COUNTY, None)
    for ti in range(1, towns + 1):
        town = f"T{ti:02d}"
        add(town, TOWN, "C")
        for vi in range(1, config.villages_per_town + 1):
            add(f"{town}V{vi:02d}", VILLAGE, town)
    return Directory(entries), keys


class CachingOpener:
    """``open_frame`` is pure, so one verified result per distinct frame serves every replica."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._cache: dict[bytes, Batch | SanjiError] = {}

    def __call__(self, frame: bytes) -> Batch:
        hit = self._cache.get(frame)
        if hit is None:
            try:
                hit = open_frame(frame, self.directory)
            except SanjiError as exc:
                hit = exc
            self._cache[frame] = hit
        if isinstance(hit, SanjiError):
            raise hit
        return hit


# -- staff: random valid actions, and some stale ones -------------------------------------------


def candidate_actions(
    state: ErrandState, node: str, directory: Directory, rng: random.Random, common: dict[str, Any]
) -> list[tuple[int, Action]]:
    """Weighted actions ``node`` might take on an errand in ``state``; the caller keeps the valid ones."""
    c = common
    out: list[tuple[int, Action]] = []
    parent = directory.parent(node)
    if parent is not None:
        out.append((8, HandOff(**c, to=parent, purpose="submit")))
        out.append((4, HandOff(**c, to=parent, purpose="escalate", department=rng.choice(DEPARTMENTS))))
    hop = directory.next_hop_down(node, state.scope) if node in directory.path(state.scope) else None
    if hop is not None:
        out.append((8, HandOff(**c, to=hop, purpose="result")))
    out.append((10, Receive(**c, stage_due="2025-02-01")))
    kind = rng.choice(("承诺件", "承诺件", "即办件", "上报件", "联办件"))
    provisional: tuple[str, ...] = ("户口簿复印件",) if kind != "即办件" and rng.random() < 0.25 else ()
    co = tuple(sorted(rng.sample(DEPARTMENTS, 2))) if kind == "联办件" else ()
    out.append(
        (
            8,
            Accept(
                **c,
                errand_kind=kind,  # type: ignore[arg-type]
                due="2025-03-01",
                limit_days=20,
                provisional=provisional,
                promise_by="2025-01-20" if provisional else "",
                co_departments=co,
            ),
        )
    )
    out.append((1, NotAccept(**c, reasons="不属于本机关职权范围")))
    out.append((1, ReturnErrand(**c, reasons="材料与原件不符")))
    out.append((2, RequestSupplement(**c, items=("身份证复印件", "收入证明"))))
    owed = state.supplement_items or state.provisional
    if owed:
        out.append((6, MaterialsReceived(**c, items=owed, due="2025-03-08")))
    out.append((2, Assign(**c, window=f"W{rng.randint(1, 4)}", handler=rng.choice(("张敏", "王强", "刘洋")))))
    for department, status in sorted(state.subtasks.items()):
        if status == "pending":
            outcome = "objected" if rng.random() < 0.15 else "agreed"
            out.append((6, SubtaskDone(**c, department=department, outcome=outcome)))  # type: ignore[arg-type]
    out.append((1, Extend(**c, days=10, reason="情况复杂需实地核查", due="2025-03-15")))
    out.append((2, Review(**c, passed=rng.random() < 0.85)))
    out.append((7, Decide(**c, outcome="approved" if rng.random() < 0.8 else "refused")))
    out.append((1, Terminate(**c, reason="容缺材料逾期未补")))
    out.append((1, Withdraw(**c, reason="申请人撤回")))
    out.append((8, Deliver(**c, confirmed_by=state.applicant_name or "申请人", signature="签字")))
    out.append((4, Close(**c, archive_no=f"档{rng.randint(1000, 9999)}")))
    out.append((1, Note(**c, text=rng.choice(("已电话联系申请人", "材料已扫描", "请加快办理")))))
    out.append((1, Supervise(**c, text="请按时办结")))
    out.append((1, Supply(**c, items=("照片",))))
    out.append((1, Rate(**c, level=rng.choice(("满意", "基本满意", "不满意")))))
    out.append((1, Complain(**c, text="等待时间太长")))
    out.append((1, CallBack(**c, reached=True, satisfied="满意")))
    return out


def pick(rng: random.Random, weighted: Sequence[tuple[int, Action]]) -> Action | None:
    if not weighted:
        return None
    total = sum(w for w, _ in weighted)
    x = rng.uniform(0, total)
    for w, action in weighted:
        x -= w
        if x <= 0:
            return action
    return weighted[-1][1]


# -- the world -----------------------------------------------------------------------------------


@dataclass
class _Session:
    sid: int
    session: ChildSession
    server: str  # the parent, or a fallback ancestor
    fallback: int = -1  # index into the node's fallbacks; -1: its parent
    n: int = 0  # number of the request awaiting its answer


@dataclass(frozen=True)
class _Event:
    at: int
    kind: str
    node: str
    args: tuple[Any, ...] = ()


class World:
    def __init__(self, seed: int, config: Config, replica_class: type[Replica] = Replica) -> None:
        self.seed = seed
        self.config = config
        self.faults = config.faults
        self.rng = random.Random(seed)
        self.directory, self.keys = make_tree(self.rng, config, seed)
        self.opener = CachingOpener(self.directory)
        self.replica_class = replica_class
        self.nodes = [e.id for e in self.directory.nodes()]
        self.children = [n for n in self.nodes if self.directory.parent(n) is not None]
        self.paths = {n: frozenset(self.directory.path(n)) for n in self.nodes}  # scope -> the nodes on its path
        self.now = 0
        self.skew = {n: self.rng.randint(-config.max_skew_ms, config.max_skew_ms) for n in self.nodes}
        self.budget = {n: self.rng.choice(config.budgets) for n in self.nodes}
        self.batch_actions = {n: self.rng.choice(config.batch_actions) for n in self.nodes}
        self.replicas: dict[str, Replica] = {n: self._new_replica(n) for n in self.nodes}
        self._queue: list[tuple[int, int, _Event]] = []  # (time, sequence number, event)
        self._seq = 0
        self.trace: list[str] = []
        self.stats: Counter[str] = Counter()
        self.problems: list[str] = []
        self.ledger: dict[str, Action] = {}  # every action recorded by a local act
        self.inserted: Counter[tuple[str, str]] = Counter()  # (node, action id) -> insertions
        self.applied: Counter[tuple[str, StreamKey, int]] = Counter()  # (node, stream, seq) -> applications
        self.refused: list[str] = []
        self.down_until: dict[str, int] = {}
        self.link_down_until: dict[tuple[str, str], int] = {}  # (child, server) -> cut until
        # What a village's driver falls back to when its township cannot be reached: the county.
        self.fallbacks: dict[str, list[str]] = {
            n: [a for a in reversed(self.directory.path(n)[:-2])] if config.fallbacks else [] for n in self.nodes
        }
        self.links = [(c, s) for c in self.children for s in [self.directory.parent(c), *self.fallbacks[c]] if s]
        self.sessions: dict[str, _Session] = {}
        self.failures: Counter[str] = Counter()
        self.timer_at: dict[str, int] = {}
        self.next_sid = 0
        self.counters: Counter[str] = Counter()  # per-node action and errand numbers (never reused)
        self.memory: dict[tuple[str, str], list[ErrandState]] = {}  # what a desk saw before: stale views
        self.faulty = True
        self.backups: dict[str, bytes] = {}
        self.lost_with_disk: set[str] = set()  # action ids that existed only on a disk that died
        self.replacing_disk_until: dict[str, int] = {}

    # -- plumbing ------------------------------------------------------------------------------

    def _new_replica(self, node: str, snapshot: bytes | None = None) -> Replica:
        def now_ms() -> int:
            return EPOCH_MS + self.now + self.skew[node]

        if snapshot is None:
            replica = self.replica_class(
                node,
                self.keys[node],
                self.directory,
                now_ms=now_ms,
                opener=self.opener,
            )
        else:
            replica = self.replica_class.restore(
                snapshot,
                self.keys[node],
                self.directory,
                now_ms=now_ms,
                opener=self.opener,
            )
        replica.batch_actions = self.batch_actions[node]
        return replica

    def log(self, line: str) -> None:
        self.trace.append(f"{self.now} {line}")

    def schedule(self, delay: int, kind: str, node: str, *args: Any) -> None:
        self._seq += 1
        at = self.now + max(0, delay)
        heapq.heappush(self._queue, (at, self._seq, _Event(at, kind, node, args)))

    def collect(self) -> None:
        """Count what every replica applied since the last look (counts survive crashes)."""
        for node, replica in self.replicas.items():
            if not (replica.inserted or replica.applied or replica.events):
                continue
            inserted, applied = replica.take_instrumentation()
            for aid in inserted:
                self.inserted[node, aid] += 1
            for key, seq in applied:
                self.applied[node, key, seq] += 1
            for kind, peer, detail in replica.events:
                self.refused.append(f"{node} {kind} from {peer or '?'}: {detail}")
            replica.events.clear()

    def up(self, node: str) -> bool:
        return self.down_until.get(node, -1) <= self.now

    def link_up(self, child: str, server: str) -> bool:
        return self.link_down_until.get((child, server), -1) <= self.now

    def chance(self, p: float) -> bool:
        return self.faulty and p > 0 and self.rng.random() < p

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> Result:
        cfg = self.config
        for node in self.nodes:
            self.schedule(self._act_delay(node), "act", node)
        for child in self.children:
            self._arm_timer(child, self.rng.randint(0, cfg.sync_interval_ms))
        for _ in range(self.faults.partitions):
            child, server = self.rng.choice(self.links)
            self.schedule(self.rng.randint(0, cfg.duration_ms), "partition", child, server)
        if self.faults.backup_restores:
            for node in self.nodes:
                self.schedule(self.rng.randint(0, cfg.backup_interval_ms), "backup", node)
            for _ in range(self.faults.backup_restores):
                at = self.rng.randint(cfg.duration_ms // 4, cfg.duration_ms)
                self.schedule(at, "disk_dies", self.rng.choice(self.nodes))
        for _ in range(self.faults.crashes):
            self.schedule(self.rng.randint(0, cfg.duration_ms), "crash", self.rng.choice(self.nodes))
        self.schedule(cfg.duration_ms, "calm", "")
        end = cfg.duration_ms + cfg.grace_ms
        while self._queue and self._queue[0][0] <= end:
            self._step(heapq.heappop(self._queue)[2])
        # Timers stop; what is on the wire still arrives, sessions under way finish.
        while self._queue:
            event = heapq.heappop(self._queue)[2]
            if event.kind in ("request", "response", "timeout", "restart"):
                self._step(event)
        self.sessions.clear()
        self.settle()
        self.collect()
        self.problems.extend(check(self))
        return self.result()

    def _step(self, event: _Event) -> None:
        self.now = event.at
        getattr(self, f"_on_{event.kind}")(event.node, *event.args)
        self.collect()

    def _exp(self, mean: int) -> int:
        return max(1, int(self.rng.expovariate(1.0 / mean)))

    def _on_calm(self, _: str) -> None:
        """Traffic stops, faults stop, links heal, crashed nodes come back."""
        self.faulty = False
        self.log("calm: traffic and faults stop")
        self.link_down_until.clear()
        for node in sorted(self.down_until):
            if not self.up(node) and self.replacing_disk_until.get(node, 0) <= self.now:
                self.down_until[node] = self.now
                self._on_restart(node)

    def settle(self) -> None:
        """Sessions bottom-up then top-down over perfect links until a whole round changes nothing."""
        order = sorted(self.children, key=lambda n: (-len(self.paths[n]), n))
        for round_no in range(1, self.config.settle_rounds + 1):
            before = {n: r.fingerprint() for n, r in self.replicas.items()}
            for child in [*order, *reversed(order)]:
                parent = self.directory.parent(child)
                assert parent is not None
                try:
                    run_session(
                        self.replicas[child],
                        self.replicas[parent],
                        budget=self.budget[child],
                        max_requests=self.config.max_requests,
                    )
                except SessionRunaway as exc:
                    self.problems.append(f"runaway session: {exc}")
                self.collect()
            after = {n: r.fingerprint() for n, r in self.replicas.items()}
            self.stats["settle_rounds"] = round_no
            if before == after:
                return
        self.problems.append(f"not quiescent after {self.config.settle_rounds} rounds of perfect sessions")

    # -- staff ---------------------------------------------------------------------------------

    def _on_act(self, node: str) -> None:
        if not self.faulty:
            return
        if self.up(node):
            self._act(node)
        self.schedule(self._act_delay(node), "act", node)

    def _act_delay(self, node: str) -> int:
        county, town, village = self.config.act_interval_ms
        role = self.directory.role(node)
        return self._exp(county if role == COUNTY else town if role == TOWN else village)

    def _new_id(self, node: str) -> str:
        self.counters[node] += 1
        return f"{node}:a{self.counters[node]}"

    def _act(self, node: str) -> None:
        replica = self.replicas[node]
        role = self.directory.role(node)
        views = [
            (e, p.state)
            for e, p in replica.projections().items()
            if p.state is not None and node in self.paths[p.state.scope]
        ]
        mine = [
            (e, s)
            for e, s in views
            if s.pending_to == node or (s.pending_to is None and s.holder == node and s.stage != CLOSED)
        ]
        registered = self.counters[f"{node}:errands"]
        early = self.now < self.config.duration_ms * 3 // 5  # later, errands already registered run their course
        can_register = role in (VILLAGE, TOWN) and registered < self.config.errands_per_node and early
        if self.chance(self.faults.stale) and views:
            self._stale(node, views)
            return
        if can_register and (not mine or self.rng.random() < 0.2):
            self._register(node)
            return
        if mine and self.rng.random() < 0.85:
            errand, state = self.rng.choice(mine)
        elif views:
            errand, state = self.rng.choice(views)
        else:
            return
        self.memory.setdefault((node, errand), []).append(state)
        self._try(node, errand, stale_base=None)

    def _register(self, node: str) -> None:
        self.counters[f"{node}:errands"] += 1
        n = self.counters[f"{node}:errands"]
        errand = f"{node}-E{n}"
        action_id = self._new_id(node)
        matter = self.rng.choice(("MZ-001 最低生活保障申请", "RS-014 城乡居民养老保险登记", "ZR-003 宅基地使用审批"))

        def build(_: Projection, at: int) -> Action:
            return Register(
                id=action_id,
                errand=errand,
                scope=node,
                node=node,
                actor=f"{node}-staff",
                role=ROLE_OF[self.directory.role(node)],
                at=at,
                matter=matter,
                applicant=Applicant(name=self.rng.choice(("王秀英", "李建国", "张桂兰", "刘德华"))),
                receipt=f"{node}-250101-{n:04d}X",
            )

        self._record(node, errand, build, "register")

    def _try(self, node: str, errand: str, *, stale_base: ErrandState | None) -> None:
        """Take a valid action on ``errand`` — judged on ``stale_base`` if given (an old view)."""
        action_id = self._new_id(node)
        rng = self.rng
        directory = self.directory

        def build(before: Projection, at: int) -> Action:
            state = stale_base or before.state
            if state is None:
                raise ActionRefused(f"{errand} is not known at {node}")
            common: dict[str, Any] = {
                "id": action_id,
                "errand": errand,
                "scope": state.scope,
                "node": node,
                "actor": f"{node}-staff",
                "role": ROLE_OF[directory.role(node)],
                "at": at,
                "base": state.version,
            }
            valid = [
                (w, a)
                for w, a in candidate_actions(state, node, directory, rng, common)
                if judge(state, a, directory) is None and (stale_base is None or is_main_line(a))
            ]
            action = pick(rng, valid)
            if action is None:
                raise ActionRefused("nothing to do")
            return action

        self._record(node, errand, build, "stale" if stale_base else "act")

    def _stale(self, node: str, views: list[tuple[str, ErrandState]]) -> None:
        """Staff act on an old screen, or ask for what the rules forbid; the rules must sort it out."""
        errand, state = self.rng.choice(views)
        seen = self.memory.get((node, errand), [])
        choice = self.rng.random()
        if seen and choice < 0.5:
            self._try(node, errand, stale_base=self.rng.choice(seen))  # judged now on the current state
            return
        if choice < 0.8 and state.version > 1:
            # The screen shows the current stage but an older version: a valid action on a stale base.
            old = msgspec.structs.replace(state, version=state.version - self.rng.randint(1, min(2, state.version - 1)))
            self._try(node, errand, stale_base=old)
            return
        action_id = self._new_id(node)

        def build(before: Projection, at: int) -> Action:  # the wrong desk advances the main line
            return Decide(
                id=action_id,
                errand=errand,
                scope=state.scope,
                node=node,
                actor=f"{node}-staff",
                role=ROLE_OF[self.directory.role(node)],
                at=at,
                base=before.state.version if before.state else 0,
                outcome="approved",
            )

        self._record(node, errand, build, "forbidden")

    def _record(self, node: str, errand: str, build: Callable[[Projection, int], Action], how: str) -> None:
        replica = self.replicas[node]
        made: list[Action] = []

        def wrapped(before: Projection, at: int) -> Action:
            made.append(build(before, at))
            return made[-1]

        try:
            replica.act(errand, wrapped)
        except ActionRefused as exc:
            self.stats[f"refused_locally_{how}"] += 1
            self.log(f"{node} {how} {errand} refused locally: {exc.message[:60]}")
            return
        action = made[-1]
        self.ledger[action.id] = action
        self.stats[f"acted_{how}"] += 1
        self.log(f"{node} {how} {errand} {type(action).__name__} {action.id} base={action.base}")
        self._poke(node)

    # -- sessions ------------------------------------------------------------------------------

    def _poke(self, node: str) -> None:
        """Something new to send: the node's driver wakes (``Store.on_change``)."""
        if self.directory.parent(node) is not None and node not in self.sessions:
            self._arm_timer(node, self.rng.randint(10, 100))

    def _arm_timer(self, child: str, delay: int) -> None:
        at = self.now + delay
        if child in self.timer_at and self.timer_at[child] <= at and self.timer_at[child] >= self.now:
            return
        self.timer_at[child] = at
        self.schedule(delay, "timer", child, at)

    def _on_timer(self, child: str, at: int) -> None:
        if self.timer_at.get(child) != at:
            return
        del self.timer_at[child]
        if not self.up(child) or child in self.sessions:
            return
        parent = self.directory.parent(child)
        assert parent is not None
        self._start_session(child, parent, -1)

    def _start_session(self, child: str, server: str, fallback: int) -> None:
        self.next_sid += 1
        replica = self.replicas[child]
        state = _Session(self.next_sid, ChildSession(replica, budget=self.budget[child]), server, fallback)
        self.sessions[child] = state
        self.stats["sessions" if fallback < 0 else "fallback_sessions"] += 1
        self.log(f"{child} session {state.sid} with {server} starts")
        self._send_request(child, state, state.session.start())

    def _end_session(self, child: str, ok: bool, why: str = "") -> None:
        state = self.sessions.pop(child, None)
        if state is None:
            return
        self.stats["max_session_requests"] = max(self.stats["max_session_requests"], state.n)
        interval = self.config.sync_interval_ms
        fallbacks = self.fallbacks[child]
        if not ok and self.up(child):
            # SyncDriver._session: the parent failed again (one failure may be a blip), so go round it
            # through each fallback ancestor in turn before counting a failure.
            nxt = 0 if state.fallback < 0 and self.failures[child] >= 1 else state.fallback + 1
            if state.fallback >= 0 or self.failures[child] >= 1:
                if nxt < len(fallbacks):
                    self.log(f"{child} session {state.sid} with {state.server} failed: {why}; trying {fallbacks[nxt]}")
                    self._start_session(child, fallbacks[nxt], nxt)
                    return
        if ok:
            self.failures[child] = 0
            report: SessionReport = state.session.report
            self.stats["sessions_ok"] += 1
            self.log(f"{child} session {state.sid} done pushed={report.pushed} pulled={report.pulled}")
            delay = self.rng.randint(5, 50) if (report.pulled or report.pushed) else interval
        else:
            self.failures[child] += 1
            self.stats["sessions_failed"] += 1
            self.log(f"{child} session {state.sid} failed: {why}")
            delay = min(self.config.max_backoff_ms, interval * 2 ** min(self.failures[child], 10))
        if self.up(child):
            self._arm_timer(child, int(delay * self.rng.uniform(0.5, 1.0)))

    def _latency(self) -> int:
        delay = self.rng.randint(*self.config.latency_ms)
        if self.chance(self.faults.delay):
            delay += self.rng.randint(*self.config.long_delay_ms)
            self.stats["delayed"] += 1
        return delay

    def _maybe_shuffle(self, message: Any) -> Any:
        if isinstance(message, (PushRequest, PullResponse)) and len(message.frames) > 1:
            if self.chance(self.faults.shuffle):
                frames = list(message.frames)
                self.rng.shuffle(frames)
                self.stats["shuffled"] += 1
                return replace_frames(message, tuple(frames))
        return message

    def _transmit(self, kind: str, child: str, server: str, sid: int, n: int, message: Any, drop: float) -> None:
        if not self.link_up(child, server) or self.chance(drop):
            self.stats[f"{kind}_lost"] += 1
            self.log(f"{kind} {type(message).__name__} of {child}#{sid}.{n} lost")
            return
        self.schedule(self._latency(), kind, child, server, sid, n, self._maybe_shuffle(message))
        if self.chance(self.faults.duplicate):
            self.stats[f"{kind}_duplicated"] += 1
            delay = self._latency() + self.rng.randint(0, DUPLICATE_LAG_MS)
            self.schedule(delay, kind, child, server, sid, n, self._maybe_shuffle(message))

    def _send_request(self, child: str, state: _Session, request: Request) -> None:
        state.n += 1
        if state.n > self.config.max_requests:
            phase = state.session.phase
            self.problems.append(f"runaway session: {child} still in {phase} after {state.n - 1} requests")
            self._end_session(child, False, "runaway")
            return
        self._transmit("request", child, state.server, state.sid, state.n, request, self.faults.drop_request)
        self.schedule(self.config.timeout_ms, "timeout", child, state.sid, state.n)

    def _on_request(self, child: str, parent: str, sid: int, n: int, request: Request) -> None:
        if not self.up(parent) or not self.link_up(child, parent):
            self.stats["request_lost"] += 1
            self.log(f"request of {child}#{sid}.{n} lost: {parent} or the link is down")
            return
        replica = self.replicas[parent]
        if isinstance(request, PushRequest) and request.frames and self.chance(self.faults.crash_mid_apply):
            k = self.rng.randrange(len(request.frames))
            serve(replica, replace_frames(request, request.frames[:k]))
            self.log(f"{parent} crashes after {k} of {len(request.frames)} pushed frames of {child}")
            self.collect()
            self._crash(parent)
            return
        try:
            response = serve(replica, request)
        except SanjiError as exc:
            self.problems.append(f"{parent} refused a request of {child}: {exc.message}")
            return
        if isinstance(response, PushResponse):
            for r in response.results:
                self.stats[f"pushed_{r.status}"] += 1
            if any(r.status == "stored" for r in response.results):
                self._poke(parent)
        self.log(f"{parent} answers {type(request).__name__} of {child}#{sid}.{n}")
        self._transmit("response", child, parent, sid, n, response, self.faults.drop_response)

    def _on_response(self, child: str, server: str, sid: int, n: int, response: Response) -> None:
        if not self.up(child) or not self.link_up(child, server):
            self.stats["response_lost"] += 1
            return
        state = self.sessions.get(child)
        replica = self.replicas[child]
        if state is None or state.sid != sid or state.n != n or not isinstance(response, state.session.expecting or ()):
            if isinstance(response, PullResponse) and response.frames and self.chance(self.faults.stray_pages):
                results = replica.receive(response.frames, peer=server)
                self.stats["stray_pages_taken"] += 1
                for r in results:
                    self.stats[f"stray_{r.status}"] += 1
                self.log(f"{child} takes a late page of #{sid}.{n}: {[r.status for r in results]}")
            return
        if isinstance(response, PullResponse) and response.frames and self.chance(self.faults.crash_mid_apply):
            k = self.rng.randrange(len(response.frames))
            replica.receive(response.frames[:k], peer=state.session.parent)
            self.log(f"{child} crashes after {k} of {len(response.frames)} pulled frames")
            self.collect()
            self._crash(child)
            return
        try:
            request = state.session.step(response)
        except SanjiError as exc:
            self.problems.append(f"{child}'s session with {server} broke: {exc.message}")
            self._end_session(child, False, exc.message)
            return
        if request is None:
            self._end_session(child, True)
        else:
            self._send_request(child, state, request)

    def _on_timeout(self, child: str, sid: int, n: int) -> None:
        state = self.sessions.get(child)
        if state is not None and state.sid == sid and state.n == n:
            self._end_session(child, False, f"no answer to request {n}")

    # -- faults --------------------------------------------------------------------------------

    def _on_partition(self, child: str, server: str) -> None:
        if not self.faulty:
            return
        until = self.now + self.rng.randint(*self.config.partition_ms)
        self.link_down_until[child, server] = max(until, self.link_down_until.get((child, server), 0))
        self.stats["partitions"] += 1
        self.log(f"link {child}-{server} cut until {until}")

    def _on_crash(self, node: str) -> None:
        if self.faulty and self.up(node):
            self._crash(node)

    def _crash(self, node: str, *, snapshot: bytes | None = None, at_least: int = 0) -> None:
        self.stats["crashes"] += 1
        self.replicas[node] = self._new_replica(node, self.replicas[node].snapshot() if snapshot is None else snapshot)
        self.sessions.pop(node, None)
        self.timer_at.pop(node, None)
        downtime = at_least + (self.rng.randint(*self.config.crash_downtime_ms) if self.faulty else 0)
        self.down_until[node] = self.now + downtime
        self.log(f"{node} crashes; back at {self.now + downtime}")
        self.schedule(downtime, "restart", node)

    def _on_backup(self, node: str) -> None:
        if not self.faulty:
            return
        if self.up(node):
            self.backups[node] = self.replicas[node].snapshot(backup=True)
            self.log(f"{node} backed up")
        self.schedule(self.config.backup_interval_ms, "backup", node)

    def _on_disk_dies(self, node: str) -> None:
        if not self.faulty or not self.up(node):
            return
        lost = self.replicas[node].actions()
        elsewhere = {aid for n in self.nodes if n != node for aid in self.replicas[n].actions()}
        # No backup yet: the node is installed afresh, and its operator restores it as one (it may have
        # numbered batches that sit elsewhere, so it carries the restored mark like any backup copy).
        backup = self.backups.get(node) or self._new_replica(node).snapshot(backup=True)
        restored = self.replica_class.restore(backup, self.keys[node], self.directory)
        kept, streams = restored.actions(), restored.streams()
        gone = sorted(aid for aid in lost if aid not in elsewhere and aid not in kept)
        # What the new disk applies again is applied for the first time there: forget the old counts.
        for n, aid in [k for k in self.inserted if k[0] == node and k[1] not in kept]:
            del self.inserted[n, aid]
        for n, key, seq in [k for k in self.applied if k[0] == node and k[2] > streams.get(k[1], 0)]:
            del self.applied[n, key, seq]
        self.lost_with_disk.update(gone)
        self.stats["disks_died"] += 1
        self.log(f"{node} disk dies; restored from its backup, {len(gone)} actions lost with the disk")
        # Replacing a disk and restoring it takes far longer than any message stays on the wire: whatever
        # the old disk had sent has landed (or is lost) before the new one starts. Without this, a page of
        # batches pushed by the dead disk could reach an ancestor *after* the restored node, told by
        # every peer that nothing more of its stream exists anywhere, numbered the same batch anew: no
        # rule can see a message still in flight from a process that no longer exists (seed 130).
        self._crash(node, snapshot=backup, at_least=self._in_flight_bound())
        self.replacing_disk_until[node] = self.down_until[node]  # calm does not hurry a disk replacement

    def _in_flight_bound(self) -> int:
        """The longest a message can travel: the worst latency, a long delay, and a duplicate's lag."""
        c = self.config
        return c.latency_ms[1] + c.long_delay_ms[1] + DUPLICATE_LAG_MS + 1

    def _on_restart(self, node: str) -> None:
        if not self.up(node):
            return
        self.log(f"{node} restarts")
        if self.directory.parent(node) is not None and node not in self.sessions:
            self._arm_timer(node, self.rng.randint(10, 200))

    # -- the result ----------------------------------------------------------------------------

    def result(self) -> Result:
        for node in self.nodes:
            self.log(f"final {node} {self.replicas[node].digests()}")
        trace_digest = hashlib.sha256("\n".join(self.trace).encode()).hexdigest()
        material = repr(sorted((n, sorted(r.digests().items())) for n, r in self.replicas.items()))
        self.stats["actions"] = len(self.ledger)
        self.stats["errands"] = len({a.errand for a in self.ledger.values()})
        self.stats["nodes"] = len(self.nodes)
        problems = tuple(dict.fromkeys(self.problems))
        return Result(
            seed=self.seed,
            ok=not problems,
            problems=problems,
            trace_digest=trace_digest,
            state_digest=hashlib.sha256(material.encode()).hexdigest(),
            stats=tuple(sorted(self.stats.items())),
            trace=tuple(self.trace) if self.config.keep_trace else (),
        )


def replace_frames(message: Any, frames: tuple[bytes, ...]) -> Any:
    return msgspec.structs.replace(message, frames=frames)


# -- the checker ---------------------------------------------------------------------------------


def check(world: World) -> list[str]:
    """Every invariant the simulation asserts, as a list of what broke (empty when all hold)."""
    directory = world.directory
    replicas = world.replicas
    problems: list[str] = []
    # A disk restored from a backup may meet batches it wrote before it died: a fork, rightly
    # quarantined. Only under honest faults is every quarantine or refusal a failure.
    honest = not world.faults.backup_restores

    universe: dict[str, Action] = {}
    for node in world.nodes:
        for aid, action in replicas[node].actions().items():
            first = universe.setdefault(aid, action)
            if first != action:
                problems.append(f"two different actions under id {aid}")
    for aid, action in world.ledger.items():
        if aid not in universe and aid not in world.lost_with_disk:
            problems.append(f"loss: {aid} recorded at {action.node} is held nowhere")
            universe[aid] = action
    by_errand: dict[str, list[Action]] = {}
    scope_of: dict[str, str] = {}
    for action in universe.values():
        by_errand.setdefault(action.errand, []).append(action)
        scope_of.setdefault(action.errand, action.scope)

    # No loss, and nothing off the path: a node holds exactly the actions of the errands it is on the path of.
    for node in world.nodes:
        replica = replicas[node]
        held = replica.actions()
        for aid, action in sorted(universe.items()):
            on_path = node in world.paths[action.scope]
            if on_path and aid not in held:
                problems.append(f"loss: {node} lacks {aid} ({type(action).__name__} of {action.errand})")
            elif not on_path and aid in held:
                problems.append(f"leak: {node} holds {aid} of {action.errand}, not on its path")
        for errand in replica.projections():
            if node not in world.paths.get(scope_of.get(errand, ""), ()):
                problems.append(f"leak: {node} holds errand {errand} off its path")
        if replica.outbox_size():
            problems.append(f"{node}: {replica.outbox_size()} actions never sealed")
        if replica.held_count():
            problems.append(f"{node}: batches still held waiting for a gap: {replica.held_keys()}")
        if replica.quarantine and honest:
            q = replica.quarantine[0]
            problems.append(
                f"{node}: {len(replica.quarantine)} quarantined, first {q.origin}->{q.scope}#{q.seq}: {q.reason}"
            )
        if replica.foreign():
            problems.append(f"{node}: foreign actions under honest faults: {sorted(replica.foreign())[:3]}")

    # Convergence: one digest per errand on its whole path, the digest of all its actions.
    for errand, acts in sorted(by_errand.items()):
        truth = project(errand, acts, directory)
        for node in directory.path(scope_of[errand]):
            proj = replicas[node].projection(errand)
            if proj is None:
                problems.append(f"divergence: {node} does not hold errand {errand}")
            elif proj.digest != truth.digest:
                problems.append(
                    f"divergence: {errand} at {node} is {proj.digest[:12]}, all actions give {truth.digest[:12]}"
                )

    # Nothing applied twice, ever (counted across crashes).
    for (node, aid), count in sorted(world.inserted.items()):
        if count > 1:
            problems.append(f"double application: {node} inserted {aid} {count} times")
    for (node, key, seq), count in sorted(world.applied.items()):
        if count > 1:
            problems.append(f"double application: {node} applied batch {key}#{seq} {count} times")

    # Honest faults are never taken for attacks.
    if honest:
        problems.extend(f"refused under honest faults: {line}" for line in world.refused[:5])

    # Replays change nothing: every frame held anywhere, to every node, in a random order, twice.
    frames = sorted({f for n in world.nodes for f in replicas[n].frames()})
    replay_rng = random.Random(world.seed ^ 0x5EED)
    for node in world.nodes:
        replica = replicas[node]
        before = replica.fingerprint()
        digests = replica.digests()
        order = frames * 2
        replay_rng.shuffle(order)
        results = replica.receive(order, peer="replay")
        for frame, result in zip(order, results, strict=True):
            addressed = node in world.opener(frame).payload.audience or world.opener(frame).origin == node
            if addressed and result.status != "duplicate":
                problems.append(f"replay: {node} took a held frame as {result.status} ({result.message})")
                break
            if not addressed and result.status != "refused":
                problems.append(f"replay: {node} took a frame not addressed to it as {result.status}")
                break
        replica.events.clear()
        inserted, applied = replica.take_instrumentation()
        if inserted or applied:
            problems.append(f"replay: {node} applied {len(applied)} batches and {len(inserted)} actions again")
        if replica.fingerprint() != before or replica.digests() != digests:
            problems.append(f"replay: {node} changed")
    return problems


# -- entry points --------------------------------------------------------------------------------


def run(seed: int, config: Config | None = None, *, replica_class: type[Replica] = Replica) -> Result:
    """Simulate one seed; the same seed and config always give the same result."""
    return World(seed, config or Config(), replica_class).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.simulation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--no-fallback", action="store_true", help="villages never go round a dark township")
    parser.add_argument("--quiet-faults", action="store_true", help="no faults at all (a baseline)")
    parser.add_argument("--backups", type=int, default=0, help="disks that die and are restored from a backup")
    parser.add_argument("--trace", action="store_true", help="print the trace of each failing seed")
    args = parser.parse_args(argv)
    config = Config(fallbacks=not args.no_fallback, keep_trace=args.trace)
    if args.quiet_faults:
        config = replace(config, faults=Faults.none())
    if args.backups:
        config = replace(config, faults=replace(config.faults, backup_restores=args.backups))
    failed: list[int] = []
    totals: Counter[str] = Counter()
    started = time.perf_counter()
    for seed in range(args.start, args.start + args.seeds):
        result = run(seed, config)
        totals.update(dict(result.stats))
        if not result.ok:
            failed.append(seed)
            print(f"seed {seed} FAILED ({len(result.problems)} problems)", flush=True)
            for problem in result.problems[:10]:
                print(f"    {problem}")
            if args.trace:
                print("\n".join(f"      {line}" for line in result.trace))
    elapsed = time.perf_counter() - started
    keys = ("actions", "sessions", "crashes", "partitions", "request_lost", "response_lost", "delayed", "shuffled")
    summary = ", ".join(f"{k}={totals[k]}" for k in keys)
    print(f"{args.seeds} seeds from {args.start}: {len(failed)} failed in {elapsed:.1f}s ({summary})")
    if failed:
        print("failing seeds: " + " ".join(map(str, failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
