"""The Jinja environment (autoescape on for .html, email templates included), filters and render helpers.

Templates get: `request`, `me` (the signed-in CurrentMember or None), `csrf_token`, `org_name`, `flash` messages,
and `url_for`. No I/O happens in templates: what they show is loaded before rendering.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

import jinja2
import markupsafe
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from app import htmx
from app.middleware import csrf_token, current_member
from app.settings import ROOT

TEMPLATES_DIR = ROOT / "templates"
FLASH_COOKIE = "plenary_flash"

ERRORS = {
    400: ("Bad request", "The request could not be understood. Go back and try again."),
    403: (
        "This request was refused",
        "It did not carry the security token of a Plenary page, or it came from another site. "
        "If you were filling in a form, go back, reload the page and send it again.",
    ),
    404: ("Not found", "There is nothing at this address, or you do not have access to it."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    413: (
        "Too large",
        "What you sent is larger than Plenary accepts (6 MB at most). Send a smaller file or shorter text.",
    ),
    429: ("Too many attempts", "Please wait a few minutes before you try again."),
    500: ("Something went wrong", "The error has been logged. Please try again in a moment."),
    503: ("Busy", "Plenary is busy right now. Please try again in a few seconds."),
}


_escape_inner = getattr(markupsafe, "_escape_inner", None)  # MarkupSafe's C escaping, behind its `escape`
_new_str = str.__new__


def escape(s: Any, /) -> markupsafe.Markup:
    """`markupsafe.escape`, the same result for every value, at half the cost: the Markup is made with
    `str.__new__` (where `Markup(text)` ends up) instead of through `Markup.__new__`, a Python call of its own.
    A template calls it for every `{{ value }}`: about 35 times a comment, 2,300 times on a page of comments,
    a third of rendering it."""
    if type(s) is str:
        return _new_str(markupsafe.Markup, _escape_inner(s))  # type: ignore[misc]
    if hasattr(s, "__html__"):
        return _new_str(markupsafe.Markup, s.__html__())
    return _new_str(markupsafe.Markup, _escape_inner(str(s)))  # type: ignore[misc]


class _Template(jinja2.Template):
    @classmethod
    def from_code(cls, environment: jinja2.Environment, code: Any, globals: Any, uptodate: Any = None) -> Any:
        template = super().from_code(environment, code, globals, uptodate)
        if _escape_inner is not None:
            # The compiled code looks `escape` up in its module's namespace whenever it runs: ours, there.
            template.root_render_func.__globals__["escape"] = escape
        return template


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(["html", "xml"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.template_class = _Template
    env.filters["localtime"] = localtime
    env.filters["plural"] = plural
    env.filters["markdown"] = _markdown
    return env


URL_CACHE_SIZE = 8192


def _context(request: Request) -> dict[str, Any]:
    state = request.app.state
    router = request.app.router
    # Starlette finds a route by trying each one in turn (an exception per miss), which made a page's dozen links
    # cost more than its queries; the routes never change, so each (name, params) is looked up once per app.
    paths: dict[tuple[str, tuple[tuple[str, Any], ...]], str] | None = getattr(state, "url_paths", None)
    if paths is None:
        paths = state.url_paths = {}

    def url_for(name: str, /, **params: Any) -> str:
        # Paths, not absolute URLs: a page never echoes the Host header back (emails use the base URL).
        key = (name, tuple(sorted(params.items())))
        path = paths.get(key)
        if path is None:
            path = str(router.url_path_for(name, **params))
            if len(paths) >= URL_CACHE_SIZE:
                paths.clear()
            paths[key] = path
        return path

    return {
        "url_for": url_for,
        "me": current_member(request),
        "csrf_token": csrf_token(request),
        "org_name": getattr(state, "org_name", None) or "Plenary",
        "org_tz": getattr(state, "org_tz", "UTC"),
    }


def _markdown(text: str | None) -> Any:
    from app.markdown import render_markdown

    return render_markdown(text or "")


def localtime(value: dt.datetime | None, tz: str = "UTC", fmt: str = "%-d %b %Y, %H:%M") -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(tz)).strftime(fmt)


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


templates = Jinja2Templates(env=_environment(), context_processors=[_context])


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    context = dict(context or {})
    raw_flash = request.cookies.get(FLASH_COOKIE)
    context.setdefault("flash", unquote(raw_flash) if raw_flash else None)
    response = templates.TemplateResponse(request, name, context, status_code=status_code, headers=headers)
    if raw_flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return htmx.vary(response)  # type: ignore[return-value]


def page_or_fragment(request: Request, page: str, fragment: str, context: dict[str, Any],
                     status_code: int = 200) -> HTMLResponse:
    """The whole page, or only the swappable fragment when htmx asked for it."""
    return render(request, fragment if htmx.is_partial(request) else page, context, status_code)


def see_other(url: str, flash: str | None = None) -> Response:
    """Redirect after a successful POST (303, so the browser GETs the next page)."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        set_flash(response, flash)
    return response


def set_flash(response: Response, message: str) -> None:
    response.set_cookie(FLASH_COOKIE, quote(message[:300]), max_age=60, httponly=True, samesite="lax", path="/")


def error_response(request: Request, status: int, message: str | None = None) -> HTMLResponse:
    title, text = ERRORS.get(status, ERRORS[500])
    name = "errors/_error.html" if htmx.is_partial(request) else "errors/error.html"
    return render(request, name,
                  {"status": status, "title": title, "message": message or text}, status_code=status)


def template_exists(name: str) -> bool:
    return (TEMPLATES_DIR / Path(name)).is_file()
