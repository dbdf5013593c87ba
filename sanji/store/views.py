"""Reading the node: errands and their histories, applicants as this node may see them, the
worklist, digests, the node's status and its own report.

``Views`` builds on ``Documents`` (the reports of the nodes below feed the status's alarms) and
``Traffic`` (the report counts the day's bytes).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypedDict, Unpack

import msgspec
from sqlalchemy import Select, func, or_, select

from protocol.actions import Action, Register
from protocol.batch import stored_actions
from protocol.catalogue import MAX_RULES
from protocol.encoding import decode_action
from protocol.hlc import wall_seconds
from protocol.ledger import Handoff, handoff_reached
from protocol.names import visible_text
from protocol.sealing import ApplicantView, applicant_view
from protocol.session import ALARM_PREFIX, NodeReport
from protocol.stages import ANSWERED, DECIDED, ENDED_LABELS, IN_TRANSIT, SUPPLEMENT, shown_stage, stored_stage
from protocol.stream import StreamKey
from sanji.store import schema as t
from sanji.store.documents import Documents
from sanji.store.rows import plain as _plain
from sanji.store.schema import AnnotationKind
from sanji.store.section import INCOMPLETE
from sanji.store.traffic import Traffic


def worklist_query(node_id: str) -> Select[Any]:
    """``Views.worklist``'s query: every arm of its ``OR`` is an index search (``holder``, the partial
    ``pending_to`` index of migration 0021, ``scope``), so it reads the errands in the node's hands, not the store.

    The third arm: errands this node registered that wait for materials a one-time notice asked for (待补正),
    wherever they are held: its agent must bring them (补交材料), so they are its work too."""
    mine = (t.errands.c.holder == node_id) & t.errands.c.pending_to.is_(None) & (t.errands.c.stage != "closed")
    owed = (t.errands.c.scope == node_id) & (t.errands.c.stage == SUPPLEMENT)
    query = select(t.errands).where(mine | (t.errands.c.pending_to == node_id) | owed)
    return query.order_by(t.errands.c.registered_at, t.errands.c.id)


# What a list of errands shows: every column but ``state`` (the whole projected errand, the row's bulk), so
# the ordered walk of a page reads the index and the narrow columns; ``Views.errands`` then reads the page's
# states by primary key.
LISTED = tuple(c for c in t.errands.c if c.name != "state")


class ErrandsFilter(TypedDict, total=False):
    """Which errands a list keeps (``errands_query``, ``Views.errands``): the one filter of 全部办件, the API's and
    the command line's lists and the duties. A field left out keeps any; ``stage`` is the stage as shown
    (``protocol.stages.shown_stage``: ``not_accepted`` finds 不予受理, ``decided`` only what was decided), as the
    ledger's filter reads it; ``stages_in`` and ``stages_not_in`` are stages as stored."""

    stage: str | None
    holder: str | None
    matter: str | None
    scope: str | None
    receipt: str | None
    stages_in: Sequence[str] | None
    stages_not_in: Sequence[str] | None
    text: str
    text_matters: Sequence[str]


def errands_query(**flt: Unpack[ErrandsFilter]) -> Select[Any]:
    """``Views.errands``' query, unordered: the caller orders it by ``(registered_at, id)``, the order the
    ``ix_errands_registered_at_id`` index (migration 0031) holds, so a page of 全部办件 walks the index from
    its end and stops at the page, never sorting the table. ``text`` loses the characters that show as nothing
    (``protocol.names.visible_text``: PostgreSQL refuses a NUL)."""
    query: Select[Any] = select(*LISTED).where(t.errands.c.stage != INCOMPLETE)
    text = visible_text(flt.get("text", ""))
    if text:
        needle = text.lower()
        searched = (t.errands.c.receipt, t.errands.c.id, t.errands.c.matter, t.errands.c.applicant_name)
        found = [func.lower(c).contains(needle, autoescape=True) for c in searched]
        if text_matters := flt.get("text_matters", ()):
            found.append(t.errands.c.matter.in_(list(text_matters)))
        query = query.where(or_(*found))
    if (stages_in := flt.get("stages_in")) is not None:
        query = query.where(t.errands.c.stage.in_(stages_in))
    if (stages_not_in := flt.get("stages_not_in")) is not None:
        query = query.where(t.errands.c.stage.not_in(stages_not_in))
    if shown := flt.get("stage"):
        query = query.where(t.errands.c.stage == stored_stage(shown))
        if shown in ENDED_LABELS:
            query = query.where(t.errands.c.outcome == shown)
        elif shown == DECIDED:
            query = query.where(t.errands.c.outcome.not_in(list(ENDED_LABELS)))
    for name in ("receipt", "holder", "matter", "scope"):
        if value := flt.get(name):
            query = query.where(t.errands.c[name] == value)
    return query


