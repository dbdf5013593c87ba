"""A certified county for tests: root keys, the hub, townships and villages, all with real certificates."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.signing import SigningKey
from protocol.topology import COUNTY, TOWN, VILLAGE
from protocol.trust import (
    ROOT_ISSUER,
    Retirement,
    Revocation,
    TrustState,
    make_certificate,
    make_root,
    new_serial,
    sign_document,
)

NOW = 1_790_000_000_000  # ms; a fixed "now" so validity periods are deterministic


@dataclass
class CertifiedTree:
    root_keys: list[SigningKey]
    root_doc: bytes
    county: str
    keys: dict[str, SigningKey] = field(default_factory=dict)
    docs: list[bytes] = field(default_factory=list)  # certificates, in issuing order
    parents: dict[str, str | None] = field(default_factory=dict)

    def state(self, *, docs: list[bytes] | None = None) -> TrustState:
        state = TrustState(self.root_doc)
        state.add_many(self.docs if docs is None else docs, now_ms=NOW)
        return state

    def certify(
        self,
        node: str,
        role: str,
        parent: str | None,
        *,
        issuer: str | None = None,
        key: SigningKey | None = None,
        instance: str = "",
        retires: tuple[Retirement, ...] = (),
        now_ms: int = NOW,
    ) -> bytes:
        key = key or SigningKey.generate()
        self.keys[node] = key
        self.parents[node] = parent
        issuer = issuer if issuer is not None else (ROOT_ISSUER if role == COUNTY else parent)
        assert issuer is not None
        cert = make_certificate(
            node=node,
            role=role,
            parent=parent,
            keys=[key.record(node)],
            issuer=issuer,
            now_ms=now_ms,
            instance=instance,
            retires=retires,
        )
        signers = self.root_keys[:2] if issuer == ROOT_ISSUER else [self.keys[issuer]]
        doc = sign_document(cert, signers)
        self.docs.append(doc)
        return doc

    def revoke(
        self,
        node: str,
        key_id: str,
        *,
        issuer: str,
        points: tuple[tuple[str, str, int], ...] = (),
        keep: tuple[str, ...] = (),
    ) -> bytes:
        rev = Revocation(
            serial=new_serial(),
            node=node,
            retirement=Retirement(key_id=key_id, points=points, keep=keep),
            issuer=issuer,
            issued_at=NOW + 1,
            reason="laptop stolen",
        )
        signers = self.root_keys[:2] if issuer == ROOT_ISSUER else [self.keys[issuer]]
        doc = sign_document(rev, signers)
        self.docs.append(doc)
        return doc


def certified_tree(towns: int = 2, villages: int = 2) -> CertifiedTree:
    root_keys = [SigningKey.generate() for _ in range(3)]
    root_doc = sign_document(make_root(root_keys, county="C", now_ms=NOW), root_keys)
    tree = CertifiedTree(root_keys=root_keys, root_doc=root_doc, county="C")
    tree.certify("C", COUNTY, None)
    for t in range(1, towns + 1):
        town = f"T{t:02d}"
        tree.certify(town, TOWN, "C")
        for v in range(1, villages + 1):
            tree.certify(f"{town}V{v:02d}", VILLAGE, town)
    return tree
