"""The root-rotation rule of ``protocol.trust`` against python-tuf, used as an oracle.

Hypothesis builds random root-rotation scenarios: a first root (version 1 to 3, two to five
keys, a threshold, some signers) and a chain of candidate updates, each with a random key set
and threshold, signed by a random mix of the trusted root's keys, its own keys, keys of
neither and impostors (a key signing under another key's id), and now and then with a wrong
version number or a replay of an earlier document. Every step is built twice with the same
Ed25519 keys and the same key ids: as a Sanji root document and as TUF ``Metadata[Root]``
(the root role holding the keys and threshold).

TUF decides with ``TrustedMetadataSet`` — the trusted-metadata core of its client
(``tuf.ngclient``), which needs no network: its constructor trusts a self-signed root and
``update_root`` applies the client workflow's root-update rule (signed by a threshold of the
trusted root's root keys *and* of its own, version exactly trusted + 1). The same decision is
also recomputed from ``Root.verify_delegate`` to make sure the oracle is used as meant.

Sanji must decide alike — ``TrustState`` on first use and on ``add``, and
``verify_root_update`` — refuse with the reason that fails first, and end every step trusting
the same root version, keys and threshold as TUF.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.exceptions import RepositoryError, UnsignedMetadataError
from tuf.api.metadata import TOP_LEVEL_ROLE_NAMES, Metadata, Role
from tuf.api.metadata import Root as TufRoot
from tuf.ngclient._internal.trusted_metadata_set import TrustedMetadataSet
from tuf.ngclient.config import EnvelopeType

from protocol.signing import SigningKey
from protocol.trust import Root, TrustError, TrustState, parse_document, sign_document, verify_root_update

NOW = 1_790_000_000_000
COUNTY = "C"
EXPIRES = datetime(2100, 1, 1, tzinfo=UTC)  # TUF checks expiry only of the final root, never in update_root
POOL_SIZE = 8

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class PoolKey:
    """One Ed25519 key, as Sanji and TUF each hold it (TUF's key id is set to Sanji's)."""

    private: Ed25519PrivateKey
    sanji: SigningKey
    tuf: SSlibKey

    @property
    def key_id(self) -> str:
        return self.sanji.key_id


def _pool_key(index: int) -> PoolKey:
    seed = hashlib.sha256(f"sanji tuf oracle key {index}".encode()).digest()  # fixed keys: examples replay
    private = Ed25519PrivateKey.from_private_bytes(seed)
    sanji = SigningKey.from_private_bytes(seed)
    return PoolKey(private, sanji, SSlibKey.from_crypto(private.public_key(), keyid=sanji.key_id))


POOL = [_pool_key(i) for i in range(POOL_SIZE)]


@dataclass(frozen=True)
class Signer:
    """``key`` signs, under the key id of ``claims`` (an impostor when they differ)."""

    key: int
    claims: int


@dataclass(frozen=True)
class Candidate:
    """One root version, built both ways."""

    version: int
    keys: tuple[int, ...]
    threshold: int
    signers: tuple[Signer, ...]
    issued_at: int
    sanji: bytes
    tuf: bytes


def _sanji_signer(signer: Signer) -> SigningKey:
    key = SigningKey(POOL[signer.key].private)
    key.key_id = POOL[signer.claims].key_id  # an impostor signs under another key's id
    return key


def _tuf_signer(signer: Signer) -> CryptoSigner:
    own = POOL[signer.key].tuf
    claimed = SSlibKey(POOL[signer.claims].key_id, own.keytype, own.scheme, dict(own.keyval))
    return CryptoSigner(POOL[signer.key].private, public_key=claimed)


def build(
    version: int, keys: tuple[int, ...], threshold: int, signers: tuple[Signer, ...], issued_at: int
) -> Candidate:
    sanji_root = Root(
        version=version,
        county=COUNTY,
        keys=tuple(POOL[i].sanji.record("root") for i in keys),
        threshold=threshold,
        issued_at=issued_at,
    )
    sanji = sign_document(sanji_root, [_sanji_signer(s) for s in signers])
    roles = {name: Role([], 1) for name in TOP_LEVEL_ROLE_NAMES}
    roles[TufRoot.type] = Role([POOL[i].key_id for i in keys], threshold)
    metadata = Metadata(
        TufRoot(version=version, expires=EXPIRES, keys={POOL[i].key_id: POOL[i].tuf for i in keys}, roles=roles)
    )
    for signer in signers:
        metadata.sign(_tuf_signer(signer), append=True)
    return Candidate(version, keys, threshold, signers, issued_at, sanji, metadata.to_bytes())


@st.composite
def key_sets(draw: st.DrawFn) -> tuple[tuple[int, ...], int]:
    """Two to five keys of the pool and a threshold (now and then one more than there are keys)."""
    keys = tuple(sorted(draw(st.sets(st.integers(0, POOL_SIZE - 1), min_size=2, max_size=5))))
    threshold = draw(st.integers(1, len(keys)))
    if draw(st.integers(0, 9)) == 0:  # a threshold no set of its keys can meet
        threshold = len(keys) + 1
    return keys, threshold


@st.composite
def signer_sets(draw: st.DrawFn, likely: tuple[int, ...]) -> tuple[Signer, ...]:
    """Some of the ``likely`` keys sign, maybe a key of neither root, maybe an impostor."""
    signs = draw(st.lists(st.sampled_from([True, True, True, False]), min_size=len(likely), max_size=len(likely)))
    honest = {k for k, yes in zip(likely, signs, strict=True) if yes}  # each signs with odds 3 to 1
    if draw(st.booleans()):
        honest.add(draw(st.integers(0, POOL_SIZE - 1)))  # one more, perhaps a key neither root lists
    signers = [Signer(k, k) for k in sorted(honest)]
    if draw(st.integers(0, 3)) == 0:  # an impostor signs under the id of a key that does not sign itself
        victim = draw(st.sampled_from(likely))
        liar = draw(st.sampled_from([k for k in range(POOL_SIZE) if k != victim]))
        signers = [s for s in signers if s.claims != victim] + [Signer(liar, victim)]
    if not signers:  # a document carries at least one signature
        signers = [Signer(likely[0], likely[0])]
    return tuple(draw(st.permutations(signers)))


@st.composite
def first_roots(draw: st.DrawFn) -> Candidate:
    keys, threshold = draw(key_sets())
    version = draw(st.integers(1, 3))
    return build(version, keys, threshold, draw(signer_sets(keys)), NOW)


def _tuf_first(candidate: Candidate) -> TrustedMetadataSet | None:
    try:
        return TrustedMetadataSet(candidate.tuf, EnvelopeType.METADATA)
    except RepositoryError:
        return None


def _sanji_first(candidate: Candidate) -> TrustState | None:
    try:
        return TrustState(candidate.sanji)
    except TrustError:
        return None


def _verifies(trusted: TufRoot, candidate: Candidate) -> bool:
    metadata = Metadata[TufRoot].from_bytes(candidate.tuf)
    try:
        trusted.verify_delegate(TufRoot.type, metadata.signed_bytes, metadata.signatures)
    except UnsignedMetadataError:
        return False
    return True


def _same_root(state: TrustState, tuf: TrustedMetadataSet) -> None:
    role = tuf.root.roles[TufRoot.type]
    assert state.root.version == tuf.root.version
    assert {k.key_id for k in state.root.keys} == set(role.keyids)
    assert state.root.threshold == role.threshold


@PROPERTY_SETTINGS
@given(first=first_roots(), data=st.data())
def test_root_rotation_decides_like_tuf(first: Candidate, data: st.DataObject) -> None:
    tuf = _tuf_first(first)
    state = _sanji_first(first)
    assert (state is not None) == (tuf is not None), "trust on first use: Sanji and TUF disagree"
    if state is None or tuf is None:
        event("first root refused by both")
        return
    _same_root(state, tuf)
    seen = [first]  # every candidate so far, accepted or not, for replays
    for step in range(1, data.draw(st.integers(1, 6), label="steps") + 1):
        trusted = tuf.root
        trusted_keys = tuple(i for i in range(POOL_SIZE) if POOL[i].key_id in trusted.roles[TufRoot.type].keyids)
        if data.draw(st.integers(0, 9), label="replay?") == 0:
            candidate = data.draw(st.sampled_from(seen), label="replayed")
        else:
            delta = data.draw(st.sampled_from([1, 1, 1, 1, 1, 1, 0, 2, -1, -2]), label="version delta")
            keys, threshold = data.draw(key_sets(), label="new keys")
            signers = data.draw(signer_sets(tuple(sorted({*trusted_keys, *keys}))), label="signers")
            version = max(1, trusted.version + delta)
            candidate = build(version, keys, threshold, signers, NOW + step)
        seen.append(candidate)

        # The oracle: TUF's client, and the rule recomputed from verify_delegate.
        new_tuf = Metadata[TufRoot].from_bytes(candidate.tuf).signed
        version_ok = candidate.version == trusted.version + 1
        old_ok = _verifies(trusted, candidate)
        own_ok = _verifies(new_tuf, candidate)
        try:
            tuf.update_root(candidate.tuf)
            tuf_accepts = True
        except RepositoryError:
            tuf_accepts = False
        assert tuf_accepts == (version_ok and old_ok and own_ok)
        event(
            "accepted"
            if tuf_accepts
            else "refused: "
            + ", ".join(
                reason for reason, ok in (("version", version_ok), ("old keys", old_ok), ("own keys", own_ok)) if not ok
            )
        )

        # Sanji, on its own: the pure rule.
        before = state.root
        try:
            verify_root_update(before, parse_document(candidate.sanji))
            rule_accepts = True
        except TrustError:
            rule_accepts = False
        assert rule_accepts == tuf_accepts, (step, candidate, version_ok, old_ok, own_ok)

        # Sanji, as a node takes it.
        held = state.root_documents()
        try:
            result = state.add(candidate.sanji, now_ms=NOW)
        except TrustError as exc:
            assert not tuf_accepts, (step, candidate, exc.message)
            if not version_ok:
                expected = r"conflicts with the trusted one|arrived before version"
            elif candidate.threshold > len(candidate.keys):
                expected = r"threshold .* is not between"
            elif not old_ok:
                expected = rf"of version {before.version}'s keys"
            else:
                expected = r"of its own keys"
            assert re.search(expected, exc.message), (exc.message, version_ok, old_ok, own_ok)
        else:
            if result.status == "known":  # a replay of a root it holds: nothing changes
                assert candidate.sanji in held and not tuf_accepts
            else:
                assert result.status == "added" and tuf_accepts, (step, candidate, result)
        _same_root(state, tuf)
        assert state.root_documents() == held + ([candidate.sanji] if tuf_accepts else [])
