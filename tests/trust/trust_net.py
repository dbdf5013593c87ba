"""A county (or a city over counties) in one process whose every node joined by token and holds a real certificate.

Nothing is hand-configured below the root: the hub is certified by two of three root keys,
each township redeems a token the county issued, each village one its township issued, all
through ``SyncServer.enroll`` — the same code the ``/sync/v1/enroll`` endpoint runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from protocol.enrollment import make_request
from protocol.signing import SigningKey
from protocol.topology import CITY, COUNTY, TOWN, VILLAGE
from protocol.trust import ROOT_ISSUER, TrustState, make_certificate, make_root, parse_document, sign_document
from sanji.keys import NodeKey, write_key
from sanji.service import ErrandService
from sanji.store import Database, Store, open_database
from sanji.store.repo import database_instance
from sanji.store.trustbook import TrustBook
from sanji.sync.driver import SessionReport, sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from sanji.sync.trust_step import ChildTrust


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class TrustNet:
    base: Path
    root_keys: list[SigningKey]
    root_doc: bytes
    parents: dict[str, str | None] = field(default_factory=dict)
    stores: dict[str, Store] = field(default_factory=dict)
    books: dict[str, TrustBook] = field(default_factory=dict)
    servers: dict[str, SyncServer] = field(default_factory=dict)
    transports: dict[str, LocalTransport] = field(default_factory=dict)
    child_trust: dict[str, ChildTrust] = field(default_factory=dict)
    dbs: list[Database] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)  # a node's database other than its SQLite file (PostgreSQL)

    def url(self, node: str, machine: str = "") -> str:
        return self.urls.get(node + machine) or f"sqlite:///{self.base / node}{machine}.db"

    def key_path(self, node: str) -> Path:
        return self.base / f"{node}.key"

    def service(self, node: str) -> ErrandService:
        return ErrandService(self.stores[node])

    async def _open(self, node: str, key: NodeKey, state: TrustState, *, machine: str = "") -> Store:
        db = await open_database(self.url(node, machine))
        self.dbs.append(db)
        store = Store(db, node_id=node, key=key, directory=state.directory())
        await store.start()
        book = TrustBook(store, required=True)
        await book.install_root(self.root_doc)
        await book.add(state.documents()[1:])
        self.stores[node], self.books[node] = store, book
        self.servers[node] = SyncServer(store, trust=book)
        return store

    async def start_hub(self, node: str = "C", *, role: str = COUNTY) -> None:
        key = NodeKey.generate_pair()
        write_key(self.key_path(node), key)
        db = await open_database(self.url(node))
        instance = await database_instance(db)
        await db.dispose()
        cert = make_certificate(
            node=node,
            role=role,
            parent=None,
            keys=key.records(node),
            issuer=ROOT_ISSUER,
            now_ms=now_ms(),
            instance=instance,
        )
        state = TrustState(self.root_doc)
        state.add_many([sign_document(cert, self.root_keys[:2])], now_ms=now_ms())
        self.parents[node] = None
        await self._open(node, key, state)

    async def enroll(self, node: str, role: str, parent: str, *, name: str = "", machine: str = "") -> Store:
        """Enroll ``node`` by token; ``machine`` names another laptop (its own database) for the same node."""
        issued = await self.books[parent].issue_token(node=node, role=role, name=name)
        key = NodeKey.generate_pair()
        write_key(self.key_path(node), key)
        db = await open_database(self.url(node, machine))
        instance = await database_instance(db)
        await db.dispose()
        request = make_request(issued.token, key=key, keys=key.records(node), instance=instance, name=name)
        response = await self.servers[parent].enroll(request)
        state = TrustState(self.root_doc)
        state.add_many([*response.bundle, response.certificate], now_ms=now_ms())
        self.parents[node] = parent
        store = await self._open(node, key, state, machine=machine)
        self.transports[node] = LocalTransport(self.servers[parent])
        self.child_trust[node] = ChildTrust(self.books[node], key_path=self.key_path(node))
        return store

    async def sync(self, node: str) -> SessionReport:
        return await sync_once(self.stores[node], self.transports[node], trust=self.child_trust[node])

    def bottom_up(self) -> list[str]:
        def depth(n: str) -> int:
            d, p = 0, self.parents[n]
            while p is not None:
                d, p = d + 1, self.parents[p]
            return d

        return sorted((n for n in self.parents if self.parents[n] is not None), key=lambda n: (-depth(n), n))

    async def sync_all(self, rounds: int = 1) -> None:
        order = self.bottom_up()
        for _ in range(rounds):
            for node in [*order, *reversed(order)]:
                await self.sync(node)

    async def close(self) -> None:
        for db in self.dbs:
            await db.dispose()


async def certified_net(base: Path, towns: int = 1, villages: int = 2) -> TrustNet:
    root_keys = [SigningKey.generate() for _ in range(3)]
    root_doc = sign_document(make_root(root_keys, county="C", now_ms=now_ms()), root_keys)
    net = TrustNet(base=base, root_keys=root_keys, root_doc=root_doc)
    await net.start_hub()
    for t in range(1, towns + 1):
        town = f"T{t:02d}"
        await net.enroll(town, TOWN, "C")
        for v in range(1, villages + 1):
            await net.enroll(f"{town}V{v:02d}", VILLAGE, town)
    return net


async def certified_city(base: Path, counties: int = 2, *, urls: dict[str, str] | None = None) -> TrustNet:
    """A city hub ``S`` at the root of trust; it enrolls counties ``C1``…, each a county as ``certified_net`` builds.

    ``urls``: databases for some nodes other than SQLite files (``{"S": pg_url}``: the city on PostgreSQL)."""
    root_keys = [SigningKey.generate() for _ in range(3)]
    root_doc = sign_document(make_root(root_keys, county="S", now_ms=now_ms()), root_keys)
    net = TrustNet(base=base, root_keys=root_keys, root_doc=root_doc, urls=dict(urls or {}))
    await net.start_hub("S", role=CITY)
    for c in range(1, counties + 1):
        county = f"C{c}"
        await net.enroll(county, COUNTY, "S")
        await net.enroll(f"{county}T01", TOWN, county)
        await net.enroll(f"{county}T01V01", VILLAGE, f"{county}T01")
    return net


def doc_kind(raw: bytes) -> str:
    return parse_document(raw).kind
