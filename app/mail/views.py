"""The outbox pages (what Plenary has sent or will send, for admins, and the way to read mail in development),
unsubscribing, the member's email preferences and the admins' defaults.

When an SMTP server is configured, one-time links in message bodies are hidden: the recipient gets them by
email, and an admin who could read a sign-in or invitation link here could use it as that member.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app import htmx, web
from app.db import run_db
from app.mail import outbox as outbox_service
from app.mail import outbox_admin
from app.mail import services as mail_services
from app.mail.headers import read_unsubscribe_token
from app.mail.policy import PREF_KINDS, org_defaults
from app.security import safe_next
from app.templating import render, see_other

HIDDEN = "hidden"
# The preview iframe (srcdoc) inherits this page's CSP, which blocks inline styles; dropping them avoids a CSP
# violation report per styled element. The sandbox, not this, is what keeps the message's HTML inert.
_STYLE_ATTR = re.compile(r"""\sstyle\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
_STYLE_ELEMENT = re.compile(r"<style\b.*?</style\s*>", re.IGNORECASE | re.DOTALL)


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 7 else 1


def hide_links(body: str, base_url: str) -> tuple[str, bool]:
    """Replace the secret last segment of our own links (e.g. /signin/link/<token>) with "hidden"."""
    pattern = re.compile(re.escape(base_url.rstrip("/")) + r"(/[^\s\"'<>]*?/)[A-Za-z0-9_\-]{16,}")
    hidden, n = pattern.subn(lambda m: base_url.rstrip("/") + m.group(1) + HIDDEN, body)
    return hidden, n > 0


_MAILTO_TOKEN = re.compile(r"((?:mailto:)?[a-z]+\+)[A-Za-z0-9_\-]{16,}@")


def _hide_header_links(value: str, base_url: str) -> str:
    """The List-Unsubscribe header's https and mailto tokens, and the Reply-To's reply token, hidden like the
    links in the bodies."""
    return _MAILTO_TOKEN.sub(lambda m: m.group(1) + HIDDEN + "@", hide_links(value, base_url)[0])


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
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    })


# --- retry and cancel: a POST form on each row (htmx swaps the row), or on the message's page --------------

_DONE = {"retry": "The message is back in the queue.", "cancel": "The message is cancelled: it will not be sent."}


async def _outbox_change(request: Request, action: str) -> Response:
    me = web.require_admin(request)
    message_id = request.path_params["message_id"]
    data = await web.form(request)
    change = outbox_admin.retry if action == "retry" else outbox_admin.cancel

    def do() -> Any:
        with web.db(request).begin() as s:
            return change(s, actor_id=me.id, message_id=message_id, ip=web.client_ip(request))

    def load() -> Any:
        with web.db(request).read() as s:
            return outbox_service.get_message(s, message_id)

    error = None
    try:
        message = await run_db(do)
    except outbox_admin.OutboxNotFound:
        raise HTTPException(404) from None
    except outbox_admin.OutboxRefused as exc:
        error = str(exc)
        if not htmx.is_partial(request):
            return render(request, "admin/outbox_refused.html", {"error": error, "message_id": message_id},
                          status_code=409)
        message = await run_db(load)
    if htmx.is_partial(request):  # the row of the listing, in its new state (or as it is, with why not)
        return render(request, "admin/_outbox_row.html", {"m": message, "error": error,
                                                          "here": safe_next(web.text(data, "next", 500),
                                                                            request.url_for("admin:outbox").path)},
                      status_code=409 if error else 200)
    default = request.url_for("admin:outbox_message", message_id=message_id).path
    return see_other(safe_next(web.text(data, "next", 500), default), _DONE[action])


async def outbox_retry(request: Request) -> Response:
    return await _outbox_change(request, "retry")


