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
