"""The one ASGI middleware every request passes: trusted host, body limit, CSRF, who is signed in, headers.

It is pure ASGI (no BaseHTTPMiddleware) and buffers only unsafe requests' bodies, which it must read anyway to
find the CSRF token in a form; the buffered body is replayed to the endpoint unchanged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import bindparam, select, update
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import security
from app.db import run_db, utcnow
from app.members.models import Member, Status, UserSession

MEMBER_KEY = "plenary.member"
CSRF_KEY = "plenary.csrf"
SESSION_COOKIE = "plenary_session"
TOUCH_EVERY = dt.timedelta(minutes=5)
IDLE_LIMIT = dt.timedelta(days=7)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


@dataclass(frozen=True, slots=True)
class CurrentMember:
    """Who is asking: a plain snapshot, safe to use after the unit of work that loaded it has ended."""

    id: int
    name: str
    email: str
    role: str
    session_id: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def session_cookie_name(secure: bool) -> str:
    return "__Host-" + SESSION_COOKIE if secure else SESSION_COOKIE


def current_member(request: Request) -> CurrentMember | None:
    return request.scope.get(MEMBER_KEY)


def csrf_token(request: Request) -> str:
    return request.scope.get(CSRF_KEY, "")


class PlenaryMiddleware:
    def __init__(self, app: ASGIApp, *, max_body: int = 6 * 1024 * 1024, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_body = max_body
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings = state.settings
        headers = Headers(scope=scope)
        host = (headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
        if host not in settings.trusted_hosts and "*" not in settings.trusted_hosts:
            await _plain(scope, receive, send, 400, "Invalid host header")
            return

        cookie_header = headers.get("cookie", "")
        cookies = _cookies(cookie_header)
        csrf_cookie = cookies.get(security.CSRF_COOKIE, "")
        new_csrf = None
        if len(csrf_cookie) < 32:
            csrf_cookie = new_csrf = security.new_token()
        scope[CSRF_KEY] = csrf_cookie

        method = scope["method"]
        if method not in security.SAFE_METHODS:
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await _error_page(scope, receive, send, 413)
                return
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body.extend(message.get("body", b""))
                if len(body) > self.max_body:
                    await _error_page(scope, receive, send, 413)
                    return
                if not message.get("more_body", False):
                    break
            receive = _replay(bytes(body), receive)
            exempt = scope["path"].startswith(self.exempt)
            if not exempt and not _csrf_ok(headers, bytes(body), csrf_cookie, settings.base_origin,
                                           new_csrf is None):
                await _error_page(scope, receive, send, 403)
                return

        token = cookies.get(session_cookie_name(settings.secure_cookies))
        if token:
            member = await run_db(_load_member, state.db, token)
            if member is not None:
                scope[MEMBER_KEY] = member

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = message.setdefault("headers", [])
                names = {k.lower() for k, _ in raw}
                raw.append((b"content-security-policy", CSP.encode()))
                raw.append((b"x-content-type-options", b"nosniff"))
                raw.append((b"x-frame-options", b"DENY"))
                if b"referrer-policy" not in names:
                    raw.append((b"referrer-policy", b"same-origin"))
                if settings.secure_cookies:
                    raw.append((b"strict-transport-security", b"max-age=31536000"))
                if MEMBER_KEY in scope and b"cache-control" not in names:
                    raw.append((b"cache-control", b"no-store"))
                if new_csrf is not None and not scope.get("plenary.csrf_rotated"):
                    raw.append((b"set-cookie", csrf_cookie_header(new_csrf, settings.secure_cookies).encode()))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csrf_cookie_header(value: str, secure: bool) -> str:
    attrs = f"{security.CSRF_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000"
    return attrs + ("; Secure" if secure else "")


def _csrf_ok(headers: Headers, body: bytes, cookie: str, base_origin: str, had_cookie: bool) -> bool:
    if not security.origin_allowed({k: headers[k] for k in ("sec-fetch-site", "origin") if k in headers},
                                   base_origin):
        return False
    if not had_cookie:
        return False
    sent = headers.get(security.CSRF_HEADER)
    if sent is None:
        sent = _form_token(headers.get("content-type", ""), body)
    return bool(sent) and security.constant_equals(sent, cookie)


def _form_token(content_type: str, body: bytes) -> str | None:
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            values = parse_qs(body.decode("latin-1"), max_num_fields=2000).get(security.CSRF_FIELD)
        except ValueError:
            return None
        return values[0] if values else None
    if content_type.startswith("multipart/form-data"):
        # The template puts the token first; find its part without parsing files.
        marker = b'name="' + security.CSRF_FIELD.encode() + b'"'
        at = body.find(marker)
        if at < 0:
            return None
        start = body.find(b"\r\n\r\n", at)
        end = body.find(b"\r\n", start + 4)
        if start < 0 or end < 0:
            return None
        return body[start + 4 : end].decode("latin-1")
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in out:
            out[name] = value
    return out


_SESSION_QUERY = (
    select(
        UserSession.id, UserSession.last_seen_at, UserSession.expires_at,
        Member.id, Member.name, Member.email, Member.role, Member.status,
    )
    .join(Member, Member.id == UserSession.member_id)
    .where(UserSession.token_hash == bindparam("h"))
)


def _load_member(db: Any, token: str) -> CurrentMember | None:
    now = utcnow()
    with db.read_connection() as conn:  # a bare connection: a Session costs more than this one query
        row = conn.execute(_SESSION_QUERY, {"h": security.token_hash(token)}).first()
    if row is None:
        return None
    sid, last_seen, expires, mid, name, email, role, status = row
    if status == Status.DEACTIVATED or expires <= now or now - last_seen > IDLE_LIMIT:
        return None
    if now - last_seen > TOUCH_EVERY:
        # Not waiting for the disk: a touch lost in a power cut only makes the session look idle a little longer.
        with db.write_connection(durable=False) as conn:
            conn.execute(update(UserSession).where(UserSession.id == sid).values(last_seen_at=now))
    return CurrentMember(id=mid, name=name, email=email, role=role, session_id=sid)


async def _plain(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
    from starlette.responses import PlainTextResponse

    await PlainTextResponse(text, status_code=status)(scope, receive, send)


async def _error_page(scope: Scope, receive: Receive, send: Send, status: int) -> None:
    from app.templating import error_response

    request = Request(scope, receive)
    response = error_response(request, status)
    response.headers["content-security-policy"] = CSP
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["x-frame-options"] = "DENY"
    await response(scope, receive, send)

