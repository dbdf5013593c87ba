"""Properties of ``TrustState`` over random certified trees (``tests.protocol.trust_kit``).

* Delivery does not matter: any order, any duplicates, any batching give the same directory
  and the same valid documents as delivering everything at once.
* A changed byte never helps: a document with one byte changed is refused or means what it
  meant, and nodes outside its subject's subtree keep their entries and retirement points.
* Only an ancestor retires a key: a revocation by a node that is not above the key's holder
  (its sister, its child, another township, itself, a stranger, or laundering the key through a
  certificate of its own) retires nothing.
* Rotation: after any number of rotations of a village key the newest key alone is unretired,
  and each earlier key is retired at exactly the point its successor named.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.signing import SigningKey
from protocol.topology import COUNTY, TOWN, VILLAGE
from protocol.trust import (
    ROOT_ISSUER,
    Certificate,
    Retirement,
    Revocation,
    TrustError,
    TrustState,
    parse_document,
)
from tests.protocol.trust_kit import NOW, CertifiedTree, certified_tree

PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


# -- trees ---------------------------------------------------------------------------


@functools.cache
def _base_tree(towns: int, villages: int) -> CertifiedTree:
    return certified_tree(towns=towns, villages=villages)  # built once per shape: examples replay alike


def fresh_tree(towns: int, villages: int) -> CertifiedTree:
    base = _base_tree(towns, villages)
    return dataclasses.replace(base, keys=dict(base.keys), docs=list(base.docs), parents=dict(base.parents))


def key_for(label: str) -> SigningKey:
    """A key fixed by ``label``, so that a failing example replays with the same keys."""
    return SigningKey.from_private_bytes(hashlib.sha256(f"trust properties {label}".encode()).digest())


def serials(tree: CertifiedTree) -> list[str]:
    return [v.serial for v in (parse_document(d).value for d in tree.docs) if isinstance(v, Certificate)]


def role_of(node: str) -> str:
    return COUNTY if node == "C" else TOWN if len(node) == 3 else VILLAGE


def ancestors(tree: CertifiedTree, node: str) -> list[str]:
    """The nodes above ``node`` as the kit placed it, nearest first."""
    out: list[str] = []
    parent = tree.parents.get(node)
    while parent is not None:
        out.append(parent)
        parent = tree.parents.get(parent)
    return out


shapes = st.tuples(st.integers(1, 3), st.integers(0, 3))


@st.composite
def trees(draw: st.DrawFn) -> CertifiedTree:
    """A certified county, then a few random events: rotations, revocations (by anyone), new
    villages, and certificates issued by nodes that may not be the subject's ancestors."""
    towns, villages = draw(shapes, label="shape")
    tree = fresh_tree(towns, villages)
    for step in range(draw(st.integers(0, 4), label="events")):
        nodes = sorted(tree.parents)
        event = draw(st.sampled_from(["rotate", "revoke", "enroll", "stray"]))
        node = draw(st.sampled_from(nodes))
        now = NOW + 10 * (step + 1)
        if event == "rotate":
            old = tree.keys[node]
            issuer = None if node == "C" else draw(st.sampled_from([tree.parents[node], *ancestors(tree, node)]))
            keep = tuple(s for s in serials(tree) if draw(st.booleans())) if draw(st.booleans()) else ()
            point = draw(st.integers(0, 50))
            retirement = Retirement(key_id=old.key_id, points=((node, node, point),), keep=keep)
            tree.certify(
                node,
                role_of(node),
                tree.parents[node],
                issuer=issuer,
                key=key_for(f"{node} {step}"),
                retires=(retirement,),
                now_ms=now,
            )
        elif event == "revoke":
            issuer = draw(st.sampled_from([ROOT_ISSUER, *nodes]))
            if issuer == node:
                issuer = ROOT_ISSUER
            tree.revoke(node, tree.keys[node].key_id, issuer=issuer, points=((node, node, draw(st.integers(0, 50))),))
        elif event == "enroll" and role_of(node) == TOWN:
            tree.certify(f"{node}V{step + 50}", VILLAGE, node, key=key_for(f"enroll {step}"), now_ms=now)
        else:  # a certificate for a new node under ``node``, issued by anyone
            issuer = draw(st.sampled_from(nodes))
            tree.certify(f"X{step}", VILLAGE, node, issuer=issuer, key=key_for(f"stray {step}"), now_ms=now)
    return tree


# -- what a state says ---------------------------------------------------------------


def outcome(state: TrustState) -> dict[str, Any]:
    """Everything a state decides: entries, retirement points, and which documents count."""
    directory = state.directory()  # builds (no dangling parent, no cycle)
    return {
        "entries": sorted(state.entries(), key=lambda e: e.id),
        "retired": state.revocation_points(),
        "directory": sorted(e.id for e in directory.nodes()),
        "certificates": state.certificates(),
        "revocations": sorted(state.revocations(), key=lambda r: r.serial),
        "valid": [parse_document(raw).id for raw in state.documents()],
    }


