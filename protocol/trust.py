"""Who a node is: certificates chained to the root of trust at the top of the tree.

Three kinds of signed trust document travel between nodes (up and down the tree, by any
path, like batches — each verifies on its own, so a relay or a hand-carried file cannot alter
one):

* ``Root`` — the root of trust of the tree's top node (the county hub, or the city or province
  hub above the counties; ``Root.county`` names it, whatever its level), modelled on The Update
  Framework's root role: a version number, a set of root keys (three by default, each held by a different official)
  and a threshold (two). Version 1 is signed by a threshold of its own keys; version N+1 must
  be signed by a threshold of version N's keys *and* of its own, and must be exactly N+1, so
  no single stolen root key can replace the root and an old root cannot be replayed.
* ``Certificate`` — a node's id, place in the tree (role, parent), display name, public keys
  (signing and sealing), validity period and the database instance it was enrolled with. The
  root certifies the top hub (a threshold of root signatures); every other node is
  certified by an ancestor's signing key — normally its parent (a city certifies its counties,
  a township its villages), or the county when a township has lost its key — and sits at a level
  below its parent's (``protocol.topology.ROLES``).
* ``Revocation`` — an ancestor (or the root, for the hub) withdraws one of a node's keys.

A key is never just "revoked": it is *retired after a point*. A ``Retirement`` names, for
every stream the key signed, the last batch it may sign, and which certificates it issued
stay valid. Batches after the point and certificates it issued that are not kept are refused
everywhere, while everything the key legitimately signed before stays verifiable for the
audit. Rotation is the benign case: the new certificate retires the old key at exactly the
node's own stream positions, so the switch happens within one sync cycle without a gap.

Signing names its algorithm in every key record (``protocol.signing``), so another profile
(SM2/SM3) can be added without changing this format.

Document layout::

    b"SJT" | version:u8 | msgpack [kind, body, [[key_id, signature], ...]]

Each signature covers ``b"SJT" | version | kind | 0x00 | body`` (the kind is part of what is
signed, so a body cannot be replayed as another kind). A document's id is the hash of kind
and body, so adding a signature does not make it a different document.

``TrustState`` is pure: it takes documents in any order (a village's certificate may arrive
before its township's — it waits, ``pending``), keeps the valid ones and builds the
``Directory`` the rest of the protocol verifies batches with.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from protocol.bounds import node_id_problem
from protocol.envelope import check_head
from protocol.errors import SanjiError
from protocol.signing import ED25519, X25519, KeyRecord, SigningKey, verify
from protocol.topology import COUNTY, ROLES, Directory, NodeEntry

MAGIC = b"SJT"
FORMAT_VERSION = 1
ROOT_ISSUER = "root"  # the issuer named by documents signed with root keys
ROOT_NODE = "root"  # the ``node`` of root key records
MAX_DOC_BYTES = 16 * 1024
MAX_SIGNATURES = 16
CLOCK_ALLOWANCE_MS = 7 * 24 * 3600 * 1000  # node clocks may be off by a week (DESIGN.md); validity tolerates it
DEFAULT_VALIDITY_DAYS = 3 * 365
Kind = Literal["root", "cert", "revocation"]


class TrustError(SanjiError):
    """A trust document is malformed, badly signed, or not allowed."""

    code = "untrusted"
    default_hint = (
        "The certificate, root or revocation does not verify against the county's root of trust; "
        "it was not kept. Ask the issuing node to issue it again."
    )


class Pending(TrustError):
    """Not wrong, just early: the document's issuer is not known yet."""

    code = "trust_pending"
    retryable = True
    default_hint = "Kept aside until the issuer's certificate arrives."


