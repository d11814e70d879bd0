"""Importing members from CSV: the upload, preview and confirm pages, and `plenary import-members`."""

from __future__ import annotations

import io
from urllib.parse import unquote

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import event, func, select

from app.mail.models import OutboxMessage
from app.members import importing
from app.members.import_cli import run_import
from app.members.import_views import pack
from app.members.models import AuditEvent, Group, GroupMembership, Member
from tests.factories import make_group, make_member

IMPORT = "/admin/members/import"
CONFIRM = "/admin/members/import/confirm"


def upload(client, text: str | bytes, name: str = "members.csv"):  # type: ignore[no-untyped-def]
    data = text.encode("utf-8") if isinstance(text, str) else text
    return client.form(IMPORT, files={"file": (name, data, "text/csv")})


def confirm(client, page, skip_errors: bool = False):  # type: ignore[no-untyped-def]
    soup = BeautifulSoup(page.text, "html.parser")
    content = soup.select_one("#import-confirm input[name=content]")["value"]
    return client.form(CONFIRM, {"content": content, **({"skip_errors": "1"} if skip_errors else {})})


def counts(page) -> dict[str, int]:  # type: ignore[no-untyped-def]
    soup = BeautifulSoup(page.text, "html.parser")
    return {k: int(soup.select_one(f"#count-{k}").text) for k in ("add", "update", "unchanged", "errors")}


def table_lines(page, table_id: str) -> list[int]:  # type: ignore[no-untyped-def]
    soup = BeautifulSoup(page.text, "html.parser")
    table = soup.select_one(f"#{table_id}")
    return [int(th.text) for th in table.select("tbody th[scope=row]")] if table else []


def snapshot(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return {
            "members": s.scalar(select(func.count()).select_from(Member)),
            "groups": s.scalar(select(func.count()).select_from(Group)),
            "memberships": s.scalar(select(func.count()).select_from(GroupMembership)),
            "outbox": s.scalar(select(func.count()).select_from(OutboxMessage)),
            "audit": s.scalar(select(func.count()).select_from(AuditEvent)),
        }


def groups_of(db, email: str) -> list[str]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return sorted(s.scalars(select(Group.name).join(GroupMembership).join(Member)
                                .where(Member.email == email)))


MIXED = (
    "name,email,groups\n"
    "Noor Haddad,noor@example.org,Board|Riverside\n"       # add, into an existing and a new group
    '"Okafor, Chidi",chidi@example.org,\n'                  # add
    "Mia M. Member,MIA@example.org,Tenants\n"               # update: name and a new group
    "Ada Admin,admin@example.org,\n"                        # unchanged
    "Broken,not-an-address,\n"                              # error
    "Noor Again,Noor@Example.org,\n"                        # error: duplicate of line 2
)


@pytest.fixture
def riverside(db, member):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        group = make_group(s, name="Riverside")
        s.add(GroupMembership(group_id=group.id, member_id=member.id))
    return group


def test_the_upload_page(admin_client):
    page = admin_client.get(IMPORT)
    assert page.status_code == 200
    soup = BeautifulSoup(page.text, "html.parser")
    form = soup.select_one("#import-form")
    assert form["enctype"] == "multipart/form-data" and form["action"] == IMPORT
    assert form.select("input")[0]["name"] == "csrf_token"  # first: the middleware looks for it there
    assert form.select_one("input[type=file]")["name"] == "file"
    assert soup.select_one("label[for=f-file]") and soup.select_one("label[for=f-csv_text]")
    assert "name,email,groups" in soup.select_one("#import-format pre").text


def test_preview_shows_what_would_happen_and_writes_nothing(admin_client, db, riverside):
    before = snapshot(db)
    page = upload(admin_client, MIXED)
    assert page.status_code == 200
    assert counts(page) == {"add": 2, "update": 1, "unchanged": 1, "errors": 2}
    soup = BeautifulSoup(page.text, "html.parser")
    assert soup.select_one("#new-groups").text.strip() == "New groups: Board, Tenants"
    assert table_lines(page, "import-adds") == [2, 3]
    assert table_lines(page, "import-updates") == [4]
    assert table_lines(page, "import-errors") == [6, 7]
    errors = soup.select_one("#import-errors").text
    assert "'not-an-address' is not a valid email address." in errors and "Duplicate of line 2." in errors
    for table in soup.select("table"):
        assert table.caption and table.select("thead th[scope=col]")
    assert "Import the 4 good rows and skip the rows with errors" in " ".join(soup.select_one(
        "label[for=f-skip_errors]").text.split())
    assert soup.select_one("#import-confirm").select("input")[0]["name"] == "csrf_token"
    assert snapshot(db) == before


def test_confirm_imports_and_queues_one_invitation_per_new_member(admin_client, admin, db, riverside):
    page = upload(admin_client, "name,email,groups\nNoor Haddad,noor@example.org,Board|riverside\n"
                                "Chidi Okafor,chidi@example.org,\n")
    before = snapshot(db)
    r = confirm(admin_client, page)
    assert r.status_code == 303 and r.headers["location"] == "/admin/members"
    flash = unquote(r.cookies.get("plenary_flash") or "")
    assert flash == "Imported 2 new members (invitations queued), updated 0."
    with db.read() as s:
        new = {m.email: m for m in s.scalars(select(Member).where(Member.email.in_(
            ["noor@example.org", "chidi@example.org"])))}
        mails = list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "invitation")))
        audits = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert {m.status for m in new.values()} == {"invited"} and {m.role for m in new.values()} == {"member"}
    assert sorted(m.to_addr for m in mails) == ["chidi@example.org", "noor@example.org"]
    assert all("/invite/" in m.text_body for m in mails)
    assert groups_of(db, "noor@example.org") == ["Board", "Riverside"]
    assert snapshot(db)["groups"] == before["groups"] + 1
    actions = [a.action for a in audits]
    assert actions.count("member.invite") == 2 and actions.count("group.create") == 1
    [summary] = [a for a in audits if a.action == "member.import"]
    assert summary.actor_id == admin.id and summary.summary == "Imported 2 new, 0 updated, 0 skipped"
    assert summary.detail["added"] == 2 and summary.detail["updated"] == 0 and summary.detail["skipped"] == 0
    assert admin_client.get("/admin/members").text.count("Imported 2 new members") == 1


