"""Certificates chained to the county root: roots, chains, retirement points, and the directory they give."""

from __future__ import annotations

import random

import pytest

from protocol.batch import GENESIS, open_frame, seal
from protocol.errors import RevokedKey, SignatureError
from protocol.signing import SigningKey
from protocol.topology import TOWN, VILLAGE
from protocol.trust import (
    ROOT_ISSUER,
    Retirement,
    TrustError,
    TrustState,
    make_certificate,
    make_root,
    parse_document,
    root_fingerprint,
    sign_document,
)
from tests.protocol.protocol_kit import note
from tests.protocol.trust_kit import NOW, certified_tree


def test_a_certified_tree_gives_the_directory_of_every_node() -> None:
    tree = certified_tree()
    state = tree.state()
    directory = state.directory()
    assert {e.id for e in directory.nodes()} == {"C", "T01", "T02", "T01V01", "T01V02", "T02V01", "T02V02"}
    assert directory.path("T02V01") == ("C", "T02", "T02V01")
    assert directory.key(tree.keys["T01V02"].key_id) is not None
    assert state.pending() == []


def test_documents_arriving_in_any_order_end_in_the_same_state() -> None:
    tree = certified_tree()
    shuffled = list(tree.docs)
    random.Random(3).shuffle(shuffled)
    state = TrustState(tree.root_doc)
    for doc in shuffled:  # one at a time: a village before its township waits
        state.add_many([doc], now_ms=NOW)
    assert sorted(state.documents()) == sorted(tree.state().documents())


def test_a_village_certificate_before_its_township_waits_then_counts() -> None:
    tree = certified_tree(towns=1, villages=1)
    county, town, village = tree.docs
    state = TrustState(tree.root_doc)
    results = state.add_many([county, village], now_ms=NOW)
    assert [r.status for r in results] == ["added", "pending"]
    assert "T01V01" not in state.directory()
    state.add_many([town], now_ms=NOW)
    assert "T01V01" in state.directory()


def test_a_township_cannot_certify_a_village_of_another_township() -> None:
    tree = certified_tree()
    tree.certify("T02V09", VILLAGE, "T02", issuer="T01")
    state = tree.state()
    assert "T02V09" not in state.directory()
    assert len(state.pending()) == 1


def test_the_county_may_certify_a_village_directly() -> None:
    tree = certified_tree()
    tree.certify("T02V09", VILLAGE, "T02", issuer="C")
    assert tree.state().directory().parent("T02V09") == "T02"


def test_a_village_cannot_certify_under_its_sister() -> None:
    tree = certified_tree()
    tree.certify("T01V02X", VILLAGE, "T01V02", issuer="T01V01")
    state = tree.state()
    assert "T01V02X" not in state.directory()
    assert len(state.pending()) == 1


def test_one_root_key_is_not_enough_for_the_hub_certificate() -> None:
    tree = certified_tree(towns=0)
    key = SigningKey.generate()
    cert = make_certificate(
        node="C", role="county", parent=None, keys=[key.record("C")], issuer=ROOT_ISSUER, now_ms=NOW
    )
    state = TrustState(tree.root_doc)
    state.add_many([sign_document(cert, tree.root_keys[:1])], now_ms=NOW)
    assert "C" not in state.directory()
    state.add_many([sign_document(cert, tree.root_keys[1:])], now_ms=NOW)
    assert "C" in state.directory()


def test_root_rotation_needs_threshold_of_old_and_new_keys() -> None:
    tree = certified_tree(towns=0)
    new_keys = [tree.root_keys[0], SigningKey.generate(), SigningKey.generate()]
    v2 = make_root(new_keys, county="C", version=2, now_ms=NOW)
    state = TrustState(tree.root_doc)
    with pytest.raises(TrustError, match="version 1's keys"):
        state.add(sign_document(v2, [tree.root_keys[0], *new_keys[1:]]), now_ms=NOW)  # one old key only
    with pytest.raises(TrustError, match="its own keys"):
        state.add(sign_document(v2, tree.root_keys[:2]), now_ms=NOW)  # old keys, but only one new
    state.add(sign_document(v2, [*tree.root_keys[:2], new_keys[1]]), now_ms=NOW)
    assert state.root.version == 2
    # An old version cannot come back, a skipped version waits.
    with pytest.raises(TrustError, match="conflicts"):
        state.add(sign_document(make_root(tree.root_keys, county="C", now_ms=NOW + 5), tree.root_keys), now_ms=NOW)
    v4 = make_root(new_keys, county="C", version=4, now_ms=NOW)
    with pytest.raises(TrustError, match="before version 3"):
        state.add(sign_document(v4, new_keys), now_ms=NOW)


def test_after_root_rotation_the_hub_can_be_certified_by_the_new_keys_only() -> None:
    tree = certified_tree(towns=0)
    new_keys = [SigningKey.generate() for _ in range(3)]
    v2 = sign_document(make_root(new_keys, county="C", version=2, now_ms=NOW), [*tree.root_keys[:2], *new_keys[:2]])
    hub = SigningKey.generate()
    cert = make_certificate(
        node="C", role="county", parent=None, keys=[hub.record("C")], issuer=ROOT_ISSUER, now_ms=NOW
    )
    state = TrustState(tree.root_doc)
    state.add_many([v2, sign_document(cert, new_keys[1:])], now_ms=NOW)
    assert hub.key_id in {k.key_id for k in state.directory().get("C").keys}