class Retirement(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Key ``key_id`` may sign nothing after these points."""

    key_id: str
    # Last sequence number the key may sign per stream (origin, scope, seq); streams not named: none.
    points: tuple[tuple[str, str, int], ...] = ()
    keep: tuple[str, ...] = ()  # serials of certificates the key issued that remain valid


class Root(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    version: int
    county: str  # the hub this root certifies: the top of the tree (a county, or a city above counties)
    keys: tuple[KeyRecord, ...]
    threshold: int = 2
    issued_at: int = 0  # ms; informative


class Certificate(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    serial: str
    node: str
    role: str
    parent: str | None = None
    name: str = ""
    keys: tuple[KeyRecord, ...]
    issuer: str  # ROOT_ISSUER, or the certifying ancestor's node id
    issued_at: int  # ms wall clock of the issuer
    not_before: int
    not_after: int
    instance: str = ""  # the database instance the node was enrolled with ("" = not bound)
    retires: tuple[Retirement, ...] = ()  # the node's earlier keys this certificate replaces


class Revocation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    serial: str
    node: str  # whose key
    retirement: Retirement
    issuer: str  # an ancestor of ``node``, or ROOT_ISSUER
    issued_at: int
    reason: str = ""


class _Sig(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    key_id: str
    signature: bytes


class _Envelope(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    kind: str
    body: bytes
    signatures: tuple[_Sig, ...]


_encoder = msgspec.msgpack.Encoder(order="deterministic")
_envelope_decoder = msgspec.msgpack.Decoder(_Envelope)
_BODY_TYPES: dict[str, type[msgspec.Struct]] = {"root": Root, "cert": Certificate, "revocation": Revocation}


@dataclass(frozen=True)
class Document:
    """A trust document as received: its bytes, what it says, and who signed it."""

    raw: bytes
    kind: Kind
    body: bytes
    value: Root | Certificate | Revocation
    signatures: tuple[tuple[str, bytes], ...]

    @property
    def id(self) -> str:
        return document_id(self.kind, self.body)

    def signed_bytes(self) -> bytes:
        return _signed_bytes(self.kind, self.body)


def document_id(kind: str, body: bytes) -> str:
    return hashlib.sha256(kind.encode() + b"\x00" + body).hexdigest()[:32]


def _signed_bytes(kind: str, body: bytes) -> bytes:
    return MAGIC + bytes([FORMAT_VERSION]) + kind.encode() + b"\x00" + body


def new_serial() -> str:
    return os.urandom(10).hex()


def sign_document(value: Root | Certificate | Revocation, keys: Sequence[SigningKey]) -> bytes:
    """Encode ``value`` and sign it with every key in ``keys`` (a threshold of root keys, or one node key)."""
    kind: Kind = "root" if isinstance(value, Root) else "cert" if isinstance(value, Certificate) else "revocation"
    body = _encoder.encode(value)
    message = _signed_bytes(kind, body)
    sigs = tuple(_Sig(k.key_id, k.sign(message)) for k in keys)
    return MAGIC + bytes([FORMAT_VERSION]) + _encoder.encode(_Envelope(kind, body, sigs))


def parse_document(raw: bytes) -> Document:
    """Decode a trust document (no signature is checked here: ``TrustState`` knows the keys)."""
    if len(raw) > MAX_DOC_BYTES:
        raise TrustError(f"trust document of {len(raw)} bytes exceeds {MAX_DOC_BYTES}")
    check_head(
        raw, magic=MAGIC, version=FORMAT_VERSION, what="trust document", error=TrustError, unsupported=TrustError
    )
    try:
        env = _envelope_decoder.decode(raw[4:])
        body_type = _BODY_TYPES.get(env.kind)
        if body_type is None:
            raise TrustError(f"unknown trust document kind {env.kind!r}")
        value = msgspec.msgpack.decode(env.body, type=body_type)
    # msgspec lets bad UTF-8 through as UnicodeDecodeError; deep nesting reaches the recursion limit
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise TrustError(f"trust document does not decode: {exc}") from None
    if _encoder.encode(value) != env.body:
        raise TrustError("trust document body is not in canonical form")
    if not env.signatures or len(env.signatures) > MAX_SIGNATURES:
        raise TrustError(f"trust document carries {len(env.signatures)} signatures (1..{MAX_SIGNATURES} allowed)")
    return Document(
        raw=raw,
        kind=env.kind,  # type: ignore[arg-type]
        body=env.body,
        value=value,  # type: ignore[arg-type]
        signatures=tuple((s.key_id, s.signature) for s in env.signatures),
    )


def count_valid_signatures(doc: Document, keys: Iterable[KeyRecord]) -> int:
    """How many distinct keys among ``keys`` signed ``doc`` (a key counts once however often it signed)."""
    by_id = {k.key_id: k for k in keys if k.algorithm == ED25519}
    message = doc.signed_bytes()
    good: set[str] = set()
    for key_id, signature in doc.signatures:
        record = by_id.get(key_id)
        if record is None or key_id in good:
            continue
        try:
            verify(record, message, signature)
        except SanjiError:
            continue
        good.add(key_id)
    return len(good)


def _check_root_shape(root: Root) -> None:
    if problem := node_id_problem(root.county, field="root hub"):
        raise TrustError(f"root version {root.version} names a hub that is not a node id: {problem}")
    if root.version < 1:
        raise TrustError(f"root version {root.version} is not positive")
    ids = [k.key_id for k in root.keys]
    if len(set(ids)) != len(ids):
        raise TrustError("root lists the same key twice")
    if any(k.algorithm != ED25519 for k in root.keys):
        raise TrustError("root keys must be signing keys")
    if not 1 <= root.threshold <= len(root.keys):
        raise TrustError(f"root threshold {root.threshold} is not between 1 and its {len(root.keys)} keys")


def verify_root_update(trusted: Root, doc: Document) -> Root:
    """Check that ``doc`` is the root version right after ``trusted`` (TUF's rule); return it."""
    if not isinstance(doc.value, Root):
        raise TrustError("not a root document")
    new = doc.value
    _check_root_shape(new)
    if new.version != trusted.version + 1:
        raise TrustError(f"root version {new.version} does not follow the trusted version {trusted.version}")
    if new.county != trusted.county:
        raise TrustError(f"root {new.version} names hub {new.county}, the trusted root names {trusted.county}")
    old = count_valid_signatures(doc, trusted.keys)
    if old < trusted.threshold:
        raise TrustError(
            f"root version {new.version} carries {old} valid signatures of version {trusted.version}'s keys; "
            f"{trusted.threshold} are needed"
        )
    own = count_valid_signatures(doc, new.keys)
    if own < new.threshold:
        raise TrustError(
            f"root version {new.version} carries {own} valid signatures of its own keys; {new.threshold} are needed"
        )
    return new


def verify_first_root(doc: Document) -> Root:
    """A root trusted on first use (pinned by the enrollment token or installed by hand): self-signed to threshold."""
    if not isinstance(doc.value, Root):
        raise TrustError("not a root document")
    root = doc.value
    _check_root_shape(root)
    own = count_valid_signatures(doc, root.keys)
    if own < root.threshold:
        raise TrustError(
            f"root version {root.version} carries {own} valid signatures of its keys; {root.threshold} needed"
        )
    return root


def root_fingerprint(raw: bytes) -> str:
    """What an enrollment token pins: the hash of a root document's kind and body."""
    doc = parse_document(raw)
    if doc.kind != "root":
        raise TrustError("only a root document has a root fingerprint")
    return doc.id


@dataclass
class AddResult:
    id: str
    status: Literal["added", "known", "pending"]
    kind: str
    message: str = ""


class _Valid(dict[str, Certificate]):
    """Valid certificates by serial, also indexed by node: checking a chain asks for a node's newest certificate
    and its keys for every certificate checked, and a tree of thousands of nodes (a city's, held by every county
    and township since ids are unique across the tree) must not scan them all each time. Only ever added to."""

    def __init__(self) -> None:
        super().__init__()
        self.by_node: dict[str, list[Certificate]] = {}

    def __setitem__(self, serial: str, cert: Certificate) -> None:
        if serial in self:
            self.by_node[self[serial].node].remove(self[serial])
        super().__setitem__(serial, cert)
        self.by_node.setdefault(cert.node, []).append(cert)


def _valid_of(certs: Iterable[Certificate]) -> _Valid:
    out = _Valid()
    for cert in certs:
        out[cert.serial] = cert
    return out


@dataclass
class _Computed:
    certs: dict[str, Certificate] = field(default_factory=_Valid)  # serial -> valid certificate
    revocations: list[Revocation] = field(default_factory=list)
    retired: dict[str, list[Retirement]] = field(default_factory=dict)  # key_id -> retirements


class TrustState:
    """The trust documents a node holds and what follows from them. Pure: no I/O, no clock of its own."""

    def __init__(self, root: bytes) -> None:
        doc = parse_document(root)
        self.roots: list[Root] = [verify_first_root(doc)]
        self._root_docs: list[Document] = [doc]
        self._docs: dict[str, Document] = {}  # certificates and revocations, valid or not yet
        self._computed = _Computed()
        self._rejected: dict[str, str] = {}
        self._verified: dict[tuple[str, bytes, bytes], bool] = {}  # (document, public key, signature) -> good

    # -- what it holds ---------------------------------------------------------------

    @property
    def root(self) -> Root:
        return self.roots[-1]

    @property
    def county(self) -> str:
        return self.root.county

    def root_documents(self) -> list[bytes]:
        return [d.raw for d in self._root_docs]

    def documents(self) -> list[bytes]:
        """Every root version, then every valid certificate and revocation (oldest first)."""
        valid = set(self._valid_ids())
        rest = sorted((d for d in self._docs.values() if d.id in valid), key=_order)
        return [d.raw for d in self._root_docs] + [d.raw for d in rest]

    def pending(self) -> list[bytes]:
        valid = set(self._valid_ids())
        return [d.raw for d in self._docs.values() if d.id not in valid]

    def has(self, doc_id: str) -> bool:
        return doc_id in self._docs or any(d.id == doc_id for d in self._root_docs)

    def certificates(self, node: str | None = None) -> list[Certificate]:
        held = self._computed.certs
        if node is not None and isinstance(held, _Valid):
            return sorted(held.by_node.get(node, ()), key=lambda c: (c.issued_at, c.serial))
        certs = sorted(held.values(), key=lambda c: (c.issued_at, c.serial))
        return [c for c in certs if node is None or c.node == node]

    def current(self, node: str) -> Certificate | None:
        certs = self.certificates(node)
        return certs[-1] if certs else None

    def revocations(self) -> list[Revocation]:
        return list(self._computed.revocations)

    def retirements(self) -> dict[str, list[Retirement]]:
        return {k: list(v) for k, v in self._computed.retired.items()}

    def valid_ids(self) -> set[str]:
        """Ids of every root version and every valid certificate and revocation held."""
        return {d.id for d in self._root_docs} | set(self._valid_ids())

    def document(self, doc_id: str) -> Document | None:
        """A held document (root, valid or pending) by id, as parsed when it arrived."""
        held = self._docs.get(doc_id)
        return held if held is not None else next((d for d in self._root_docs if d.id == doc_id), None)

    def document_of(self, cert: Certificate) -> Document | None:
        """The held document carrying ``cert``."""
        return next((d for d in self._docs.values() if d.value == cert), None)

    def _valid_ids(self) -> Iterable[str]:
        for doc in self._docs.values():
            value = doc.value
            if isinstance(value, Certificate) and value.serial in self._computed.certs:
                if self._computed.certs[value.serial] == value:
                    yield doc.id
            elif isinstance(value, Revocation) and value in self._computed.revocations:
                yield doc.id

    # -- taking documents ------------------------------------------------------------

    def add(self, raw: bytes, *, now_ms: int) -> AddResult:
        """Take one document. Raises TrustError if it can never be valid; ``pending`` if its issuer is unknown."""
        return self.add_many([raw], now_ms=now_ms)[0]

    def add_many(self, raws: Sequence[bytes], *, now_ms: int) -> list[AddResult]:
        results: list[AddResult] = []
        errors: list[TrustError] = []
        fresh: list[tuple[int, Document]] = []
        for index, raw in enumerate(raws):
            try:
                doc = parse_document(raw)
            except TrustError as exc:
                results.append(AddResult(id="", status="pending", kind="?", message=exc.message))
                errors.append(exc)
                continue
            results.append(AddResult(id=doc.id, status="known", kind=doc.kind))
            held = self._docs.get(doc.id)
            if held is not None:
                # The same statement with other signatures (a second root key-holder signing later):
                # keep every signature, so a threshold can be reached across copies.
                merged = _merge_signatures(held, doc)
                if merged is not held:
                    self._docs[doc.id] = merged
                    results[-1].status = "added"
                continue
            if self.has(doc.id):
                continue
            fresh.append((index, doc))
        # Roots first, in version order, so certificates under a new root see its keys.
        for index, doc in sorted(fresh, key=lambda p: (p[1].kind != "root", _order(p[1]))):
            try:
                if doc.kind == "root":
                    self._add_root(doc)
                else:
                    self._precheck(doc, now_ms=now_ms)
                    self._docs[doc.id] = doc
                results[index].status = "added"
            except TrustError as exc:
                results[index].status = "pending"
                results[index].message = exc.message
                self._rejected[doc.id] = exc.message
                errors.append(exc)
        self._recompute()
        valid = set(self._valid_ids())
        for index, doc in fresh:
            if results[index].status == "added" and doc.kind != "root" and doc.id not in valid:
                results[index].status = "pending"
                results[index].message = f"issuer {_issuer(doc)} is not (yet) trusted here"
        if errors and len(raws) == 1:
            raise errors[0]
        return results

    def _add_root(self, doc: Document) -> None:
        root = doc.value
        assert isinstance(root, Root)
        if root.version <= self.root.version:
            # The same root again (e.g. twice in one batch). Not by position: the first trusted root may be any version.
            if any(held.id == doc.id for held in self._root_docs):
                return
            raise TrustError(f"root version {root.version} conflicts with the trusted one (rollback or fork)")
        if root.version != self.root.version + 1:
            raise Pending(f"root version {root.version} arrived before version {self.root.version + 1}")
        self.roots.append(verify_root_update(self.root, doc))
        self._root_docs.append(doc)

    def _precheck(self, doc: Document, *, now_ms: int) -> None:
        """What can be checked without the issuer's key: shape and validity period."""
        value = doc.value
        if isinstance(value, (Certificate, Revocation)) and (problem := _node_ids_problem(value)):
            raise TrustError(f"{doc.kind} {value.serial}: {problem}")
        if isinstance(value, Certificate):
            if value.role not in ROLES:
                raise TrustError(f"certificate for {value.node} names unknown role {value.role!r}")
            # The root certifies the node at the top of the tree (a county, or the city or province above
            # the counties) and nothing else; every node with a parent is certified by an ancestor.
            if value.issuer == ROOT_ISSUER and (value.node != self.county or value.parent is not None):
                raise TrustError(f"the root certifies hub {self.county} at the top of the tree, not {value.node}")
            if value.issuer != ROOT_ISSUER and not value.parent:
                raise TrustError(f"certificate for {value.node} ({value.role}) names no parent")
            if any(k.node != value.node for k in value.keys):
                raise TrustError(f"certificate for {value.node} lists a key of another node")
            if not any(k.algorithm == ED25519 for k in value.keys):
                raise TrustError(f"certificate for {value.node} lists no signing key")
            if any(k.algorithm not in (ED25519, X25519) for k in value.keys):
                raise TrustError(f"certificate for {value.node} lists a key of an unknown algorithm")
            if value.not_after <= value.not_before:
                raise TrustError(f"certificate for {value.node} has an empty validity period")
            if now_ms > value.not_after + CLOCK_ALLOWANCE_MS:
                raise TrustError(f"certificate {value.serial} for {value.node} has expired")
            if now_ms + CLOCK_ALLOWANCE_MS < value.not_before:
                raise TrustError(f"certificate {value.serial} for {value.node} is not valid yet")
        elif isinstance(value, Revocation):
            if value.issuer == value.node:
                raise TrustError("a node cannot revoke its own key; its parent or the county does")
        else:  # pragma: no cover - parse_document only builds the three kinds
            raise TrustError("unexpected document")

    # -- deciding what is valid -------------------------------------------------------

    def _root_signed(self, doc: Document) -> bool:
        """Signed by a threshold of some root version's keys (certificates outlive a root rotation)."""
        return any(count_valid_signatures(doc, r.keys) >= r.threshold for r in self.roots)

    def _signed_by(self, doc: Document, keys: Iterable[KeyRecord]) -> str | None:
        by_id = {k.key_id: k for k in keys if k.algorithm == ED25519}
        message = doc.signed_bytes()
        for key_id, signature in doc.signatures:
            record = by_id.get(key_id)
            if record is None:
                continue
            # Every recomputation checks every chain again; a signature checked once by a key stays checked.
            seen = (doc.id, record.public_key, signature)
            good = self._verified.get(seen)
            if good is None:
                try:
                    verify(record, message, signature)
                    good = True
                except SanjiError:
                    good = False
                self._verified[seen] = good
            if good:
                return key_id
        return None

    def _chain(self, retired: dict[str, list[Retirement]] | None) -> dict[str, Certificate]:
        """Certificates that chain to the root (respecting ``retired`` when given), with place conflicts
        resolved: serial -> cert.

        A certificate is checked against the place it asserts itself, so two issuers could each place
        the same node id under themselves (a township "certifying" another township's village, or the
        hub, to slip its own key into that node's entry). When a node's valid certificates name
        different parents, only those whose issuer is above the node in *every* claimed place stay —
        the county moving a village keeps its word, a township's claim outside its subtree falls, and
        the outcome does not depend on dates an issuer chose or on the order documents arrived in.
        """
        excluded: set[str] = set()
        while True:
            valid = self._fixpoint(retired, excluded)
            conflicting = _place_conflicts(valid) - excluded
            if not conflicting:
                return valid
            excluded |= conflicting

    def _fixpoint(self, retired: dict[str, list[Retirement]] | None, excluded: set[str]) -> dict[str, Certificate]:
        certs = sorted(
            (
                (d, d.value)
                for d in self._docs.values()
                if isinstance(d.value, Certificate) and d.value.serial not in excluded
            ),
            key=lambda p: (p[1].issued_at, p[1].serial),
        )
        valid = _Valid()
        progress = True
        while progress:
            progress = False
            for doc, cert in certs:
                if cert.serial in valid:
                    continue
                if self._cert_ok(doc, cert, valid, retired):
                    valid[cert.serial] = cert
                    progress = True
        return valid

    def _cert_ok(
        self,
        doc: Document,
        cert: Certificate,
        valid: dict[str, Certificate],
        retired: dict[str, list[Retirement]] | None,
    ) -> bool:
        if cert.issuer == ROOT_ISSUER:
            return self._root_signed(doc)
        if not _is_ancestor(cert.issuer, cert.parent, valid):
            return False
        parent = _latest(valid, cert.parent) if cert.parent else None
        if parent is None or ROLES.index(cert.role) <= ROLES.index(parent.role):
            return False  # a node sits below its parent's level: no township can certify a "county" under it
        issuer_certs = valid.by_node.get(cert.issuer, ()) if isinstance(valid, _Valid) else valid.values()
        issuer_keys = [k for c in issuer_certs if c.node == cert.issuer for k in c.keys]
        key_id = self._signed_by(doc, issuer_keys)
        if key_id is None:
            return False
        if retired is not None and key_id in retired:
            return all(cert.serial in r.keep for r in retired[key_id])
        return True

    def _recompute(self) -> None:
        # Pass 1: every certificate that chains to the root, ignoring retirements, says which keys
        # ever belonged to which node; revocations are judged against those (revoking errs safe).
        ever = self._chain(None)
        revocations: list[Revocation] = []
        for doc in sorted(self._docs.values(), key=_order):
            rev = doc.value
            if not isinstance(rev, Revocation):
                continue
            if rev.issuer == ROOT_ISSUER:
                ok = self._root_signed(doc)
            else:
                subject = _latest(ever, rev.node)
                ancestors = _ancestors(subject.parent if subject else None, ever)
                keys = [k for c in ever.values() if c.node == rev.issuer for k in c.keys]
                ok = (
                    rev.issuer in ancestors
                    and _may_retire(rev.issuer, rev.node, rev.retirement.key_id, ever)
                    and self._signed_by(doc, keys) is not None
                )
            if ok:
                revocations.append(rev)
        retired: dict[str, list[Retirement]] = {}
        for rev in revocations:
            retired.setdefault(rev.retirement.key_id, []).append(rev.retirement)
        for cert in ever.values():
            for retirement in cert.retires:
                if _may_retire(cert.issuer, cert.node, retirement.key_id, ever):  # only its own node's keys
                    retired.setdefault(retirement.key_id, []).append(retirement)
        # Pass 2: with retirements known, certificates issued by a retired key after its point fall away.
        self._computed = _Computed(certs=self._chain(retired), revocations=revocations, retired=retired)

    # -- what follows ----------------------------------------------------------------

    def entries(self) -> list[NodeEntry]:
        """One directory entry per certified node: its place from the newest certificate, every key it ever had."""
        by_node: dict[str, list[Certificate]] = {}
        for cert in self.certificates():
            by_node.setdefault(cert.node, []).append(cert)
        entries: list[NodeEntry] = []
        for node, certs in by_node.items():
            newest = certs[-1]
            keys: dict[str, KeyRecord] = {}
            for cert in certs:
                for key in cert.keys:
                    keys.pop(key.key_id, None)  # re-listed keys move to the end: the newest order wins
                    keys[key.key_id] = key
            entries.append(
                NodeEntry(id=node, role=newest.role, parent=newest.parent, name=newest.name, keys=tuple(keys.values()))
            )
        return entries

    def revocation_points(self) -> dict[str, dict[tuple[str, str], int]]:
        """key_id -> {(origin, scope): last seq the key may sign}; streams not named allow nothing."""
        out: dict[str, dict[tuple[str, str], int]] = {}
        for key_id, retirements in self._computed.retired.items():
            merged: dict[tuple[str, str], int] | None = None
            for r in retirements:
                points = {(o, s): q for o, s, q in r.points}
                if merged is None:
                    merged = points
                else:  # two retirements of one key: the stricter point of each stream holds
                    merged = {k: min(v, points[k]) for k, v in merged.items() if k in points}
            out[key_id] = merged or {}
        return out

    def directory(self, base: Iterable[NodeEntry] = ()) -> Directory:
        """The tree as certified, on top of ``base`` (entries configured by hand, e.g. directory.json).

        A certified node replaces its hand-configured entry; hand entries whose place conflicts
        with a certificate are dropped (the certificate wins).
        """
        certified = {e.id: e for e in self.entries()}
        merged = [e for e in base if e.id not in certified] + list(certified.values())
        return Directory(merged, revoked_after=self.revocation_points())

    def place_conflict(self, cert: Certificate) -> str:
        """Why ``cert`` may not be taken here ("" if it may): its node is already certified under another
        parent and the issuer is not above the node in both places — only the county (or an ancestor of
        both places) moves a node. Asked before a certificate is kept, so the first valid placement of an
        id holds and a certificate issued elsewhere in the tree can never make that node unverifiable."""
        held = self.current(cert.node)
        if held is None or held.parent == cert.parent or held.serial == cert.serial:
            return ""
        if cert.issuer == ROOT_ISSUER:
            return ""
        valid = _valid_of(self.certificates())
        if cert.issuer in _ancestors(held.parent, valid) and cert.issuer in _ancestors(cert.parent, valid):
            return ""
        return (
            f"{cert.node} is certified under {held.parent}; {cert.issuer} may not place it under {cert.parent} "
            "(only an ancestor of both places, such as the county, moves a node)"
        )

    def signed_by_its_issuer(self, doc: Document) -> bool:
        """Whether ``doc``, a certificate, carries a good signature by a key its issuer holds here (the root's,
        for one the root issues). A place conflict is only worth telling a desk about for such a certificate:
        one anybody could have made up says nothing about the ids in use."""
        cert = doc.value
        if not isinstance(cert, Certificate):
            return False
        if cert.issuer == ROOT_ISSUER:
            return self._root_signed(doc)
        keys = [k for c in self.certificates(cert.issuer) for k in c.keys]
        return self._signed_by(doc, keys) is not None

    def id_in_use(self, node: str, parent: str) -> str:
        """Why ``parent`` may not enroll a node called ``node`` ("" if it may): the id is already certified
        elsewhere in the tree. Node ids are unique across the whole tree, not within a county: every stream,
        receipt and certificate is named by them, and the top hub keeps only the first placement of an id
        (``place_conflict``). A node that enrolls others holds every certificate its parent holds, so this
        answers for every id that has reached the top of the tree by the last exchange."""
        held = self.current(node)
        if held is None or held.parent == parent:
            return ""
        if not held.parent:  # the hub at the top of the tree (certified by the root): no parent to name
            return (
                f"节点编号 {node} 已是本树顶层中心的编号，全树内编号不得重复。"
                f"Node id {node} is the hub at the top of the tree; ids are unique across the whole tree."
            )
        valid = _valid_of(self.certificates())
        county = next((n for n in _ancestors(held.parent, valid) if (c := _latest(valid, n)) and c.role == COUNTY), "")
        where = f"{held.parent} ({county})" if county and county != held.parent else str(held.parent)
        return (
            f"节点编号 {node} 已在 {where} 下使用，全树内编号不得重复。"
            f"Node id {node} is already certified under {where}; ids are unique across the whole tree."
        )

    def instance_of(self, node: str) -> str:
        """The database instance ``node``'s newest certificate binds it to ("" when unbound)."""
        cert = self.current(node)
        return cert.instance if cert else ""


def _node_ids_problem(value: Certificate | Revocation) -> str | None:
    """The first node id a certificate or revocation names that is out of bounds (``protocol.bounds``), or None.

    The same bound as enrollment's: a hand-made certificate for an id no store could hold is refused here,
    on every node, before anything is kept.
    """
    named: list[tuple[str, str | None]] = [("node", value.node), ("issuer", value.issuer)]
    if isinstance(value, Certificate):
        named.append(("parent", value.parent))
        named.extend(("key node", k.node) for k in value.keys)
    for field_name, node in named:
        if node is not None and (problem := node_id_problem(node, field=field_name)):
            return problem
    return None


def _merge_signatures(held: Document, other: Document) -> Document:
    seen = {key_id for key_id, _ in held.signatures}
    extra = tuple((k, sig) for k, sig in other.signatures if k not in seen)
    if not extra:
        return held
    signatures = (held.signatures + extra)[:MAX_SIGNATURES]
    envelope = _Envelope(held.kind, held.body, tuple(_Sig(k, sig) for k, sig in signatures))
    raw = MAGIC + bytes([FORMAT_VERSION]) + _encoder.encode(envelope)
    return Document(raw=raw, kind=held.kind, body=held.body, value=held.value, signatures=signatures)


def _order(doc: Document) -> tuple[int, int, str]:
    value = doc.value
    if isinstance(value, Root):
        return (0, value.version, doc.id)
    return (1, value.issued_at, doc.id)


def _issuer(doc: Document) -> str:
    value = doc.value
    return value.issuer if isinstance(value, (Certificate, Revocation)) else ROOT_ISSUER


def _latest(valid: dict[str, Certificate], node: str) -> Certificate | None:
    if isinstance(valid, _Valid):
        held = valid.by_node.get(node)
        return max(held, key=lambda c: (c.issued_at, c.serial)) if held else None
    certs = sorted((c for c in valid.values() if c.node == node), key=lambda c: (c.issued_at, c.serial))
    return certs[-1] if certs else None


def _ancestors(start: str | None, valid: dict[str, Certificate]) -> list[str]:
    out: list[str] = []
    current = start
    while current is not None and current not in out:
        out.append(current)
        cert = _latest(valid, current)
        current = cert.parent if cert else None
    return out


def _is_ancestor(issuer: str, parent: str | None, valid: dict[str, Certificate]) -> bool:
    """``issuer`` is the subject's parent or above it, as the valid certificates place them."""
    return issuer in _ancestors(parent, valid)


def _place_conflicts(valid: dict[str, Certificate]) -> set[str]:
    """Serials of certificates whose issuer is not above their node in every place its certificates claim."""
    places: dict[str, set[str | None]] = {}
    for cert in valid.values():
        places.setdefault(cert.node, set()).add(cert.parent)
    out: set[str] = set()
    for cert in valid.values():
        claimed = places[cert.node]
        if len(claimed) < 2 or cert.issuer == ROOT_ISSUER:
            continue
        if not all(cert.issuer in _ancestors(parent, valid) for parent in claimed):
            out.add(cert.serial)
    return out


def _may_retire(issuer: str, node: str, key_id: str, valid: dict[str, Certificate]) -> bool:
    """``key_id`` is one of ``node``'s keys, and any other node listing it is below ``issuer`` too.

    A certificate may list any public key, so naming ``node`` is not enough: a key that a
    certificate copied under another node is that node's as well, and only the root or an
    ancestor of that node may retire it.
    """
    owners = {c.node for c in valid.values() if any(k.key_id == key_id for k in c.keys)}
    if node not in owners:
        return False
    for owner in owners - {node}:
        subject = _latest(valid, owner)
        if issuer != ROOT_ISSUER and (subject is None or issuer not in _ancestors(subject.parent, valid)):
            return False
    return True


def make_root(keys: Sequence[SigningKey], *, county: str, version: int = 1, threshold: int = 2, now_ms: int) -> Root:
    return Root(
        version=version,
        county=county,
        keys=tuple(k.record(ROOT_NODE) for k in keys),
        threshold=threshold,
        issued_at=now_ms,
    )


def make_certificate(
    *,
    node: str,
    role: str,
    parent: str | None,
    keys: Sequence[KeyRecord],
    issuer: str,
    now_ms: int,
    name: str = "",
    instance: str = "",
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    retires: Sequence[Retirement] = (),
) -> Certificate:
    return Certificate(
        serial=new_serial(),
        node=node,
        role=role,
        parent=parent,
        name=name,
        keys=tuple(keys),
        issuer=issuer,
        issued_at=now_ms,
        not_before=now_ms,
        not_after=now_ms + validity_days * 24 * 3600 * 1000,
        instance=instance,
        retires=tuple(retires),
    )
