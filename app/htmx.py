"""The only module that knows htmx's header names."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

HX_REQUEST = "hx-request"
HX_BOOSTED = "hx-boosted"
HX_TARGET = "hx-target"
HX_REDIRECT = "HX-Redirect"
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
