"""The English switch: a page speaks Chinese first (the default) or English first, by one cookie.

Every bilingual pair on a screen goes through one door, ``bi``: a Jinja global
(``{{ bi("受理", "Accept") }}``, ``{{ bi(pair) }}`` for a ``(zh, en)`` tuple built in Python) and a
filter for the "中文 English" strings labels already carry (``{{ role_label | bi }}``). The language
chosen comes first, the other follows in a ``<span lang>`` so a screen reader pronounces each in
its own voice, and ``<html lang>`` follows the choice (``html_lang()``).

``GET /lang?to=en&next=/path`` sets ``lang=en`` (or ``zh``) and sends the browser back to ``next``
— a local path only, never another site. It needs no login: the public pages switch too.

Printed documents (``sanji.web.documents``: receipts, notices) are legal papers and stay Chinese
whatever the cookie says; they do not use this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from litestar import Controller, Request, get
from litestar.datastructures import Cookie
from litestar.params import FromQuery
from litestar.response import Redirect
from markupsafe import Markup, escape

from sanji.bilingual import split_pair

if TYPE_CHECKING:
    from jinja2.runtime import Context

LANG_COOKIE = "lang"
ZH, EN = "zh", "en"
HTML_LANG = {ZH: "zh-CN", EN: "en"}
ONE_YEAR = 365 * 24 * 3600


def lang_of(request: Request[Any, Any, Any] | None) -> str:
    """The reader's choice: ``en`` when the cookie says so, Chinese otherwise."""
    if request is None:
        return ZH
    return EN if request.cookies.get(LANG_COOKIE, "") == EN else ZH


def pair_html(zh: str, en: str, lang: str, *, small: bool = False) -> Markup:
    """The chosen language first, the other in a ``<span lang>`` (class ``alt`` when ``small``)."""
    first, second, second_lang = (en, zh, HTML_LANG[ZH]) if lang == EN else (zh, en, HTML_LANG[EN])
    if not second:
        return Markup(escape(first))
    if not first:
        return Markup('<span lang="{}">{}</span>').format(second_lang, second)
    cls = ' class="alt"' if small else ""
    return Markup('{} <span lang="{}"{}>{}</span>').format(first, second_lang, Markup(cls), second)


def _context_lang(ctx: Context) -> str:
    request = ctx.get("request")
    return lang_of(request if isinstance(request, Request) else None)


def bi(ctx: Context, zh: Any, en: Any = None, small: bool = False) -> Markup:
    """``bi("受理", "Accept")``, ``bi(("受理", "Accept"))`` or ``bi("受理 Accept")``, in the reader's order."""
    if en is None:
        if isinstance(zh, tuple) and len(zh) == 2:
            zh, en = zh
        else:
            found = split_pair(str(zh))
            if found is None:
                return Markup(escape(zh))
            zh, en = found
    return pair_html(str(zh), str(en), _context_lang(ctx), small=small)


def bi_filter(ctx: Context, text: Any, small: bool = False) -> Markup:
    """``{{ label | bi }}``: a "中文 English" string in the reader's order; any other string as it is."""
    result: Markup = bi(ctx, text, None, small)
    return result


def bi_text(ctx: Context, zh: str, en: str) -> str:
    """Plain text in the reader's order, for an attribute (``data-label``, ``aria-label``) or an option."""
    return f"{en} {zh}" if _context_lang(ctx) == EN else f"{zh} {en}"


def bi_labels(ctx: Context, pairs: Any) -> list[str]:
    """``bi_text`` of each ``(zh, en)`` pair: a table's column names for its cells' ``data-label``."""
    return [bi_text(ctx, zh, en) for zh, en in pairs]


def named_node(ctx: Context, name: str, node_id: str) -> Markup:
    """A node and its id in the reader's order. Its name is Chinese only, so an English page leads with the id
    (``T01 <span lang="zh-CN" class="alt">城关镇便民服务中心</span>``) and a Chinese one with the name
    (``城关镇便民服务中心 <span class="muted">T01</span>``); a node without a name of its own is its id."""
    if not name or name == node_id:
        return Markup(escape(node_id))
    if _context_lang(ctx) == EN:
        return Markup('{} <span lang="{}" class="alt">{}</span>').format(node_id, HTML_LANG[ZH], name)
    return Markup('{} <span class="muted">{}</span>').format(name, node_id)


def html_lang(ctx: Context) -> str:
    return HTML_LANG[_context_lang(ctx)]


def page_lang(ctx: Context) -> str:
    """``zh`` or ``en``, for a template that words a sentence differently."""
    return _context_lang(ctx)


def here(request: Request[Any, Any, Any]) -> str:
    """The page to come back to: this page, or for a re-shown form (a POST) the page the form was on."""
    if request.method in ("GET", "HEAD"):
        # as asked ("/office/sms/" keeps its slash); some servers leave the query on raw_path
        raw = (request.scope.get("raw_path") or request.url.path.encode()).split(b"?", 1)[0]
        query = request.scope.get("query_string", b"").decode("latin-1")
        return local_path(raw.decode("latin-1") + ("?" + query if query else ""))
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc != request.headers.get("host", ""):
        return "/"
    return local_path(referer.path + ("?" + referer.query if referer.query else ""))


def switch_url(ctx: Context) -> str:
    """Where the header's English / 中文 link goes: ``/lang?to=…&next=<this page>``."""
    request = ctx.get("request")
    to = ZH if _context_lang(ctx) == EN else EN
    back = here(request) if isinstance(request, Request) else "/"
    return f"/lang?to={to}&next=" + quote(back, safe="/")


def local_path(raw: str) -> str:
    """``raw`` when it is a path on this node (``/…``), otherwise ``/``: never a way to another site."""
    if (
        not raw.startswith("/")
        or raw.startswith("//")
        or "\\" in raw
        or any(ord(c) < 0x21 or c == "\x7f" for c in raw)
        or len(raw) > 2000
    ):
        return "/"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or parts.path.startswith("/lang"):
        return "/"
    return raw


class LanguageController(Controller):
    path = "/lang"
    include_in_schema = False

    @get("/", status_code=303)
    async def switch(self, to: FromQuery[str] = ZH, next: FromQuery[str] = "/") -> Redirect:
        """Remember the reader's language for a year and go back to the page the switch was on."""
        chosen = EN if to == EN else ZH
        redirect = Redirect(path=local_path(next), status_code=303)
        redirect.cookies.append(
            Cookie(key=LANG_COOKIE, value=chosen, path="/", max_age=ONE_YEAR, httponly=True, samesite="lax")
        )
        return redirect


def register(engine: Any) -> None:
    """Set up the Jinja engine once made (``sanji.web.templating``): the language globals and the ``bi`` filter.

    Each takes the template's context first (``pass_context``, applied here so that this module does not
    load Jinja before a page is rendered).
    """
    from jinja2 import pass_context

    env = engine.engine
    env.globals.update(
        {
            name: pass_context(function)
            for name, function in (
                ("bi", bi),
                ("bi_text", bi_text),
                ("bi_labels", bi_labels),
                ("named_node", named_node),
                ("html_lang", html_lang),
                ("page_lang", page_lang),
                ("switch_url", switch_url),
            )
        }
    )
    env.filters["bi"] = pass_context(bi_filter)
