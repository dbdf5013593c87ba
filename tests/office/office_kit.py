"""Errand stories on chosen business days, and a county store that really received them.

A story is the list of an errand's actions, each on a given day (10:00 China Standard
Time), main-line actions numbered by the version they were based on. ``seed_store`` seals
them into signed batches with the layout's keys, per stream, exactly as the writing nodes
would, and has a real store receive them: the ledger then reads what any county would hold.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from protocol.actions import (
    Accept,
    Action,
    Applicant,
    Assign,
    Complain,
    Decide,
    Deliver,
    Extend,
    HandOff,
    MaterialsReceived,
    Rate,
    Receive,
    Register,
    RequestSupplement,
    Review,
    is_main_line,
)
from protocol.batch import GENESIS, frame_hash, seal
from protocol.catalogue import sign_catalogue
from protocol.deadlines import CHINA_STANDARD_TIME
from protocol.hlc import pack
from protocol.signing import SigningKey
from protocol.topology import Directory
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.layout import Layout
from sanji.store import Store, open_database
from sanji.workcalendar import load_calendar

_ids = itertools.count(1)


def at(day: str, hour: int = 10) -> int:
    moment = datetime.combine(date.fromisoformat(day), time(hour), tzinfo=CHINA_STANDARD_TIME)
    return pack(int(moment.timestamp() * 1000), next(_ids) % 1000)


class Story:
    """One errand's actions, written in order; ``main`` numbers the main line."""

    def __init__(self, errand: str, scope: str, town: str, *, matter: str = "MZ-003") -> None:
        self.errand, self.scope, self.town, self.matter = errand, scope, town, matter
        self.actions: list[Action] = []
        self.version = 0

    def add(self, cls: type[Action], node: str, day: str, *, actor: str = "", **fields: Any) -> Story:
        action = cls(
            id=f"{self.errand}-{len(self.actions):02d}",
            errand=self.errand,
            scope=self.scope,
            node=node,
            actor=actor or f"{node}-staff",
            role="staff",
            at=at(day, 9 + len(self.actions) % 8),
            base=self.version if cls not in (Rate, Complain) else 0,
            **fields,
        )
        if is_main_line(action):
            self.version += 1
        self.actions.append(action)
        return self

    def registered(self, day: str) -> Story:
        self.add(Register, self.scope, day, matter=self.matter, applicant=Applicant(name="张秀英"), receipt="")
        if self.scope != self.town:
            self.add(HandOff, self.scope, day, to=self.town, purpose="submit")
            self.add(Receive, self.town, day)
        return self

    def accepted(self, day: str, due: str, *, kind: str = "承诺件", window: str = "民政窗口") -> Story:
        return self.add(Accept, self.town, day, errand_kind=kind, due=due, limit_days=5, window=window)

    def assigned(self, day: str, handler: str, window: str = "民政窗口") -> Story:
        return self.add(Assign, self.town, day, window=window, handler=handler)

    def paused(self, day: str, until: str, new_due: str) -> Story:
        self.add(RequestSupplement, self.town, day, items=("收入证明",))
        return self.add(MaterialsReceived, self.town, until, items=("收入证明",), due=new_due)

    def extended(self, day: str, days: int, due: str) -> Story:
        return self.add(Extend, self.town, day, days=days, reason="需实地核查", due=due)

    def reviewed(self, day: str) -> Story:
        return self.add(Review, self.town, day, passed=True)

    def decided(self, day: str, *, outcome: str = "approved", deemed: bool = False, actor: str = "") -> Story:
        return self.add(Decide, self.town, day, outcome=outcome, deemed=deemed, actor=actor)

    def delivered_here(self, day: str) -> Story:
        """Deliver at a township walk-in (scope == town)."""
        return self.add(Deliver, self.town, day, confirmed_by="张秀英")

    def rated(self, day: str, level: str) -> Story:
        return self.add(Rate, self.scope, day, level=level)

    def complained(self, day: str, against: str) -> Story:
        return self.add(Complain, self.scope, day, text="态度不好", against=against)


def frames_for(stories: Iterable[Story], keys: dict[str, SigningKey], directory: Directory) -> list[bytes]:
    """Every story's actions as signed batches, one chain per (writer, scope) stream."""
    streams: dict[tuple[str, str], list[Action]] = defaultdict(list)
    for story in stories:
        for action in story.actions:
            streams[(action.node, action.scope)].append(action)
    frames: list[bytes] = []
    for (origin, scope), acts in sorted(streams.items()):
        prev = GENESIS
        for seq, start in enumerate(range(0, len(acts), 1000), start=1):
            frame = seal(
                key=keys[origin],
                origin=origin,
                scope=scope,
                audience=directory.audience(origin, scope),
                seq=seq,
                prev=prev,
                created=acts[start].at,
                actions=acts[start : start + 1000],
            )
            prev = frame_hash(frame)
            frames.append(frame)
    return frames


async def seed_store(store: Store, stories: Sequence[Story], keys: dict[str, SigningKey]) -> None:
    """The store receives every story (signed by its writers) and holds the county's catalogue."""
    outcome = await store.receive(frames_for(stories, keys, store.directory), peer="test")
    refused = [r for r in outcome.results if r.status not in ("stored", "duplicate")]
    assert not refused, refused
    await NodeContext(store, None).offer(sign_catalogue(default_catalogue(), keys["C"]))


@asynccontextmanager
async def seeded_county(
    path: Path, stories: Sequence[Story], layout: Layout
) -> AsyncIterator[tuple[Store, NodeContext]]:
    """County ``C`` of ``layout`` on an SQLite file at ``path``, holding ``stories`` and its catalogue and calendar."""
    db = await open_database(f"sqlite+aiosqlite:///{path}")
    try:
        store = Store(db, node_id="C", key=layout.keys["C"], directory=layout.directory)
        await store.start()
        await seed_store(store, stories, layout.keys)
        context = NodeContext(store, load_calendar())
        await context.load()
        yield store, context
    finally:
        await db.dispose()
