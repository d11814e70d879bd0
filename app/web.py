"""What every view needs: who is asking, where from, the form, and setting or clearing the session cookie."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from passlib.context import CryptContext
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app import security
from app.middleware import CurrentMember, csrf_cookie_header, current_member, session_cookie_name
from app.settings import Settings

FORM_LIMITS = {"max_files": 2, "max_fields": 500, "max_part_size": 1024 * 1024}


class SignInRequired(Exception):
    """Raised by require_member; answered with a redirect to the sign-in page (see main.py)."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def settings(request: Request) -> Settings:
    return request.app.state.settings


def db(request: Request) -> Any:
    return request.app.state.db


def pwd_ctx(request: Request) -> CryptContext:
    s = settings(request)
    return security.password_context(s.password_hash_rounds, s.password_hash_memory_kib)


def client_ip(request: Request) -> str:
    # X-Forwarded-For is not trusted: behind a proxy, run uvicorn with --proxy-headers for the peers you trust.
    return request.client.host if request.client else ""


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:300]


def org_name(request: Request) -> str:
    return request.app.state.org_name or "Plenary"


def require_member(request: Request) -> CurrentMember:
    me = current_member(request)
    if me is None:
        raise SignInRequired(request.url.path)
    return me


def require_admin(request: Request) -> CurrentMember:
    me = require_member(request)
    if not me.is_admin:
        raise HTTPException(403, "This page is for admins of the organization.")
    return me


async def form(request: Request, *, max_part_size: int | None = None) -> FormData:
    limits = FORM_LIMITS if max_part_size is None else {**FORM_LIMITS, "max_part_size": max_part_size}
    try:
        return await request.form(**limits)
    except HTTPException:
        raise
    except Exception as exc:  # malformed multipart bodies raise parser-specific errors
        raise HTTPException(400, "The form could not be read. Reload the page and try again.") from exc


def text(data: FormData, name: str, limit: int = 10_000) -> str:
    value = data.get(name)
    if value is None or not isinstance(value, str):
        return ""
    return value[:limit]


def int_list(data: FormData, name: str) -> list[int]:
    out = []
    for v in data.getlist(name):
        if isinstance(v, str) and v.isdigit():
            out.append(int(v))
    return out


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    s = settings(request)
    response.set_cookie(session_cookie_name(s.secure_cookies), token, max_age=s.session_days * 86400,
                        httponly=True, samesite="lax", secure=s.secure_cookies, path="/")
    # A fresh CSRF token with every new session: a token planted before sign-in is worthless after it.
    response.headers.append("set-cookie", csrf_cookie_header(security.new_token(), s.secure_cookies))
    request.scope["plenary.csrf_rotated"] = True


def clear_session_cookie(request: Request, response: Response) -> None:
    s = settings(request)
    response.delete_cookie(session_cookie_name(s.secure_cookies), path="/", secure=s.secure_cookies,
                           httponly=True, samesite="lax")


def signin_url(next_path: str) -> str:
    return "/signin?next=" + quote(security.safe_next(next_path), safe="/")
