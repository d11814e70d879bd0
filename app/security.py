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

PASSWORD_MIN = 12
PASSWORD_MAX = 256
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


def password_problem(plain: str) -> str | None:
    """Why a new password is refused, or None. Length only: composition rules make passwords worse."""
    if len(plain) < PASSWORD_MIN:
        return f"Use at least {PASSWORD_MIN} characters. A few words in a row make a good password."
    if len(plain) > PASSWORD_MAX:
        return f"Use at most {PASSWORD_MAX} characters."
    if plain.strip() == "" or len(set(plain)) < 4:
        return "This password is too easy to guess."
    if plain.lower() in COMMON_PASSWORDS:
        return "This password is on the list of the most common passwords. Choose another."
    return None


COMMON_PASSWORDS = frozenset(
    """123456789012 1234567890123 password1234 passwordpassword qwertyuiopas qwertyuiop123 123456123456
    iloveyou1234 administrator adminadmin123 letmeinletmein welcome12345 abc123abc123 111111111111
    000000000000 password123! changemechangeme qwerty123456 1q2w3e4r5t6y 1qaz2wsx3edc plenaryplenary""".split()
)


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