def test_update_adds_groups_and_never_removes_or_reinvites(admin_client, db, member, riverside):
    with db.begin() as s:
        make_group(s, name="Board")
        s.get(Member, member.id).role = "admin"
    page = upload(admin_client, "email;name;groups\nMIA@example.org;Mia Renamed;board|Finance\n")
    assert counts(page) == {"add": 0, "update": 1, "unchanged": 0, "errors": 0}
    r = confirm(admin_client, page)
    assert r.status_code == 303
    assert unquote(r.cookies["plenary_flash"]) == "Imported 0 new members, updated 1."
    assert groups_of(db, member.email) == ["Board", "Finance", "Riverside"]
    with db.read() as s:
        mia = s.get(Member, member.id)
        assert (mia.name, mia.role, mia.status) == ("Mia Renamed", "admin", "active")
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    # The same file again changes nothing.
    again = upload(admin_client, "email;name;groups\nmia@example.org;Mia Renamed;Board\n")
    assert counts(again)["unchanged"] == 1


def test_confirming_a_file_with_errors_changes_nothing_and_says_why(admin_client, db, riverside):
    page = upload(admin_client, MIXED)
    before = snapshot(db)
    r = confirm(admin_client, page)
    assert r.status_code == 400
    soup = BeautifulSoup(r.text, "html.parser")
    alert = soup.select_one("[role=alert]").text
    assert "Nothing was imported: 2 rows have errors" in alert
    assert counts(r)["errors"] == 2 and soup.select_one("#f-skip_errors")
    assert snapshot(db) == before


