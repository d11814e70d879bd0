"""Signing in and out: passwords, emailed links, resets, invitations, sessions, rate limits, enumeration."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from bs4 import BeautifulSoup
from freezegun import freeze_time
from sqlalchemy import func, select

from app.mail.models import OutboxMessage
from app.members.models import AuditEvent, AuthToken, Member, RateEvent, UserSession
from tests.conftest import PASSWORD


def outbox(db, kind: str | None = None) -> list[OutboxMessage]:
    with db.read() as s:
        q = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind:
            q = q.where(OutboxMessage.kind == kind)
        return list(s.scalars(q))


def link_from(message: OutboxMessage, path: str) -> str:
    m = re.search(r"http://testserver(" + re.escape(path) + r"[A-Za-z0-9_\-]+)", message.text_body)
    assert m, message.text_body
    return m.group(1)


def test_signin_page_has_labelled_fields_and_csrf(client):
    r = client.get("/signin")
    assert r.status_code == 200
    soup = BeautifulSoup(r.text, "html.parser")
    form = soup.find("form", action="/signin")
    assert form.find("input", attrs={"name": "csrf_token"})["value"] == client.cookies["plenary_csrf"]
    for name in ("email", "password"):
        field = form.find("input", attrs={"name": name})
        assert soup.find("label", attrs={"for": field["id"]})


def test_password_signin_sets_session_and_home_greets(client, member):
    r = client.form("/signin", {"email": "MIA@example.org ", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookie if c.startswith("plenary_session="))
    assert "HttpOnly" in session_cookie and "samesite=lax" in session_cookie.lower()
    home = client.get("/")
    assert home.status_code == 200
    assert "Welcome, Mia Member" in home.text
    assert home.headers["cache-control"] == "no-store"


def test_session_cookie_holds_random_token_and_db_only_its_hash(client, member, db):
    client.sign_in(member.email)
    token = client.cookies["plenary_session"]
    assert len(token) >= 43
    with db.read() as s:
        hashes = list(s.scalars(select(UserSession.token_hash)))
    assert token not in hashes and len(hashes) == 1


def test_session_id_rotates_at_signin(client, member):
    client.sign_in(member.email)
    first = client.cookies["plenary_session"]
    csrf_before = client.cookies["plenary_csrf"]
    client.sign_in(member.email)
    assert client.cookies["plenary_session"] != first
    assert client.cookies["plenary_csrf"] != csrf_before


def test_wrong_password_and_unknown_address_answer_the_same(client, member):
    a = client.form("/signin", {"email": member.email, "password": "wrong password 123"})
    b = client.form("/signin", {"email": "nobody@example.org", "password": "wrong password 123"})
    assert a.status_code == b.status_code == 400
    strip = lambda t: re.sub(r'value="[^"]*"', "", t)  # noqa: E731 - the echoed address differs
    assert strip(a.text).replace(member.email, "X") == strip(b.text).replace("nobody@example.org", "X")
    assert "do not match an account" in a.text


def test_deactivated_member_cannot_sign_in_and_loses_sessions(admin_client, app, db, member):
    from tests.conftest import Client

    with Client(app, base_url="http://testserver") as mia:
        mia.sign_in(member.email)
        assert mia.get("/").status_code == 200
        r = admin_client.form(f"/admin/members/{member.id}/status", {"active": "0"})
        assert r.status_code == 303
        r = mia.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")
        bad = mia.form("/signin", {"email": member.email, "password": PASSWORD})
        assert bad.status_code == 400


def test_signin_rate_limited_per_address(client, member, db):
    for _ in range(10):
        r = client.form("/signin", {"email": member.email, "password": "not the password"})
        assert r.status_code == 400
    r = client.form("/signin", {"email": member.email, "password": PASSWORD})
    assert r.status_code == 429
    assert "Too many attempts" in r.text
    assert "plenary_session" not in client.cookies
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "ratelimit.signin")) == 1


def test_signin_rate_limited_per_ip_across_addresses(client, member):
    for i in range(10):
        client.form("/signin", {"email": f"guess{i}@example.org", "password": "not the password"})
    r = client.form("/signin", {"email": member.email, "password": PASSWORD})
    assert r.status_code == 429


def test_rate_limit_window_passes(client, member, db):
    with freeze_time("2026-01-01 10:00:00"):
        for _ in range(10):
            client.form("/signin", {"email": member.email, "password": "not the password"})
        assert client.form("/signin", {"email": member.email, "password": PASSWORD}).status_code == 429
    with freeze_time("2026-01-01 10:16:00"):
        assert client.form("/signin", {"email": member.email, "password": PASSWORD}).status_code == 303


def test_signin_link_flow_is_single_use_and_post_only(client, member, db):
    r = client.form("/signin/link", {"email": member.email})
    assert r.status_code == 200 and "If mia@example.org belongs to a member" in r.text
    [msg] = outbox(db, "signin_link")
    assert msg.to_addr == member.email
    path = link_from(msg, "/signin/link/")
    # A mail scanner opening the link several times does not use it up.
    for _ in range(3):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
    assert "plenary_session" not in client.cookies
    r = client.form(path)
    assert r.status_code == 303
    assert client.get("/").status_code == 200
    client.cookies.clear()
    again = client.form(path)
    assert again.status_code == 400 and "already been used" in again.text


def test_signin_link_stored_only_as_hash(client, member, db):
    client.form("/signin/link", {"email": member.email})
    [msg] = outbox(db, "signin_link")
    token = link_from(msg, "/signin/link/").rsplit("/", 1)[1]
    with db.read() as s:
        rows = list(s.scalars(select(AuthToken)))
    assert all(token not in (r.token_hash, r.new_email) for r in rows)


def test_signin_link_expires_after_15_minutes(client, member, db):
    with freeze_time("2026-03-01 12:00:00"):
        client.form("/signin/link", {"email": member.email})
    path = link_from(outbox(db, "signin_link")[0], "/signin/link/")
    with freeze_time("2026-03-01 12:15:01"):
        r = client.form(path)
    assert r.status_code == 400 and "expired" in r.text


def test_new_signin_link_replaces_the_old_one(client, member, db):
    client.form("/signin/link", {"email": member.email})
    client.form("/signin/link", {"email": member.email})
    first, second = outbox(db, "signin_link")
    assert client.form(link_from(first, "/signin/link/")).status_code == 400
    assert client.form(link_from(second, "/signin/link/")).status_code == 303


def test_signin_link_for_unknown_address_looks_the_same_and_sends_nothing(client, member, db):
    a = client.form("/signin/link", {"email": member.email})
    b = client.form("/signin/link", {"email": "stranger@example.org"})
    assert a.status_code == b.status_code == 200
    assert a.text.replace(member.email, "X") == b.text.replace("stranger@example.org", "X")
    assert [m.to_addr for m in outbox(db)] == [member.email]


def test_link_requests_rate_limited(client, member, db):
    for _ in range(10):
        assert client.form("/signin/link", {"email": member.email}).status_code == 200
    r = client.form("/signin/link", {"email": member.email})
    assert r.status_code == 429
    assert len(outbox(db, "signin_link")) == 10


def test_reset_token_cannot_sign_in_by_link(client, member, db):
    client.form("/reset", {"email": member.email})
    [msg] = outbox(db, "password_reset")
    token = link_from(msg, "/reset/").rsplit("/", 1)[1]
    assert client.form(f"/signin/link/{token}").status_code == 400


def test_password_reset_changes_password_and_ends_other_sessions(client, app, member, db):
    from tests.conftest import Client

    with Client(app, base_url="http://testserver") as other:
        other.sign_in(member.email)
        client.form("/reset", {"email": member.email})
        path = link_from(outbox(db, "password_reset")[0], "/reset/")
        short = client.form(path, {"password": "short"})
        assert short.status_code == 400 and "at least 12" in short.text
        r = client.form(path, {"password": "a brand new long password"})
        assert r.status_code == 303
        assert other.get("/", follow_redirects=False).status_code == 303
        client.cookies.clear()
        client.sign_in(member.email, "a brand new long password")
        assert client.form(path, {"password": "another new long password"}).status_code == 400


def test_signout_deletes_the_session_server_side(client, member, db):
    client.sign_in(member.email)
    stolen = client.cookies["plenary_session"]
    r = client.form("/signout")
    assert r.status_code == 303
    client.cookies.set("plenary_session", stolen)
    assert client.get("/", follow_redirects=False).status_code == 303
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(UserSession)) == 0


def test_signout_everywhere(client, app, member, db):
    from tests.conftest import Client

    with Client(app, base_url="http://testserver") as other:
        other.sign_in(member.email)
        client.sign_in(member.email)
        assert client.form("/signout/everywhere").status_code == 303
        assert other.get("/", follow_redirects=False).status_code == 303


def test_idle_session_expires(client, member):
    with freeze_time("2026-05-01 09:00:00"):
        client.sign_in(member.email)
    with freeze_time("2026-05-09 09:00:01"):
        assert client.get("/", follow_redirects=False).status_code == 303


def test_rehash_on_login_when_parameters_change(app, db, member, settings):
    from starlette.testclient import TestClient

    from app.main import create_app
    from tests.conftest import Client

    stronger = type(settings)(**{**settings.__dict__, "password_hash_rounds": 2})
    with db.read() as s:
        before = s.get(Member, member.id).password_hash
    with Client(create_app(stronger, db=db), base_url="http://testserver") as c:
        c.sign_in(member.email)
    with db.read() as s:
        after = s.get(Member, member.id).password_hash
    assert before != after and "t=2" in after and after.startswith("$argon2id$")
    assert TestClient  # imported for symmetry with other client fixtures


def test_next_parameter_only_redirects_on_site(client, member):
    for target, expected in [("/profile", "/profile"), ("//evil.example/x", "/"), ("https://evil.example", "/"),
                             ("/\\evil.example", "/")]:
        r = client.form("/signin", {"email": member.email, "password": PASSWORD, "next": target})
        assert r.headers["location"] == expected


@pytest.mark.parametrize("path", ["/", "/profile", "/admin/members"])
def test_pages_need_sign_in(client, path):
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/signin?next=")


def test_htmx_request_without_session_gets_hx_redirect(client):
    r = client.get("/admin/members", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 204 and r.headers["HX-Redirect"].startswith("/signin")


def test_failed_signins_are_audited(client, member, db):
    client.form("/signin", {"email": member.email, "password": "wrong wrong wrong"})
    client.sign_in(member.email)
    with db.read() as s:
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions == ["signin.failed", "signin.password"]


def test_rate_events_expire(db):
    from app.members.guard import purge_rate_events

    with freeze_time("2026-01-01"), db.begin() as s:
        s.add(RateEvent(key="x"))
    with db.begin() as s:
        assert purge_rate_events(s, older_than_s=3600) == 1


def test_expired_invitation_fails_everywhere(client, admin_client, db):
    with freeze_time(dt.datetime.now(dt.UTC) - dt.timedelta(days=8)):
        admin_client.form("/admin/members/invite", {"name": "Old Invite", "email": "old@example.org"})
    path = link_from(outbox(db, "invitation")[0], "/invite/")
    assert client.get(path).status_code == 400
    assert client.form(path, {"password": "a long enough password"}).status_code == 400
