"""How a search of the errands held here is read: 全部办件's ``q`` and ``GET /api/errands?q=``, one rule.

The search finds an errand by its receipt number, id, matter (its code, or its name as the catalogue finds
it) or applicant's name (``sanji.store.views: errands_query``); the sealed details (ID number, phone) are
never searched. The work is bounded: the text is cut to ``MAX_QUERY`` characters, and what shows as nothing
(a NUL, a zero-width space: ``protocol.names.visible_text``) is dropped, never sent to the store
(PostgreSQL refuses a NUL in any text it is sent).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.catalogue import Catalogue
from protocol.names import visible_text
from sanji.catalogue.search import MAX_QUERY
from sanji.catalogue.search import search as catalogue_search

# matter-search ranks an errand search follows: the code or the name itself, never a pinyin or initials guess,
# which would find most matters (and so most errands) for a letter or two
MATTER_RANKS = frozenset({"code", "name", "code_prefix", "contains"})


@dataclass(frozen=True)
class ErrandSearch:
    text: str  # the search as applied: visible, spaces folded, cut to ``MAX_QUERY`` characters ("": none)
    cut: bool  # the search typed was longer, and was cut
    matters: tuple[str, ...]  # the matter codes its text finds by name or code

    @classmethod
    def of(cls, catalogue: Catalogue | None, q: str) -> ErrandSearch:
        text = " ".join(visible_text(q[: MAX_QUERY * 4]).split())  # a long query is never split whole
        cut = len(text) > MAX_QUERY
        text = text[:MAX_QUERY]
        matters = tuple(h.matter.code for h in catalogue_search(catalogue, text) if h.match in MATTER_RANKS)
        return cls(text=text, cut=cut, matters=matters)