def test_skipping_errors_imports_only_the_good_rows(admin_client, db, member, riverside):
    r = confirm(admin_client, upload(admin_client, MIXED), skip_errors=True)
    assert r.status_code == 303
    assert unquote(r.cookies["plenary_flash"]) == (
        "Imported 2 new members (invitations queued), updated 1, 1 unchanged, skipped 2 rows with errors.")
    with db.read() as s:
        emails = set(s.scalars(select(Member.email)))
        assert emails == {"admin@example.org", "mia@example.org", "noor@example.org", "chidi@example.org"}
        assert s.scalar(select(Member.name).where(Member.email == "noor@example.org")) == "Noor Haddad"
        assert s.scalar(select(Member.name).where(Member.id == member.id)) == "Mia M. Member"
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 2
        detail = s.scalar(select(AuditEvent.detail).where(AuditEvent.action == "member.import"))
    assert (detail["added"], detail["updated"], detail["unchanged"], detail["skipped"]) == (2, 1, 1, 2)
    assert detail["new_groups"] == ["Board", "Tenants"]
    assert groups_of(db, "mia@example.org") == ["Riverside", "Tenants"]


def test_confirm_checks_again_against_the_database(admin_client, db):
    page = upload(admin_client, "name,email\nNoor Haddad,noor@example.org\n")
    assert counts(page)["add"] == 1
    with db.begin() as s:  # someone invites Noor while the admin looks at the preview
        make_member(s, email="noor@example.org", name="Noor", status="invited")
    r = confirm(admin_client, page)
    assert unquote(r.cookies["plenary_flash"]) == "Imported 0 new members, updated 1."
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Member)) == 2
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_pasted_rows_work_like_a_file(admin_client, db, org):
    page = admin_client.form(IMPORT, {"csv_text": "name,email\nNoor,noor@example.org\n"})
    assert page.status_code == 200 and counts(page)["add"] == 1
    assert confirm(admin_client, page).status_code == 303
    assert snapshot(db)["members"] == 2


@pytest.mark.parametrize(("data", "message"), [
    ("name,email\nJos\xe9,jose@example.org\n".encode("latin-1"), "not valid UTF-8"),
    (b"", "The file is empty."),
    (b"name,email,phone\nA,a@example.org,1\n",
     "Unknown column &#39;phone&#39;: expected name, email, groups."),
    (b"Ada,ada@example.org\n", "The first line must be a header"),
])
def test_a_file_that_cannot_be_used_shows_the_form_again(admin_client, db, data, message):
    before = snapshot(db)
    r = upload(admin_client, data)
    assert r.status_code == 400 and message in r.text
    assert BeautifulSoup(r.text, "html.parser").select_one("#import-form")
    assert snapshot(db) == before


def test_no_file_chosen(admin_client):
    r = admin_client.form(IMPORT, {"csv_text": "  "}, files={"file": ("", b"", "application/octet-stream")})
    assert r.status_code == 400 and "Choose a CSV file" in r.text


def test_a_damaged_confirm_form_imports_nothing(admin_client, db):
    before = snapshot(db)
    for content in ["", "not base64!", pack(b"x")[:-4] + "AAAA", "eJzLSM3JyVcozy/KSQEAGgQEXQ=="[:8]]:
        r = admin_client.form(CONFIRM, {"content": content})
        assert r.status_code == 400 and "upload the file again" in r.text.lower(), content
    assert snapshot(db) == before


def test_names_are_escaped_in_the_preview(admin_client, org):
    page = upload(admin_client, 'name,email,groups\n"<script>alert(1)</script>",x@example.org,<b>g</b>\n')
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<b>g</b>" not in page.text


def test_members_are_refused(member_client, db):
    assert member_client.get(IMPORT).status_code == 403
    assert upload(member_client, "name,email\nEve,eve@example.org\n").status_code == 403
    content = pack(b"name,email\nEve,eve@example.org\n")
    r = member_client.form(CONFIRM, {"content": content, "skip_errors": "1"})
    assert r.status_code == 403
    assert snapshot(db)["members"] == 1


def test_signed_out_visitors_are_sent_to_sign_in(client):
    r = client.get(IMPORT, follow_redirects=False)
    assert r.status_code in (302, 303) and r.headers["location"].startswith("/signin")


def test_requests_without_the_csrf_token_are_refused(admin_client, db):
    r = admin_client.post(IMPORT, files={"file": ("m.csv", b"name,email\nEve,eve@example.org\n", "text/csv")},
                          follow_redirects=False)
    assert r.status_code == 403
    r = admin_client.post(CONFIRM, data={"content": pack(b"name,email\nEve,eve@example.org\n")},
                          follow_redirects=False)
    assert r.status_code == 403
    assert snapshot(db)["members"] == 1


