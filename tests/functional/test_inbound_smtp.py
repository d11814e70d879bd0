"""Replies by email, end to end: a real `plenary inbound` server (aiosmtpd) on 127.0.0.1 receives replies sent
with smtplib, in the shapes Gmail, Outlook and Apple Mail give them, to the Reply-To of mail the outbox sent.

A reply becomes a comment (a reply in the thread, or a top-level comment from an announcement) that the proposal
page shows; every refusal answers with its SMTP code and posts nothing; the same message delivered twice posts
once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import func, select

from app.comments.models import Comment
from app.db import utcnow
from app.mail.inbound_smtp import InboundServer
from app.mail.models import InboundMessage
from app.mail.reply_address import reply_address
from app.main import create_app
from app.proposals.models import Proposal
from app.voting import services as voting
from tests.conftest import Client
from tests.functional.test_comment_mail import REPLY_DOMAIN, make_people, open_proposal, post, received
from tests.functional.test_mail_announce import text_of
from tests.functional.test_mail_links import deliver


@pytest.fixture
def mail(settings, smtp_sink):  # type: ignore[no-untyped-def]
    return dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}", reply_domain=REPLY_DOMAIN,
                               inbound_max_kb=64)


@pytest.fixture
def mail_app(mail, db):  # type: ignore[no-untyped-def]
    return create_app(mail, db=db)


@pytest.fixture
def inbound(mail, db):  # type: ignore[no-untyped-def]
    server = InboundServer(db, mail)
    server.start("127.0.0.1", 0)
    yield server
    server.stop()


@pytest.fixture
def people(db, admin, member):  # type: ignore[no-untyped-def]
    return make_people(db, admin, member)


@pytest.fixture
def proposal(db, admin, people) -> int:  # type: ignore[no-untyped-def]
    return open_proposal(db, admin)


def reply(sender: str, to: str, text: str | None, *, html: str | None = None, subject: str = "Re: Paint the hall",
          message_id: str | None = None, attachment: bytes | None = None, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="mail.example.org")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    if attachment is not None:
        if text is None and html is None:
            msg.make_mixed()
        msg.add_attachment(attachment, maintype="image", subtype="png", filename="photo.png")
    return msg


def send(server: InboundServer, msg: EmailMessage, rcpt: str | None = None) -> None:
    """Deliver as a mail server would (raises smtplib's error for a refusal)."""
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
        smtp.send_message(msg, to_addrs=[rcpt or str(msg["To"])])


def comments(db) -> list[Comment]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return list(s.scalars(select(Comment).order_by(Comment.id)))


def gmail_quote(body: str, sender: str) -> str:
    quoted = "\n".join("> " + line if line else ">" for line in body.splitlines())
    return f"On Mon, Dec 1, 2026 at 10:00 AM Riverside Tenants <\n{sender}> wrote:\n\n{quoted}\n"


def test_a_reply_to_a_notification_is_posted_in_the_thread_and_shown_on_the_page(
        mail_app, mail, db, people, proposal, inbound, smtp_sink):
    mia, olu = people["mia"], people["olu"]
    top = post(mail_app, mia, proposal, "Green makes the hall feel calm.", stance="for")
    olus = post(mail_app, olu, proposal, "Which green, though?", parent_id=str(top))
    deliver(mail, db)
    notice = received(smtp_sink, mia.email, "Olu Other replied")
    address = str(notice["Reply-To"])
    # Gmail: the answer on top, then "On … wrote:" and the quoted message.
    text = "Dark green, like the front door.\n\n" + gmail_quote(text_of(notice), address)
    html = ('<div dir="ltr">Dark green, like the front door.</div><br><div class="gmail_quote"><div dir="ltr" '
            'class="gmail_attr">On Mon, Dec 1, 2026 at 10:00 AM Riverside Tenants wrote:<br></div>'
            '<blockquote class="gmail_quote">Hello Mia Member</blockquote></div>')
    smtp_sink.clear()
    send(inbound, reply(f"Mia Member <{mia.email.upper()}>", address, text, html=html,
                        In_Reply_To=notice["Message-ID"]))
    new = comments(db)[-1]
    assert (new.author_id, new.parent_id, new.kind, new.body_md) == (mia.id, top, "reply",
                                                                      "Dark green, like the front door.")
    with db.read() as s:
        assert s.scalar(select(InboundMessage.comment_id)) == new.id
    with Client(mail_app, base_url="http://testserver") as page:
        page.sign_in(olu.email)
        thread = page.get(f"/comments/{top}").text
        assert "Dark green, like the front door." in thread and f'id="comment-{new.id}"' in thread
    # Mia answered Olu's reply: Olu hears about it, with his own reply address to go on.
    deliver(mail, db)
    back = received(smtp_sink, olu.email, "Mia Member replied to your comment")
    assert "Dark green, like the front door." in text_of(back) and "Which green, though?" in text_of(back)
    assert back["Reply-To"] and back["Reply-To"] != address and str(olus) != ""


def test_a_reply_to_the_announcement_is_a_new_top_level_comment(mail_app, mail, db, admin, people, inbound,
                                                                 smtp_sink):
    from tests.factories import make_proposal
    from tests.functional.test_mail_announce import publish

    mia = people["mia"]
    with db.begin() as s:
        pid = make_proposal(s, title="Paint the hall green?").id
    assert publish(mail_app, admin, pid).status_code == 303
    deliver(mail, db)
    announcement = received(smtp_sink, mia.email, "Vote:")
    # Outlook: the answer, a sign-off, a line of underscores and the From/Sent/To/Subject block.
    text = ("Could we have a sample on the wall first?\n\nThanks,\nMia\n\n________________________________\n"
            f"From: Riverside Tenants <plenary@localhost>\nSent: Monday, December 1, 2026 10:00 AM\n"
            f"To: Mia Member <{mia.email}>\nSubject: Vote: Paint the hall green?\n\n{text_of(announcement)}")
    send(inbound, reply(mia.email, str(announcement["Reply-To"]), text))
    [new] = comments(db)
    assert (new.author_id, new.parent_id, new.kind, new.stance) == (mia.id, None, "comment", None)
    assert new.body_md == "Could we have a sample on the wall first?"


def test_apple_mail_html_only_and_signatures(db, people, proposal, inbound, mail):
    mia = people["mia"]
    address = reply_address(mail, member_id=mia.id, proposal_id=proposal)
    html = ("<html><body><div>Fine with me, <b>if</b> it is washable paint.</div><div><br></div>"
            "<div>Sent from my iPhone</div><div><br><blockquote type=\"cite\">On 1 Dec 2026, at 10:00, "
            "Riverside Tenants &lt;x@y&gt; wrote:<br><br>Hello Mia</blockquote></div></body></html>")
    send(inbound, reply(mia.email, address, None, html=html))
    plain = "Agreed.\n\n-- \nMia Member\nFlat 3, Riverside\n\n> On 1 Dec 2026, at 10:00, Riverside wrote:\n> Hello"
    send(inbound, reply(mia.email, address, plain))
    assert [c.body_md for c in comments(db)] == ["Fine with me, if it is washable paint.", "Agreed."]


def test_the_same_message_delivered_twice_posts_once(db, people, proposal, inbound, mail):
    mia = people["mia"]
    address = reply_address(mail, member_id=mia.id, proposal_id=proposal)
    msg = reply(mia.email, address, "Posted once, however often it arrives.")
    send(inbound, msg)
    send(inbound, msg)  # a mail server that did not hear our 250 sends it again: 250, nothing new
    assert [c.body_md for c in comments(db)] == ["Posted once, however often it arrives."]
    send(inbound, reply(mia.email, address, "Another message, another comment."))
    assert len(comments(db)) == 2


@pytest.mark.parametrize("case", ["bad token", "altered token", "forged From", "closed proposal", "deadline passed",
                                  "empty reply", "attachment only", "blocked member", "hidden parent",
                                  "deactivated member", "second recipient", "too big"])
def test_refusals_answer_with_a_code_and_post_nothing(case, mail_app, mail, db, admin, people, proposal, inbound):
    mia, olu = people["mia"], people["olu"]
    top = post(mail_app, olu, proposal, "Olu's comment.")
    before = len(comments(db))
    address = reply_address(mail, member_id=mia.id, proposal_id=proposal, comment_id=top)
    msg = reply(mia.email, address, "A perfectly good answer.")
    rcpt, expected, stage = address, "550", "rcpt"
    if case == "bad token":
        rcpt = f"reply+nonsense@{REPLY_DOMAIN}"
    elif case == "altered token":
        rcpt = address.replace(f"-{top:x}-", f"-{top + 1:x}-")
    elif case == "forged From":
        msg.replace_header("From", olu.email)
        stage = "data"
    elif case in ("closed proposal", "deadline passed"):
        with db.begin() as s:
            if case == "closed proposal":
                voting.close_proposal(s, mail, proposal, actor_id=admin.id, reason="Done")
            else:
                s.get(Proposal, proposal).closes_at = utcnow() - dt.timedelta(minutes=1)
    elif case == "empty reply":
        msg = reply(mia.email, address, gmail_quote("Hello Mia Member,\nOlu replied.", address))
        stage = "data"
    elif case == "attachment only":
        msg = reply(mia.email, address, None, attachment=b"\x89PNG\r\n\x1a\n" + b"0" * 100)
        stage = "data"
    elif case == "blocked member":
        with Client(mail_app, base_url="http://testserver") as boss:
            boss.sign_in(admin.email)
            assert boss.form("/admin/moderation/blocks", {"member_id": str(mia.id), "days": "3",
                                                          "reason": "Cooling off"}).status_code == 303
        stage = "data"
    elif case == "hidden parent":
        with Client(mail_app, base_url="http://testserver") as boss:
            boss.sign_in(admin.email)
            assert boss.form(f"/comments/{top}/hide", {"reason": "Off topic"}).status_code == 303
        stage = "data"
    elif case == "deactivated member":
        with db.begin() as s:
            from app.members.models import Member

            s.get(Member, mia.id).status = "deactivated"
    elif case == "too big":
        msg = reply(mia.email, address, "Big. " * 20_000)
        expected, stage = "552", "mail"  # the message's declared SIZE is refused before it is sent
    if case == "second recipient":
        with smtplib.SMTP("127.0.0.1", inbound.port, timeout=30) as smtp:
            smtp.ehlo()
            smtp.mail(mia.email)
            assert smtp.rcpt(address)[0] == 250
            code, text = smtp.rcpt(reply_address(mail, member_id=mia.id, proposal_id=proposal))
            assert code == 452 and b"One reply address per message" in text
            smtp.rset()
        assert len(comments(db)) == before
        return
    if stage == "rcpt":
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(inbound, msg, rcpt)
        code, text = refused.value.recipients[rcpt]
    elif stage == "mail":
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            send(inbound, msg, rcpt)
        code, text = refused.value.smtp_code, refused.value.smtp_error
    else:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(inbound, msg, rcpt)
        code, text = refused.value.smtp_code, refused.value.smtp_error
    assert str(code) == expected, (case, code, text)
    explanation = {
        "bad token": b"5.1.1 This reply address is not valid", "altered token": b"5.1.1 This reply address",
        "deactivated member": b"5.1.1", "forged From": b"5.7.1 This reply address belongs to another member",
        "closed proposal": b"5.7.1 Voting on this proposal has closed", "deadline passed": b"has closed",
        "empty reply": b"5.6.0 Your reply is empty", "attachment only": b"5.6.0 Your reply has only attachments",
        "blocked member": b"5.7.1 An admin has paused your commenting", "too big": b"message size exceeds",
        "hidden parent": b"5.7.1 A moderator hid this comment",
    }[case]
    assert explanation in text, text
    assert len(comments(db)) == before
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 0


def test_automatic_replies_and_bounces_are_accepted_and_dropped(db, people, proposal, inbound, mail):
    mia = people["mia"]
    address = reply_address(mail, member_id=mia.id, proposal_id=proposal)
    send(inbound, reply(mia.email, address, "I am out of the office until Monday.", Auto_Submitted="auto-replied"))
    send(inbound, reply(mia.email, address, "Away.", X_Autoreply="yes"))
    with smtplib.SMTP("127.0.0.1", inbound.port, timeout=30) as smtp:  # a bounce: the null sender
        smtp.sendmail("<>", [address], reply(mia.email, address, "Delivery failed.").as_bytes())
    assert comments(db) == []


def test_posting_by_email_keeps_the_rate_limit_and_asks_to_retry_later(db, people, proposal, inbound, mail):
    mia = people["mia"]
    address = reply_address(mail, member_id=mia.id, proposal_id=proposal)
    for i in range(10):
        send(inbound, reply(mia.email, address, f"Comment number {i}."))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(inbound, reply(mia.email, address, "One too many."))
    assert refused.value.smtp_code == 451  # temporary: the sending server tries again later
    assert len(comments(db)) == 10


def test_two_deliveries_of_one_message_at_the_same_moment_post_once(db, people, proposal, inbound, mail):
    import threading

    mia = people["mia"]
    address = reply_address(mail, member_id=mia.id, proposal_id=proposal)
    raw = reply(mia.email, address, "Delivered twice at once.").as_bytes()
    barrier = threading.Barrier(2)
    answers: list[int] = []

    def deliver_once() -> None:
        with smtplib.SMTP("127.0.0.1", inbound.port, timeout=30) as smtp:
            smtp.ehlo()
            smtp.mail(mia.email)
            smtp.rcpt(address)
            barrier.wait(timeout=30)
            answers.append(smtp.data(raw)[0])

    threads = [threading.Thread(target=deliver_once) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert answers == [250, 250]
    assert [c.body_md for c in comments(db)] == ["Delivered twice at once."]