async def outbox_cancel(request: Request) -> Response:
    return await _outbox_change(request, "cancel")


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
        *sorted((name, _hide_header_links(str(value), settings.base_url) if settings.smtp_url else value)
                for name, value in (message.headers or {}).items()),
    ]
    return render(request, "admin/outbox_message.html", {
        "here": request.url.path,
        "message": message,
        "headers": headers,
        "text_body": text_body,
        "html_body": html_body,
        "html_preview": _STYLE_ATTR.sub("", _STYLE_ELEMENT.sub("", html_body)),
        "links_hidden": links_hidden,
        "smtp_configured": bool(settings.smtp_url),
    })


# --- unsubscribing: the link in every bulk message -----------------------------------------------------------

# No cookies are needed and none are trusted here: the signed token alone says who and what, and it can only
# unsubscribe. The POST is exempt from CSRF checks (see create_app) because mail providers send it themselves
# (RFC 8058 one-click); a forged one would need the token, which unsubscribes and nothing more.
UNSUBSCRIBE_HEADERS = {"referrer-policy": "no-referrer", "cache-control": "no-store"}


async def unsubscribe(request: Request) -> Response:
    settings = web.settings(request)
    read = read_unsubscribe_token(settings, request.path_params["token"])
    if read is None:
        return render(request, "mail/unsubscribe_problem.html", {}, status_code=400, headers=UNSUBSCRIBE_HEADERS)
    member_id, kind = read
    if request.method == "GET":  # link scanners open links: showing the button changes nothing
        return render(request, "mail/unsubscribe.html", {"kind": kind, "label": mail_services.KIND_LABELS[kind][0]},
                      headers=UNSUBSCRIBE_HEADERS)
    data = await web.form(request)
    everything = web.text(data, "everything", 5) == "1"

    def do() -> str:
        with web.db(request).begin() as s:
            return mail_services.unsubscribe(s, member_id, kind, everything=everything, ip=web.client_ip(request))

    stopped = await run_db(do)
    return render(request, "mail/unsubscribed.html", {"stopped": stopped}, headers=UNSUBSCRIBE_HEADERS)


# --- the member's preferences (a section of the profile page) ------------------------------------------------

def _modes(data: Any) -> dict[str, str]:
    return {kind: web.text(data, f"mode-{kind}", 20) for kind in PREF_KINDS}


async def profile_mail(request: Request) -> Response:
    me = web.require_member(request)
    data = await web.form(request)

    def do() -> None:
        with web.db(request).begin() as s:
            mail_services.save_preferences(s, me.id, modes=_modes(data),
                                           digest_every=web.text(data, "digest_every", 10),
                                           unsubscribed_all=web.text(data, "unsubscribed_all", 5) == "1",
                                           ip=web.client_ip(request))

    try:
        await run_db(do)
    except mail_services.PreferenceError as exc:
        raise HTTPException(400, str(exc)) from exc
    return see_other(request.url_for("profile").path + "#mail", "Your email preferences are saved.")


# --- the admins' defaults and the weekly budget --------------------------------------------------------------

async def admin_mail(request: Request) -> Response:
    me = web.require_admin(request)
    error = None
    if request.method == "POST":
        data = await web.form(request)
        budget = web.text(data, "weekly_budget", 10).strip()

        def do() -> None:
            with web.db(request).begin() as s:
                mail_services.save_org_settings(
                    s, actor_id=me.id, weekly_budget=int(budget) if budget.isdigit() else -1,
                    digest_every=web.text(data, "digest_every", 10), modes=_modes(data), ip=web.client_ip(request))

        try:
            await run_db(do)
        except mail_services.PreferenceError as exc:
            error = str(exc)
        else:
            return see_other(request.url_for("admin:mail").path, "Email defaults saved.")

    def load() -> Any:
        with web.db(request).read() as s:
            return org_defaults(s)

    defaults = await run_db(load)
    return render(request, "admin/mail.html", {
        "defaults": defaults, "error": error, "kinds": PREF_KINDS, "kind_labels": mail_services.KIND_LABELS,
        "mode_labels": mail_services.MODE_LABELS, "digest_labels": mail_services.DIGEST_LABELS,
        "budget_max": mail_services.BUDGET_MAX,
    }, status_code=400 if error else 200)
