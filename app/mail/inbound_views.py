"""`POST /inbound/email`: the webhook door for email replies, for mail providers that deliver incoming mail over
HTTP. The body is the raw MIME message; the shared secret (`PLENARY_INBOUND_SECRET`) comes in the
`X-Plenary-Inbound-Secret` header or as the password of HTTP Basic auth (for providers that only take a URL with
credentials). The envelope recipient may be given in `X-Plenary-Recipient`; without it, the reply address is
looked for in Delivered-To, X-Original-To, To and Cc.

It authenticates itself, so it is exempt from CSRF (`CSRF_EXEMPT` in app/main.py). Unset secret: 404, as if the
route did not exist. A client that sent wrong secrets too often (the sign-in rate limit's count and window, per
IP) is refused with 429 before its secret is even compared. The work is `inbound.receive`, as for SMTP; the
answer is JSON with the outcome, and the HTTP status says the same as the SMTP reply would.
"""

from __future__ import annotations

import base64
import binascii
import contextlib

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import security, web
from app.db import run_db
from app.mail import inbound
from app.members.guard import RateLimited, check_rate, rate_exceeded

SECRET_HEADER = "x-plenary-inbound-secret"  # noqa: S105 - a header name
RECIPIENT_HEADER = "x-plenary-recipient"


def _sent_secret(request: Request) -> str:
    sent = request.headers.get(SECRET_HEADER)
    if sent:
        return sent
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def _answer(outcome: inbound.Outcome) -> Response:
    return JSONResponse(outcome.as_json(), status_code=outcome.http, headers={"cache-control": "no-store"})


def _refusal(http: int, message: str, smtp: str = "554 5.7.0") -> Response:
    return _answer(inbound.Outcome("refused", smtp, http, message))


async def inbound_email(request: Request) -> Response:
    settings = web.settings(request)
    if not settings.inbound_secret:
        raise HTTPException(404)
    db = web.db(request)
    key = f"inbound-secret:ip:{web.client_ip(request)}"
    limit, window = settings.rate_limit_count, settings.rate_limit_window_s

    def over_limit() -> bool:
        with db.read() as s:
            return rate_exceeded(s, key, limit=limit, window_s=window)

    if await run_db(over_limit):
        return _refusal(429, "Too many wrong secrets from this address; try again later.", "451 4.7.1")
    if not security.constant_equals(_sent_secret(request), settings.inbound_secret):
        def count_failure() -> None:
            # The failure is recorded (committed) whether or not it reaches the limit: the suppress is inside.
            with db.begin() as s, contextlib.suppress(RateLimited):
                check_rate(s, [key], limit=limit, window_s=window)

        await run_db(count_failure)
        return _refusal(401, "The inbound secret is missing or wrong.", "530 5.7.0")
    body = await request.body()
    if len(body) > settings.inbound_max_kb * 1024:
        return _answer(inbound.too_big(settings.inbound_max_kb).outcome)
    if not body.strip():
        return _refusal(400, "The request has no message: send the raw MIME message as the body.", "554 5.6.0")
    recipient = request.headers.get(RECIPIENT_HEADER, "").strip()[:500] or None
    outcome = await run_db(inbound.receive, db, settings, body, recipient=recipient)
    return _answer(outcome)
