"""The errands this process projected lately, kept between receive calls so the next push need not read
their actions back (issue 15).

A push touches a few hundred errands and most of them again a little later: the township's next push
carries the next step of the same errands. ``Intake`` read every action of each touched errand and
decoded the kept state each time, though this process had written both a moment before. Now a call that
commits leaves here, for each errand it projected, the action rows as it wrote them and its projection;
the next call takes them instead of reading, if the errand's stored row still says what this process
wrote (``Warm.token``: its digest, how many actions wait, and the basis it was projected under).

Why that check is enough: every write of an errand's actions, on any process, projects the errand and
writes its row in the same transaction. A new action that is not a foreign copy is applied (the main line
or the notes change, so the digest does), rejected (the rejected ids are digested) or left waiting (the
count changes); a foreign copy is never projected, so missing it changes nothing a projection reads. A
row written by another process or an older release, or a call that rolled back, leaves a token this
process did not write, and the errand is read as before.

Beside each projection, the state its main line reached before its notes were applied (``line``,
``protocol.errand.Replayed``): what folding onto a projection that applied notes starts from. Never stored:
the row says nothing of it, and a cold errand holding applied notes is projected in full.

Bounded by the action rows held (``MAX_ROWS``, by tier: about 1.1 KB a row with its body decoded, so
≈ 22 MB at a county, 1 MB on a village laptop; an errand that applied notes holds one more state, its
``line``, most of whose parts it shares with the projection's, not counted), the errands taken longest ago
dropped first; a node
restarted starts cold. What is handed out is the rows themselves, marked ``shared``: a call changes the
statuses of the rows it holds, and one that rolls back must not leave its changes here, so ``Intake``
changes a copy of a shared row: a push changes few of the rows it takes, if any (over the benchmark
corpus, 31,776 rows copied as they were taken, none of them changed).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from protocol.errand import ErrandState, Projection
from protocol.ledger import FOREIGN
from protocol.topology import COUNTY, TOWN, VILLAGE

if TYPE_CHECKING:
    from sanji.store.intake import ActionRow

# About 2,000 errands of a county's (≈ 9 actions each); a village receives only its own errands' results.
MAX_ROWS = {COUNTY: 20_000, TOWN: 8_000, VILLAGE: 1_000}
DEFAULT_ROWS = 20_000  # a city or a province hub

Token = tuple[str, int, str]  # the errand row's digest, its count of waiting actions, its basis


class Warm:
    __slots__ = ("basis", "line", "projection", "rows")

    def __init__(
        self, projection: Projection, basis: str, rows: Sequence[ActionRow], line: ErrandState | None = None
    ) -> None:
        self.projection, self.basis, self.rows = projection, basis, tuple(rows)
        self.line = line

    @property
    def token(self) -> Token:
        return (self.projection.digest, len(self.projection.waiting), self.basis)


class WarmErrands:
    def __init__(self, max_rows: int = DEFAULT_ROWS) -> None:
        self.max_rows = max_rows
        self._kept: OrderedDict[str, Warm] = OrderedDict()
        self._rows = 0
        self.taken = self.missed = 0  # for the benchmarks and the curious

    @classmethod
    def for_role(cls, role: str) -> WarmErrands:
        return cls(MAX_ROWS.get(role, DEFAULT_ROWS))

    def __len__(self) -> int:
        return len(self._kept)

    def take(self, errand: str, token: Token) -> Warm | None:
        """What this process left of ``errand``, if its stored row (``token``) is still the one it wrote;
        the rows are shared (``ActionRow.shared``): the caller changes copies of them."""
        warm = self._kept.get(errand)
        if warm is None or warm.token != token:
            self.missed += 1
            return None
        self.taken += 1
        self._kept.move_to_end(errand)
        return warm

    def keep(
        self,
        written: Mapping[str, tuple[Projection, str]],
        rows: Mapping[str, Iterable[ActionRow]],
        lines: Mapping[str, tuple[Projection, ErrandState | None]] | None = None,
    ) -> None:
        """After a commit: ``written`` maps each errand projected to its projection and basis, ``rows`` the
        errand's action rows as written, ``lines`` the main line's state of a projection (``Warm.line``),
        taken only beside that very projection."""
        for errand, (projection, basis) in written.items():
            self.forget(errand)
            line = None
            if lines is not None and (known := lines.get(errand)) is not None and known[0] is projection:
                line = known[1]
            # Foreign copies are never projected, and another process may move one to its author's errand
            # without changing this one's row: they are read from the database when asked for.
            warm = Warm(projection, basis, [r for r in rows.get(errand, ()) if r.status != FOREIGN], line)
            for r in warm.rows:
                r.shared = True
            if len(warm.rows) > self.max_rows:
                continue
            self._kept[errand] = warm
            self._rows += len(warm.rows)
        while self._rows > self.max_rows:
            _, oldest = self._kept.popitem(last=False)
            self._rows -= len(oldest.rows)

    def forget(self, errand: str) -> None:
        gone = self._kept.pop(errand, None)
        if gone is not None:
            self._rows -= len(gone.rows)

    def clear(self) -> None:
        self._kept.clear()
        self._rows = 0
