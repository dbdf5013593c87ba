"""A JSON client's ``Idempotency-Key``, read the same way on every API (the errands' and the county's office).

The rule is ``sanji.store.submissions.from_header``: the key names one request of one account on one node; the
same request sent again under it is answered as the first was and done once, another method, path or body under
it is refused (409 ``idempotency_key_reused``), a malformed key too (400 ``idempotency_key_malformed``). Here the
request gives what the rule scopes the key by: the node, the account logged in, the method and the path.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.params import HeaderParameter

from sanji.auth.guard import principal_of
from sanji.store.submissions import HEADER, HEADER_PATTERN, MAX_KEY, Once, from_header

# The header, as every keyed route declares it. Its shape is in the schema but checked by the rule alone (a 400 that
# names the key, in Chinese too, not the framework's generic one).
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name=HEADER,
        required=False,
        description=f"a key new for each request, 1–{MAX_KEY} visible ASCII characters (a UUID will do), kept a week "
        "for the account that sent it: the same request (method, path, body) sent again with it is done once and "
        "answered with what the first did; another request under the same key is refused (409 idempotency_key_reused: "
        "send a new key); a malformed key is refused (400)",
        schema_extra={"minLength": 1, "maxLength": MAX_KEY, "pattern": HEADER_PATTERN},
    ),
]


def client_key(request: Request[Any, Any, Any], sent: str | None, data: object) -> Once | None:
    """The client's key for this request, as the store keeps it; None without the header."""
    principal = principal_of(request)
    return from_header(
        sent,
        data,
        node=request.app.state.settings.node.id,
        account=f"#{principal.account_id}" if principal is not None else "",
        method=request.method,
        path=request.scope["path"],
    )
