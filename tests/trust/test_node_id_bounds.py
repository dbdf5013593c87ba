"""Node ids are bounded wherever they enter (issue 15): ``protocol.bounds.node_id_problem`` is asked by the
certificate checks, by ``Directory`` (directory.json too), by ``judge`` for every field naming a node, and by
the batch decoder, so nothing names a node a store could not hold — on PostgreSQL no write ever fails on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from protocol.actions import HandOff, Note
from protocol.batch import seal
from protocol.bounds import MAX_NODE_ID
from protocol.errand import judge, project
from protocol.signing import SigningKey
from protocol.topology import COUNTY, TOWN, VILLAGE, Directory, NodeEntry
from protocol.trust import (
    ROOT_ISSUER,
    TrustError,
    TrustState,
    make_certificate,
    make_root,
    parse_document,
    sign_document,
)
from sanji.keys import DirectoryFileError, NodeKey, read_directory
from sanji.store import schema as t
from tests.protocol.protocol_kit import VILLAGE_ID, make, new_layout
from tests.protocol.test_bounds import registered
from tests.trust.trust_net import TrustNet, certified_city, now_ms

TOO_LONG = "C1T01V" + "9" * (MAX_NODE_ID - 5)
LONGEST = TOO_LONG[:-1]
ODD = ["C1T01 V09", "C1T01\n", "东岭村", ""]


def _village_cert(net: TrustNet, *, node: str = "C1T01V09", parent: str = "C1T01", issuer: str = "C1T01") -> bytes:
    key = NodeKey.generate_pair()
    cert = make_certificate(
        node=node, role=VILLAGE, parent=parent, keys=key.records(node), issuer=issuer, now_ms=now_ms()
    )
    return sign_document(cert, [net.stores["C1T01"].key])


@pytest.mark.parametrize("field", ["node", "parent", "issuer"])
@pytest.mark.parametrize("bad", [TOO_LONG, *ODD[:2]])
async def test_a_hand_made_certificate_naming_an_id_out_of_bounds_is_refused(
    net: TrustNet, field: str, bad: str
) -> None:
    state = net.books["C1"].state
    assert state is not None
    raw = _village_cert(net, **{field: bad})
    with pytest.raises(TrustError, match="1-64 letters"):
        state.add(raw, now_ms=now_ms())
    assert bad not in state.directory() and not state.has(parse_document(raw).id)


async def test_an_id_at_the_bound_is_certified(net: TrustNet) -> None:
    state = net.books["C1"].state
    assert state is not None
    assert state.add(_village_cert(net, node=LONGEST), now_ms=now_ms()).status == "added"
    assert state.directory().parent(LONGEST) == "C1T01"


def test_a_root_naming_a_hub_out_of_bounds_is_not_trusted() -> None:
    keys = [SigningKey.generate() for _ in range(3)]
    with pytest.raises(TrustError, match="1-64 letters"):
        TrustState(sign_document(make_root(keys, county="S" * (MAX_NODE_ID + 1), now_ms=now_ms()), keys))
    hub = NodeKey.generate_pair()
    state = TrustState(sign_document(make_root(keys, county="S", now_ms=now_ms()), keys))
    cert = make_certificate(
        node="S", role=COUNTY, parent=None, keys=hub.records("S"), issuer=ROOT_ISSUER, now_ms=now_ms()
    )
    assert state.add(sign_document(cert, keys[:2]), now_ms=now_ms()).status == "added"  # "root" is within the bound


async def _refused_from_a_child(net: TrustNet) -> None:
    """County C1 sends the city a township certificate naming an id no column could hold (the sync endpoint's path)."""
    county = net.stores["C1"]
    key = NodeKey.generate_pair()
    long_town = "C1T" + "0" * MAX_NODE_ID
    cert = make_certificate(
        node=long_town, role=TOWN, parent="C1", keys=key.records(long_town), issuer="C1", now_ms=now_ms()
    )
    raw = sign_document(cert, [county.key])
    city = net.stores["S"]
    taken = await net.books["S"].from_child("C1", [raw])  # no exception: the session goes on
    assert len(taken) == 1  # marked taken, so the county does not send it again every session
    assert long_town not in city.directory
    async with city.db.reader.connect() as conn:
        subjects = set((await conn.execute(select(t.trust_docs.c.subject))).scalars())
        events = (
            await conn.execute(select(t.events.c.peer, t.events.c.detail).where(t.events.c.kind == "trust_refused"))
        ).all()
    assert long_town not in subjects
    assert [peer for peer, _ in events] == ["C1"]
    assert "1-64 letters" in json.loads(events[0][1])["message"]


async def _a_frame_naming_a_node_out_of_bounds_is_refused(net: TrustNet) -> None:
    county, city = net.stores["C1"], net.stores["S"]
    common = {"errand": "E-bad", "actor": "县窗口", "role": "窗口", "at": county.clock.now()}
    for action, scope in (
        (HandOff(id="h1", scope="C1", node="C1", to=TOO_LONG, purpose="submit", **common), "C1"),
        (Note(id="n1", scope=TOO_LONG, node="C1", text="x", **common), TOO_LONG),
    ):
        frame = seal(
            key=county.key,
            origin="C1",
            scope=scope,
            audience=("S",),
            seq=1,
            prev=bytes(32),
            created=county.clock.now(),
            actions=[action],
        )
        result = (await city.receive([frame], peer="C1")).results[0]
        assert result.status == "refused" and "1-64 letters" in result.message, result
    async with city.db.reader.connect() as conn:
        assert list((await conn.execute(select(t.actions.c.id).where(t.actions.c.errand == "E-bad"))).scalars()) == []


async def test_the_city_refuses_ids_out_of_bounds_from_a_county_on_sqlite(net: TrustNet) -> None:
    await _refused_from_a_child(net)
    await _a_frame_naming_a_node_out_of_bounds_is_refused(net)


@pytest.mark.postgres
async def test_the_city_refuses_ids_out_of_bounds_from_a_county_on_postgres(tmp_path: Path, pg_url: str) -> None:
    built = await certified_city(tmp_path, urls={"S": pg_url})
    try:
        assert not built.stores["S"].db.is_sqlite
        await _refused_from_a_child(built)
        await _a_frame_naming_a_node_out_of_bounds_is_refused(built)
        await built.sync_all()  # and the tree goes on syncing
    finally:
        await built.close()


@pytest.mark.parametrize("field", ["scope", "node", "to"])
def test_judge_refuses_an_action_naming_a_node_out_of_bounds(field: str) -> None:
    directory = new_layout().directory
    state = project("E1", [registered()], directory).state
    fields = {"scope": VILLAGE_ID, "node": VILLAGE_ID, "to": "T01", field: TOO_LONG}
    handoff = make(HandOff, id="h1", base=1, purpose="submit", **fields)
    refusal = judge(state, handoff, directory)
    assert refusal is not None and refusal.code == "out_of_bounds" and "1-64 letters" in refusal.params["detail"]
    projection = project("E1", [registered(), handoff], directory)
    assert "1-64 letters" in projection.rejected["h1"]  # the reason kept in the errand's ledger


@pytest.mark.parametrize("bad", [TOO_LONG, *ODD])
def test_a_directory_naming_an_id_out_of_bounds_does_not_load(tmp_path: Path, bad: str) -> None:
    entries = [NodeEntry(id="C", role=COUNTY), NodeEntry(id=bad, role=TOWN, parent="C")]
    with pytest.raises(ValueError, match="1-64 letters"):
        Directory(entries)
    path = tmp_path / "directory.json"
    path.write_text(json.dumps([{"id": "C", "role": COUNTY}, {"id": bad, "role": TOWN, "parent": "C"}]), "utf-8")
    with pytest.raises(DirectoryFileError, match="1-64 letters") as raised:
        read_directory(path)
    assert str(path) in raised.value.message
    assert Directory([entries[0], NodeEntry(id=LONGEST, role=TOWN, parent="C")]).parent(LONGEST) == "C"
