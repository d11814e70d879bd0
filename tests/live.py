"""Helpers for tests against the `live_server` fixture (tests/conftest.py): signed-in members and POSTs sent
from threads that all wait at one barrier, so the requests reach the server at the same moment."""

from __future__ import annotations

import http.client
import secrets
import threading
import urllib.parse

from app.members.auth import start_session
from tests.factories import make_member


def sessions(db, settings, n: int, *, prefix: str = "racer") -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    """`n` new members, each with a session token: [(member id, token)]."""
    out = []
    with db.begin() as s:
        for i in range(n):
            m = make_member(s, email=f"{prefix}{i}@example.org")
            out.append((m.id, start_session(s, settings, m, ip="127.0.0.1", user_agent="test")))
    return out


def post(port: int, path: str, session_token: str, body: dict[str, str],
         barrier: threading.Barrier) -> tuple[int, str]:
    """An htmx form POST with the session and CSRF cookies, sent once every thread is at the barrier."""
    csrf = secrets.token_urlsafe(32)
    data = urllib.parse.urlencode({"csrf_token": csrf, **body})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.connect()
        barrier.wait(timeout=30)
        conn.request("POST", path, body=data, headers={
            "Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true", "Host": "127.0.0.1",
            "Cookie": f"plenary_session={session_token}; plenary_csrf={csrf}"})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def send(port: int, method: str, path: str, session_token: str, body: dict[str, str] | None = None, *,
         htmx: bool = True, timeout_s: float = 30.0) -> tuple[int, str]:
    """One request as a signed-in page sends it (an htmx one unless told otherwise), without waiting at a
    barrier: the status and the body."""
    csrf = secrets.token_urlsafe(32)
    headers = {"Host": "127.0.0.1", "Cookie": f"plenary_session={session_token}; plenary_csrf={csrf}"}
    if htmx:
        headers["HX-Request"] = "true"
    data = None
    if method == "POST":
        data = urllib.parse.urlencode({"csrf_token": csrf, **(body or {})})
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()
