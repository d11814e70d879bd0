"""Hard bounces through a real SMTP server: counted per address, flagged at three in a row, reset by a delivery;
what a flagged address still gets; and what admins and the member see and can do, through HTTP."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select, update

from app.db import Database, utcnow
from app.mail.bounces import BOUNCE_LIMIT
from app.mail.models import OutboxMessage
from app.mail.outbox import enqueue
from app.mail.sender import drain_once
from app.mail.sink import SmtpSink
from app.members.models import AuditEvent, Member
from app.settings import Settings
from tests.conftest import PASSWORD, Client
from tests.factories import make_member
from tests.functional.test_mail_sender import FAST, run

ADDR = "mia@example.org"


@pytest.fixture
def mail_settings(settings: Settings, smtp_sink: SmtpSink) -> Settings:
    return dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}?timeout=5",
                               mail_from="Riverside Tenants <votes@example.org>")


_seq = iter(range(10**6))


def signin_link(db: Database, settings: Settings, member: Any, to_addr: str | None = None) -> None:
    with db.begin() as s:
        enqueue(s, settings, kind="signin_link", to_addr=to_addr or member.email, to_name=member.name,
                member_id=member.id, dedupe=f"t:{next(_seq)}",
                context={"name": member.name, "minutes": 15, "link": "http://testserver/signin/link/abc"})


def mailing(db: Database, member: Any, kind: str = "announcement") -> int:
    """A bulk message as a mailing writes it (bodies are not what this is about)."""
    with db.begin() as s:
        row = OutboxMessage(dedupe_key=f"{kind}:p1:{member.email}:{next(_seq)}", kind=kind, member_id=member.id,
                            to_addr=member.email, to_name=member.name, subject="New proposal: Paint the hall",
                            text_body="Vote now.\n", html_body="<p>Vote now.</p>\n", headers={},
                            message_id=f"<{kind}.{next(_seq)}@testserver>")
        s.add(row)
        s.flush()
        return row.id


def drain(settings: Settings, db: Database) -> int:
    return run(drain_once(settings, db, **FAST))  # type: ignore[arg-type]


def state(db: Database, member_id: int) -> Member:
    with db.read() as s:
        member = s.get(Member, member_id)
        assert member is not None
        return member


def outbox(db: Database, row_id: int) -> OutboxMessage:
    with db.read() as s:
        row = s.get(OutboxMessage, row_id)
        assert row is not None
        return row


@pytest.mark.parametrize(("where", "code", "answer"), [
    ("rcpt", 550, "550 5.1.1 No such user here"),
    ("data", 554, "554 5.7.1 Rejected"),
])
def test_three_hard_bounces_in_a_row_flag_the_address(where: str, code: int, answer: str, mail_settings: Settings,
                                                      db: Database, member: Any, smtp_sink: SmtpSink) -> None:
    (smtp_sink.reject_rcpt if where == "rcpt" else smtp_sink.reject_data)[ADDR] = code
    for n in range(1, BOUNCE_LIMIT + 1):
        signin_link(db, mail_settings, member)
        assert drain(mail_settings, db) == 1
        m = state(db, member.id)
        assert (m.bounce_count, m.last_bounce) == (n, answer)
        assert m.last_bounce_at is not None
        assert (m.bouncing_since is not None) == (n == BOUNCE_LIMIT)
    with db.read() as s:
        rows = list(s.scalars(select(OutboxMessage)))
    # Each refusal is recorded on its message, tried once: a 5xx is never retried.
    assert [(r.status, r.attempts, r.last_error) for r in rows] == [("failed", 1, answer)] * BOUNCE_LIMIT
    assert smtp_sink.messages == []


def test_a_delivery_resets_the_bounces_in_a_row(mail_settings: Settings, db: Database, member: Any,
                                                smtp_sink: SmtpSink) -> None:
    smtp_sink.reject_rcpt[ADDR] = 550
    for _ in range(BOUNCE_LIMIT - 1):
        signin_link(db, mail_settings, member)
        drain(mail_settings, db)
    assert state(db, member.id).bounce_count == BOUNCE_LIMIT - 1
    smtp_sink.reject_rcpt.clear()  # the mailbox works again
    signin_link(db, mail_settings, member)
    drain(mail_settings, db)
    assert state(db, member.id).bounce_count == 0
    smtp_sink.reject_rcpt[ADDR] = 550
    for _ in range(BOUNCE_LIMIT - 1):
        signin_link(db, mail_settings, member)
        drain(mail_settings, db)
    m = state(db, member.id)
    assert (m.bounce_count, m.bouncing_since) == (BOUNCE_LIMIT - 1, None)  # not three in a row


def test_temporary_failures_are_not_bounces(mail_settings: Settings, db: Database, member: Any,
                                            smtp_sink: SmtpSink) -> None:
    smtp_sink.reject_rcpt[ADDR] = 451
    signin_link(db, mail_settings, member)
    drain(mail_settings, db)
    assert state(db, member.id).bounce_count == 0


def test_a_refused_new_address_does_not_count_against_the_current_one(mail_settings: Settings, db: Database,
                                                                      member: Any, smtp_sink: SmtpSink) -> None:
    smtp_sink.reject_rcpt["typo@exmaple.org"] = 550  # an email change confirmation to a mistyped address
    for _ in range(BOUNCE_LIMIT):
        signin_link(db, mail_settings, member, to_addr="typo@exmaple.org")
        drain(mail_settings, db)
    m = state(db, member.id)
    assert (m.bounce_count, m.bouncing_since) == (0, None)


def flag(db: Database, member_id: int, answer: str = "550 5.1.1 No such user here") -> None:
    with db.begin() as s:
        s.execute(update(Member).where(Member.id == member_id).values(
            bounce_count=BOUNCE_LIMIT, bouncing_since=utcnow(), last_bounce_at=utcnow(), last_bounce=answer))


@pytest.mark.parametrize("kind", ["announcement", "results", "vote_confirmation"])
def test_mailings_skip_a_bouncing_address_and_account_mail_still_tries(
        kind: str, mail_settings: Settings, db: Database, member: Any, smtp_sink: SmtpSink) -> None:
    with db.begin() as s:
        other = make_member(s, email="otto@example.org", name="Otto")
    flag(db, member.id)
    skipped, delivered = mailing(db, member, kind), mailing(db, other, kind)
    assert drain(mail_settings, db) == 2
    row = outbox(db, skipped)
    assert (row.status, row.sent_at, row.attempts) == ("cancelled", None, 0)  # never tried
    assert row.last_error == "not sent: the address is bouncing (550 5.1.1 No such user here)"
    assert outbox(db, delivered).status == "sent"
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["otto@example.org"]]
    assert drain(mail_settings, db) == 0  # cancelled for good, never picked up again

    signin_link(db, mail_settings, member)  # account mail is still tried; accepted, it clears the flag
    assert drain(mail_settings, db) == 1
    assert [m.rcpt_tos for m in smtp_sink.wait_for(2)][-1] == [ADDR]
    m = state(db, member.id)
    assert (m.bounce_count, m.bouncing_since) == (0, None)
    assert m.last_bounce == "550 5.1.1 No such user here"  # kept for reference
    mailing(db, member, kind)
    assert drain(mail_settings, db) == 1
    assert len(smtp_sink.wait_for(3)) == 3


# --- what people see and do ---------------------------------------------------------------------------------

def test_admin_sees_bouncing_members_and_the_last_answer(admin_client: Client, db: Database, member: Any) -> None:
    flag(db, member.id, "550 5.1.1 <mia@example.org>: Recipient address rejected")
    listing = BeautifulSoup(admin_client.get("/admin/members").text, "html.parser")
    row = next(tr for tr in listing.select("#members-table tbody tr") if ADDR in tr.text)
    assert row.select_one(".badge.bouncing").get_text(strip=True) == "bouncing"  # type: ignore[union-attr]
    only = BeautifulSoup(admin_client.get("/admin/members?status=bouncing").text, "html.parser")
    assert [tr.td.get_text(strip=True) for tr in only.select("#members-table tbody tr")] == ["Mia Member"]

    page = BeautifulSoup(admin_client.get(f"/admin/members/{member.id}").text, "html.parser")
    assert "bouncing" in page.select_one("#bouncing-note").get_text()  # type: ignore[union-attr]
    assert page.select_one("#last-bounce").get_text() == \
        "550 5.1.1 <mia@example.org>: Recipient address rejected"  # type: ignore[union-attr]
    form = page.find("form", action=f"/admin/members/{member.id}/bounces")
    assert form is not None and form.find("input", attrs={"name": "csrf_token"}) is not None


def test_admin_clears_the_flag_audit_logged(admin_client: Client, db: Database, member: Any, admin: Any) -> None:
    flag(db, member.id)
    r = admin_client.form(f"/admin/members/{member.id}/bounces")
    assert r.status_code == 303 and r.headers["location"] == f"/admin/members/{member.id}"
    m = state(db, member.id)
    assert (m.bounce_count, m.bouncing_since) == (0, None)
    with db.read() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "member.bounce_clear")).one()
    assert (event.actor_id, event.object_id, event.detail["bounces"]) == (admin.id, member.id, BOUNCE_LIMIT)
    page = admin_client.get(f"/admin/members/{member.id}")
    assert "bouncing-note" not in page.text and "The bouncing flag is cleared" in page.text
    again = admin_client.form(f"/admin/members/{member.id}/bounces")  # nothing to clear: said, and no new audit
    assert again.status_code == 400 and "is not flagged as bouncing" in again.text
    with db.read() as s:
        assert len(s.scalars(select(AuditEvent).where(AuditEvent.action == "member.bounce_clear")).all()) == 1
    assert admin_client.form("/admin/members/987654/bounces").status_code == 404


def test_a_member_cannot_clear_a_flag(member_client: Client, db: Database, member: Any, admin: Any) -> None:
    flag(db, member.id)
    assert member_client.form(f"/admin/members/{member.id}/bounces").status_code == 403
    assert state(db, member.id).bouncing_since is not None


def test_the_member_is_told_and_a_new_address_clears_it(member_client: Client, db: Database, member: Any) -> None:
    profile = BeautifulSoup(member_client.get("/profile").text, "html.parser")
    assert profile.select_one("#bouncing-notice") is None
    flag(db, member.id)
    notice = BeautifulSoup(member_client.get("/profile").text, "html.parser").select_one("#bouncing-notice")
    assert notice is not None and notice["role"] == "alert" and ADDR in notice.get_text()

    assert member_client.form("/profile/email", {"email": "mia@new.example.org",
                                                 "password": PASSWORD}).status_code == 303
    assert state(db, member.id).bouncing_since is not None  # not before the new address is confirmed
    with db.read() as s:
        body = s.scalar(select(OutboxMessage.text_body).where(OutboxMessage.kind == "email_change_confirm"))
    path = re.search(r"http://testserver(/profile/email/\S+)", body).group(1)  # type: ignore[arg-type, union-attr]
    assert member_client.form(path).status_code == 303
    m = state(db, member.id)
    assert (m.email, m.bounce_count, m.bouncing_since, m.last_bounce) == ("mia@new.example.org", 0, None, "")
    assert BeautifulSoup(member_client.get("/profile").text, "html.parser").select_one("#bouncing-notice") is None
