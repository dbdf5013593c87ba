"""节点编号冲突 Node id conflicts: the same id enrolled in two places of the tree, said loudly at both desks.

Node ids are unique across the whole tree (``protocol.trust.TrustState.id_in_use``), and a node that enrolls
others holds every certificate its parent holds, so an id already used elsewhere is refused when its token is
issued. Two offices that enroll the same id while out of touch cannot know: the first placement of the id to
reach a hub wins there (``place_conflict``) and the other is refused — at the top hub (the city) and at the
county whose node lost, when the winning certificate comes down to it. Each refusal is an event
(``sanji.store.trustbook``); this module turns them into the warning at the top of both desks, with what to do.
"""

from __future__ import annotations

import json
import time

import msgspec
from sqlalchemy import select

from sanji.store import Store
from sanji.store import schema as t

SHOWN_DAYS = 90.0  # a conflict stays on the desk this long after it was last seen


class IdConflict(msgspec.Struct, frozen=True, kw_only=True):
    node: str  # the id used twice
    at: float  # unix seconds, last seen here
    kept_under: str  # the parent this hub holds the id under (the first placement it saw)
    refused_under: str  # the parent of the refused certificate
    issuer: str  # who issued the refused certificate
    ours_lost: bool  # this node's own subtree holds the refused placement's twin: its node's work stops here
    zh: str
    en: str


def _advice(node: str, kept: str, refused: str, issuer: str, ours_lost: bool, top: str) -> tuple[str, str]:
    if ours_lost:
        return (
            f"节点编号 {node} 在本辖区（{kept} 下）和上级树中的 {refused} 下各用了一次。上级只认先到的那个，"
            f"本辖区这个 {node} 的办件不会上报。请为本辖区的这个节点另起编号（以本县编号开头），"
            f"发新的注册令牌重新注册（sanji enroll），并吊销旧编号的证书。",
            f"Node id {node} is used twice: here under {kept}, and elsewhere in the tree under {refused}. The hub "
            f"above keeps the first it saw, so this {node}'s errands will not reach it. Give this node a new id "
            "(starting with this county's), enroll it again with a new token (sanji enroll), and revoke the old "
            "id's certificate.",
        )
    return (
        f"节点编号 {node} 已在 {kept} 下注册；{issuer} 把它注册在 {refused} 下的证书被本中心（{top}）拒收，"
        f"该节点的办件到不了这里。请 {issuer} 所在的县为它另起编号（以县编号开头，如 C2T05），"
        f"发新令牌重新注册；改号前登记的办件留在该县。",
        f"Node id {node} is certified under {kept}; the certificate {issuer} issued placing it under {refused} "
        f"was refused here ({top}), so that node's errands do not arrive. The county of {issuer} should give it "
        "a new id (starting with the county's, e.g. C2T05) and enroll it again with a new token; errands it "
        "registered before stay at that county.",
    )


async def id_conflicts(store: Store, *, now: float | None = None) -> list[IdConflict]:
    """The node ids this node saw placed twice in the last ``SHOWN_DAYS``, newest first, one per id."""
    since = (time.time() if now is None else now) - SHOWN_DAYS * 86400
    async with store.db.reader.connect() as conn:
        rows = (
            await conn.execute(
                select(t.events.c.at, t.events.c.peer, t.events.c.detail)
                .where(t.events.c.kind == "place_conflict", t.events.c.at >= since)
                .order_by(t.events.c.at.desc())
            )
        ).all()
    directory, me = store.directory, store.node_id
    mine = directory.subtree(me) if me in directory else {me}
    out: dict[str, IdConflict] = {}
    for at, node, raw in rows:
        if node in out:
            continue
        try:
            detail = json.loads(raw)
        except ValueError:
            continue
        kept, refused = str(detail.get("held_parent") or ""), str(detail.get("parent") or "")
        issuer = str(detail.get("issuer") or "")
        ours_lost = kept in mine and refused not in mine and bool(directory.parent(me) if me in directory else False)
        zh, en = _advice(node, kept, refused, issuer, ours_lost, me)
        out[node] = IdConflict(
            node=node, at=at, kept_under=kept, refused_under=refused, issuer=issuer, ours_lost=ours_lost, zh=zh, en=en
        )
    return list(out.values())
