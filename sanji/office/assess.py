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
    RULES,
    Assessment,
    AssessmentRules,
    ErrandRecord,
    assess,
    default_rules,
    open_rules,
    quarter_span,
    sign_rules,
)
from protocol.bounds import check_version_step
from protocol.catalogue import catalogue_digest, publisher_keys
from protocol.errors import SanjiError
from protocol.topology import COUNTY, TOWN
from sanji.context import NodeContext
from sanji.office.book import OfficeBook, OfficeRecordUnknown
from sanji.office.ledger import LedgerFilter, LedgerRow
from sanji.office.source import ledger
from sanji.store import Store

LOOKBACK_DAYS = 366  # errands registered this long before the quarter may still be open and late in it


async def held_rules(store: Store) -> AssessmentRules:
    held = await store.document(RULES)
    if held is not None:
        return open_rules(held[1], publisher_keys(store.directory, store.node_id))
    if store.directory.role(store.node_id) != COUNTY:
        raise OfficeRecordUnknown(
            "this node holds no assessment rules", hint="The county publishes them; assess at the county hub."
        )
    return await publish_rules(store, default_rules(store.node_id))


async def publish_rules(store: Store, rules: AssessmentRules) -> AssessmentRules:
    """County only: sign and hold a new version of the rules (an older or equal version is refused)."""
    if store.directory.role(store.node_id) != COUNTY:
        raise SanjiError("only the county hub publishes assessment rules")
    held = await store.document(RULES)
    check_version_step(held[0] if held else 0, rules.version)  # the bound every publisher asks
    blob = sign_rules(rules, store.key)
    if not await store.put_document(RULES, rules.version, blob, catalogue_digest(blob)):  # travels down from here
        raise SanjiError(f"assessment rules version {rules.version} is not newer than the version held")
    return rules


def record_of(row: LedgerRow) -> ErrandRecord:
    return ErrandRecord(
        errand=row.errand,
        receipt=row.receipt,
        handler=row.handler,
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
    rules = await held_rules(store)
    flt = LedgerFilter(date_from=(start - timedelta(days=LOOKBACK_DAYS)).isoformat(), date_to=end.isoformat())
    rows = [r for r in await ledger(store, context, flt, as_of=today) if in_quarter(r, start, end)]
    book = OfficeBook(store)
    result = assess(
        rules,
        quarter.upper(),
        [record_of(r) for r in rows],
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