def test_preview_and_apply_query_the_database_a_fixed_number_of_times(db, settings, org):
    with db.begin() as s:
        for i in range(300):
            make_member(s, email=f"old{i}@example.org", name=f"Old {i}")
        make_group(s, name="Board")
    parsed = importing.parse_csv(("name,email,groups\n" + "".join(
        f"Renamed {i},old{i}@example.org,Board|New\n" for i in range(300))).encode())
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.read() as s:
            plan = importing.preview(s, parsed)
        assert len(plan.updates) == 300 and plan.new_groups == ("New",)
        assert len(statements) <= 6, statements
        statements.clear()
        with db.begin() as s:
            result = importing.apply(s, settings, parsed, actor_id=None, ip="", org_name="X",
                                     skip_errors=False)
        assert result.updated == 300
        assert len(statements) <= 15, statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert groups_of(db, "old7@example.org") == ["Board", "New"]


# --- the command line ---------------------------------------------------------------------------------------

@pytest.fixture
def csv_file(tmp_path):  # type: ignore[no-untyped-def]
    def write(text: str | bytes):  # type: ignore[no-untyped-def]
        path = tmp_path / "members.csv"
        path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        return str(path)
    return write


def cli(path: str, settings, **flags):  # type: ignore[no-untyped-def]
    out, err = io.StringIO(), io.StringIO()
    code = run_import(path, dry_run=flags.get("dry_run", False), skip_errors=flags.get("skip_errors", False),
                      settings=settings, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_dry_run_writes_nothing(settings, db, admin, csv_file):
    before = snapshot(db)
    code, out, _ = cli(csv_file("name,email\nNoor,noor@example.org\nAda Admin,admin@example.org\n"), settings,
                       dry_run=True)
    assert code == 0
    assert "to add:      1" in out and "unchanged:   1" in out and "Dry run: nothing was written." in out
    assert snapshot(db) == before


def test_cli_imports_and_names_the_first_admin(settings, db, admin, csv_file):
    code, out, _ = cli(csv_file("name;email;groups\nNoor;noor@example.org;Board\n"), settings)
    assert code == 0
    assert "Imported 1 new member (invitations queued), updated 0." in out
    with db.read() as s:
        assert s.scalar(select(Member.status).where(Member.email == "noor@example.org")) == "invited"
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        event_ = s.scalar(select(AuditEvent).where(AuditEvent.action == "member.import"))
    assert event_.actor_id == admin.id
    assert event_.summary == "Imported 1 new, 0 updated, 0 skipped (command line)"
    assert groups_of(db, "noor@example.org") == ["Board"]


def test_cli_without_an_admin_records_no_actor(settings, db, org, csv_file):
    assert cli(csv_file("name,email\nNoor,noor@example.org\n"), settings)[0] == 0
    with db.read() as s:
        event_ = s.scalar(select(AuditEvent).where(AuditEvent.action == "member.import"))
    assert event_.actor_id is None and "command line" in event_.summary


def test_cli_row_errors_exit_1_and_write_nothing_unless_skipped(settings, db, admin, csv_file):
    path = csv_file("name,email\nNoor,noor@example.org\nBroken,nope\n")
    before = snapshot(db)
    for flags in ({}, {"dry_run": True}):
        code, out, _ = cli(path, settings, **flags)
        assert code == 1
        assert "line 3: 'nope' is not a valid email address." in out
        assert "--skip-errors" in out
    assert snapshot(db) == before
    code, out, _ = cli(path, settings, skip_errors=True)
    assert code == 0 and "skipped 1 row with errors" in out
    assert snapshot(db)["members"] == before["members"] + 1


def test_cli_file_problems_exit_2(settings, db, admin, csv_file, tmp_path):
    code, _, err = cli(str(tmp_path / "missing.csv"), settings)
    assert code == 2 and "Cannot read" in err
    code, _, err = cli(csv_file(b"name,email\n\xff\xfe,a@example.org\n"), settings)
    assert code == 2 and "not valid UTF-8" in err
    code, _, err = cli(csv_file("name,email,phone\n"), settings)
    assert code == 2 and "Unknown column 'phone'" in err
    assert snapshot(db)["members"] == 1
