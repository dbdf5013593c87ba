"""A county signs a catalogue of a new generation of errand rules only once no node reports an older build.

A node of a build that judges by an older generation would judge those errands by the old rules and its replicas
would disagree with everyone else's; each node reports the generation it judges by (``NodeReport.errand_rules``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from county_node.duties import publish_catalogue
from protocol.catalogue import MAX_RULES
from protocol.session import NodeReport
from sanji.catalogue import default_catalogue
from sanji.config import NodeSection, NodeSettings
from sanji.context import CATALOGUE_LOST, NodeContext, RulesAhead, VersionHeldBelow, held_below_refusal, rules_refusal
from sanji.sync.driver import sync_once
from tests.conftest import CALENDAR, NetworkFactory


def test_only_a_later_generation_than_the_report_field_is_checked() -> None:
    catalogue = default_catalogue()
    assert {m.rules for m in catalogue.matters} == {3} == {MAX_RULES}
    old = NodeReport(node="T01V01", at=1)  # a build before the field: it reports 0
    assert "T01V01" in rules_refusal(catalogue, [old]) and "第3代办件规则" in rules_refusal(catalogue, [old])
    assert rules_refusal(catalogue, [msgspec.structs.replace(old, errand_rules=3)]) == ""
    # A build of generation 2 (the walk-in's one-time notice unknown to it) holds generation 3 back, not 2.
    second = msgspec.structs.replace(old, errand_rules=2)
    assert "T01V01" in rules_refusal(catalogue, [second]) and "generation 3" in rules_refusal(catalogue, [second])
    two = msgspec.structs.replace(
        catalogue, matters=tuple(msgspec.structs.replace(m, rules=2) for m in catalogue.matters)
    )
    assert rules_refusal(two, [second]) == ""
    assert rules_refusal(catalogue, []) == ""  # no node known to run an older build
    earlier = msgspec.structs.replace(
        catalogue, matters=tuple(msgspec.structs.replace(m, rules=1) for m in catalogue.matters)
    )
    assert rules_refusal(earlier, [old]) == ""  # generation 1 came before the field: every 0.4.0 build knows it


async def test_the_county_waits_for_the_fleet_before_signing_rules_it_does_not_know(network: NetworkFactory) -> None:
    net = await network(1, 1)
    county = NodeContext(net.stores["C"], CALENDAR)
    # The village last reported from an older build (no errand_rules in its report).
    await net.stores["C"].record_reports([NodeReport(node="T01V01", at=net.stores["C"].clock.now())], via="T01")
    with pytest.raises(RulesAhead) as caught:
        await county.publish(default_catalogue())
    assert "T01V01" in caught.value.message and county.catalogue is None
    # Upgraded, the village exchanges once (its report climbs with the township's next exchange): now it may.
    for node in ("T01V01", "T01"):  # a node's driver passes its context: its report goes with the exchange
        await sync_once(net.stores[node], net.transports[node], context=NodeContext(net.stores[node], CALENDAR))
    reports = {r.node: r.errand_rules for r in await net.stores["C"].reports()}
    assert reports["T01V01"] == MAX_RULES
    assert await county.publish(default_catalogue())
    assert county.catalogue is not None and county.catalogue.version == default_catalogue().version


async def test_the_county_refuses_generation_3_while_a_township_reports_generation_2(network: NetworkFactory) -> None:
    """A township of a build that judges by generation 2 would refuse a walk-in's one-time notice every other
    replica applies: the county signs no generation-3 catalogue until it reports 3, and a generation-2 one meanwhile."""
    net = await network(1, 1)
    store = net.stores["C"]
    county = NodeContext(store, CALENDAR)
    await store.record_reports([NodeReport(node="T01", at=store.clock.now(), errand_rules=2)], via="T01")
    with pytest.raises(RulesAhead) as caught:
        await county.publish(default_catalogue())
    assert "T01" in caught.value.message and "第3代办件规则" in caught.value.message and county.catalogue is None
    catalogue = default_catalogue()
    two = msgspec.structs.replace(
        catalogue, matters=tuple(msgspec.structs.replace(m, rules=2) for m in catalogue.matters)
    )
    assert await county.publish(two)
    assert county.catalogue is not None and {m.rules for m in county.catalogue.matters} == {2}


def test_a_version_held_below_is_refused_only_while_a_restore_left_versions_unknown() -> None:
    held_5 = [NodeReport(node="T01", at=1, catalogue_version=5), NodeReport(node="T02", at=1, catalogue_version=3)]
    assert held_below_refusal(4, [(4, None)], held_5) is not None  # restored from a copy holding 3: 4 and 5 exist
    zh, en = held_below_refusal(4, [(4, None)], held_5) or ("", "")
    assert "T01" in zh and "T02" not in zh and "第 6 版" in zh and "version 6" in en
    assert held_below_refusal(6, [(4, None)], held_5) is None  # above what any node holds: a new number
    assert held_below_refusal(4, [(4, 5)], held_5) is None  # the range closed: a later version was kept since
    assert held_below_refusal(4, [], held_5) is None  # no restore: a report above the county's is no reason to stop
    assert held_below_refusal(4, None, held_5) is None


async def test_a_restored_county_does_not_publish_again_a_number_a_township_holds(network: NetworkFactory) -> None:
    net = await network(1, 1)
    store = net.stores["C"]
    county = NodeContext(store, CALENDAR)
    catalogue = default_catalogue()
    # Restored from a copy holding nothing newer than version 0; the township reports the county's version 1.
    await store.set_meta(CATALOGUE_LOST, "1-")
    await store.record_reports(
        [NodeReport(node="T01", at=store.clock.now(), catalogue_version=1, errand_rules=MAX_RULES)], via="T01"
    )
    with pytest.raises(VersionHeldBelow) as caught:
        await county.publish(msgspec.structs.replace(catalogue, version=1))
    assert "T01" in caught.value.message_zh and county.catalogue is None
    assert await county.publish(msgspec.structs.replace(catalogue, version=2))
    assert county.catalogue is not None and county.catalogue.version == 2


async def test_a_restored_county_starts_when_its_catalogue_file_names_a_version_held_below(
    network: NetworkFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The start-up duty does not publish the file's version a township holds already; it logs why, and the node
    starts (the desk publishes a higher one)."""
    net = await network(1, 1)
    store = net.stores["C"]
    county = NodeContext(store, CALENDAR)
    file = tmp_path / "catalogue.json"
    file.write_bytes(msgspec.json.encode(msgspec.structs.replace(default_catalogue(), version=1)))
    settings = NodeSettings(node=NodeSection(id="C", role="county", key_file="k", catalogue=str(file)))
    await store.set_meta(CATALOGUE_LOST, "1-")
    report = NodeReport(node="T01", at=store.clock.now(), catalogue_version=1, errand_rules=MAX_RULES)
    await store.record_reports([report], via="T01")
    with caplog.at_level(logging.WARNING, logger="sanji.county"):
        await publish_catalogue(settings, county)
    assert county.catalogue is None and "T01" in caplog.text
