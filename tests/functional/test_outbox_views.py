"""The admin outbox pages: who may see them, what they list, and that a message's HTML never runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select, update

from app.db import Database, utcnow
from app.mail.models import OutboxMessage
from app.mail.outbox import enqueue
from app.main import create_app
from app.settings import Settings
from app.templating import localtime
from tests.conftest import Client

SCRIPT_HTML = '<p>Hello</p><script>alert("owned")</script><img src=x onerror="alert(1)">'


def add_message(db: Database, settings: Settings, n: int = 0, **values: Any) -> int:
    with db.begin() as s:
        context = {"name": f"Member {n}", "minutes": 15, "org_name": "Riverside Tenants",
                   "link": f"http://testserver/signin/link/secret{n:04d}tokenvalue"}
        enqueue(s, settings, kind="signin_link", to_addr=f"member{n}@example.org", to_name=f"Member {n}",
                dedupe=f"t:{n}", context=context)
        row_id = s.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key.like(f"%:t:{n}:%")))
        if values:
            s.execute(update(OutboxMessage).where(OutboxMessage.id == row_id).values(**values))
    assert row_id is not None
    return row_id


def page(response: Any) -> BeautifulSoup:
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def listed_ids(soup: BeautifulSoup) -> list[int]:
    return [int(tr["id"].removeprefix("outbox-")) for tr in soup.select("table#outbox tbody tr[id]")]


def test_admin_sees_the_outbox_newest_first(admin_client: Client, db: Database, settings: Settings) -> None:
    first = add_message(db, settings, 1)
    second = add_message(db, settings, 2, status="sent", attempts=1, sent_at=utcnow())
    soup = page(admin_client.get("/admin/outbox"))

    note = "No SMTP server is configured (PLENARY_SMTP_URL): messages are kept here and not sent."
    assert note in soup.text
    table = soup.select_one("table#outbox")
    assert table is not None and table.caption is not None
    assert all(th.get("scope") == "col" for th in table.select("thead th"))
    assert listed_ids(soup) == [second, first]
    row = soup.select_one(f"tr#outbox-{first}")
    assert row is not None
    cells = [td.get_text(" ", strip=True) for td in row.find_all("td")]
    with db.read() as s:
        created = s.get(OutboxMessage, first).created_at  # type: ignore[union-attr]
    assert cells[0] == localtime(created, "Europe/Berlin")  # the organization's time zone
    assert cells[1:6] == ["Member 1 member1@example.org", "Sign in to Riverside Tenants signin_link", "pending",
                          "0", "—"]
    link = row.find("a")
    assert link is not None and link["href"] == f"/admin/outbox/{first}"
    label = soup.find("label", attrs={"for": "f-status"})
    form = soup.find("form", attrs={"method": "get"})
    assert label is not None and form is not None and form.find("select", id="f-status") is not None


def test_filter_by_status(admin_client: Client, db: Database, settings: Settings) -> None:
    pending = add_message(db, settings, 1)
    sent = add_message(db, settings, 2, status="sent", attempts=1, sent_at=utcnow())
    failed = add_message(db, settings, 3, status="failed", attempts=1,
                         last_error="550 5.1.1 No such user here")
    assert listed_ids(page(admin_client.get("/admin/outbox?status=sent"))) == [sent]
    soup = page(admin_client.get("/admin/outbox?status=failed"))
    assert listed_ids(soup) == [failed]
    assert "550 5.1.1 No such user here" in soup.text
    assert listed_ids(page(admin_client.get("/admin/outbox?status=pending"))) == [pending]
    assert listed_ids(page(admin_client.get("/admin/outbox?status=sending"))) == []
    # an unknown filter shows everything rather than an error
    everything = listed_ids(page(admin_client.get("/admin/outbox?status=<script>")))
    assert sorted(everything) == [pending, sent, failed]
    selected = page(admin_client.get("/admin/outbox?status=sent")).select_one("#f-status option[selected]")
    assert selected is not None and selected["value"] == "sent"


def test_pages_of_fifty(admin_client: Client, db: Database, settings: Settings) -> None:
    ids = [add_message(db, settings, n) for n in range(51)]
    first = page(admin_client.get("/admin/outbox"))
    assert len(listed_ids(first)) == 50
    older = first.find("a", rel="next")
    assert older is not None and older["href"] == "/admin/outbox?page=2"
    second = page(admin_client.get(older["href"]))
    assert listed_ids(second) == [ids[0]]
    assert second.find("a", rel="prev") is not None
    assert listed_ids(page(admin_client.get("/admin/outbox?page=abc"))) == listed_ids(first)


def test_admin_reads_one_message(admin_client: Client, db: Database, settings: Settings) -> None:
    row_id = add_message(db, settings, 1)
    soup = page(admin_client.get(f"/admin/outbox/{row_id}"))
    with db.read() as s:
        row = s.get(OutboxMessage, row_id)
    assert row is not None
    headers = {th.get_text(strip=True): th.find_next_sibling("td").get_text(strip=True)
               for th in soup.select("table#headers th[scope=row]")}
    assert headers["To"] == "Member 1 <member1@example.org>"
    assert headers["Subject"] == "Sign in to Riverside Tenants"
    assert headers["Message-ID"] == row.message_id
    assert headers["From"] == settings.mail_from
    pre = soup.select_one("pre.mail")
    assert pre is not None and pre.get_text() == row.text_body
    assert "http://testserver/signin/link/secret0001tokenvalue" in pre.get_text()  # readable: no SMTP here
    iframe = soup.find("iframe")
    assert iframe is not None and iframe["title"] == "HTML version"
    preview = BeautifulSoup(iframe["srcdoc"], "html.parser")  # the message's HTML, minus its inline styles
    assert preview.find("a", href="http://testserver/signin/link/secret0001tokenvalue") is not None
    assert preview.find(style=True) is None
    source = soup.select("details pre.mail")
    assert len(source) == 1 and source[0].get_text() == row.html_body


def test_message_html_is_never_executed(admin_client: Client, db: Database, settings: Settings) -> None:
    row_id = add_message(db, settings, 1, html_body=SCRIPT_HTML, text_body="<script>alert(2)</script>",
                         subject='<script>alert(3)</script>')
    response = admin_client.get(f"/admin/outbox/{row_id}")
    soup = page(response)
    # Nothing from the message became markup on the admin page: the only scripts are the page's own.
    assert [s.get("src") for s in soup.find_all("script")] == ["/static/vendor/htmx-2.0.11.min.js"]
    assert soup.find("img", src="x") is None
    assert "alert(" not in "".join(str(s) for s in soup.find_all("script"))
    iframe = soup.find("iframe")
    assert iframe is not None
    assert iframe.has_attr("sandbox") and not iframe["sandbox"]  # sandboxed, and nothing allowed (no scripts)
    assert "<iframe sandbox srcdoc=" in response.text
    assert iframe["srcdoc"] == SCRIPT_HTML  # the markup is kept inside the attribute...
    escaped = 'srcdoc="&lt;p&gt;Hello&lt;/p&gt;&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;'
    assert escaped in response.text
    assert "<script>alert(" not in response.text  # ...escaped, never as a live tag
    assert "default-src 'self'" in response.headers["content-security-policy"]
    listing = admin_client.get("/admin/outbox")
    assert "<script>alert(3)" not in listing.text and "&lt;script&gt;alert(3)" in listing.text


def test_unknown_message_is_404(admin_client: Client) -> None:
    assert admin_client.get("/admin/outbox/987654").status_code == 404


@pytest.mark.parametrize("path", ["/admin/outbox", "/admin/outbox/1"])
def test_members_are_refused(path: str, member_client: Client, db: Database, settings: Settings) -> None:
    add_message(db, settings, 1)
    response = member_client.get(path)
    assert response.status_code == 403
    assert "Sign in to Riverside Tenants" not in response.text


@pytest.mark.parametrize("path", ["/admin/outbox", "/admin/outbox/1"])
def test_anonymous_visitors_are_sent_to_sign_in(path: str, client: Client, db: Database,
                                                settings: Settings) -> None:
    add_message(db, settings, 1)
    response = client.get(path, follow_redirects=False)
    assert response.status_code in (302, 303, 307)
    assert response.headers["location"].startswith("/signin")


@pytest.fixture
def smtp_admin_client(settings: Settings, db: Database, admin: Any) -> Iterator[Client]:
    """An admin on an installation that sends mail (the SMTP server itself is never contacted here)."""
    app = create_app(dataclasses.replace(settings, smtp_url="smtp://127.0.0.1:9"), db=db)
    with Client(app, base_url="http://testserver") as c:
        c.sign_in(admin.email)
        yield c


def test_with_smtp_one_time_links_are_hidden(smtp_admin_client: Client, db: Database,
                                             settings: Settings) -> None:
    row_id = add_message(db, settings, 1, status="sent", attempts=1,
                         sent_at=utcnow() - dt.timedelta(minutes=1))
    listing = page(smtp_admin_client.get("/admin/outbox"))
    assert "No SMTP server is configured" not in listing.text
    response = smtp_admin_client.get(f"/admin/outbox/{row_id}")
    soup = page(response)
    assert "secret0001tokenvalue" not in response.text
    assert "http://testserver/signin/link/hidden" in soup.select_one("pre.mail").get_text()  # type: ignore[union-attr]
    assert 'href="http://testserver/signin/link/hidden"' in soup.find("iframe")["srcdoc"]  # type: ignore[index]
    assert soup.find(id="links-hidden") is not None


# --- retry and cancel -----------------------------------------------------------------------------------------

def outbox_row(db: Database, row_id: int) -> OutboxMessage:
    with db.read() as s:
        row = s.get(OutboxMessage, row_id)
        assert row is not None
        return row


def audit_actions(db: Database) -> list[tuple[str, int | None]]:
    from app.members.models import AuditEvent

    with db.read() as s:
        return [(e.action, e.object_id) for e in s.scalars(select(AuditEvent).where(
            AuditEvent.action.like("outbox.%")).order_by(AuditEvent.id))]


HX = {"HX-Request": "true"}


def test_admin_retries_a_failed_message(admin_client: Client, db: Database, settings: Settings) -> None:
    row_id = add_message(db, settings, 1, status="failed", attempts=8, last_error="550 5.1.1 No such user here",
                         created_at=utcnow() - dt.timedelta(days=3))
    listing = page(admin_client.get("/admin/outbox?status=failed"))
    form = listing.select_one(f"tr#outbox-{row_id} form[action='/admin/outbox/{row_id}/retry']")
    assert form is not None and form["method"] == "post" and form["hx-post"] == f"/admin/outbox/{row_id}/retry"
    assert form.find("input", attrs={"name": "csrf_token"}) is not None
    assert form.find("input", attrs={"name": "next"})["value"] == "/admin/outbox?status=failed"
    assert "Retry the message to member1@example.org" in form.button.get_text()  # type: ignore[union-attr]

    r = admin_client.form(f"/admin/outbox/{row_id}/retry", {"next": "/admin/outbox?status=failed"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/outbox?status=failed"
    row = outbox_row(db, row_id)
    assert (row.status, row.attempts, row.last_error, row.locked_until) == ("pending", 0, "", None)
    assert row.requeued_at is not None and row.next_attempt_at <= utcnow()  # due now, with 48 h from now
    assert audit_actions(db) == [("outbox.retry", row_id)]
    assert "The message is back in the queue." in admin_client.get("/admin/outbox").text


def test_admin_cancels_a_queued_message_and_it_is_never_sent(admin_client: Client, db: Database, settings: Settings,
                                                             smtp_sink: Any) -> None:
    from app.mail.sender import drain_once
    from tests.functional.test_mail_sender import run

    cancelled, kept = add_message(db, settings, 1), add_message(db, settings, 2)
    r = admin_client.form(f"/admin/outbox/{cancelled}/cancel", {"next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/outbox/{cancelled}"  # not elsewhere
    row = outbox_row(db, cancelled)
    assert (row.status, row.last_error, row.sent_at) == ("cancelled", "cancelled by an admin", None)
    assert audit_actions(db) == [("outbox.cancel", cancelled)]

    sending = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}",
                                  mail_from="Riverside Tenants <votes@example.org>")
    assert run(drain_once(sending, db)) == 1
    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [["member2@example.org"]]
    assert outbox_row(db, cancelled).status == "cancelled" and outbox_row(db, kept).status == "sent"
    assert listed_ids(page(admin_client.get("/admin/outbox?status=cancelled"))) == [cancelled]


def test_htmx_swaps_the_row(admin_client: Client, db: Database, settings: Settings) -> None:
    row_id = add_message(db, settings, 1)
    r = admin_client.post(f"/admin/outbox/{row_id}/cancel", headers={**HX, "X-CSRF-Token": admin_client.csrf()},
                          data={"next": "/admin/outbox?page=1"})
    assert r.status_code == 200
    fragment = BeautifulSoup(r.text, "html.parser")
    [tr] = fragment.find_all("tr")
    assert tr["id"] == f"outbox-{row_id}" and "cancelled" in tr.select_one(".badge").get_text()  # type: ignore[union-attr]
    assert tr.find("form") is None  # nothing more to do with a cancelled message
    assert fragment.find("html") is None

    failed = add_message(db, settings, 2, status="failed", attempts=1, last_error="550 nope")
    r = admin_client.post(f"/admin/outbox/{failed}/retry", headers={**HX, "X-CSRF-Token": admin_client.csrf()},
                          data={"next": "/admin/outbox?page=1"})
    tr = BeautifulSoup(r.text, "html.parser").find("tr")
    assert r.status_code == 200 and "pending" in tr.select_one(".badge").get_text()  # type: ignore[union-attr]
    cancel = tr.find("form", action=f"/admin/outbox/{failed}/cancel")  # type: ignore[union-attr]
    assert cancel is not None and cancel.find("input", attrs={"name": "next"})["value"] == "/admin/outbox?page=1"


@pytest.mark.parametrize(("action", "status", "said"), [
    ("retry", "pending", "Only a failed message can be retried; this one is queued."),
    ("retry", "sending", "Only a failed message can be retried; this one is being sent right now."),
    ("retry", "sent", "Only a failed message can be retried; this one is already sent."),
    ("retry", "cancelled", "Only a failed message can be retried; this one is cancelled."),
    ("cancel", "sending", "Only a queued message can be cancelled; this one is being sent right now."),
    ("cancel", "sent", "Only a queued message can be cancelled; this one is already sent."),
    ("cancel", "failed", "Only a queued message can be cancelled; this one is failed."),
    ("cancel", "cancelled", "Only a queued message can be cancelled; this one is cancelled."),
])
def test_wrong_status_is_refused_and_changes_nothing(action: str, status: str, said: str, admin_client: Client,
                                                     db: Database, settings: Settings) -> None:
    row_id = add_message(db, settings, 1, status=status, attempts=2, last_error="earlier answer")
    before = outbox_row(db, row_id)
    r = admin_client.form(f"/admin/outbox/{row_id}/{action}")
    assert r.status_code == 409
    refusal = page_409(r).select_one("#refusal")
    assert refusal is not None and refusal.get_text(strip=True) == said + " Nothing was changed."
    htmx = admin_client.post(f"/admin/outbox/{row_id}/{action}", headers={**HX, "X-CSRF-Token": admin_client.csrf()})
    assert htmx.status_code == 409
    tr = BeautifulSoup(htmx.text, "html.parser").find("tr")
    assert tr["id"] == f"outbox-{row_id}" and said in tr.select_one("[role=alert]").get_text()  # type: ignore[index, union-attr]
    after = outbox_row(db, row_id)
    assert (after.status, after.attempts, after.last_error, after.requeued_at) == \
        (before.status, before.attempts, before.last_error, None)
    assert audit_actions(db) == []


def page_409(response: Any) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def test_retry_to_a_bouncing_address_is_refused(admin_client: Client, db: Database, settings: Settings,
                                                member: Any) -> None:
    from app.members.models import Member

    with db.begin() as s:
        s.add(OutboxMessage(dedupe_key="announcement:p1:mia", kind="announcement", member_id=member.id,
                            to_addr=member.email, subject="New proposal", text_body="x", html_body="x", headers={},
                            message_id="<a.1@testserver>", status="cancelled",
                            last_error="not sent: the address is bouncing"))
        s.add(OutboxMessage(dedupe_key="results:p1:mia", kind="results", member_id=member.id,
                            to_addr=member.email, subject="Result", text_body="x", html_body="x", headers={},
                            message_id="<r.1@testserver>", status="failed", last_error="550 no such user"))
        s.execute(update(Member).where(Member.id == member.id).values(bouncing_since=utcnow(), bounce_count=3))
        row_id = s.scalar(select(OutboxMessage.id).where(OutboxMessage.kind == "results"))
    r = admin_client.form(f"/admin/outbox/{row_id}/retry")
    assert r.status_code == 409 and "mia@example.org is flagged as bouncing" in r.text
    assert outbox_row(db, row_id).status == "failed"


@pytest.mark.parametrize("action", ["retry", "cancel"])
def test_members_cannot_retry_or_cancel(action: str, member_client: Client, db: Database,
                                        settings: Settings) -> None:
    row_id = add_message(db, settings, 1, status="failed" if action == "retry" else "pending")
    before = outbox_row(db, row_id).status
    r = member_client.form(f"/admin/outbox/{row_id}/{action}")
    assert r.status_code == 403
    assert outbox_row(db, row_id).status == before
    assert audit_actions(db) == []


@pytest.mark.parametrize("action", ["retry", "cancel"])
def test_unknown_message_cannot_be_changed(action: str, admin_client: Client) -> None:
    assert admin_client.form(f"/admin/outbox/987654/{action}").status_code == 404


def test_message_page_offers_what_applies(admin_client: Client, db: Database, settings: Settings) -> None:
    pending = page(admin_client.get(f"/admin/outbox/{add_message(db, settings, 1)}"))
    assert pending.select_one("#cancel-form") is not None and pending.select_one("#retry-form") is None
    failed_id = add_message(db, settings, 2, status="failed", last_error="550 no")
    failed = page(admin_client.get(f"/admin/outbox/{failed_id}"))
    assert failed.select_one("#retry-form") is not None and failed.select_one("#cancel-form") is None
    r = admin_client.form(f"/admin/outbox/{failed_id}/retry", {"next": f"/admin/outbox/{failed_id}"})
    assert r.headers["location"] == f"/admin/outbox/{failed_id}"
    sent = page(admin_client.get(f"/admin/outbox/{add_message(db, settings, 3, status='sent')}"))
    assert sent.select_one("#retry-form") is None and sent.select_one("#cancel-form") is None
