"""Matter search on the wire and on the pages (issue 13): ``GET /api/catalogue/search?q=&limit=`` and the filter.

The catalogue is public (政务公开, the ``/public`` guide lists it), so the search is open without a login, like
the guide; the work per request is bounded by ``sanji.catalogue.search`` (the query cut to ``MAX_QUERY``
characters, ``limit`` at most ``MAX_LIMIT``, a (catalogue version, query) asked again answered from a small
LRU in ``sanji.catalogue.search``) and the calls per client address are throttled (``SEARCH_LIMIT`` per
``SEARCH_WINDOW_S``, ``sanji.web.throttle``, as ``/lookup`` is): beyond that, 429 with ``Retry-After``, before
any matter is looked at. The guide's ``/public?q=`` draws on the same allowance (``search_refused``): a search
is a search whichever door asks, and a refused one there is a bilingual 429 page. Any other query answers 200,
with matches or none; no catalogue held yet answers 200 with none and ``catalogue_version`` 0. The register
page and the guide filter their lists with ``found`` on the server (so they work without JavaScript) and with
this route as the agent types, asking for the codes alone (``codes=true``: ``codes`` holds every match's code,
``items`` is empty).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from protocol.catalogue import LEVELS, MAX_MATTERS, Catalogue, Matter
from sanji.auth.guard import client_ip
from sanji.catalogue.search import MAX_QUERY, normalise, search
from sanji.context import NodeContext
from sanji.web.documents import limit_text
from sanji.web.throttle import Throttle, Throttled

MAX_LIMIT = MAX_MATTERS  # the filter as one types asks for every match
# A person typing asks once per pause (150 ms in the page's script): two a second at most, for a while.
SEARCH_LIMIT = 120
SEARCH_WINDOW_S = 60.0


def search_throttle(app: Litestar) -> Throttle:
    """The app's per-address throttle of searches (per process, bounded memory)."""
    throttle = getattr(app.state, "search_throttle", None)
    if not isinstance(throttle, Throttle):
        throttle = Throttle(SEARCH_LIMIT, SEARCH_WINDOW_S)
        app.state.search_throttle = throttle
    return throttle


def search_refused(request: Request[Any, Any, Any]) -> int:
    """Seconds the caller's address must wait before searching again (0: go on; the search is counted)."""
    throttle = search_throttle(request.app)
    ip = client_ip(request)
    wait = throttle.retry_after(ip)
    if wait:
        return math.ceil(wait)
    throttle.hit(ip)
    return 0


class MatterHit(msgspec.Struct, kw_only=True):
    code: str
    name: str
    name_en: str
    category: str
    level: str  # the level that decides (approves) the matter: village, town or county
    accept_levels: list[str]  # where it may be accepted
    limit: str  # the committed limit as words, "5工作日 (5 working days)" or "当场办结 done on the spot"
    committed_limit: int
    limit_unit: str
    match: str  # how it was found: code, name, code_prefix, initials, contains, pinyin, pinyin_inside, ...


class MatterSearch(msgspec.Struct, kw_only=True):
    q: str  # the query as matched: NFKC, lower case, at most 40 characters
    catalogue_version: int
    total: int  # matches before ``limit``
    items: list[MatterHit]  # empty when ``codes=true`` was asked
    codes: list[str] = []  # with ``codes=true``: the matches' codes alone, best first, at most ``limit``


def found(catalogue: Catalogue | None, q: str) -> list[str] | None:
    """The codes ``q`` finds, best first; ``None`` when there is no query (the whole list is shown)."""
    if not normalise(q):
        return None
    return [hit.matter.code for hit in search(catalogue, q)]


def _deciding_level(matter: Matter) -> str:
    return max(matter.approve_levels, key=LEVELS.index, default="")


class CatalogueSearchController(Controller):
    path = "/api/catalogue"
    tags = ["public"]

    @get(
        "/search",
        summary="Matters by code, name, pinyin or pinyin initials (dbs finds 低保), best first",
        description=(
            f"Open without a login, like the public guide, and throttled per client address ({SEARCH_LIMIT} "
            f"per {SEARCH_WINDOW_S:.0f} s; beyond that 429 with Retry-After). `q` is cut to {MAX_QUERY} "
            "characters; any text answers 200, with matches or none (none too while no catalogue has reached "
            "this node: `catalogue_version` 0). `codes=true` answers the matches' codes alone."
        ),
    )
    async def catalogue_search(
        self,
        request: Request[Any, Any, Any],
        context: NamedDependency[NodeContext],
        q: Annotated[str, QueryParameter(description="code, name, short name, pinyin or initials")] = "",
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 20,
        codes: Annotated[bool, QueryParameter(description="answer the matches' codes alone")] = False,
    ) -> MatterSearch:
        seconds = search_refused(request)
        if seconds:
            raise Throttled(
                f"查找过于频繁，请{seconds}秒后再试",
                f"Too many searches from this address: try again in {seconds} s",
                seconds,
            )
        hits = search(context.catalogue, q)
        if codes:
            return MatterSearch(
                q=normalise(q),
                catalogue_version=context.catalogue_version,
                total=len(hits),
                items=[],
                codes=[h.matter.code for h in hits[:limit]],
            )
        return MatterSearch(
            q=normalise(q),
            catalogue_version=context.catalogue_version,
            total=len(hits),
            items=[
                MatterHit(
                    code=h.matter.code,
                    name=h.matter.name,
                    name_en=h.matter.name_en,
                    category=h.matter.category,
                    level=_deciding_level(h.matter),
                    accept_levels=list(h.matter.accept_levels),
                    limit=limit_text(h.matter.committed_limit, h.matter.limit_unit),
                    committed_limit=h.matter.committed_limit,
                    limit_unit=h.matter.limit_unit,
                    match=h.match,
                )
                for h in hits[:limit]
            ],
        )