def annotations_query(kind: AnnotationKind, limit: int) -> Select[Any]:
    """``Views.annotations``' query: the partial ``(kind, at, id)`` index (migrations 0022-0024) gives the newest
    of one kind first, so it reads what it returns, not every action; of two at the same time, the greater id
    first, so a window of the newest ends at the same one every time."""
    a = t.actions.c
    return (
        select(a.body)
        .where(a.kind == kind, t.IN_KIND_INDEX, a.status == "applied")
        .order_by(a.at.desc(), a.id.desc())
        .limit(limit)
    )


# Batches of one stream after a receiver's acknowledgement that ``Views.handoffs`` reads to tell 待发送 from 已送达:
# a receiver further behind (a village dark for months) is not read at every page view; its hand-offs are
# said queued only while the outbox holds them, else not said at all.
HANDOFF_SCAN = 256
SEALED_IDS_KEPT = 8192  # batches whose action ids a store keeps in memory for ``handoffs`` (a few MB at most)


class Views(Documents, Traffic):
    """What screens, the API, duties and reports read; nothing here writes."""

    _sealed_ids: dict[tuple[str, int], frozenset[str]]  # set by ``Store.__init__``; ``_remember_sealed``

    async def errand(self, errand_id: str, *, include_complaints: bool = False) -> dict[str, Any] | None:
        async with self.db.reader.connect() as conn:
            row = (await conn.execute(select(t.errands).where(t.errands.c.id == errand_id))).mappings().first()
            if row is None:
                return None
            acts = (
                await conn.execute(
                    select(t.actions.c.body, t.actions.c.status, t.actions.c.reason)
                    .where(t.actions.c.errand == errand_id)
                    .order_by(t.actions.c.at, t.actions.c.id)
                )
            ).all()
        history = []
        for body, status, reason in acts:
            action = decode_action(body)
            item = msgspec.to_builtins(action)
            if isinstance(action, Register):
                item.pop("sealed", None)  # never hand the ciphertext on; show what this node may read
                item["applicant"] = self._applicant_dict(self._applicant_view(action))
            if item["kind"] == "complain" and not include_complaints:
                continue  # complaints are for supervisors and inspectors only, never the desk complained about
            item["status"] = status
            if reason:
                item["reason"] = reason
            history.append(item)
        return {**_plain(row), "history": history}

    async def errands(
        self,
        *,
        newest_first: bool = False,
        limit: int = 100,
        offset: int = 0,
        **flt: Unpack[ErrandsFilter],
    ) -> tuple[list[dict[str, Any]], int]:
        """Errands in registration order (oldest first unless ``newest_first``), a page of them and how many match.

        ``text``: only errands whose receipt number, id, matter code or applicant's name holds it (any case), or
        whose matter is one of ``text_matters`` (the codes a matter-name search found). The name is the one
        applicant field kept in clear (``protocol.sealing``), shown in every list: searching it tells a caller
        nothing the list would not; the sealed details (ID number, phone) are never searched.
        """
        query = errands_query(**flt)
        columns = (t.errands.c.registered_at, t.errands.c.id)
        order = [c.desc() for c in columns] if newest_first else list(columns)
        async with self.db.reader.connect() as conn:
            # counted by the id alone: an index, never the rows (their state blobs least of all)
            counted = query.with_only_columns(t.errands.c.id).subquery()
            total = await conn.scalar(select(func.count()).select_from(counted))
            page = await conn.execute(query.order_by(*order).limit(limit).offset(offset))
            rows = [{**_plain(r), "state": None} for r in page.mappings()]
            # the state of the page's rows only (the screens' summaries read it), by primary key
            for start in range(0, len(rows), 500):
                chunk = {r["id"]: r for r in rows[start : start + 500]}
                found = await conn.execute(
                    select(t.errands.c.id, t.errands.c.state).where(t.errands.c.id.in_(list(chunk)))
                )
                for errand_id, state in found:
                    chunk[errand_id]["state"] = state
        return rows, int(total or 0)

    async def handoffs(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Handoff]:
        """Of the errands ``rows`` (as ``errand``/``errands`` read them) in transit, whether the hand-off this node
        wrote has reached its receiver (``protocol.ledger.handoff_reached``): ``queued`` while it is still in the
        outbox or in a batch the receiver has not acknowledged, ``delivered`` once the receiver holds it, ``""``
        for a hand-off another node wrote or a receiver this node keeps no record of. What a receiver holds is
        what this node recorded of it (``peer_acks``): its parent's cursors and push acknowledgements, a child's
        report of what it holds of this node's streams (``Store.record_child_holds``). Reads only the batches the
        receivers have not acknowledged, a stream at a time."""
        moving = {r["id"]: r for r in rows if r.get("stage") in IN_TRANSIT and r.get("pending_to")}
        if not moving:
            return {}
        a = t.actions.c
        async with self.db.reader.connect() as conn:
            latest: dict[str, tuple[int, str, str]] = {}  # errand -> (at, id, author) of its last hand-off
            found = await conn.execute(
                select(a.errand, a.at, a.id, a.node).where(
                    a.errand.in_(sorted(moving)), a.kind == "handoff", a.status == "applied"
                )
            )
            for errand, at, action_id, author in found:
                if errand not in latest or (at, action_id) > latest[errand][:2]:
                    latest[errand] = (at, action_id, author)
            ours = {e: h[1] for e, h in latest.items() if h[2] == self.node_id}
            receivers = sorted({moving[e]["pending_to"] for e in ours})
            acked: dict[tuple[str, str], int] = {}
            heard: set[str] = set()
            if ours:
                acks = await conn.execute(
                    select(t.peer_acks.c.peer, t.peer_acks.c.scope, t.peer_acks.c.seq).where(
                        t.peer_acks.c.peer.in_(receivers), t.peer_acks.c.origin == self.node_id
                    )
                )
                for peer, scope, seq in acks:
                    acked[(peer, scope)] = seq
                    heard.add(peer)
            # A neighbour of which nothing is recorded holds nothing of ours yet: the parent answers every session's
            # cursors, a child reports what it holds as it opens each session (``record_child_holds``).
            heard.update(n for n in (self.directory.parent(self.node_id), *self.directory.children(self.node_id)) if n)
            waiting: set[str] = set()
            if ours:
                unsealed = await conn.execute(
                    select(t.outbox.c.action_id).where(t.outbox.c.action_id.in_(sorted(ours.values())))
                )
                waiting.update(unsealed.scalars())
            # Per (receiver, stream): the ids in the batches after what that receiver acknowledged, when they are
            # few enough to read (``HANDOFF_SCAN``); a receiver further behind is not read at all, and what was
            # handed to it is said only where the outbox still holds it (unknown, not guessed, otherwise).
            unacked_in: dict[tuple[str, str], set[str]] = {}
            too_far: set[tuple[str, str]] = set()
            for to, scope in sorted({(moving[e]["pending_to"], moving[e]["scope"]) for e in ours}):
                since = acked.get((to, scope), 0)
                seqs = (
                    (
                        await conn.execute(
                            select(t.batches.c.seq)
                            .where(
                                t.batches.c.origin == self.node_id, t.batches.c.scope == scope, t.batches.c.seq > since
                            )
                            .order_by(t.batches.c.seq)
                            .limit(HANDOFF_SCAN + 1)
                        )
                    )
                    .scalars()
                    .all()
                )
                if len(seqs) > HANDOFF_SCAN:
                    too_far.add((to, scope))
                    continue
                ids = unacked_in.setdefault((to, scope), set())
                unread = [q for q in seqs if (scope, q) not in self._sealed_ids]
                if unread:
                    frames = await conn.execute(
                        select(t.batches.c.seq, t.batches.c.frame).where(
                            t.batches.c.origin == self.node_id, t.batches.c.scope == scope, t.batches.c.seq.in_(unread)
                        )
                    )
                    for seq, frame in frames:
                        self._remember_sealed(scope, seq, frozenset(x.id for x in stored_actions(bytes(frame))))
                for q in seqs:
                    ids.update(self._sealed_ids.get((scope, q), frozenset()))
        out: dict[str, Handoff] = {}
        for errand, (_, action_id, author) in latest.items():
            to, scope = moving[errand]["pending_to"], moving[errand]["scope"]
            if (to, scope) in too_far and action_id not in waiting:
                out[errand] = ""
                continue
            lacked = waiting | unacked_in.get((to, scope), set())
            out[errand] = handoff_reached(self.node_id, author, action_id, heard=to in heard, waiting=lacked)
        return out

    def _remember_sealed(self, scope: str, seq: int, ids: frozenset[str]) -> None:
        """The ids of this node's batch ``seq`` of ``scope`` (a stored batch never changes), the oldest forgotten
        past ``SEALED_IDS_KEPT``: what ``handoffs`` reads once, not at every page."""
        self._sealed_ids[(scope, seq)] = ids
        while len(self._sealed_ids) > SEALED_IDS_KEPT:
            del self._sealed_ids[next(iter(self._sealed_ids))]

    async def errand_state_blob(self, errand_id: str) -> bytes | None:
        """The stored state of one errand as kept (``errands.state``), undecoded: a caller that needs a field or two
        decodes just those (``sanji.context.bound_of``)."""
        async with self.db.reader.connect() as conn:
            state = await conn.scalar(select(t.errands.c.state).where(t.errands.c.id == errand_id))
        return None if state is None else bytes(state)

    async def errand_state_blobs(self, errand_ids: Sequence[str]) -> dict[str, bytes]:
        """``errand_state_blob`` of many errands, in chunks; an errand without a state is left out."""
        out: dict[str, bytes] = {}
        async with self.db.reader.connect() as conn:
            for start in range(0, len(errand_ids), 500):
                chunk = list(errand_ids[start : start + 500])
                rows = (
                    await conn.execute(select(t.errands.c.id, t.errands.c.state).where(t.errands.c.id.in_(chunk)))
                ).all()
                out.update((errand_id, bytes(state)) for errand_id, state in rows if state is not None)
        return out

    async def errand_states(self, errand_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The full projected state of each errand (steps taken, sub-tasks, pauses ...)."""
        out: dict[str, dict[str, Any]] = {}
        async with self.db.reader.connect() as conn:
            for start in range(0, len(errand_ids), 500):
                chunk = list(errand_ids[start : start + 500])
                rows = (
                    await conn.execute(select(t.errands.c.id, t.errands.c.state).where(t.errands.c.id.in_(chunk)))
                ).all()
                for errand_id, state in rows:
                    if state is not None:
                        out[errand_id] = msgspec.msgpack.decode(state)
        return out

    async def annotations(self, kind: AnnotationKind, *, limit: int = 500) -> list[dict[str, Any]]:
        async with self.db.reader.connect() as conn:
            bodies = (await conn.execute(annotations_query(kind, limit))).scalars()
            return [msgspec.to_builtins(decode_action(b)) for b in bodies]

    async def annotation_counts(self, kind: AnnotationKind, field: str, *, limit: int) -> tuple[dict[str, int], bool]:
        """How many of the newest ``limit`` annotations of ``kind`` hold each value of ``field``, and whether
        older ones were left out (one more is read to know: counting them all would read every one)."""
        items = await self.annotations(kind, limit=limit + 1)
        counts: dict[str, int] = defaultdict(int)
        for item in items[:limit]:
            counts[str(item.get(field, ""))] += 1
        return dict(counts), len(items) > limit

    def _applicant_view(self, register: Register) -> ApplicantView:
        return applicant_view(register, self.sealing_key)

    @staticmethod
    def _applicant_dict(view: ApplicantView) -> dict[str, Any]:
        """The history's ``applicant``: name, id_number, phone as before; income/health and the seal's
        status only when there is something to say."""
        out: dict[str, Any] = {"name": view.name, "id_number": view.id_number, "phone": view.phone}
        if view.income:
            out["income"] = view.income
        if view.health:
            out["health"] = view.health
        if view.sealed:
            out["sealed"] = True
            out["readable"] = view.readable
        return out

    async def applied_of(self, errand_id: str, kind: str) -> Action | None:
        """The errand's applied action of ``kind`` (one that happens once: its registration, its acceptance)."""
        async with self.db.reader.connect() as conn:
            body = await conn.scalar(
                select(t.actions.c.body)
                .where(t.actions.c.errand == errand_id, t.actions.c.kind == kind, t.actions.c.status == "applied")
                .limit(1)
            )
        return None if body is None else decode_action(body)

    async def applied_actions(self, errand_id: str, kinds: Collection[str] | None = None) -> list[Action]:
        """The errand's applied actions of ``kinds`` (None: of every kind), in the order of their time (a
        registration, then what came after): e.g. the steps naming its materials
        (``protocol.binding.material_steps``)."""
        async with self.db.reader.connect() as conn:
            a = t.actions.c
            query = select(a.body).where(a.errand == errand_id, a.status == "applied")
            if kinds is not None:
                query = query.where(a.kind.in_(list(kinds)))
            bodies = await conn.scalars(query.order_by(a.at, a.id))
            return [decode_action(body) for body in bodies]

    async def applicant(self, errand_id: str) -> ApplicantView | None:
        """The errand's applicant as this node may see them: sealed details opened if they are sealed to it."""
        action = await self.applied_of(errand_id, "register")
        if not isinstance(action, Register):
            return None
        return self._applicant_view(action)

    async def applicant_phone(self, errand_id: str) -> str:
        view = await self.applicant(errand_id)
        return view.phone if view is not None else ""

    async def worklist(self) -> list[dict[str, Any]]:
        """Errands on their way here, held here and not yet closed, or registered here and waiting for materials
        (待补正, ``worklist_query``): a caller acting on the errands it holds checks ``holder``."""
        async with self.db.reader.connect() as conn:
            rows = (await conn.execute(worklist_query(self.node_id))).mappings().all()
        return [_plain(r) for r in rows]

    async def digests(self) -> dict[str, str]:
        async with self.db.reader.connect() as conn:
            rows = (await conn.execute(select(t.errands.c.id, t.errands.c.digest))).all()
        return {r[0]: r[1] for r in rows}

    async def status(self) -> dict[str, Any]:
        parent = self.directory.parent(self.node_id)
        async with self.db.reader.connect() as conn:
            streams = (
                (await conn.execute(select(t.streams).order_by(t.streams.c.origin, t.streams.c.scope))).mappings().all()
            )
            acks = {}
            if parent:
                acks = {
                    StreamKey(o, s): q
                    for o, s, q in (
                        await conn.execute(
                            select(t.peer_acks.c.origin, t.peer_acks.c.scope, t.peer_acks.c.seq).where(
                                t.peer_acks.c.peer == parent
                            )
                        )
                    ).all()
                }
            outbox = await conn.scalar(select(func.count()).select_from(t.outbox))
            # Work not yet sealed counts as waiting too: a node whose parent is dark seals nothing.
            oldest_outbox = await conn.scalar(
                select(func.min(t.actions.c.at)).select_from(
                    t.outbox.join(t.actions, t.actions.c.id == t.outbox.c.action_id)
                )
            )
            held = await conn.scalar(select(func.count()).select_from(t.held))
            quarantined = await conn.scalar(select(func.count()).select_from(t.quarantine))
            # as shown and counted everywhere (``shown_stage``): 不予受理 … on their own, never among 已办结
            by_stage: dict[str, int] = defaultdict(int)
            stage_outcome = (t.errands.c.stage, t.errands.c.outcome)
            for stage, outcome, count in await conn.execute(
                select(*stage_outcome, func.count()).group_by(*stage_outcome)
            ):
                by_stage[shown_stage(stage, outcome)] += int(count)
            exchanges = (await conn.execute(select(t.exchanges))).mappings().all()
        stream_list = []
        queue = int(outbox or 0)
        oldest_unacked: float | None = wall_seconds(int(oldest_outbox)) if (parent and oldest_outbox) else None
        unacked_keys: list[tuple[StreamKey, int]] = []
        for s in streams:
            key = StreamKey(s["origin"], s["scope"])
            entry: dict[str, Any] = {"origin": key.origin, "scope": key.scope, "seq": s["seq"]}
            if parent and key.origin in self._subtree:
                acked = acks.get(key, 0)
                entry["acked_by_parent"] = acked
                queue += max(0, s["seq"] - acked)
                if s["seq"] > acked:
                    unacked_keys.append((key, acked + 1))
            stream_list.append(entry)
        if unacked_keys:
            async with self.db.reader.connect() as conn:
                for key, seq in unacked_keys:
                    at = await conn.scalar(
                        select(t.batches.c.received_at).where(
                            t.batches.c.origin == key.origin, t.batches.c.scope == key.scope, t.batches.c.seq == seq
                        )
                    )
                    if at is not None and (oldest_unacked is None or at < oldest_unacked):
                        oldest_unacked = float(at)
        ex = {e["peer"]: _plain(e) for e in exchanges}
        return {
            "id": self.node_id,
            "role": self.directory.role(self.node_id),
            "parent": parent,
            "children": self.directory.children(self.node_id),
            "instance_id": self.instance_id,
            "streams": stream_list,
            "queue_length": queue,
            "oldest_unacked_s": round(time.time() - oldest_unacked, 1) if oldest_unacked else 0.0,
            "held_batches": int(held or 0),
            "quarantined_batches": int(quarantined or 0),
            "errands_by_stage": {k: int(v) for k, v in by_stage.items()},
            "exchanges": ex,
            "last_exchange_ok_at": ex.get(parent, {}).get("last_ok_at") if parent else None,
            # Security alarms about nodes below (a clone frozen by its parent), as their reports carried them up.
            "alarms": [
                {"node": r.node, "message": r.last_error.removeprefix(ALARM_PREFIX)}
                for r in await self.reports()
                if r.last_error.startswith(ALARM_PREFIX)
            ],
        }

    async def own_report(self, *, catalogue_version: int, clock_offset_ms: int, day: str) -> NodeReport:
        """``day``: the business day (ISO date, China Standard Time) whose traffic the report counts."""
        status = await self.status()
        parent = status["parent"]
        exchange = status["exchanges"].get(parent, {}) if parent else {}
        open_errands = sum(v for k, v in status["errands_by_stage"].items() if k not in ANSWERED)
        return NodeReport(
            node=self.node_id,
            at=self.clock.now(),
            catalogue_version=catalogue_version,
            queue_length=status["queue_length"],
            oldest_unacked_s=status["oldest_unacked_s"],
            last_error=str(exchange.get("last_error") or ""),
            bytes_sent_today=sum((await self.traffic(day)).values()),
            clock_offset_ms=clock_offset_ms,
            open_errands=open_errands,
            quarantined=status["quarantined_batches"],
            errand_rules=MAX_RULES,
        )