def test_a_changed_byte_anywhere_is_refused_or_ignored() -> None:
    tree = certified_tree(towns=1, villages=0)
    good = tree.docs[1]
    for index in range(len(good)):
        bad = bytearray(good)
        bad[index] ^= 0x01
        state = TrustState(tree.root_doc)
        state.add_many([tree.docs[0]], now_ms=NOW)
        try:
            state.add_many([bytes(bad)], now_ms=NOW)
        except TrustError:
            continue
        assert "T01" not in state.directory() or state.current("T01") == parse_document(good).value


def test_root_fingerprint_pins_a_root() -> None:
    tree = certified_tree(towns=0)
    assert root_fingerprint(tree.root_doc) == parse_document(tree.root_doc).id
    with pytest.raises(TrustError):
        root_fingerprint(tree.docs[0])


def _frame(key: SigningKey, origin: str, scope: str, seq: int, directory_audience: tuple[str, ...]) -> bytes:
    return seal(
        key=key,
        created=NOW,
        origin=origin,
        scope=scope,
        seq=seq,
        prev=GENESIS if seq == 1 else bytes(32),
        audience=directory_audience,
        actions=[note(origin, f"n{seq}", scope=scope)],
    )


def test_revocation_refuses_batches_after_the_point_only() -> None:
    tree = certified_tree()
    key = tree.keys["T01V01"]
    before = tree.state().directory()
    audience = before.audience("T01V01", "T01V01")
    tree.revoke("T01V01", key.key_id, issuer="T01", points=(("T01V01", "T01V01", 2),))
    after = tree.state().directory()
    for seq in (1, 2):
        assert open_frame(_frame(key, "T01V01", "T01V01", seq, audience), after).seq == seq
    with pytest.raises(RevokedKey) as caught:
        open_frame(_frame(key, "T01V01", "T01V01", 3, audience), after)
    assert (caught.value.origin, caught.value.seq) == ("T01V01", 3)
    assert isinstance(caught.value, SignatureError)


def test_only_an_ancestor_may_revoke() -> None:
    tree = certified_tree()
    target = tree.keys["T01V01"].key_id
    tree.revoke("T01V01", target, issuer="T02")  # another township
    tree.revoke("T01V01", target, issuer="T01V02")  # a sister village
    assert tree.state().directory().retired_after(target, "T01V01", "T01V01") is None
    tree.revoke("T01V01", target, issuer="C")
    assert tree.state().directory().retired_after(target, "T01V01", "T01V01") == 0


def test_revoking_a_township_key_drops_the_certificates_it_did_not_keep() -> None:
    tree = certified_tree(towns=1, villages=2)
    kept = parse_document(tree.docs[2]).value
    town_key = tree.keys["T01"].key_id
    tree.revoke("T01", town_key, issuer="C", keep=(kept.serial,))  # type: ignore[union-attr]
    tree.certify("T01V66", VILLAGE, "T01")  # issued by the stolen key after the revocation
    directory = tree.state().directory()
    assert "T01V01" in directory
    assert "T01V02" not in directory  # not in the keep list
    assert "T01V66" not in directory


def test_rotation_retires_the_old_key_at_the_nodes_own_positions() -> None:
    tree = certified_tree(towns=1, villages=1)
    old = tree.keys["T01V01"]
    audience = tree.state().directory().audience("T01V01", "T01V01")
    new = SigningKey.generate()
    tree.certify(
        "T01V01",
        VILLAGE,
        "T01",
        key=new,
        retires=(Retirement(key_id=old.key_id, points=(("T01V01", "T01V01", 5),)),),
        now_ms=NOW + 10,
    )
    directory = tree.state().directory()
    assert open_frame(_frame(old, "T01V01", "T01V01", 5, audience), directory).seq == 5
    with pytest.raises(RevokedKey):
        open_frame(_frame(old, "T01V01", "T01V01", 6, audience), directory)
    assert open_frame(_frame(new, "T01V01", "T01V01", 6, audience), directory).seq == 6


def test_a_certificate_cannot_retire_another_nodes_key() -> None:
    tree = certified_tree(towns=1, villages=2)
    victim = tree.keys["T01V02"].key_id
    tree.certify("T01V01", VILLAGE, "T01", retires=(Retirement(key_id=victim),), now_ms=NOW + 10)
    assert tree.state().directory().retired_after(victim, "T01V02", "T01V02") is None


def test_expired_and_future_certificates_are_refused() -> None:
    tree = certified_tree(towns=0)
    town = SigningKey.generate()
    old = make_certificate(
        node="T01",
        role=TOWN,
        parent="C",
        keys=[town.record("T01")],
        issuer="C",
        now_ms=NOW - 400 * 86_400_000,
        validity_days=30,
    )
    with pytest.raises(TrustError, match="expired"):
        tree.state().add(sign_document(old, [tree.keys["C"]]), now_ms=NOW)


def test_the_instance_binding_is_reported() -> None:
    tree = certified_tree(towns=1, villages=0)
    tree.certify("T01V01", VILLAGE, "T01", instance="db-123")
    assert tree.state().instance_of("T01V01") == "db-123"
    assert tree.state().instance_of("T01") == ""
