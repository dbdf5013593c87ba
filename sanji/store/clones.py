"""Two running copies of one node, told apart by the leases they hold, and frozen.

Every exchange hands the child a fresh lease (``TrustBook.check_child``), which the child keeps
in its database and presents next time. Each lease handed out is recorded with a *lineage*: the
copy of the child's database that holds it. A child presenting the lease it was given last
continues its lineage. One presenting an older lease was restored from a backup — or copied:
the first time, a new lineage splits off (a restored node then simply continues on it). If the
*other* lineage presents one of its own leases afterwards, both copies are alive: a clone.

A clone is frozen at once, decided rather than left to timing: from then on the parent refuses
every request of that node id, whichever copy sends it (403 ``clone_frozen``), so no batch of
either copy is applied after detection, and neither can pull another byte. The parent logs it,
writes an event, and records an alarm report for the node that goes up to the county with the
parent's next exchange (``/api/node`` ``alarms``, the nodes-below table of the home screen). The
freeze ends when the node is enrolled again with a token from its parent (the genuine machine,
a new key; the old key is retired at what the parent holds, so the copy's later batches are
quarantined as ``revoked_key`` wherever they arrive); the county or the parent may revoke the
copied key from the enrollment screen in the meantime.
"""

from __future__ import annotations

import json
import logging
import time

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.errors import SanjiError
from protocol.session import ALARM_PREFIX, NodeReport
from sanji.store import Store
from sanji.store import schema as t

log = logging.getLogger("sanji.sync")
KEEP_LEASES = 64  # leases remembered per child: older ones presented again count as unknown


class CloneFrozen(SanjiError):
    code = "clone_frozen"
    default_hint = (
        "Two running copies of this node were seen. Every request of this node id is refused until the "
        "genuine machine is enrolled again with a token from its parent (sanji enroll join)."
    )


async def lineage_of(conn: AsyncConnection, child: str, presented: str, expected: str) -> tuple[int, bool]:
    """The lineage of the copy presenting ``presented``; True if that proves two running copies.

    - the lease handed out last: the same copy, going on;
    - the newest lease of the current lineage it presented before: the same copy again, whose last
      reply was lost on the way (it never received the newer lease);
    - an older lease of the current lineage: a restored backup, or the first sign of a copy: a new
      lineage splits off (a restored node simply goes on with it);
    - a lease of another lineage, or one never presented that a later one was handed out after:
      someone else has been exchanging meanwhile with leases this copy never saw — two copies.
    """
    rows = (
        await conn.execute(
            select(
                t.child_lineages.c.lease, t.child_lineages.c.lineage, t.child_lineages.c.at, t.child_lineages.c.seen
            ).where(t.child_lineages.c.child == child)
        )
    ).all()
    by_lease = {str(r[0]): (int(r[1]), float(r[2]), bool(r[3])) for r in rows}
    current = by_lease.get(expected, (0, 0.0, False))[0]
    newest = max((lineage for lineage, _, _ in by_lease.values()), default=0)
    mine = by_lease.get(presented)
    if mine is not None:
        await conn.execute(update(t.child_lineages).where(t.child_lineages.c.lease == presented).values(seen=True))
    if presented == expected:
        return current, False
    if mine is None:
        return (newest + 1 if by_lease else 0), False  # no lease, or one long forgotten: a very old backup
    lineage, at, seen = mine
    if lineage != current:
        return lineage, True
    if not seen:
        return lineage, True  # received by one copy after another asked with an older lease
    newest_seen = max((a for lin, a, s in by_lease.values() if lin == current and s), default=at)
    if at >= newest_seen:
        return lineage, False  # its last reply was lost: the same copy asks again
    return newest + 1, False


async def record_lease(conn: AsyncConnection, child: str, lease: str, lineage: int) -> None:
    await conn.execute(insert(t.child_lineages).values(lease=lease, child=child, lineage=lineage, at=time.time()))
    # The newest KEEP_LEASES kept, the rest forgotten: one statement, whatever the count (an idle exchange's).
    kept = (
        select(t.child_lineages.c.lease)
        .where(t.child_lineages.c.child == child)
        .order_by(t.child_lineages.c.at.desc(), t.child_lineages.c.lease.desc())
        .limit(KEEP_LEASES)
    )
    await conn.execute(
        delete(t.child_lineages).where(t.child_lineages.c.child == child, t.child_lineages.c.lease.not_in(kept))
    )


async def freeze(store: Store, conn: AsyncConnection, child: str, detail: dict[str, object]) -> bool:
    """Freeze ``child`` in ``conn``'s transaction (the mark and its event); True if this write froze it.

    Nothing here reaches outside ``conn``: the group commit (``sanji/store/together.py``) may run this
    write twice, so the caller announces a freeze it returned True for once the write has committed.
    """
    held = await conn.scalar(select(t.frozen_children.c.child).where(t.frozen_children.c.child == child))
    if held is not None:
        return False
    body = json.dumps(detail, ensure_ascii=False)
    await conn.execute(insert(t.frozen_children).values(child=child, at=time.time(), detail=body))
    await store.log_event("clone_detected", child, detail, conn=conn)
    return True


def announce_freeze(child: str, detail: dict[str, object]) -> None:
    """The operator's log line for a freeze ``freeze`` wrote, once it has committed."""
    body = json.dumps(detail, ensure_ascii=False)
    log.warning("two running copies of %s (%s): every request of it is refused until it is re-enrolled", child, body)


async def report_alarm(store: Store, child: str) -> None:
    """An alarm report for ``child`` written here, newer than anything it sent: goes up with every exchange."""
    message = f"{ALARM_PREFIX}clone_detected: two running copies of {child}; frozen at {store.node_id}"
    await store.record_reports([NodeReport(node=child, at=store.clock.now(), last_error=message)], via=store.node_id)


async def thaw(store: Store, child: str) -> None:
    """A new certificate for ``child`` (the genuine machine re-enrolled): its requests are heard again."""
    async with store.transaction() as conn:
        gone = await conn.execute(delete(t.frozen_children).where(t.frozen_children.c.child == child))
        await conn.execute(delete(t.child_lineages).where(t.child_lineages.c.child == child))
        if gone.rowcount:
            await store.log_event("clone_cleared", child, {}, conn=conn)
