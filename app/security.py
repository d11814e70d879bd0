"""Passwords, one-time tokens, signed values and CSRF. Views never import passlib or hmac themselves.

CSRF, two checks on every unsafe request (both must pass; see docs/ARCHITECTURE.md):
1. Where the request came from: `Sec-Fetch-Site` must be `same-origin` or `none`; browsers too old to send it
   are judged by `Origin`, which must equal the base URL's origin when present.
2. A token: the `plenary_csrf` cookie (random, HttpOnly, SameSite=Lax) must be echoed in the `csrf_token` form
   field or the `X-CSRF-Token` header (which `<body hx-headers>` adds to every htmx request).
The cookie exists before sign-in, so the sign-in form itself is protected, and it is replaced at sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache

from passlib.context import CryptContext
from zxcvbn import zxcvbn

PASSWORD_MIN = 12
PASSWORD_MAX = 256
MIN_STRENGTH = 3  # zxcvbn score 0-4; 3 = "safely unguessable" against an online or slowed offline attack
CSRF_COOKIE = "plenary_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@lru_cache(maxsize=4)
def password_context(rounds: int = 2, memory_kib: int = 19456) -> CryptContext:
    """argon2id at OWASP's minimum by default (m=19 MiB, t=2, p=1: about 33 ms here; passlib's own default
    takes 250 ms and cannot absorb a sign-in burst on two cores). Hashes made with other parameters verify
    and are rehashed on the next successful sign-in."""
    return CryptContext(
        schemes=["argon2"],
        deprecated="auto",
        argon2__type="ID",
        argon2__rounds=rounds,
        argon2__memory_cost=memory_kib,
        argon2__parallelism=1,
    )


# A hash of a random password, verified when the account does not exist so both paths cost the same.
_DUMMY: dict[tuple[int, int], str] = {}


def hash_password(plain: str, ctx: CryptContext) -> str:
    return ctx.hash(plain)


def verify_password(plain: str, stored: str | None, ctx: CryptContext) -> tuple[bool, str | None]:
    """Returns (ok, new_hash); new_hash is set when the stored hash should be upgraded."""
    if not stored:
        key = (id(ctx), 0)
        if key not in _DUMMY:
            _DUMMY[key] = ctx.hash(secrets.token_urlsafe(16))
        ctx.verify(plain, _DUMMY[key])
        return False, None
    try:
        return ctx.verify_and_update(plain, stored)
    except (ValueError, TypeError):
        return False, None


def password_problem(plain: str, user_inputs: tuple[str, ...] = ()) -> str | None:
    """Why a new password is refused, or None. No composition rules (they make passwords worse); instead length
    limits and zxcvbn's guessability estimate, which knows common passwords, keyboard walks, repeats, dates
    and the member's own name and address (`user_inputs`)."""
    if len(plain) < PASSWORD_MIN:
        return f"Use at least {PASSWORD_MIN} characters. A few words in a row make a good password."
    if len(plain) > PASSWORD_MAX:
        return f"Use at most {PASSWORD_MAX} characters."
    verdict = zxcvbn(plain[:100], user_inputs=[u for u in user_inputs if u])
    if verdict["score"] < MIN_STRENGTH:
        hint = verdict["feedback"]["warning"] or "It would be easy to guess."
        return f"This password is too easy to guess. {hint} Add another word or two."
    return None


def new_token() -> str:
    """256 bits from the CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def sign(secret: str, purpose: str, value: str) -> str:
    mac = hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()
    return mac[:32]


def constant_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


def origin_allowed(headers: dict[str, str], base_origin: str) -> bool:
    """The request-origin half of the CSRF check (header names lower-case)."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is not None:
        return origin == base_origin
    return True


def safe_next(target: str | None, default: str = "/") -> str:
    """A redirect target from a form or query: only a path on this site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 32 for c in target):
        return default
    return target
