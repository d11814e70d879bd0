"""The outbox pages: what Plenary has sent or will send, for admins (and the way to read mail in development).

When an SMTP server is configured, one-time links in message bodies are hidden: the recipient gets them by
email, and an admin who could read a sign-in or invitation link here could use it as that member.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app import web
from app.db import run_db
from app.mail import outbox as outbox_service
from app.templating import render

HIDDEN = "hidden"
# The preview iframe (srcdoc) inherits this page's CSP, which blocks inline styles; dropping them avoids a CSP
# violation report per styled element. The sandbox, not this, is what keeps the message's HTML inert.
_STYLE_ATTR = re.compile(r"""\sstyle\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 7 else 1


def hide_links(body: str, base_url: str) -> tuple[str, bool]:
    """Replace the secret last segment of our own links (e.g. /signin/link/<token>) with "hidden"."""
    pattern = re.compile(re.escape(base_url.rstrip("/")) + r"(/[^\s\"'<>]*?/)[A-Za-z0-9_\-]{16,}")
    hidden, n = pattern.subn(lambda m: base_url.rstrip("/") + m.group(1) + HIDDEN, body)
    return hidden, n > 0


async def outbox(request: Request) -> Response:
    web.require_admin(request)
    status = request.query_params.get("status", "")
    page = _page_number(request.query_params.get("page"))

    def load() -> outbox_service.OutboxPage:
        with web.db(request).read() as s:
            return outbox_service.outbox_page(s, status=status, page=page)

    result = await run_db(load)
    return render(request, "admin/outbox.html", {
        "result": result,
        "statuses": outbox_service.STATUSES,
        "smtp_configured": bool(web.settings(request).smtp_url),
    })


async def outbox_message(request: Request) -> Response:
    web.require_admin(request)
    message_id = request.path_params["message_id"]

    def load() -> Any:
        with web.db(request).read() as s:
            return outbox_service.get_message(s, message_id)

    message = await run_db(load)
    if message is None:
        raise HTTPException(404)
    settings = web.settings(request)
    text_body, html_body, links_hidden = message.text_body, message.html_body, False
    if settings.smtp_url:
        text_body, hidden_text = hide_links(text_body, settings.base_url)
        html_body, hidden_html = hide_links(html_body, settings.base_url)
        links_hidden = hidden_text or hidden_html
    to = f"{message.to_name} <{message.to_addr}>" if message.to_name else message.to_addr
    headers = [
        ("From", settings.mail_from),
        ("To", to),
        ("Subject", message.subject),
        ("Message-ID", message.message_id),
        *sorted((message.headers or {}).items()),
    ]
    return render(request, "admin/outbox_message.html", {
        "message": message,
        "headers": headers,
        "text_body": text_body,
        "html_body": html_body,
        "html_preview": _STYLE_ATTR.sub("", html_body),
        "links_hidden": links_hidden,
        "smtp_configured": bool(settings.smtp_url),
    })
