"""The county's own screens beside the shared ones: the register page of a desk that does not register.

Errands are registered at a village station or a township window; the county hub accepts what
comes up. Its desk mounts this page at ``/register`` in place of the register form, so a county
account that follows an old link is told why (403), and nothing is signed.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.response import Template

from sanji.context import NodeContext
from sanji.store import Store
from sanji.web.screens import _register_page, desk_person


class NoRegistrationController(Controller):
    path = "/register"
    include_in_schema = False

    @get("/")
    async def form(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template:
        return _register_page(store, context, desk_person(request), fresh=True, refused=True)

    @post("/", status_code=403)
    async def register(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template:
        return _register_page(store, context, desk_person(request), fresh=True, refused=True)