def state_of(tree: CertifiedTree, docs: list[bytes]) -> TrustState:
    state = TrustState(tree.root_doc)
    state.add_many(docs, now_ms=NOW)
    return state


def subject_of(raw: bytes) -> str:
    value = parse_document(raw).value
    assert isinstance(value, (Certificate, Revocation))
    return value.node


def subtree(tree: CertifiedTree, node: str) -> set[str]:
    """``node`` and every node the kit placed below it (certified validly or not)."""
    return {node} | {n for n in tree.parents if node in ancestors(tree, n)}


# -- (a) delivery does not matter ------------------------------------------------------


@PROPERTY_SETTINGS
@given(tree=trees(), data=st.data())
def test_any_order_and_duplicates_give_the_same_state(tree: CertifiedTree, data: st.DataObject) -> None:
    expected = outcome(tree.state())
    delivery = list(data.draw(st.permutations(tree.docs), label="order"))
    for raw in data.draw(st.lists(st.sampled_from(tree.docs), max_size=6), label="duplicates"):
        delivery.insert(data.draw(st.integers(0, len(delivery)), label="at"), raw)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(delivery) - 1)), label="batches") if len(delivery) > 1 else ())
    state = TrustState(tree.root_doc)
    for start, end in zip([0, *cuts], [*cuts, len(delivery)], strict=True):
        try:
            state.add_many(delivery[start:end], now_ms=NOW)
        except TrustError:  # a batch of one refused document raises; the state is unchanged
            pass
    assert outcome(state) == expected
    assert sorted(state.pending()) == sorted(tree.state().pending())


# -- (b) a changed byte never helps -----------------------------------------------------


@PROPERTY_SETTINGS
@given(tree=trees(), data=st.data())
def test_a_changed_byte_is_refused_or_harmless(tree: CertifiedTree, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(tree.docs) - 1), label="document")
    good = tree.docs[index]
    at = data.draw(st.integers(0, len(good) - 1), label="byte")
    bad = bytearray(good)
    bad[at] ^= data.draw(st.integers(1, 255), label="xor")
    docs = list(tree.docs)
    docs[index] = bytes(bad)
    with_good = state_of(tree, tree.docs)
    without = state_of(tree, tree.docs[:index] + tree.docs[index + 1 :])
    with_bad = state_of(tree, docs)

    # The changed document counts only if it still says exactly what the original said.
    try:
        changed = parse_document(bytes(bad))
    except TrustError:
        changed = None
    if changed is not None and changed.id in outcome(with_bad)["valid"]:
        assert changed.value == parse_document(good).value
        assert good_is_valid(with_good, good)
    assert outcome(with_bad) in (outcome(with_good), outcome(without))

    # Outside the subtree of the document's subject, nothing moves.
    near = subtree(tree, subject_of(good))
    entries = {e.id: e for e in with_good.entries() if e.id not in near}
    assert {e.id: e for e in with_bad.entries() if e.id not in near} == entries
    far_keys = {k.key_id for e in entries.values() for k in e.keys}
    points = with_bad.revocation_points()
    assert {k: v for k, v in points.items() if k in far_keys} == {
        k: v for k, v in with_good.revocation_points().items() if k in far_keys
    }


def good_is_valid(state: TrustState, raw: bytes) -> bool:
    return parse_document(raw).id in outcome(state)["valid"]


# -- (c) only an ancestor retires a key -------------------------------------------------


@PROPERTY_SETTINGS
@given(
    shape=shapes,
    data=st.data(),
    point=st.integers(0, 50),
    launder=st.booleans(),
)
def test_only_an_ancestor_of_the_key_holder_retires_a_key(
    shape: tuple[int, int], data: st.DataObject, point: int, launder: bool
) -> None:
    tree = fresh_tree(*shape)
    nodes = sorted(tree.parents)
    tree.keys["X99"] = key_for("stranger")  # a node no certificate names
    holder = data.draw(st.sampled_from(nodes), label="holder")
    key = tree.keys[holder]
    issuer = data.draw(st.sampled_from([*nodes, "X99"]), label="issuer")
    named = data.draw(st.sampled_from([holder, holder, *nodes]), label="named")
    before = tree.state()
    if launder:
        # The issuer certifies a node of its own listing the holder's public key, then revokes "its" key.
        named = "L99"
        issuer_key = tree.keys[issuer]
        tree.certify(named, VILLAGE, issuer, key=key, now_ms=NOW + 5)
        tree.keys[issuer] = issuer_key
    tree.revoke(named, key.key_id, issuer=issuer, points=((holder, holder, point),))
    after = tree.state()

    above = issuer in ancestors(tree, holder)
    if not above:
        assert key.key_id not in after.revocation_points()
        assert after.revocation_points() == before.revocation_points()
        assert after.revocations() == []
        assert after.directory().retired_after(key.key_id, holder, holder) is None
        if named != "L99":
            assert outcome(after)["entries"] == outcome(before)["entries"]
    else:  # an ancestor retires the key it names, when the key is the named node's
        retired = named in (holder, "L99")
        assert (key.key_id in after.revocation_points()) == retired
        if retired:
            assert after.directory().retired_after(key.key_id, holder, holder) == point
    assert set(after.revocation_points()) <= {key.key_id}  # no other key is touched


