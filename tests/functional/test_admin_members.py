"""Admins: invitations, the member directory, roles, deactivation, groups, the audit log, first-run setup."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from sqlalchemy import func, select

from app.mail.models import OutboxMessage
from app.members.models import AuditEvent, Group, GroupMembership, Member
from tests.conftest import PASSWORD, Client
from tests.factories import make_group, make_member


def audit_actions(db) -> list[str]:
    with db.read() as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_invite_creates_member_mail_and_audit(admin_client, db):
    with db.begin() as s:
        g = make_group(s, name="Riverside")
    r = admin_client.form("/admin/members/invite", {"name": "Noor Haddad", "email": "Noor@Example.org",
                                                    "groups": str(g.id)})
    assert r.status_code == 303
    with db.read() as s:
        m = s.scalar(select(Member).where(Member.email == "noor@example.org"))
        assert m.status == "invited" and m.role == "member"
        assert s.scalar(select(GroupMembership.group_id).where(GroupMembership.member_id == m.id)) == g.id
        [msg] = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "invitation"))
    assert msg.to_addr == "noor@example.org" and "/invite/" in msg.text_body and "/invite/" in msg.html_body
    assert "member.invite" in audit_actions(db)


def test_invite_refuses_bad_input_and_changes_nothing(admin_client, db, member):
    for data, message in [({"name": "", "email": "a@example.org"}, "Name is required"),
                          ({"name": "A", "email": "not-an-address"}, "valid email"),
                          ({"name": "A", "email": member.email}, "already a member"),
                          ({"name": "x" * 101, "email": "b@example.org"}, "at most 100"),
                          ({"name": "A", "email": "c@example.org", "role": "owner"}, "Role must be"),
                          ({"name": "A", "email": "d@example.org", "groups": "4242"}, "does not exist")]:
        r = admin_client.form("/admin/members/invite", data)
        assert r.status_code == 400 and message in r.text, (data, r.text[:200])
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Member)) == 2
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_accept_invitation_with_password(client, admin_client, db):
    admin_client.form("/admin/members/invite", {"name": "Ines", "email": "ines@example.org"})
    with db.read() as s:
        body = s.scalar(select(OutboxMessage.text_body))
    path = re.search(r"http://testserver(/invite/\S+)", body).group(1)
    page = client.get(path)
    assert page.status_code == 200 and "Welcome, Ines" in page.text
    r = client.form(path, {"choice": "password", "password": "ines has a long password"})
    assert r.status_code == 303
    assert "Welcome, Ines" in client.get("/").text
    client.cookies.clear()
    client.sign_in("ines@example.org", "ines has a long password")
    with db.read() as s:
        assert s.scalar(select(Member.status).where(Member.email == "ines@example.org")) == "active"
    assert client.form(path, {"choice": "links"}).status_code == 400  # used up


def test_accept_invitation_without_password(client, admin_client, db):
    admin_client.form("/admin/members/invite", {"name": "Jo", "email": "jo@example.org"})
    with db.read() as s:
        body = s.scalar(select(OutboxMessage.text_body))
    path = re.search(r"http://testserver(/invite/\S+)", body).group(1)
    assert client.form(path, {"choice": "links"}).status_code == 303
    with db.read() as s:
        m = s.scalar(select(Member).where(Member.email == "jo@example.org"))
    assert m.password_hash is None and m.status == "active"


def test_directory_search_filter_and_paging(admin_client, db):
    with db.begin() as s:
        river = make_group(s, name="Riverside")
        for i in range(60):
            make_member(s, name=f"Person {i:02d}", email=f"p{i}@example.org", groups=(river,) if i % 2 else ())
        make_member(s, name="Zed 100% Underscore_", email="zed@example.org")
    r = admin_client.get("/admin/members")
    soup = BeautifulSoup(r.text, "html.parser")
    assert "62 members" in soup.find(id="members-table").text
    assert len(soup.select("#members-table tbody tr")) == 50
    assert soup.find("a", rel="next")
    page2 = admin_client.get("/admin/members?page=2")
    assert len(BeautifulSoup(page2.text, "html.parser").select("tbody tr")) == 12
    r = admin_client.get(f"/admin/members?group={river.id}")
    assert "30 members" in r.text
    r = admin_client.get("/admin/members?q=PERSON 1")
    assert "10 members" in r.text
    assert "1 member" in admin_client.get("/admin/members?q=100%").text
    assert "1 member" in admin_client.get("/admin/members?q=e_").text
    assert "0 members" in admin_client.get("/admin/members?q=%25%25%25").text
    assert admin_client.get("/admin/members?page=abc&group=x").status_code == 200


def test_directory_htmx_returns_fragment_only(admin_client):
    full = admin_client.get("/admin/members?q=ada")
    frag = admin_client.get("/admin/members?q=ada", headers={"HX-Request": "true"})
    assert "<html" in full.text and "<html" not in frag.text
    assert frag.text.strip().startswith('<div id="members-table">')
    assert "HX-Request" in frag.headers["vary"] and "HX-Request" in full.headers["vary"]


def test_change_role_and_last_admin_guard(admin_client, db, admin, member):
    r = admin_client.form(f"/admin/members/{admin.id}/role", {"role": "member"})
    assert r.status_code == 400 and "last admin" in r.text
    assert admin_client.form(f"/admin/members/{member.id}/role", {"role": "admin"}).status_code == 303
    with db.read() as s:
        assert s.get(Member, member.id).role == "admin"
    assert admin_client.form(f"/admin/members/{admin.id}/role", {"role": "member"}).status_code == 303
    assert audit_actions(db)[-2:] == ["member.role", "member.role"]


def test_role_change_takes_effect_for_signed_in_member(admin_client, member_client, member):
    assert member_client.get("/admin/members").status_code == 403
    admin_client.form(f"/admin/members/{member.id}/role", {"role": "admin"})
    assert member_client.get("/admin/members").status_code == 200


def test_cannot_deactivate_self(admin_client, admin):
    r = admin_client.form(f"/admin/members/{admin.id}/status", {"active": "0"})
    assert r.status_code == 400 and "yourself" in r.text


def test_deactivate_and_reactivate(admin_client, db, member):
    admin_client.form(f"/admin/members/{member.id}/status", {"active": "0"})
    with db.read() as s:
        assert s.get(Member, member.id).status == "deactivated"
    admin_client.form(f"/admin/members/{member.id}/status", {"active": "1"})
    with db.read() as s:
        assert s.get(Member, member.id).status == "active"
    assert audit_actions(db)[-2:] == ["member.deactivate", "member.reactivate"]
    with Client(admin_client.app, base_url="http://testserver") as c:
        c.sign_in(member.email, PASSWORD)


def test_groups_crud_and_membership(admin_client, db, member):
    assert admin_client.form("/admin/groups", {"name": "Board", "description": "Elected"}).status_code == 303
    dup = admin_client.form("/admin/groups", {"name": "board"})
    assert dup.status_code == 400 and "already exists" in dup.text
    with db.read() as s:
        gid = s.scalar(select(Group.id))
    assert admin_client.form(f"/admin/members/{member.id}/groups", {"groups": str(gid)}).status_code == 303
    page = admin_client.get("/admin/groups")
    assert "Board" in page.text and "Elected" in page.text
    assert admin_client.form(f"/admin/groups/{gid}", {"name": "The Board", "description": ""}).status_code == 303
    assert admin_client.form(f"/admin/groups/{gid}/delete").status_code == 303
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Group)) == 0
        assert s.get(Member, member.id) is not None
    assert audit_actions(db)[-4:] == ["group.create", "member.groups", "group.update", "group.delete"]


def test_reinvite_only_for_invited(admin_client, db, member):
    r = admin_client.form(f"/admin/members/{member.id}/reinvite")
    assert r.status_code == 400
    with db.begin() as s:
        invited = make_member(s, email="later@example.org", status="invited")
    assert admin_client.form(f"/admin/members/{invited.id}/reinvite").status_code == 303
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_audit_page_lists_events_with_actor(admin_client, member):
    admin_client.form(f"/admin/members/{member.id}/role", {"role": "admin"})
    r = admin_client.get("/admin/audit")
    assert "member.role" in r.text and "Ada Admin" in r.text and "Mia Member: member -&gt; admin" in r.text


def test_first_run_setup(client, db, settings):
    from app.members.services import create_setup_token

    assert client.get("/setup/not-a-token").status_code == 404
    with db.begin() as s:
        token = create_setup_token(s)
    page = client.get(f"/setup/{token}")
    assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
    bad = client.form(f"/setup/{token}", {"org_name": "Co-op", "time_zone": "Mars/Base", "name": "Sam",
                                          "email": "sam@example.org", "password": "a long password here"})
    assert bad.status_code == 400 and "Unknown time zone" in bad.text
    r = client.form(f"/setup/{token}", {"org_name": "Harbour Co-op", "time_zone": "Europe/Lisbon", "name": "Sam",
                                        "email": "sam@example.org", "password": "a long password here"})
    assert r.status_code == 303
    home = client.get("/")
    assert "Harbour Co-op" in home.text and "Members" in home.text
    assert client.get(f"/setup/{token}").status_code == 404
    with db.begin() as s:
        assert create_setup_token(s) is None


def test_profile_name_password_email_change(member_client, db, member):
    assert member_client.form("/profile/name", {"name": "  Mia   Moss "}).status_code == 303
    assert "Mia Moss" in member_client.get("/profile").text
    wrong = member_client.form("/profile/password", {"current": "nope nope nope", "new": "a new long password"})
    assert wrong.status_code == 400 and "not correct" in wrong.text
    assert member_client.form("/profile/password", {"current": PASSWORD,
                                                    "new": "a new long password"}).status_code == 303
    r = member_client.form("/profile/email", {"email": "mia@new.example.org", "password": "a new long password"})
    assert r.status_code == 303
    with db.read() as s:
        msgs = {m.kind: m for m in s.scalars(select(OutboxMessage))}
    assert msgs["email_change_confirm"].to_addr == "mia@new.example.org"
    assert msgs["email_change_notice"].to_addr == member.email
    path = re.search(r"http://testserver(/profile/email/\S+)", msgs["email_change_confirm"].text_body).group(1)
    assert member_client.get(path).status_code == 200
    assert member_client.form(path).status_code == 303
    with db.read() as s:
        assert s.get(Member, member.id).email == "mia@new.example.org"
    assert member_client.form(path).status_code == 400


def test_email_change_to_taken_address_changes_nothing(member_client, db, member, admin):
    member_client.form("/profile/email", {"email": "other@example.org", "password": PASSWORD})
    with db.begin() as s:
        make_member(s, email="other@example.org")
    with db.read() as s:
        body = s.scalar(select(OutboxMessage.text_body).where(OutboxMessage.kind == "email_change_confirm"))
    path = re.search(r"http://testserver(/profile/email/\S+)", body).group(1)
    r = member_client.form(path)
    assert r.status_code == 400 and "another member" in r.text
    with db.read() as s:
        assert s.get(Member, member.id).email == member.email
    assert member_client.get(path).status_code == 200  # the failed attempt did not use the link up
