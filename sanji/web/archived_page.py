"""What a browser sees when an archived attachment cannot be fetched back just now (issue 16).

The errand page links each attachment to ``GET /api/attachments/{hash}``: a program gets the JSON
refusal (503, Retry-After); a person who clicked the link gets a page that says, in Chinese and in
English, that the file is archived at the township or county and comes back with the link.
"""

from __future__ import annotations

import math
from typing import Any

from litestar import Request
from litestar.response import Template

from sanji.context import NodeContext
from sanji.store import Store
from sanji.sync.fetch_back import ArchivedElsewhere
from sanji.web.screens import _frame


def wants_html(request: Request[Any, Any, Any]) -> bool:
    """A browser following a link (it asks for text/html), not a program."""
    return "text/html" in request.headers.get("accept", "")


def archived_away_page(store: Store, context: NodeContext, away: ArchivedElsewhere) -> Template:
    return Template(
        template_name="archived_away.html",
        status_code=503,
        headers={"Retry-After": str(math.ceil(away.retry_after))},
        context={**_frame(store, context, "errand"), "message": away.message},
    )
