"""Running the quarter's assessment on a node: rules held, errands from the ledger, the office's records.

The rules are the county-signed document ``assessment_rules`` (``protocol.assessment``); the
county signs the seed defaults the first time it is asked and holds them like the catalogue.
Errand facts come from ledger rows (``sanji.office.ledger``), so the assessment and the ledger
never disagree about an errand.
"""

from __future__ import annotations

from datetime import date, timedelta

import msgspec

from protocol.assessment import (
    Assessment,
    AssessmentRules,
    ErrandRecord,
    assess,
    quarter_span,
)
from protocol.errors import SanjiError
from protocol.topology import COUNTY, TOWN, Directory
from sanji.context import NodeContext
from sanji.office.book import OfficeBook, OfficeRecordUnknown
from sanji.office.ledger import LedgerFilter, LedgerRow, township_of
from sanji.office.source import ledger
from sanji.store import Store

LOOKBACK_DAYS = 366  # errands registered this long before the quarter may still be open and late in it


async def held_rules(context: NodeContext) -> AssessmentRules:
    """The rules the node's database holds now, taken up by ``NodeContext.refresh_rules`` — which signs the
    seed defaults at a county holding none, the one path by which rules are signed besides
    ``NodeContext.publish_rules`` (where the version's step is bounded)."""
    await context.refresh_rules()
    if context.rules is None:
        raise OfficeRecordUnknown(
            "this node holds no assessment rules", hint="The county publishes them; assess at the county hub."
        )
    return context.rules


def handler_centre(row: LedgerRow, directory: Directory) -> str:
    """Where the row's handler is scored: the township of the node whose step named them, or at the county the
    department the errand was escalated to (else the county's node); '' for a node the directory lacks."""
    node = row.handler_node
    if not node or node not in directory:
        return ""
    if directory.role(node) == COUNTY:
        return row.department or node
    return township_of(node, directory)


def record_of(row: LedgerRow, directory: Directory | None = None) -> ErrandRecord:
    return ErrandRecord(
        errand=row.errand,
        receipt=row.receipt,
        handler=row.handler,
        handler_centre=handler_centre(row, directory) if directory is not None else "",
        centre=row.township,
        due=row.due,
        answered_on=row.answered_on,
        rating=row.rating,
        skipped_steps=row.skipped_steps,
        deemed=row.deemed,
        callbacks_dissatisfied=row.callbacks_dissatisfied,
    )


def in_quarter(row: LedgerRow, start: date, end: date) -> bool:
    """Answered in the quarter, or still open (or answered later) with its deadline inside or before it."""
    if row.answered_on and start.isoformat() <= row.answered_on <= end.isoformat():
        return True
    late_inside = bool(row.due) and row.due <= end.isoformat()
    return late_inside and (not row.answered_on or row.answered_on > end.isoformat())


async def run_assessment(
    store: Store, context: NodeContext, quarter: str, *, as_of: date | None = None
) -> tuple[AssessmentRules, Assessment]:
    start, end = quarter_span(quarter)
    calendar = context.provisional_calendar
    if calendar is None:
        raise SanjiError("no working-day calendar: overdue days cannot be counted")
    today = as_of or context.today()
    rules = await held_rules(context)
    flt = LedgerFilter(date_from=(start - timedelta(days=LOOKBACK_DAYS)).isoformat(), date_to=end.isoformat())
    rows = [r for r in await ledger(store, context, flt, as_of=today) if in_quarter(r, start, end)]
    book = OfficeBook(store)
    result = assess(
        rules,
        quarter.upper(),
        [record_of(r, store.directory) for r in rows],
        await book.entries(quarter),
        await book.appeals(quarter),
        calendar=calendar,
        as_of=min(today, end),
        # This county's townships only: below a city the directory also names the other counties' nodes.
        centres=[
            e.id for e in store.directory.nodes() if e.role == TOWN and store.directory.is_within(e.id, store.node_id)
        ],
    )
    return rules, result


def as_json(rules: AssessmentRules, result: Assessment) -> dict[str, object]:
    out: dict[str, object] = msgspec.to_builtins(result)
    out["rules"] = {"county": rules.county, "version": rules.version, "published_at": rules.published_at}
    return out
