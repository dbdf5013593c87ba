"""The county's assessment rules (考核细则) travel down three tiers and are verified before being kept.

In one process: C ── T01 ── T01V01, T01V02, each node with its own SQLite store, NodeContext and a
context-aware SyncServer. The county holds the seed rules from its first start; it publishes a
newer version; the exchanges carry it to the township and on to both villages, and every node's
version comes back up in the node reports. A parent that hands down altered rules, or rules
signed by a key that is not the county's, is refused: the child keeps the version it held.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from sqlalchemy import select

from protocol.assessment import (
    MAX_RULES_BYTES,
    RULES,
    AssessmentRules,
    RulesError,
    default_rules,
    open_rules,
    publish_problems,
    sign_rules,
)
from protocol.catalogue import publisher_keys
from protocol.session import CursorsRequest, CursorsResponse
from sanji.context import NodeContext
from sanji.office.assess import held_rules
from sanji.office.book import OfficeRecordUnknown, OfficeRefused
from sanji.office.rules_routes import publish_rules
from sanji.store import schema as t
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from tests.conftest import CALENDAR

C, TOWN, VILLAGE, SISTER = "C", "T01", "T01V01", "T01V02"


class Kit:
    def __init__(self, net: Any, contexts: dict[str, NodeContext]) -> None:
        self.net = net
        self.contexts = contexts
        self.servers = {n: SyncServer(s, contexts[n]) for n, s in net.stores.items()}
        self.links: dict[str, LocalTransport] = {
            n: LocalTransport(self.servers[p]) for n in net.stores if (p := net.directory.parent(n)) is not None
        }

    async def sync(self, rounds: int = 1) -> None:
        up = self.net.children_bottom_up()
        for _ in range(rounds):
            for node in [*up, *reversed(up)]:
                await sync_once(self.net.stores[node], self.links[node], context=self.contexts[node])

    def versions(self) -> dict[str, int]:
        return {n: c.rules_version for n, c in self.contexts.items()}


class Altering(LocalTransport):
    """A parent whose replies carry other rules than the county signed (a tampered township)."""

    def __init__(self, server: SyncServer, blob: bytes) -> None:
        super().__init__(server)
        self.blob = blob

    async def cursors(self, request: CursorsRequest) -> CursorsResponse:
        reply = await super().cursors(request)
        return msgspec.structs.replace(reply, rules=self.blob)


@pytest.fixture
async def kit(network: Any) -> Kit:
    net = await network(1, 2)
    contexts = {n: NodeContext(s, CALENDAR) for n, s in net.stores.items()}
    for ctx in contexts.values():
        await ctx.load()
    return Kit(net, contexts)


def revised(base: AssessmentRules, version: int) -> AssessmentRules:
    """The county doubles the deduction per overdue working day."""
    items = tuple(msgspec.structs.replace(i, points=-4) if i.code == base.overdue_item else i for i in base.items)
    return msgspec.structs.replace(base, version=version, published_at="2026-12-01", items=items)


async def test_published_rules_reach_every_tier_and_every_version_is_reported(kit: Kit) -> None:
    # The county holds the seed rules from its first start; nobody below holds any yet.
    assert kit.versions() == {C: 1, TOWN: 0, VILLAGE: 0, SISTER: 0}
    await kit.sync()
    assert kit.versions() == {C: 1, TOWN: 1, VILLAGE: 1, SISTER: 1}

    county = kit.contexts[C]
    assert county.rules is not None
    await publish_rules(county, revised(county.rules, 2))
    await kit.sync(rounds=2)
    assert kit.versions() == {C: 2, TOWN: 2, VILLAGE: 2, SISTER: 2}
    for node, store in kit.net.stores.items():
        held = await store.document(RULES)
        assert held is not None and held[0] == 2, node
        rules = open_rules(held[1], publisher_keys(kit.net.directory))  # what was kept is the county's, verified
        item = rules.item(rules.overdue_item)
        assert item is not None and item.points == -4, node
    reports = {r.node: r.rules_version for r in await kit.net.stores[C].reports()}
    assert reports == {TOWN: 2, VILLAGE: 2, SISTER: 2}  # every node's version, visible at the county

    # Only the county publishes, and never the same version twice.
    with pytest.raises(OfficeRefused):
        await publish_rules(kit.contexts[TOWN], revised(county.rules, 3))
    with pytest.raises(OfficeRefused):
        await publish_rules(county, revised(county.rules, 2))


@pytest.mark.parametrize("forgery", ["altered", "township_key"])
async def test_rules_not_signed_by_the_county_are_refused(kit: Kit, forgery: str) -> None:
    await kit.sync()
    assert kit.versions()[VILLAGE] == 1
    newer = revised(default_rules(C), 5)
    if forgery == "altered":
        genuine = sign_rules(newer, kit.net.stores[C].key)
        at = genuine.index(b"\xfc")  # the -4 points, msgpack negative fixint
        blob = genuine[:at] + b"\xf0" + genuine[at + 1 :]  # now -16: the county never said so
    else:
        blob = sign_rules(newer, kit.net.stores[TOWN].key)  # the township signing as if it were the county
    kit.links[VILLAGE] = Altering(kit.servers[TOWN], blob)
    await sync_once(kit.net.stores[VILLAGE], kit.links[VILLAGE], context=kit.contexts[VILLAGE])

    assert kit.contexts[VILLAGE].rules_version == 1
    held = await kit.net.stores[VILLAGE].document(RULES)
    assert held is not None and held[0] == 1
    async with kit.net.stores[VILLAGE].db.reader.connect() as conn:
        peers = (await conn.execute(select(t.events.c.peer).where(t.events.c.kind == "rules_refused"))).scalars().all()
    assert peers == [TOWN]


async def test_the_assessment_takes_its_rules_through_the_context(kit: Kit) -> None:
    """``assess.held_rules`` asks ``NodeContext.refresh_rules``: rules another process published meanwhile (a
    second context on the same database: ``sanji rules publish``) are the ones assessed by; a township holding
    none yet is told so, and signs nothing."""
    county = kit.contexts[C]
    assert county.rules is not None and (await held_rules(county)).version == 1
    other = NodeContext(kit.net.stores[C], CALENDAR)  # another process's context on the county's database
    await other.load()
    await publish_rules(other, revised(county.rules, 2))
    assert county.rules_version == 1  # not yet taken up
    rules = await held_rules(county)
    assert rules.version == 2 and county.rules_version == 2
    item = rules.item(rules.overdue_item)
    assert item is not None and item.points == -4
    with pytest.raises(OfficeRecordUnknown, match="holds no assessment rules"):
        await held_rules(kit.contexts[TOWN])
    assert await kit.net.stores[TOWN].document(RULES) is None
    await kit.sync(rounds=2)
    assert (await held_rules(kit.contexts[TOWN])).version == 2


async def test_rules_too_large_to_sign_are_a_listed_problem_not_a_damaged_batch(kit: Kit) -> None:
    """A county's rules whose signed document would pass the size every node takes are refused before signing,
    worded as a fault of the rules (Chinese and English) the publisher can correct, never as a damaged batch
    to re-export; nothing is published."""
    county = kit.contexts[C]
    assert county.rules is not None
    base = revised(county.rules, 2)
    long_name = msgspec.structs.replace(base.parts[0], name="甲" * (MAX_RULES_BYTES // 3))
    big = msgspec.structs.replace(base, parts=(long_name, *base.parts[1:]))
    problems = publish_problems(big)
    assert [p.en for p in problems if "bytes" in p.en], problems
    assert all(p.zh.startswith("考核细则过大") for p in problems if "bytes" in p.en), problems
    assert publish_problems(base) == []
    with pytest.raises(RulesError):
        await publish_rules(county, big)
    assert county.rules_version == 1
