"""The trust documents a node keeps, and what it does with them: issue, enroll, rotate, revoke.

Beside the ``Store`` (same database, same single-writer transactions). The verdicts are
``protocol.trust.TrustState``'s; this book persists every document that may become valid,
installs the resulting directory in the store whenever it changes, and answers the questions
a sync session asks: which documents does this child lack, which must go up to the parent.

Without a root installed a node runs on its hand-configured ``directory.json`` as before;
with one, certified entries replace the hand-written ones, and with ``required`` nothing but
certificates places a node or vouches for a key.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.bounds import node_id_problem
from protocol.enrollment import (
    TOKEN_VALID_DAYS,
    EnrollmentError,
    EnrollRequest,
    EnrollResponse,
    Token,
    check_request,
    new_token,
)
from protocol.errors import SanjiError
from protocol.hlc import wall_ms
from protocol.session import RotateKeys
from protocol.signing import ED25519, verify
from protocol.topology import Directory, NodeEntry, enrolls, level_below
from protocol.trust import (
    AddResult,
    Certificate,
    Document,
    Retirement,
    Revocation,
    Root,
    TrustError,
    TrustState,
    make_certificate,
    new_serial,
    parse_document,
    root_fingerprint,
    sign_document,
)
from sanji.store import clones, submissions
from sanji.store import schema as t
from sanji.store.engine import Database
from sanji.store.repo import Store
from sanji.store.submissions import Once
from sanji.store.together import together

log = logging.getLogger("sanji.trust")


class CloneSuspected(SanjiError):
    code = "clone_suspected"
    default_hint = (
        "This node's database is not the one its certificate was issued for: a copied key or disk. "
        "Re-enroll the genuine machine with a new token; the exchange was refused and logged."
    )


@dataclass(frozen=True)
class IssuedToken:
    token: Token
    expires_at: float


async def read_trust_state(db: Database, *, now_ms: int) -> TrustState | None:
    """The trust state held in ``db``, or None when no root was ever installed there."""
    async with db.reader.connect() as conn:
        rows = (await conn.execute(select(t.trust_docs.c.kind, t.trust_docs.c.raw).order_by(t.trust_docs.c.seq))).all()
    roots = [bytes(raw) for kind, raw in rows if kind == "root"]
    if not roots:
        return None
    state = TrustState(roots[0])
    state.add_many([bytes(raw) for _, raw in rows], now_ms=now_ms)
    return state


def _subject(value: Root | Certificate | Revocation) -> str:
    return "" if isinstance(value, Root) else value.node


_Conflict = tuple[Document, Certificate, str]  # a certificate refused for its placement, and why
WHOLE_TREE = "+tree"  # marks a trust cursor that counted every certificate (``TrustBook.for_child``)
# One reply's trust documents (``for_child``): well under what a child reads of a reply (16 MiB), whatever
# the tree's size; the rest goes with the next exchanges.
TRUST_REPLY_BYTES = 2 * 1024 * 1024
TRUST_ROWS_PER_REPLY = 4000


class TrustBook:
    def __init__(self, store: Store, *, base: Sequence[NodeEntry] = (), required: bool = False) -> None:
        self.store = store
        self.base = list(base)  # hand-configured entries (directory.json); ignored when ``required``
        self.required = required
        self.state: TrustState | None = None
        self._mark: tuple[int, int] = (-1, -1)  # (rows, highest seq) of trust_docs when last read
        self._lock = asyncio.Lock()  # a refresh never interleaves with this process's own writes

    async def _read_mark(self) -> tuple[int, int]:
        async with self.store.db.reader.connect() as conn:
            rows, top = (await conn.execute(select(func.count(), func.max(t.trust_docs.c.seq)))).one()
        return int(rows or 0), int(top or 0)

    async def refresh(self, mark: tuple[int, int] | None = None) -> bool:
        """Re-read the trust state if another process changed the documents (``sanji trust revoke`` on the
        database of this running node, a screen of another hub process): one cheap query per call, so
        every sync request and session asks. Every write adds or moves a row, so (rows, highest seq)
        changes with it. ``mark``: (rows, highest seq) as the caller read them just now (a sync request
        reads it with the rest of what it asks first, ``sanji.sync.glance``). True if the directory was
        rebuilt."""
        async with self._lock:
            if mark is None:
                mark = await self._read_mark()
            if mark == self._mark:
                return False
            state = await read_trust_state(self.store.db, now_ms=self._now())
            self._mark = mark
            if state is None:
                return False
            self.state = state
            if self.store.node_id not in state.directory([] if self.required else self.base):
                return False  # mid-enrollment (a root, no certificate of this node yet): nothing to install
            self._install()
        log.info("%s: trust documents changed on disk; directory rebuilt", self.store.node_id)
        return True

    @property
    def enabled(self) -> bool:
        return self.state is not None

    # -- loading and installing ---------------------------------------------------------

    async def load(self) -> None:
        """Rebuild the trust state from the database; install the directory it gives."""
        self._mark = await self._read_mark()
        self.state = await read_trust_state(self.store.db, now_ms=self._now())
        if self.state is None:
            if self.required:
                raise SanjiError(
                    f"node {self.store.node_id} holds no root of trust and [trust] required = true",
                    hint="Enroll the node first: `sanji enroll join --config ... --token ...` (or, at the county, "
                    "`sanji trust init-root`).",
                )
            return
        self._install()

    def _now(self) -> int:
        return wall_ms(self.store.clock.now())

    def _install(self) -> None:
        assert self.state is not None
        base = [] if self.required else self.base
        directory = self.state.directory(base)
        if self.store.node_id not in directory:
            raise SanjiError(
                f"node {self.store.node_id} has no valid certificate",
                hint="Enroll it with a token from its parent (`sanji enroll join`), or ask the parent to re-issue.",
            )
        self.store.use_directory(directory)

    def directory(self) -> Directory:
        return self.store.directory

    async def install_root(self, raw: bytes) -> None:
        """Trust ``raw`` as the first root (county: from `trust init-root`; child: checked against its token)."""
        doc = parse_document(raw)
        if doc.kind != "root":
            raise TrustError("only a root document can be installed as the root of trust")
        async with self.store.db.reader.connect() as conn:
            held = await conn.scalar(
                select(func.count()).select_from(t.trust_docs).where(t.trust_docs.c.kind == "root")
            )
        if held:
            if self.state is not None and self.state.has(doc.id):
                return
            raise TrustError("this node already trusts a root; a new version arrives signed by the old one")
        TrustState(raw)  # verifies it
        async with self.store.transaction() as conn:
            await conn.execute(
                insert(t.trust_docs).values(
                    id=doc.id, kind="root", subject="", raw=raw, received_at=time.time(), peer=""
                )
            )
        self.state = TrustState(raw)
        self._mark = (-1, -1)  # read again by the next ``refresh`` or ``for_child``
        if self.store.node_id in self.state.directory(self.base):
            self._install()

    # -- taking documents ----------------------------------------------------------------

    async def add(self, docs: Sequence[bytes], *, peer: str = "") -> list[AddResult]:
        """Keep every document that is or may become valid; install the directory if it changed."""
        if self.state is None or not docs:
            return []
        await self.refresh()  # documents another process wrote first: judge against everything held
        async with self._lock:
            results = await self._add(docs, peer=peer)
            # Not the mark read after the commit: another process may have written in between, and a mark
            # counting its document would keep this process from ever reading it (a revocation missed).
            self._mark = (-1, -1)
        await self.refresh()
        return results

    async def _add(self, docs: Sequence[bytes], *, peer: str) -> list[AddResult]:
        assert self.state is not None
        docs, conflicts = self._one_place_only(docs)
        try:
            return await self._add_placed(docs, peer=peer)
        finally:
            # Judged once the rest of the documents are in: the issuer's own certificate may come with them.
            await self._say_conflicts(conflicts, peer=peer)

    async def _add_placed(self, docs: Sequence[bytes], *, peer: str) -> list[AddResult]:
        assert self.state is not None
        if not docs:
            return []
        before = set(self._valid_ids())
        results = self.state.add_many(docs, now_ms=self._now())
        after = set(self._valid_ids())
        async with self.store.transaction() as conn:
            held = set((await conn.execute(select(t.trust_docs.c.id))).scalars())
            for raw, result in zip(docs, results, strict=True):
                if not result.id or not self.state.has(result.id):
                    continue
                stored = self._raw_of(result.id) or raw
                if result.id in held:
                    if result.status == "added":  # more signatures merged in
                        await conn.execute(
                            update(t.trust_docs).where(t.trust_docs.c.id == result.id).values(raw=stored)
                        )
                    continue
                value = parse_document(stored).value
                await conn.execute(
                    insert(t.trust_docs).values(
                        id=result.id,
                        kind=result.kind,
                        subject=_subject(value),
                        raw=stored,
                        received_at=time.time(),
                        peer=peer,
                    )
                )
                held.add(result.id)
                if peer:  # it came from there: never send it back
                    await conn.execute(insert(t.trust_sent).values(peer=peer, id=result.id))
            # Documents that were pending and are valid now move to the end, so children whose
            # trust cursor already passed them still receive them.
            for doc_id in after - before:
                row = (await conn.execute(select(t.trust_docs).where(t.trust_docs.c.id == doc_id))).mappings().first()
                if row is None or row["seq"] == await conn.scalar(select(func.max(t.trust_docs.c.seq))):
                    continue
                values = {k: row[k] for k in ("id", "kind", "subject", "raw", "received_at", "peer")}
                await conn.execute(delete(t.trust_docs).where(t.trust_docs.c.id == doc_id))
                await conn.execute(insert(t.trust_docs).values(**values))
        if after != before or any(r.kind == "root" and r.status == "added" for r in results):
            self._install()
        return results

    def _one_place_only(self, docs: Sequence[bytes]) -> tuple[list[bytes], list[_Conflict]]:
        """``docs`` without certificates that would place an already certified node under another parent,
        and those certificates with why (never kept)."""
        assert self.state is not None
        kept: list[bytes] = []
        conflicts: list[_Conflict] = []
        for raw in docs:
            try:
                doc = parse_document(raw)
            except TrustError:
                kept.append(raw)  # TrustState reports it
                continue
            value = doc.value
            why = self.state.place_conflict(value) if isinstance(value, Certificate) else ""
            if why and isinstance(value, Certificate):
                conflicts.append((doc, value, why))
                continue
            kept.append(raw)
        return kept, conflicts

    async def _say_conflicts(self, conflicts: Sequence[_Conflict], *, peer: str) -> None:
        """Log each refused placement signed by its issuer (what the desks show as 节点编号冲突); drop the rest
        quietly: a certificate its issuer never signed could have been made up by anyone who sends bytes."""
        assert self.state is not None
        for doc, value, why in conflicts:
            if not self.state.signed_by_its_issuer(doc):
                log.info("%s: dropped a certificate from %s its issuer did not sign: %s", self.store.node_id, peer, why)
                continue
            log.warning("%s: refused a certificate from %s: %s", self.store.node_id, peer or "here", why)
            held = self.state.current(value.node)
            detail = {
                "issuer": value.issuer,
                "parent": value.parent,
                "held_parent": held.parent if held else None,
                "from": peer,
                "message": why,
            }
            await self.store.log_event("place_conflict", value.node, detail)

    def _valid_ids(self) -> set[str]:
        assert self.state is not None
        return self.state.valid_ids()

    def _raw_of(self, doc_id: str) -> bytes | None:
        assert self.state is not None
        doc = self.state.document(doc_id)
        return doc.raw if doc is not None else None

    # -- what travels in a sync session --------------------------------------------------

    async def for_child(self, child: str, cursor: int, epoch: str) -> tuple[tuple[bytes, ...], int, str]:
        """Valid documents a child should hold (roots; certificates and revocations on its path and
        below it) that arrived here after ``cursor``. Returns (documents, new cursor, epoch)."""
        if self.state is None:
            return (), 0, ""
        directory = self.store.directory
        wanted = set(directory.path(child)) | directory.subtree(child) if child in directory else {child}
        # A child that enrolls others gets every certificate held here: ids are unique across the whole tree.
        everything = child in directory and enrolls(directory.role(child))
        # The epoch says what the cursor counted: a child whose cursor counted only its own path and subtree
        # (before ids were unique across the tree) starts over once, and so takes the ids used elsewhere.
        mine = self.store.instance_id + (WHOLE_TREE if everything else "")
        if epoch != mine:
            cursor = 0  # another database (or a restored one) counts differently: start over
        # The highest seq as this process last read or wrote the documents: the request's ``refresh`` has
        # just read it, and a document this process adds moves it (``add``). One written by another process
        # since then goes down with the child's next exchange.
        if self._mark[0] < 0:  # never read in this process
            self._mark = await self._read_mark()
        top = self._mark[1]
        if cursor > top:
            cursor = 0
        if cursor == top:
            return (), top, mine  # the child holds everything up to here: nothing to read
        valid = set(self._valid_ids())
        async with self.store.db.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        t.trust_docs.c.seq,
                        t.trust_docs.c.id,
                        t.trust_docs.c.kind,
                        t.trust_docs.c.subject,
                        t.trust_docs.c.raw,
                    )
                    .where(t.trust_docs.c.seq > cursor, t.trust_docs.c.seq <= top)
                    .order_by(t.trust_docs.c.seq)
                    .limit(TRUST_ROWS_PER_REPLY)
                )
            ).all()
        # A page at a time: a county joining a large tree, or one catching up after the upgrade, takes the
        # whole tree's documents over several exchanges, never one reply past what a child reads.
        out: list[bytes] = []
        sent, reached, full = 0, cursor, False
        for seq, doc_id, kind, subject, raw in rows:
            if kind == "root" or (doc_id in valid and (everything or subject in wanted)):
                if out and sent + len(raw) > TRUST_REPLY_BYTES:
                    full = True
                    break
                out.append(bytes(raw))
                sent += len(raw)
            reached = int(seq)
        if not full and len(rows) < TRUST_ROWS_PER_REPLY:
            reached = top
        return tuple(out), reached, mine

    async def for_parent(self, parent: str) -> tuple[tuple[str, bytes], ...]:
        """Valid certificates and revocations about this node's subtree the parent has not taken yet."""
        if self.state is None:
            return ()
        subtree = self.store.directory.subtree(self.store.node_id)
        valid = set(self._valid_ids())
        async with self.store.db.reader.connect() as conn:
            sent = set((await conn.execute(select(t.trust_sent.c.id).where(t.trust_sent.c.peer == parent))).scalars())
            rows = (
                await conn.execute(
                    select(t.trust_docs.c.id, t.trust_docs.c.subject, t.trust_docs.c.raw)
                    .where(t.trust_docs.c.kind != "root")
                    .order_by(t.trust_docs.c.seq)
                )
            ).all()
        return tuple(
            (doc_id, bytes(raw))
            for doc_id, subject, raw in rows
            if doc_id in valid and subject in subtree and doc_id not in sent
        )

    async def taken_by(self, parent: str, ids: Iterable[str]) -> None:
        async with self.store.transaction() as conn:
            have = set((await conn.execute(select(t.trust_sent.c.id).where(t.trust_sent.c.peer == parent))).scalars())
            for doc_id in set(ids) - have:
                await conn.execute(insert(t.trust_sent).values(peer=parent, id=doc_id))

    async def from_child(self, child: str, docs: Sequence[bytes]) -> tuple[str, ...]:
        """Take documents a child sent up: only about the child's subtree (a child cannot speak for others)."""
        if self.state is None or not docs:
            return ()
        subtree = self.store.directory.subtree(child) if child in self.store.directory else {child}
        parsed = []
        for raw in docs:
            try:
                parsed.append((raw, parse_document(raw)))
            except TrustError:
                continue
        allowed: list[bytes] = []
        taken: list[str] = []
        progress = True
        while progress:  # a new village's certificate names its township, already in the subtree
            progress = False
            for raw, doc in parsed:
                value = doc.value
                if doc.id in taken or isinstance(value, Root):
                    continue
                below = value.node in subtree or (isinstance(value, Certificate) and value.parent in subtree)
                if below:
                    subtree.add(value.node)
                    allowed.append(raw)
                    taken.append(doc.id)
                    progress = True
        try:
            results = await self.add(allowed, peer=child)
        except TrustError as exc:  # one document, refused: the child must not resend it, and the refusal is logged
            results = [AddResult(id="", status="pending", kind="?", message=exc.message)]
        for result in results:
            if result.status == "pending" and not (result.id and self.state.has(result.id)):
                # Never kept (out of bounds, badly signed, expired): logged under the child that sent it, since the
                # document's own node id may be one no column can hold.
                log.warning("%s: refused a trust document from %s: %s", self.store.node_id, child, result.message)
                await self.store.log_event("trust_refused", child, {"message": result.message[:500]})
        return tuple(taken)

    async def peer_position(self, peer: str) -> tuple[str, int, str]:
        """(epoch, cursor, lease) this node holds for its parent ``peer``."""
        async with self.store.db.reader.connect() as conn:
            row = (await conn.execute(select(t.trust_peers).where(t.trust_peers.c.peer == peer))).mappings().first()
        if row is None:
            return "", 0, ""
        return str(row["epoch"]), int(row["cursor"]), str(row["lease"])

    async def set_peer_position(self, peer: str, *, epoch: str, cursor: int, lease: str) -> None:
        async with self.store.transaction() as conn:
            await conn.execute(delete(t.trust_peers).where(t.trust_peers.c.peer == peer))
            await conn.execute(insert(t.trust_peers).values(peer=peer, epoch=epoch, cursor=cursor, lease=lease))

    # -- the parent's checks on a child ----------------------------------------------------

    async def check_child(self, child: str, *, instance: str, lease: str) -> str:
        """Refuse a child whose database is not the one it was enrolled with; hand out the next lease.

        A stale lease (not the one handed out last) means a restored backup or a second copy of the
        node: the exchange goes on (a restored node must recover), the event is logged for the county.
        """
        bound = self.state.instance_of(child) if self.state is not None else ""
        if bound and instance != bound:
            await self.store.log_event("clone_suspected", child, {"instance": instance, "enrolled": bound})
            raise CloneSuspected(
                f"{child} answered from database {instance or '(none)'}, but was enrolled with database {bound}"
            )
        fresh = secrets.token_hex(8)

        async def write(conn: AsyncConnection) -> tuple[bool, dict[str, object] | None]:
            """The lease handed out, or the child frozen: (frozen, what to announce if this write froze it).

            Written with the other requests', so it may run twice (``together``): it announces nothing itself.
            """
            row = (await conn.execute(select(t.child_leases).where(t.child_leases.c.child == child))).mappings().first()
            if row is None:
                await conn.execute(
                    insert(t.child_leases).values(child=child, lease=fresh, instance=instance, at=time.time())
                )
                await clones.record_lease(conn, child, fresh, 0)
                return False, None
            lineage, cloned = await clones.lineage_of(conn, child, lease, str(row["lease"]))
            if lease != row["lease"]:
                await self.store.log_event(
                    "stale_lease",
                    child,
                    {"presented": lease, "expected": row["lease"], "instance": instance, "lineage": lineage},
                    conn=conn,
                )
            if cloned:
                detail: dict[str, object] = {"instance": instance, "lineage": lineage}
                return True, (detail if await clones.freeze(self.store, conn, child, detail) else None)
            await conn.execute(
                update(t.child_leases)
                .where(t.child_leases.c.child == child)
                .values(lease=fresh, instance=instance, at=time.time())
            )
            await clones.record_lease(conn, child, fresh, lineage)
            return False, None

        cloned, froze = await together(self.store.db, write)
        if froze is not None:
            clones.announce_freeze(child, froze)
        if cloned:
            await clones.report_alarm(self.store, child)
            raise clones.CloneFrozen(f"two running copies of {child} present leases here; {child} is frozen")
        return fresh

    # -- issuing -----------------------------------------------------------------------------

    def _sign(self, value: Certificate | Revocation) -> bytes:
        return sign_document(value, [self.store.key])

    async def issue_token(
        self,
        *,
        node: str,
        role: str,
        name: str = "",
        issued_by: str = "",
        days: float = TOKEN_VALID_DAYS,
        once: Once | None = None,
    ) -> IssuedToken:
        """A one-time enrollment token for ``node``, a child of this node. ``once``: the sending form's one-time
        key; the same form sent again issues no second token (``AlreadySent``, ``action`` the first's hash),
        before any check that the first token's issue would now change."""
        await submissions.sent_before(self.store.db, once)
        if problem := node_id_problem(node):  # every way in (the screen, `sanji enroll issue`) asks the same bound
            raise EnrollmentError(problem, hint="Choose an id such as C1T01V03: it must be unique in the whole tree.")
        if self.state is None:
            raise TrustError("this node holds no root of trust, so it cannot enroll others")
        mine = self.store.directory.role(self.store.node_id)
        below = level_below(mine)
        if role != below:
            raise EnrollmentError(
                f"a {mine} node enrolls {below or 'no'} nodes, not a {role}",
                hint="A county is enrolled by its city, a township by the county, a village by its township.",
            )
        if in_use := self.state.id_in_use(node, self.store.node_id):
            raise EnrollmentError(
                in_use,
                hint="Choose another id, e.g. one that starts with this county's (C1T05). "
                "Only the county moves a node to another parent.",
            )
        token = new_token(
            parent=self.store.node_id, node=node, role=role, root=root_fingerprint(self.state.root_documents()[0])
        )
        now = time.time()
        expires = now + days * 86400
        async with self.store.transaction() as conn:
            if once is not None:  # read again in the write: of two sendings at once, one issues
                await submissions.refuse_if_used(conn, once)
            await conn.execute(
                insert(t.enrollments).values(
                    token_hash=token.token_hash,
                    secret=token.secret,
                    node=node,
                    role=role,
                    name=name,
                    issued_at=now,
                    expires_at=expires,
                    issued_by=issued_by,
                )
            )
            if once is not None:
                await submissions.keep(conn, once, "", token.token_hash)
        await self.store.log_event("enrollment_issued", node, {"role": role, "by": issued_by, "expires_at": expires})
        return IssuedToken(token, expires)

    async def issued(self, token_hash: str) -> IssuedToken | None:
        """The token issued under ``token_hash``, as it was shown when issued, while it may still be used (not
        used, not expired, the root it names still this node's); None otherwise."""
        if self.state is None:
            return None
        async with self.store.db.reader.connect() as conn:
            row = (
                (await conn.execute(select(t.enrollments).where(t.enrollments.c.token_hash == token_hash)))
                .mappings()
                .first()
            )
        if row is None or row["used_at"] is not None or row["expires_at"] < time.time():
            return None
        root = root_fingerprint(self.state.root_documents()[0])
        token = Token(
            parent=self.store.node_id,
            node=str(row["node"]),
            role=str(row["role"]),
            secret=bytes(row["secret"]),
            root=root,
        )
        return IssuedToken(token, float(row["expires_at"])) if token.token_hash == token_hash else None

    async def enroll(self, request: EnrollRequest) -> EnrollResponse:
        """Redeem a token: certify the node as the token said, bound to its database instance."""
        if self.state is None:
            raise TrustError("this node holds no root of trust, so it cannot enroll others")
        async with self.store.transaction() as conn:
            row = (
                (await conn.execute(select(t.enrollments).where(t.enrollments.c.token_hash == request.token_hash)))
                .mappings()
                .first()
            )
            if row is None:
                raise EnrollmentError("the enrollment token is not known here (issued by another node, or mistyped)")
            if row["used_at"] is not None:
                raise EnrollmentError(f"the enrollment token for {row['node']} was already used")
            if row["expires_at"] < time.time():
                raise EnrollmentError(f"the enrollment token for {row['node']} expired")
            check_request(request, secret=bytes(row["secret"]), expected_node=row["node"], expected_role=row["role"])
            retires = await self._replaced_machine(request)
            cert = make_certificate(
                node=request.node,
                role=request.role,
                parent=self.store.node_id,
                keys=request.keys,
                issuer=self.store.node_id,
                now_ms=self._now(),
                name=request.name or str(row["name"]),
                instance=request.instance,
                retires=retires,
            )
            await conn.execute(
                update(t.enrollments)
                .where(t.enrollments.c.token_hash == request.token_hash)
                .values(used_at=time.time(), serial=cert.serial)
            )
        raw = self._sign(cert)
        results = await self.add([raw])
        if not results or results[0].status == "pending":
            raise TrustError(
                f"the certificate issued for {request.node} does not verify here",
            )
        await clones.thaw(self.store, request.node)  # the genuine machine, enrolled anew: heard again
        await self.store.log_event("enrolled", request.node, {"serial": cert.serial, "instance": request.instance})
        return EnrollResponse(certificate=raw, bundle=self._bundle_for(request.node))

    async def _replaced_machine(self, request: EnrollRequest) -> tuple[Retirement, ...]:
        """Re-enrolling a node (a new laptop for the same village): its old signing keys sign nothing
        after what this node holds of its streams, so the old machine, or a copy of it, is cut off."""
        assert self.state is not None
        new_keys = {k.key_id for k in request.keys}
        old = [
            k.key_id
            for c in self.state.certificates(request.node)
            for k in c.keys
            if k.algorithm == ED25519 and k.key_id not in new_keys
        ]
        if not old:
            return ()
        held = await self.store.cursors_where(origin_in=[request.node])
        points = tuple(sorted((k.origin, k.scope, seq) for k, seq in held.items()))
        return tuple(Retirement(key_id=key_id, points=points) for key_id in dict.fromkeys(old))

    def _bundle_for(self, node: str) -> tuple[bytes, ...]:
        """Roots, then the valid certificates of everyone on ``node``'s path (its parent is this node)."""
        assert self.state is not None
        path = set(self.store.directory.path(self.store.node_id)) | {node}
        out: list[bytes] = []
        for raw in self.state.documents():
            value = parse_document(raw).value
            if isinstance(value, Root) or _subject(value) in path:
                out.append(raw)
        return tuple(out)

    async def rotate_child(self, child: str, request: RotateKeys) -> bytes:
        """Certify a child's new keys and retire its old signing key at the positions it named."""
        if self.state is None:
            raise TrustError("this node holds no root of trust")
        current = self.state.current(child)
        if current is None:
            raise TrustError(f"{child} holds no certificate here to rotate from")
        signing = [k for k in request.keys if k.algorithm == ED25519]
        if len(signing) != 1 or any(k.node != child for k in request.keys):
            raise TrustError("a rotation lists exactly one new signing key of the rotating node")
        try:
            verify(signing[0], request.signed_part(), request.possession)
        except SanjiError:
            raise TrustError("the rotating node did not prove it holds its new key") from None
        if any(o != child for o, _, _ in request.points):
            raise TrustError("a rotation names only the rotating node's own streams")
        for cert in self.state.certificates(child):  # the same request again: hand back what was issued
            if signing[0].key_id in {k.key_id for k in cert.keys}:
                issued = self.state.document_of(cert)
                if issued is not None:
                    return issued.raw
        old = [k for k in current.keys if k.algorithm == ED25519 and k.key_id != signing[0].key_id]
        issued_by_old = {
            c.serial for c in self.state.certificates() if c.issuer == child
        }  # a township keeps the villages it certified
        retires = tuple(
            Retirement(key_id=k.key_id, points=request.points, keep=tuple(sorted(issued_by_old))) for k in old
        )
        cert = make_certificate(
            node=child,
            role=current.role,
            parent=current.parent,
            keys=request.keys,
            # The top hub's certificate is the root's to issue; every other node's, its certifier's.
            issuer=self.store.node_id if current.parent is not None else current.issuer,
            now_ms=max(self._now(), current.issued_at + 1),
            name=current.name,
            instance=current.instance,
            retires=retires,
        )
        raw = self._sign(cert)
        results = await self.add([raw])
        if not results or results[0].status == "pending":
            raise TrustError(f"the rotated certificate for {child} does not verify here")
        await self.store.log_event("rotated", child, {"serial": cert.serial, "retired": [k.key_id for k in old]})
        return raw

    async def revoke(
        self, node: str, *, key_id: str = "", reason: str = "", issued_by: str = "", once: Once | None = None
    ) -> bytes:
        """Revoke ``node``'s signing key(s) as of what this node holds of its streams now. ``once``: the revoking
        form's one-time key: sent again, ``AlreadySent`` and no second revocation. The documents are judged in
        memory before their own transaction (``add``), so the key is kept first, in a transaction of its own
        (of two sendings at once one keeps it), and taken back if the revocation is not written."""
        if self.state is None:
            raise TrustError("this node holds no root of trust")
        if (
            node == self.store.node_id
            or node not in self.store.directory
            or self.store.node_id not in self.store.directory.path(node)
        ):
            raise TrustError(f"{self.store.node_id} may revoke keys of nodes below it only, not {node}")
        keys = [k.key_id for c in self.state.certificates(node) for k in c.keys if k.algorithm == ED25519]
        if key_id:
            if key_id not in keys:
                raise TrustError(f"{node} holds no key {key_id}")
            keys = [key_id]
        if once is not None:
            async with self.store.transaction() as conn:
                await submissions.refuse_if_used(conn, once)
                await submissions.keep(conn, once, "", node)
        try:
            return await self._revoke(node, keys, reason=reason, issued_by=issued_by)
        except Exception:
            if once is not None:
                async with self.store.transaction() as conn:
                    await submissions.forget(conn, once)
            raise

    async def _revoke(self, node: str, keys: list[str], *, reason: str, issued_by: str) -> bytes:
        assert self.state is not None
        held = await self.store.cursors_where(origin_in=[node])
        points = tuple(sorted((k.origin, k.scope, seq) for k, seq in held.items()))
        docs: list[bytes] = []
        for kid in dict.fromkeys(keys):
            keep = tuple(
                sorted(
                    c.serial
                    for c in self.state.certificates()
                    if c.issuer == node and _signed_by_key(self.state, c, kid)
                )
            )
            rev = Revocation(
                serial=new_serial(),
                node=node,
                retirement=Retirement(key_id=kid, points=points, keep=keep),
                issuer=self.store.node_id,
                issued_at=self._now(),
                reason=reason,
            )
            docs.append(self._sign(rev))
        await self.add(docs)
        await self.store.log_event(
            "revoked", node, {"keys": keys, "points": [list(p) for p in points], "by": issued_by, "reason": reason}
        )
        return docs[-1] if docs else b""

    async def tokens(self) -> list[dict[str, object]]:
        async with self.store.db.reader.connect() as conn:
            rows = (
                (await conn.execute(select(t.enrollments).order_by(t.enrollments.c.issued_at.desc()))).mappings().all()
            )
        return [{k: v for k, v in row.items() if k != "secret"} for row in rows]


def _signed_by_key(state: TrustState, cert: Certificate, key_id: str) -> bool:
    doc = state.document_of(cert)
    return doc is not None and any(kid == key_id for kid, _ in doc.signatures)
