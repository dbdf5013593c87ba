"""What a node knows beyond its errands: the catalogue it holds, the calendar, and its clock offset.

It implements ``DeadlinePolicy`` for the errand service: deadlines come from the
held catalogue's limits on the official working-day calendar, dated in China
Standard Time on a clock corrected by the offset measured against the county.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime

from protocol.catalogue import (
    Catalogue,
    Matter,
    catalogue_digest,
    open_catalogue,
    publisher_keys,
    sign_catalogue,
)
from protocol.deadlines import CalendarUnknown, WorkCalendar, business_today, compute_due
from protocol.errors import SanjiError
from protocol.hlc import wall_seconds
from protocol.topology import COUNTY
from sanji.store import Store

log = logging.getLogger("sanji.context")
CATALOGUE = "catalogue"
SKEW_FLAG_MS = 5 * 60 * 1000


class NodeContext:
    def __init__(self, store: Store, calendar: WorkCalendar | None) -> None:
        self.store = store
        self.calendar = calendar
        self.catalogue: Catalogue | None = None
        self.clock_offset_ms = 0
        self.clock_flagged = False
        self._provisional: WorkCalendar | None = None
        self.daily_blob_budget = 0  # bytes of attachments a day over the parent link; 0: no limit

    async def load(self) -> None:
        held = await self.store.document(CATALOGUE)
        if held is not None:
            self.catalogue = open_catalogue(held[1], publisher_keys(self.store.directory))
        self.clock_offset_ms = int(await self.store.meta_value("clock_offset_ms") or 0)

    @property
    def catalogue_version(self) -> int:
        return self.catalogue.version if self.catalogue else 0

    async def publish(self, catalogue: Catalogue) -> bool:
        """County only: sign and hold a catalogue so it travels down with the next exchanges."""
        if self.store.directory.role(self.store.node_id) != COUNTY:
            raise SanjiError("only the county hub publishes the catalogue")
        return await self.offer(sign_catalogue(catalogue, self.store.key))

    async def offer(self, blob: bytes) -> bool:
        """Verify a signed catalogue and keep it if it is newer than the one held."""
        catalogue = open_catalogue(blob, publisher_keys(self.store.directory))
        kept = await self.store.put_document(CATALOGUE, catalogue.version, blob, catalogue_digest(blob))
        if kept:
            self.catalogue = catalogue
            log.info("catalogue version %s of %s now held", catalogue.version, catalogue.county)
        return kept

    async def catalogue_blob(self) -> bytes | None:
        held = await self.store.document(CATALOGUE)
        return held[1] if held else None

    async def observe_offset(self, offset_ms: int) -> None:
        """Record this node's clock offset to the county; flag it beyond five minutes."""
        self.clock_offset_ms = offset_ms
        await self.store.set_meta("clock_offset_ms", str(offset_ms))
        flagged = abs(offset_ms) > SKEW_FLAG_MS
        if flagged and not self.clock_flagged:
            log.warning("this node's clock is off by %.1f minutes from the county's", offset_ms / 60000)
        self.clock_flagged = flagged

    # -- DeadlinePolicy -----------------------------------------------------------

    def matter(self, code: str) -> Matter | None:
        return self.catalogue.get(code) if self.catalogue else None

    def today(self) -> date:
        return business_today(datetime.now(UTC), self.clock_offset_ms / 1000)

    def date_of(self, hlc: int) -> date:
        return business_today(datetime.fromtimestamp(wall_seconds(hlc), UTC), self.clock_offset_ms / 1000)

    @property
    def provisional_calendar(self) -> WorkCalendar | None:
        """The official calendar, extended with plain weekends for the years not yet published.

        Deadlines must not vanish in November because next year's holidays are not out yet:
        dates that fall in such a year are computed on weekends alone and shown as provisional
        (暂定) until the county publishes the year (``calendar_overrides``).
        """
        if self.calendar is None:
            return None
        if self._provisional is None:
            known = self.calendar.known_years
            extra = range(max(known) + 1, max(known) + 4) if known else ()
            self._provisional = WorkCalendar(
                years=(*known, *extra),
                holidays=self.calendar.holidays,
                workdays=self.calendar.workdays,
                weekend=self.calendar.weekend,
            )
        return self._provisional

    def is_provisional(self, day: str) -> bool:
        return bool(day) and self.calendar is not None and not self.calendar.knows(date.fromisoformat(day))

    def whole_due(self, matter: str, accepted_on: date, errand_kind: str) -> tuple[str, int, str]:
        found = self.matter(matter)
        calendar = self.provisional_calendar
        if found is None or calendar is None:
            return "", 0, "working"
        limit = 0 if errand_kind == "即办件" or found.immediate else found.committed_limit
        if errand_kind == "特办件" and found.special_limit is not None:  # urgent: the matter's own limit
            limit = found.special_limit
        try:
            due = compute_due(accepted_on, limit, found.limit_unit, calendar=calendar)
        except CalendarUnknown as exc:
            log.warning("no deadline for %s: %s", matter, exc.message)
            return "", limit, found.limit_unit
        return due.isoformat(), limit, found.limit_unit

    def stage_due(self, matter: str, role: str, start: date) -> str:
        found = self.matter(matter)
        if found is None or self.calendar is None:
            return ""
        limit = found.county_limit if role == COUNTY else found.township_limit
        calendar = self.provisional_calendar
        if limit <= 0 or calendar is None:
            return ""
        try:
            return compute_due(start, limit, found.limit_unit, calendar=calendar).isoformat()
        except CalendarUnknown:
            return ""

    def pushed_due(self, due: str, paused_from: date, paused_to: date) -> str:
        calendar = self.provisional_calendar
        if not due or calendar is None:
            return due
        try:
            paused = calendar.working_days_between(paused_from, paused_to)
            return calendar.add_working_days(date.fromisoformat(due), max(0, paused)).isoformat()
        except CalendarUnknown:
            return due

    def extended_due(self, due: str, days: int) -> str:
        calendar = self.provisional_calendar
        if not due or calendar is None:
            return due
        try:
            return calendar.add_working_days(date.fromisoformat(due), days).isoformat()
        except CalendarUnknown:
            return due


def now_ms() -> int:
    return time.time_ns() // 1_000_000
