"""The only module that knows htmx's header names."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

HX_REQUEST = "hx-request"
HX_BOOSTED = "hx-boosted"
HX_TARGET = "hx-target"
HX_CURRENT_URL = "hx-current-url"
HX_REDIRECT = "HX-Redirect"
HX_REFRESH = "HX-Refresh"
HX_TRIGGER = "HX-Trigger"


def is_htmx(request: Request) -> bool:
    return request.headers.get(HX_REQUEST) == "true"


def is_partial(request: Request) -> bool:
    """htmx asked for a fragment (a boosted navigation wants the whole page)."""
    return is_htmx(request) and request.headers.get(HX_BOOSTED) != "true"


def vary(response: Response) -> Response:
    existing = response.headers.get("vary")
    response.headers["vary"] = f"{existing}, HX-Request" if existing else "HX-Request"
    return response


def redirect(response: Response, url: str) -> Response:
    response.headers[HX_REDIRECT] = url
    return response


def go_to(request: Request, response: Response, url: str) -> Response:
    """Send the browser to `url` after an htmx request. Where only the #fragment differs from the page it is on,
    htmx's assignment to `location` would merely scroll, so the page is also reloaded (at the new address)."""
    response.headers[HX_REDIRECT] = url
    here, there = urlsplit(request.headers.get(HX_CURRENT_URL, "")), urlsplit(url)
    if (here.path, here.query) == (there.path, there.query):
        response.headers[HX_REFRESH] = "true"
    return response
