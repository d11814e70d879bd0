"""The announcement at open and its vote links, followed from the message a real SMTP server received.

A link opens a confirmation page (GET changes nothing: scanners open links), its form casts via="email", the
receipt shows once; the link cannot be altered, outlive the deadline, name another proposal's option, vote
after close, or sign anyone in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from bs4 import BeautifulSoup
from freezegun import freeze_time
from sqlalchemy import func, select

from app.db import utcnow
from app.mail.models import OutboxMessage
from app.main import create_app
from app.proposals.models import Option
from app.voting import services
from app.voting.links import vote_token
from app.voting.models import Ballot, Participation
from tests.conftest import Client
from tests.factories import make_member, make_proposal
from tests.functional.test_mail_links import deliver

RECEIPT = re.compile(r"[A-Z2-7]{4}(?:-[A-Z2-7]{4}){3}")


@pytest.fixture
def mail(settings, smtp_sink):  # type: ignore[no-untyped-def]
    return dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}")


@pytest.fixture
def mail_app(mail, db):  # type: ignore[no-untyped-def]
    return create_app(mail, db=db)


@pytest.fixture
def people(db, admin, member):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        others = [make_member(s, email=f"m{i}@example.org", name=f"Member {i}") for i in range(3)]
        make_member(s, email="gone@example.org", name="Gone", status="deactivated")
    return [admin, member, *others]


def publish(app, admin, pid: int):  # type: ignore[no-untyped-def]
    with Client(app, base_url="http://testserver") as boss:
        boss.sign_in(admin.email)
        return boss.form(f"/admin/proposals/{pid}/publish", {"when": "now"})


def text_of(message) -> str:  # type: ignore[no-untyped-def]
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def button_link(sink, address: str, label: str) -> str:
    [msg] = [m for m in sink.to(address) if m.message["Subject"].startswith("Vote:")]
    match = re.search(re.escape(label) + r":\n(http://testserver(/vote/[A-Za-z0-9_\-]+))\n", text_of(msg.message))
    assert match, text_of(msg.message)
    assert f'href="{match.group(1)}"' in msg.message.get_body(preferencelist=("html",)).get_content()
    return match.group(2)


def count(db, model, *where) -> int:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_every_eligible_member_gets_one_announcement_with_vote_buttons(mail_app, mail, db, admin, people, smtp_sink):
    with db.begin() as s:
        pid = make_proposal(s, title="Paint the hall green?", summary="It is grey.").id
    assert publish(mail_app, admin, pid).status_code == 303
    assert publish(mail_app, admin, pid).status_code == 409  # already open: nothing queued twice
    deliver(mail, db)
    got = smtp_sink.messages
    assert sorted(r for m in got for r in m.rcpt_tos) == sorted(p.email for p in people)
    msg = smtp_sink.to("mia@example.org")[0].message
    assert msg["Subject"] == "Vote: Paint the hall green?"
    body = text_of(msg)
    assert "It is grey." in body and "Voting closes" in body and "(Europe/Berlin)" in body
    assert "Hello Mia Member" in body
    for label in ("Yes", "No", "Abstain"):
        assert button_link(smtp_sink, "mia@example.org", label).startswith("/vote/")
    assert button_link(smtp_sink, "mia@example.org", "Yes") != button_link(smtp_sink, "m0@example.org", "Yes")
    assert f"http://testserver/proposals/{pid}" in body


def test_the_link_shows_a_page_and_only_the_form_votes(mail_app, mail, db, admin, member, people, smtp_sink):
    with db.begin() as s:
        pid = make_proposal(s, secret=True).id
    publish(mail_app, admin, pid)
    deliver(mail, db)
    yes, no = button_link(smtp_sink, member.email, "Yes"), button_link(smtp_sink, member.email, "No")
    with Client(mail_app, base_url="http://testserver") as browser:
        for _ in range(3):  # a mail scanner, a preview, the member: none of them votes
            page = browser.get(yes)
            assert page.status_code == 200
            assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
        assert count(db, Participation) == 0 and count(db, Ballot) == 0
        soup = BeautifulSoup(page.text, "html.parser")
        assert soup.select_one("input[name=choice][value=yes]").has_attr("checked")
        assert not soup.select_one("input[name=choice][value=no]").has_attr("checked")

        done = browser.form(yes, {"choice": "yes"})
        assert done.status_code == 200
        [receipt] = RECEIPT.findall(BeautifulSoup(done.text, "html.parser").select_one(".receipt-code").text)
        with db.read() as s:
            assert s.scalar(select(Participation.via).where(Participation.member_id == member.id)) == "email"
        assert browser.get(yes).status_code == 200 and receipt not in browser.get(yes).text  # shown once

        # A second POST changes the vote, as on the site; still one ballot.
        again = browser.form(no, {"choice": "no"})
        assert again.status_code == 200 and RECEIPT.search(again.text).group(0) != receipt
        with db.read() as s:
            assert list(s.scalars(select(Ballot.choice).where(Ballot.proposal_id == pid))) == ["no"]
        assert "already voted" in browser.get(yes).text

        # The link signed nobody in.
        profile = browser.get("/profile", follow_redirects=False)
        assert profile.status_code == 303 and profile.headers["location"].startswith("/signin")
        assert browser.get(f"/proposals/{pid}", follow_redirects=False).status_code == 303

        # Without the page's CSRF token the POST is refused.
        assert browser.post(yes, data={"choice": "yes"}).status_code == 403


def test_altered_expired_foreign_and_closed_links_are_refused(mail_app, mail, db, settings, admin, member, people,
                                                               smtp_sink):
    with db.begin() as s:
        a = make_proposal(s, method="single", options=("Red", "Blue"), title="Colour A")
        b = make_proposal(s, method="single", options=("Oak", "Elm"), title="Wood B")
    publish(mail_app, admin, a.id)
    deliver(mail, db)
    red = button_link(smtp_sink, member.email, "Red")
    with db.read() as s:
        b_option = s.scalar(select(Option.id).where(Option.proposal_id == b.id))
        closes_at = s.get(type(a), a.id).closes_at
    mac = red.rsplit("-", 1)[1]
    flipped = red[:-1] + ("0" if red[-1] != "0" else "1")
    other_member = red.replace(f"/vote/{member.id}-", f"/vote/{admin.id}-", 1)
    foreign = "/vote/" + vote_token(mail, member_id=member.id, proposal_id=a.id, choice=str(b_option),
                                    expires_at=closes_at)
    longer = red.replace(f"-{int(closes_at.timestamp())}-", f"-{int(closes_at.timestamp()) + 86400}-")
    with Client(mail_app, base_url="http://testserver") as browser:
        browser.get(red)  # the CSRF cookie, as the page would set it
        for bad in (flipped, other_member, foreign, longer, "/vote/" + mac, "/vote/1-2-yes-3"):
            assert browser.get(bad).status_code == 400, bad
            assert browser.form(bad, {"choice": "yes"}).status_code == 400, bad
        with freeze_time(closes_at + dt.timedelta(seconds=1)):
            assert browser.get(red).status_code == 400
            assert browser.form(red, {"choice": red.split("-")[2]}).status_code == 400
        assert count(db, Ballot) == 0
        with db.begin() as s:
            services.close_proposal(s, settings, a.id, actor_id=admin.id, reason="Decided at the meeting")
        closed = browser.get(red)
        assert closed.status_code == 409 and "closed" in closed.text
        assert browser.form(red, {"choice": red.split("-")[2]}).status_code == 409
    assert count(db, Participation) == 0


def test_other_methods_get_a_link_to_the_site(mail_app, mail, db, admin, member, people, smtp_sink):
    with db.begin() as s:
        pid = make_proposal(s, method="ranked", options=("A", "B", "C")).id
    publish(mail_app, admin, pid)
    deliver(mail, db)
    body = text_of(smtp_sink.to(member.email)[0].message)
    assert "/vote/" not in body and f"http://testserver/proposals/{pid}" in body


def test_vote_confirmation_for_secret_ballots_says_neither_choice_nor_receipt(mail_app, mail, db, admin, member,
                                                                             people, smtp_sink):
    with db.begin() as s:
        secret = make_proposal(s, title="Secret one", secret=True).id
        open_ = make_proposal(s, title="Open one", secret=False).id
    publish(mail_app, admin, secret)
    publish(mail_app, admin, open_)
    deliver(mail, db)
    receipts = []
    with Client(mail_app, base_url="http://testserver") as browser:
        for pid_link in (button_link_for(smtp_sink, member.email, "Secret one", "Yes"),
                         button_link_for(smtp_sink, member.email, "Open one", "Yes")):
            browser.get(pid_link)
            receipts += RECEIPT.findall(browser.form(pid_link, {"choice": "yes"}).text)
    with Client(mail_app, base_url="http://testserver") as site:  # on the site too: one confirmation per hour
        site.sign_in(member.email)
        assert site.form(f"/proposals/{secret}/vote", {"choice": "no"}).status_code == 303
    smtp_sink.clear()
    deliver(mail, db)
    confirmations = {m.message["Subject"]: text_of(m.message) for m in smtp_sink.to(member.email)}
    assert set(confirmations) == {"Your vote on Secret one is recorded", "Your vote on Open one is recorded"}
    assert "You voted" not in confirmations["Your vote on Secret one is recorded"]
    assert "does not say what you chose" in confirmations["Your vote on Secret one is recorded"]
    assert "You voted: Yes" in confirmations["Your vote on Open one is recorded"]
    assert len(receipts) == 2
    with db.read() as s:
        rows = s.execute(select(OutboxMessage.text_body, OutboxMessage.html_body, OutboxMessage.subject,
                                OutboxMessage.headers)).all()
    for code in receipts:
        assert not any(code in (r.text_body + r.html_body + r.subject + str(r.headers)) for r in rows)
        assert not any(code.encode() in m.raw for m in smtp_sink.messages)
    assert count(db, OutboxMessage, OutboxMessage.kind == "vote_confirmation") == 2


def button_link_for(sink, address: str, title: str, label: str) -> str:
    [msg] = [m for m in sink.to(address) if m.message["Subject"] == f"Vote: {title}"]
    return re.search(re.escape(label) + r":\nhttp://testserver(/vote/\S+)\n", text_of(msg.message)).group(1)


def test_confirmations_are_spaced_an_hour_apart(app, db, settings, member, admin):
    with db.begin() as s:
        pid = make_proposal(s, state="open").id
    with Client(app, base_url="http://testserver") as c:
        c.sign_in(member.email)
        start = utcnow()
        for minutes, choice in ((0, "yes"), (10, "no"), (59, "yes"), (61, "no"), (70, "yes")):
            with freeze_time(start + dt.timedelta(minutes=minutes)):
                assert c.form(f"/proposals/{pid}/vote", {"choice": choice}).status_code == 303
    assert count(db, OutboxMessage, OutboxMessage.kind == "vote_confirmation") == 2


def test_admins_reading_the_outbox_see_no_member_s_vote_or_unsubscribe_link(mail_app, mail, db, admin, member,
                                                                           people):
    with db.begin() as s:
        pid = make_proposal(s).id
    publish(mail_app, admin, pid)
    with db.read() as s:
        row_id = s.scalar(select(OutboxMessage.id).where(OutboxMessage.to_addr == member.email))
    with Client(mail_app, base_url="http://testserver") as boss:
        boss.sign_in(admin.email)
        page = boss.get(f"/admin/outbox/{row_id}").text
    assert "/vote/hidden" in page and "/unsubscribe/hidden" in page
    assert "unsubscribe+hidden@testserver" in page
    assert not re.search(r"(/vote/|/unsubscribe/|unsubscribe\+)[0-9]+-", page)
