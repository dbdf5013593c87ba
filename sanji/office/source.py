"""Reading the ledger out of a node's store: errands registered in a period, with their applied actions.

Read-only; it uses the store's reader pool and never writes. Errands are selected by their
registration time in SQL (the hybrid-clock timestamp of the ``register`` action, compared with
the first millisecond of the period's first and last business days in China Standard Time),
then their applied actions are read in chunks and each row is derived by
``sanji.office.ledger.ledger_row``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta

import msgspec
from sqlalchemy import select

from protocol.actions import Action
from protocol.deadlines import CHINA_STANDARD_TIME
from protocol.encoding import decode_action
from protocol.errand import ErrandState
from protocol.hlc import pack
from protocol.stages import stored_stage
from sanji.context import NodeContext
from sanji.office.ledger import LedgerFilter, LedgerRow, apply_filter, ledger_row
from sanji.store import Store
from sanji.store import schema as t

CHUNK = 500
MAX_ROWS = 200_000  # a county's several years; beyond this, ask for a shorter period
_state_decoder = msgspec.msgpack.Decoder(ErrandState)


class PeriodTooLarge(ValueError):
    """More errands than one ledger may hold: the caller asks for a shorter period."""


def hlc_at_start_of(day: date) -> int:
    start = datetime.combine(day, time.min, tzinfo=CHINA_STANDARD_TIME)
    return pack(int(start.timestamp() * 1000), 0)


async def ledger(
    store: Store,
    context: NodeContext,
    flt: LedgerFilter,
    *,
    as_of: date | None = None,
) -> list[LedgerRow]:
    """The ledger rows of the errands this node holds that ``flt`` keeps, oldest first."""
    as_of = as_of or context.today()
    query = select(t.errands.c.id, t.errands.c.state).where(t.errands.c.state.is_not(None))
    if flt.date_from:
        query = query.where(t.errands.c.registered_at >= hlc_at_start_of(date.fromisoformat(flt.date_from)))
    if flt.date_to:
        end = date.fromisoformat(flt.date_to) + timedelta(days=1)
        query = query.where(t.errands.c.registered_at < hlc_at_start_of(end))
    # the stage as stored: 不予受理 … are kept as decided (``LedgerFilter.keeps`` then tells them apart)
    for column, value in ((t.errands.c.matter, flt.matter), (t.errands.c.stage, stored_stage(flt.stage))):
        if value:
            query = query.where(column == value)
    query = query.order_by(t.errands.c.registered_at, t.errands.c.id).limit(MAX_ROWS + 1)
    async with store.db.reader.connect() as conn:
        found = (await conn.execute(query)).all()
        if len(found) > MAX_ROWS:
            raise PeriodTooLarge(f"more than {MAX_ROWS} errands in this period; ask for a shorter one")
        states = {errand_id: _state_decoder.decode(blob) for errand_id, blob in found}
        acts: dict[str, list[Action]] = defaultdict(list)
        ids = list(states)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            bodies = await conn.execute(
                select(t.actions.c.errand, t.actions.c.body).where(
                    t.actions.c.errand.in_(chunk), t.actions.c.status == "applied"
                )
            )
            for errand_id, body in bodies:
                acts[errand_id].append(decode_action(body))
    directory = store.directory
    rows = [
        ledger_row(
            state,
            acts.get(errand_id, ()),
            directory=directory,
            catalogue=context.catalogue,
            calendar=context.provisional_calendar,
            as_of=as_of,
        )
        for errand_id, state in states.items()
    ]
    return apply_filter(rows, flt, directory)
