"""Cross-cutting protections: CSRF on every unsafe route, headers, hosts, body size, roles, bad input."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select
from starlette.routing import Route

from app.main import CSRF_EXEMPT
from app.members.models import AuditEvent, Member
from app.routes import routes
from tests.conftest import PASSWORD

UNSAFE = sorted(
    (r.path, m) for r in routes if isinstance(r, Route) for m in (r.methods or ()) if m not in {"GET", "HEAD"}
    and not r.path.startswith(CSRF_EXEMPT)
)


def concrete(path: str) -> str:
    """The route with a value in every parameter: 1 for ids, a token-shaped string for the rest."""
    filled = re.sub(r"\{\w+:int\}", "1", path)
    filled = re.sub(r"\{\w+(:\w+)?\}", "x" * 43, filled)
    assert "{" not in filled, filled
    return filled


def count(db, model) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_every_unsafe_route_is_listed():
    assert len(UNSAFE) >= 20


@pytest.mark.parametrize(("path", "method"), UNSAFE)
def test_unsafe_route_without_token_is_refused(admin_client, path, method, db):
    members_before = count(db, Member)
    r = admin_client.request(method, concrete(path), data={"name": "X", "email": "x@example.org"},
                             follow_redirects=False)
    assert r.status_code == 403, (path, r.status_code)
    assert "security token" in r.text
    assert count(db, Member) == members_before


@pytest.mark.parametrize(("path", "method"), UNSAFE)
def test_unsafe_route_from_another_site_is_refused_even_with_token(admin_client, path, method):
    r = admin_client.request(method, concrete(path), data={"csrf_token": admin_client.csrf()},
                             headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False)
    assert r.status_code == 403


def test_foreign_origin_refused(admin_client, db):
    before = count(db, Member)
    r = admin_client.post("/admin/members/invite", headers={"Origin": "https://evil.example"},
                          data={"csrf_token": admin_client.csrf(), "name": "Eve", "email": "eve@example.org"})
    assert r.status_code == 403
    assert count(db, Member) == before


def test_same_origin_form_with_token_passes(admin_client):
    r = admin_client.post("/admin/groups", headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
                          data={"csrf_token": admin_client.csrf(), "name": "Board"}, follow_redirects=False)
    assert r.status_code == 303


def test_htmx_header_token_passes(admin_client):
    r = admin_client.post("/admin/groups", headers={"X-CSRF-Token": admin_client.csrf(), "HX-Request": "true"},
                          data={"name": "Tenants"}, follow_redirects=False)
    assert r.status_code == 303


def test_token_from_another_browser_is_refused(client, admin_client):
    other = client.csrf()
    r = admin_client.post("/admin/groups", data={"csrf_token": other, "name": "X"}, follow_redirects=False)
    assert r.status_code == 403


def test_security_headers_on_pages(client):
    r = client.get("/signin")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"]
    assert r.headers["x-frame-options"] == "DENY"


def test_static_files_also_get_headers(client):
    r = client.get("/static/app.css")
    assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"


def test_foreign_host_header_refused(client):
    r = client.get("/signin", headers={"Host": "evil.example"})
    assert r.status_code == 400


def test_ten_megabyte_body_refused_with_page(admin_client, db):
    before = count(db, Member)
    body = {"csrf_token": admin_client.csrf(), "name": "x" * (10 * 1024 * 1024), "email": "big@example.org"}
    r = admin_client.post("/admin/members/invite", data=body, follow_redirects=False)
    assert r.status_code == 413 and "Too large" in r.text
    assert count(db, Member) == before


def test_member_cannot_reach_admin_pages(member_client, admin):
    for path in ["/admin/members", "/admin/groups", "/admin/audit", f"/admin/members/{admin.id}",
                 "/admin/members/invite", "/admin/outbox"]:
        r = member_client.get(path)
        assert r.status_code == 403, path
        assert "for admins" in r.text
    r = member_client.form(f"/admin/members/{admin.id}/role", {"role": "member"})
    assert r.status_code == 403


def test_member_cannot_promote_self_by_extra_fields(member_client, member, db):
    member_client.form("/profile/name", {"name": "Mia M", "role": "admin", "status": "active", "id": "1"})
    with db.read() as s:
        m = s.get(Member, member.id)
    assert m.name == "Mia M" and m.role == "member"


def test_unknown_ids_are_404(admin_client):
    assert admin_client.get("/admin/members/999999").status_code == 404
    assert admin_client.form("/admin/members/999999/role", {"role": "admin"}).status_code == 404
    assert admin_client.form("/admin/groups/999999", {"name": "x"}).status_code == 404


def test_404_page_is_html_with_headers(client):
    r = client.get("/no/such/page")
    assert r.status_code == 404 and "Not found" in r.text
    assert "frame-ancestors" in r.headers["content-security-policy"]


def test_escaping_of_names(admin_client, db):
    admin_client.form("/admin/members/invite", {"name": "<script>alert(1)</script>", "email": "x@example.org"})
    r = admin_client.get("/admin/members")
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "reachable"}


def test_healthz_reports_unreachable_database(tmp_path, settings):
    from starlette.testclient import TestClient

    from app.db import Database
    from app.main import create_app

    broken = Database(f"sqlite:///{tmp_path}/missing-dir/nope.db")
    with TestClient(create_app(settings, db=broken), base_url="http://testserver") as c:
        r = c.get("/healthz")
    assert r.status_code == 503 and r.json()["database"] == "unreachable"


def test_no_debug_tracebacks(app):
    assert app.debug is False


def test_csrf_failure_is_not_audited_as_success(client, member, db):
    r = client.post("/signin", data={"email": member.email, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403
    assert count(db, AuditEvent) == 0


def test_htmx_requests_get_error_fragments_not_pages(member_client):
    r = member_client.get("/proposals/999999", headers={"HX-Request": "true"})
    assert r.status_code == 404
    assert "<html" not in r.text and 'role="alert"' in r.text
    refused = member_client.post("/profile/name", data={"name": "x"}, headers={"HX-Request": "true"})
    assert refused.status_code == 403 and "<html" not in refused.text