def test_the_root_may_retire_any_key() -> None:
    tree = fresh_tree(2, 2)
    key = tree.keys["T02V01"]
    tree.revoke("T02V01", key.key_id, issuer=ROOT_ISSUER, points=(("T02V01", "T02V01", 7),))
    assert tree.state().directory().retired_after(key.key_id, "T02V01", "T02V01") == 7


def test_a_copied_key_cannot_be_retired_by_its_copiers_rotation() -> None:
    tree = fresh_tree(2, 1)
    victim = tree.keys["T02V01"]
    # T01 re-certifies its own village listing the victim's public key and "rotating" it away.
    village_key = tree.keys["T01V01"]
    tree.certify("T01V01", VILLAGE, "T01", key=victim, retires=(Retirement(key_id=victim.key_id),), now_ms=NOW + 10)
    tree.keys["T01V01"] = village_key
    assert not tree.state().directory().is_retired(victim.key_id)


def test_a_township_cannot_add_keys_to_a_node_outside_its_subtree() -> None:
    tree = fresh_tree(2, 1)
    thief = key_for("thief")
    town_key, hub_key = tree.keys["T01"], tree.keys["C"]
    tree.certify("T02V01", VILLAGE, "T01", issuer="T01", key=thief, now_ms=NOW - 10)  # backdated: T02V01 stays put
    tree.certify("C", TOWN, "T01V01", issuer="T01", key=thief, now_ms=NOW - 10)  # even the hub
    tree.keys["T01"] = town_key
    directory = tree.state().directory()
    # Two townships placing one village: neither claim stands (the village goes dark, loudly, rather
    # than carry the thief's key); the hub's place comes from the root and no township moves it.
    assert "T02V01" not in directory
    assert thief.key_id not in {k.key_id for k in directory.get("C").keys}
    assert directory.role("C") == COUNTY and directory.parent("C") is None
    # The county, above every place claimed, settles it: its certificate alone stands.
    genuine = key_for("genuine T02V01")
    tree.keys["C"] = hub_key  # the kit remembers the last key it certified for a node: the thief's
    tree.certify("T02V01", VILLAGE, "T02", issuer="C", key=genuine, now_ms=NOW + 20)
    tree.keys["T01"] = town_key
    directory = tree.state().directory()
    assert {k.key_id for k in directory.get("T02V01").keys} == {genuine.key_id}
    assert directory.parent("T02V01") == "T02"


# -- (d) rotations ---------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    rotations=st.lists(st.tuples(st.integers(0, 1000), st.booleans()), min_size=1, max_size=5),
    data=st.data(),
)
def test_after_rotations_only_the_newest_key_is_unretired(
    shape: tuple[int, int], rotations: list[tuple[int, bool]], data: st.DataObject
) -> None:
    tree = fresh_tree(*shape)
    village = data.draw(st.sampled_from([n for n in sorted(tree.parents) if role_of(n) == VILLAGE]), label="village")
    town = tree.parents[village]
    assert town is not None
    keys = [tree.keys[village]]
    for step, (point, by_county) in enumerate(rotations, start=1):
        new = key_for(f"{village} rotation {step}")
        tree.certify(
            village,
            VILLAGE,
            town,
            issuer="C" if by_county else town,
            key=new,
            retires=(Retirement(key_id=keys[-1].key_id, points=((village, village, point),)),),
            now_ms=NOW + 10 * step,
        )
        keys.append(new)
    delivery = data.draw(st.permutations(tree.docs), label="order")
    state = state_of(tree, list(delivery))
    directory = state.directory()

    assert not directory.is_retired(keys[-1].key_id)
    for old, (point, _) in zip(keys[:-1], rotations, strict=True):
        assert directory.retired_after(old.key_id, village, village) == point
        assert directory.retired_after(old.key_id, town, town) == 0  # no other stream
    assert set(state.revocation_points()) == {k.key_id for k in keys[:-1]}
    assert [k.key_id for k in directory.get(village).keys] == [k.key_id for k in keys]  # every key, oldest first
    current = state.current(village)
    assert current is not None and [k.key_id for k in current.keys] == [keys[-1].key_id]
    assert directory.parent(village) == town
