"""Mail about comments, received by a real SMTP server: a reply to your comment, a mention, an official response
on a proposal you voted or commented on. Who gets one and who never does, the headers (unsubscribe, threading,
Reply-To), preferences and the digest, and a hidden comment that takes its waiting mail with it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from sqlalchemy import func, select

from app.comments.models import Comment, Notification
from app.db import utcnow
from app.mail.digest import run_due_digests
from app.mail.headers import proposal_thread_id
from app.mail.models import DigestItem, OutboxMessage
from app.mail.reply_address import read_reply_address
from app.main import create_app
from app.proposals.models import Proposal
from tests.conftest import PASSWORD, Client
from tests.factories import make_group, make_member, make_proposal
from tests.functional.test_mail_announce import publish, text_of
from tests.functional.test_mail_links import deliver
from tests.functional.test_mail_prefs import save_prefs

REPLY_DOMAIN = "replies.example.org"


@pytest.fixture
def mail(settings, smtp_sink):  # type: ignore[no-untyped-def]
    return dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}", reply_domain=REPLY_DOMAIN)


@pytest.fixture
def mail_app(mail, db):  # type: ignore[no-untyped-def]
    return create_app(mail, db=db)


def make_people(db, admin, member) -> dict:  # type: ignore[no-untyped-def]
    """Ada (admin), Mia (member), Olu and Bea: all signed up with a password."""
    with db.begin() as s:
        olu = make_member(s, email="olu@example.org", name="Olu Other", password=PASSWORD)
        bea = make_member(s, email="bea@example.org", name="Bea Bystander", password=PASSWORD)
    return {"ada": admin, "mia": member, "olu": olu, "bea": bea}


def open_proposal(db, admin) -> int:  # type: ignore[no-untyped-def]
    with db.begin() as s:
        return make_proposal(s, title="Paint the hall green?", state="open", created_by=admin.id).id


@pytest.fixture
def people(db, admin, member):  # type: ignore[no-untyped-def]
    return make_people(db, admin, member)


@pytest.fixture
def proposal(db, admin, people) -> int:  # type: ignore[no-untyped-def]
    return open_proposal(db, admin)


def as_member(app, who) -> Client:  # type: ignore[no-untyped-def]
    c = Client(app, base_url="http://testserver")
    c.__enter__()
    c.sign_in(who.email)
    c.member = who
    return c


def post(app, who, pid: int, body: str, **fields: object) -> int:  # type: ignore[no-untyped-def]
    """Post a comment through the web form as `who`; returns its id."""
    c = as_member(app, who)
    try:
        r = c.form(f"/proposals/{pid}/comments", {"body": body, **fields})
        assert r.status_code == 303, r.text
        return int(re.search(r"#comment-(\d+)", r.headers["location"]).group(1))
    finally:
        c.__exit__(None, None, None)


def rows(db, kind: str | None = None) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(kind, recipient) of every outbox row about comments (or of one kind)."""
    kinds = (kind,) if kind else ("comment_reply", "mention", "official_response")
    with db.read() as s:
        return sorted(tuple(r) for r in s.execute(select(OutboxMessage.kind, OutboxMessage.to_addr)
                                .where(OutboxMessage.kind.in_(kinds))).all())


def received(sink, address: str, subject_start: str):  # type: ignore[no-untyped-def]
    found = [m.message for m in sink.to(address) if m.message["Subject"].startswith(subject_start)]
    assert len(found) == 1, [m.message["Subject"] for m in sink.to(address)]
    return found[0]


def test_a_reply_mails_the_author_of_the_comment_with_threading_and_a_reply_address(
        mail_app, mail, db, people, proposal, smtp_sink):
    mia, olu = people["mia"], people["olu"]
    top = post(mail_app, mia, proposal, "Green makes the hall feel **calm**.", stance="for")
    assert rows(db) == []  # a top-level comment without mentions concerns nobody yet
    reply = post(mail_app, olu, proposal, "Which green? <script>alert(1)</script>", parent_id=str(top))
    assert rows(db) == [("comment_reply", mia.email)]
    deliver(mail, db)
    msg = received(smtp_sink, mia.email, "Olu Other replied to your comment")
    assert msg["Subject"] == "Olu Other replied to your comment: Paint the hall green?"
    body = text_of(msg)
    assert "Hello Mia Member" in body and "Which green?" in body
    assert "In answer to Mia Member:\n> Green makes the hall feel calm." in body
    assert f"http://testserver/comments/{top}/replies?after={reply - 1}#comment-{reply}" in body
    assert "Reply to this email to answer in the thread" in body
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html  # the sanitizer's output, as on the page
    with db.read() as s:
        public_id = s.get(Proposal, proposal).public_id
    assert msg["In-Reply-To"] == msg["References"] == proposal_thread_id(mail, public_id)
    assert msg["List-Unsubscribe"] and msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] and msg["Auto-Submitted"] == "auto-generated"
    local, domain = str(msg["Reply-To"]).split("@")
    assert domain == REPLY_DOMAIN and local.startswith("reply+") and len(local) <= 64
    token = read_reply_address(mail, str(msg["Reply-To"]))
    assert token is not None and (token.member_id, token.proposal_id, token.comment_id) == (mia.id, proposal, reply)
    assert [m.message["Subject"] for m in smtp_sink.to(olu.email)] == ["Vote: Paint the hall green?"]  # not own


def test_answering_a_reply_mails_both_the_thread_and_the_reply_author_once(mail_app, db, people, proposal):
    mia, olu, bea = people["mia"], people["olu"], people["bea"]
    top = post(mail_app, mia, proposal, "A top comment.")
    post(mail_app, olu, proposal, "Olu answers.", parent_id=str(top))
    # A reply to a reply joins the thread; the author answered hears about it, and so does the thread's author.
    with db.read() as s:
        olus = s.scalar(select(func.max(Comment.id)))
    post(mail_app, bea, proposal, "Bea answers Olu, and @Mia_Member too.", parent_id=str(olus))
    assert rows(db) == sorted([("comment_reply", mia.email), ("comment_reply", mia.email),
                               ("comment_reply", olu.email)])  # the mention adds no second mail for Mia
    with db.read() as s:
        # The mention's notification is taken care of by the reply mail.
        assert s.scalar(select(func.count()).select_from(Notification).where(Notification.sent_at.is_(None))) == 0


def test_a_mention_mails_the_member_named_once_even_after_edits(mail_app, db, people, proposal, smtp_sink, mail):
    mia, olu, bea = people["mia"], people["olu"], people["bea"]
    cid = post(mail_app, mia, proposal, "I think @Olu_Other knows, and `@Bea_Bystander` is code.")
    assert rows(db) == [("mention", olu.email)]
    c = as_member(mail_app, mia)
    try:
        r = c.form(f"/comments/{cid}/edit", {"body": "I think @Olu_Other knows, and @Bea_Bystander too. @Mia_Member"})
        assert r.status_code == 303
    finally:
        c.__exit__(None, None, None)
    assert rows(db) == sorted([("mention", olu.email), ("mention", bea.email)])  # no self-mention, no repeat
    deliver(mail, db)
    msg = received(smtp_sink, bea.email, "Mia Member mentioned you")
    assert "Mia Member mentioned you in a comment on \"Paint the hall green?\"" in text_of(msg)


def test_an_official_response_mails_who_voted_or_commented(mail_app, mail, db, people, smtp_sink):
    ada, mia, olu, bea = people["ada"], people["mia"], people["olu"], people["bea"]
    with db.begin() as s:
        deactivated = make_member(s, email="gone@example.org", name="Gone Away", password=PASSWORD)
        pid = make_proposal(s, title="Secret question", secret=True, state="open").id
    with Client(mail_app, base_url="http://testserver") as c:  # voted (a secret ballot: only that, not how)
        c.sign_in(olu.email)
        assert c.form(f"/proposals/{pid}/vote", {"choice": "no"}).status_code == 303
    with Client(mail_app, base_url="http://testserver") as c:
        c.sign_in(deactivated.email)
        assert c.form(f"/proposals/{pid}/vote", {"choice": "yes"}).status_code == 303
    with db.begin() as s:
        s.get(type(deactivated), deactivated.id).status = "deactivated"
    top = post(mail_app, mia, pid, "Commented, did not vote.")
    smtp_sink.clear()
    post(mail_app, ada, pid, "We will ask the landlord first.", response_status="review")
    assert rows(db) == sorted([("official_response", mia.email), ("official_response", olu.email)])
    assert bea.email not in [to for _, to in rows(db)]  # took no part
    # An official answer to Mia's comment: she took part, so she gets one message about it, not two.
    post(mail_app, ada, pid, "Accepted, thank you.", response_status="accepted", parent_id=str(top))
    assert rows(db, "comment_reply") == []
    deliver(mail, db)
    got = [m.message for m in smtp_sink.to(mia.email) if m.message["Subject"].startswith("Official response")]
    assert len(got) == 2 and all(m["Subject"] == "Official response: Secret question" for m in got)
    texts = sorted(text_of(m) for m in got)
    assert any("Status: Under review" in t and "ask the landlord" in t for t in texts)
    assert any("Status: Accepted" in t and "In answer to Mia Member:\n> Commented, did not vote." in t for t in texts)
    assert "Ada Admin posted an official response on \"Secret question\", a proposal you took part in." in texts[0]
    assert len([m for m in smtp_sink.to(olu.email) if m.message["Subject"].startswith("Official")]) == 2


def test_nobody_who_cannot_see_the_proposal_is_mailed(mail_app, db, people):
    ada, mia = people["ada"], people["mia"]
    with db.begin() as s:
        board = make_group(s, name="Board")
        from app.members.models import GroupMembership

        s.add(GroupMembership(group_id=board.id, member_id=mia.id))
        s.flush()
        pid = make_proposal(s, title="Board only", state="open", groups=(board,)).id
    cid = post(mail_app, mia, pid, "Should @Olu_Other know about this?")
    assert rows(db) == []  # Olu is not in the audience: the mention stays plain text
    post(mail_app, ada, pid, "Not yet.", parent_id=str(cid))
    assert rows(db) == [("comment_reply", mia.email)]


def test_preferences_decide_and_the_digest_lists_what_was_folded(mail_app, mail, db, people, proposal, smtp_sink):
    mia, olu, bea = people["mia"], people["olu"], people["bea"]
    save_prefs(mail_app, mia, comment_reply="digest")
    save_prefs(mail_app, bea, mention="never")
    top = post(mail_app, mia, proposal, "Top comment by Mia.")
    post(mail_app, olu, proposal, "A reply that waits for the digest; hi @Bea_Bystander.", parent_id=str(top))
    assert rows(db) == []  # Mia: digest; Bea: never
    with db.read() as s:
        [item] = s.scalars(select(DigestItem).where(DigestItem.member_id == mia.id)).all()
        assert item.kind == "comment_reply" and item.comment_id is not None
    assert run_due_digests(db, mail, now=utcnow() + dt.timedelta(days=8)) == 1
    deliver(mail, db)
    digest = received(smtp_sink, mia.email, "Your daily digest")
    body = text_of(digest)
    assert "COMMENTS" in body and "Olu Other replied to your comment, on \"Paint the hall green?\"" in body
    assert "A reply that waits for the digest" in body
    assert not [m for m in smtp_sink.to(bea.email) if not m.message["Subject"].startswith("Vote:")]


def test_past_the_weekly_budget_comment_mail_folds_into_the_digest(mail_app, db, people, proposal):
    mia, olu = people["mia"], people["olu"]
    with Client(mail_app, base_url="http://testserver") as boss:
        boss.sign_in(people["ada"].email)
        from tests.functional.test_mail_prefs import ALL_IMMEDIATE

        assert boss.form("/admin/mail", {**ALL_IMMEDIATE, "digest_every": "weekly",
                                         "weekly_budget": "2"}).status_code == 303
    top = post(mail_app, mia, proposal, "Mia's comment.")
    for i in range(3):
        post(mail_app, olu, proposal, f"Reply number {i}.", parent_id=str(top))
    # The announcement counted already: one reply mail fits in the budget of two, the others fold.
    assert rows(db) == [("comment_reply", mia.email)]
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(DigestItem).where(
            DigestItem.member_id == mia.id, DigestItem.kind == "comment_reply")) == 2


def test_a_hidden_comment_takes_its_waiting_mail_and_digest_items_with_it(mail_app, mail, db, people, proposal,
                                                                          smtp_sink):
    ada, mia, olu, bea = people["ada"], people["mia"], people["olu"], people["bea"]
    save_prefs(mail_app, bea, mention="digest")
    top = post(mail_app, mia, proposal, "Mia's comment.")
    bad = post(mail_app, olu, proposal, "Something nasty about @Bea_Bystander.", parent_id=str(top))
    assert rows(db) == [("comment_reply", mia.email)]
    with Client(mail_app, base_url="http://testserver") as boss:
        boss.sign_in(ada.email)
        assert boss.form(f"/comments/{bad}/hide", {"reason": "Personal attack"}).status_code == 303
    assert rows(db) == []
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(DigestItem).where(DigestItem.comment_id == bad)) == 0
    deliver(mail, db)
    assert not [m for m in smtp_sink.messages if "nasty" in text_of(m.message)]


def test_the_digest_leaves_out_a_comment_hidden_after_it_was_folded(mail_app, mail, db, people, proposal):
    from app.mail.digest import build_digest

    mia, olu = people["mia"], people["olu"]
    save_prefs(mail_app, mia, comment_reply="digest")
    top = post(mail_app, mia, proposal, "Mia's comment.")
    bad = post(mail_app, olu, proposal, "Folded, then hidden.", parent_id=str(top))
    with db.begin() as s:  # hidden without the service (as an older release would have): the digest checks too
        s.get(Comment, bad).hidden_at = utcnow()
    with db.begin() as s:
        assert build_digest(s, mail, mia.id, now=utcnow()) is False


def test_a_digest_with_comments_lists_them_in_its_body_and_keeps_a_plain_title(mail_app, mail, db, people, proposal):
    from app.mail.digest import build_digest

    mia, olu = people["mia"], people["olu"]
    save_prefs(mail_app, mia, comment_reply="digest")
    top = post(mail_app, mia, proposal, "Mia's comment.")
    post(mail_app, olu, proposal, "A folded reply worth reading.", parent_id=str(top))
    with db.begin() as s:
        assert build_digest(s, mail, mia.id, now=utcnow()) is True
    with db.read() as s:
        html = s.scalar(select(OutboxMessage.html_body).where(OutboxMessage.kind == "digest",
                                                                OutboxMessage.member_id == mia.id))
    title = re.search(r"<title>(.*?)</title>", html, flags=re.S)
    assert title is not None and "<" not in title.group(1) and "digest" in title.group(1)
    body = html[html.index("<body"):]
    assert body.count("A folded reply worth reading.") == 1 and html.count("A folded reply worth reading.") == 1


def test_announcements_carry_a_reply_address_only_when_replies_are_on(settings, db, admin, member, smtp_sink):
    for domain, expected in ((REPLY_DOMAIN, True), ("off", False), ("", False)):
        smtp_sink.clear()
        mail = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}", reply_domain=domain)
        app = create_app(mail, db=db)
        with db.begin() as s:
            pid = make_proposal(s, title=f"Question {domain}").id
        publish(app, admin, pid)
        deliver(mail, db)
        msg = received(smtp_sink, member.email, "Vote:")
        if expected:
            token = read_reply_address(mail, str(msg["Reply-To"]))
            assert token is not None and (token.member_id, token.proposal_id, token.comment_id) == (member.id, pid,
                                                                                                    None)
            assert "Reply to this email" in text_of(msg) or "Reply to this email" in text_of(msg).replace("\n", " ")
        else:
            assert msg["Reply-To"] is None and "reply to this email" not in text_of(msg).lower()
    # Unset is off, whatever the base URL: nobody is invited to reply to an address no server answers.
    assert dataclasses.replace(settings, base_url="https://vote.example.org", reply_domain="").reply_to_domain is None


def test_the_new_kinds_are_on_the_preferences_pages_and_can_be_unsubscribed(mail_app, mail, db, people, proposal,
                                                                            smtp_sink):
    from bs4 import BeautifulSoup

    from app.mail.models import MailPreference

    ada, mia, olu = people["ada"], people["mia"], people["olu"]
    with Client(mail_app, base_url="http://testserver") as c:
        c.sign_in(mia.email)
        form = BeautifulSoup(c.get("/profile").text, "html.parser").find(id="mail-preferences")
        legends = [legend.get_text(" ", strip=True) for legend in form.find_all("legend")]
        assert any(text.startswith("Replies to my comments") for text in legends)
        assert any(text.startswith("Mentions") for text in legends)
        assert any(text.startswith("Official responses") for text in legends)
    with Client(mail_app, base_url="http://testserver") as boss:
        boss.sign_in(ada.email)
        page = BeautifulSoup(boss.get("/admin/mail").text, "html.parser")
        assert page.select_one("input[name=mode-official_response][value=digest]") is not None
        from tests.functional.test_mail_prefs import ALL_IMMEDIATE

        assert boss.form("/admin/mail", {**ALL_IMMEDIATE, "mode-mention": "never", "digest_every": "weekly",
                                         "weekly_budget": "0"}).status_code == 303
    post(mail_app, olu, proposal, "Hello @Mia_Member.")  # the admins' default now: no mention mail
    assert rows(db) == []
    top = post(mail_app, mia, proposal, "Mia's comment.")
    post(mail_app, olu, proposal, "A reply.", parent_id=str(top))
    deliver(mail, db)
    msg = received(smtp_sink, mia.email, "Olu Other replied")
    path = str(msg["List-Unsubscribe"]).split(",")[0].strip(" <>").removeprefix("http://testserver")
    with Client(mail_app, base_url="http://testserver", cookies=None) as provider:
        r = provider.post(path, content=b"List-Unsubscribe=One-Click",
                          headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200 and "replies to my comments" in r.text
    with db.read() as s:
        assert s.scalar(select(MailPreference.mode).where(MailPreference.member_id == mia.id,
                                                          MailPreference.kind == "comment_reply")) == "never"
    post(mail_app, olu, proposal, "Another reply, not mailed.", parent_id=str(top))
    assert rows(db) == [("comment_reply", mia.email)]


def test_the_outbox_pages_hide_the_reply_token_once_mail_is_sent(mail_app, db, people, proposal):
    ada, mia, olu = people["ada"], people["mia"], people["olu"]
    top = post(mail_app, mia, proposal, "Mia's comment.")
    post(mail_app, olu, proposal, "A reply.", parent_id=str(top))
    with db.read() as s:
        row = s.scalar(select(OutboxMessage).where(OutboxMessage.kind == "comment_reply"))
    token = row.headers["Reply-To"].split("+", 1)[1].split("@")[0]
    with Client(mail_app, base_url="http://testserver") as boss:
        boss.sign_in(ada.email)
        page = boss.get(f"/admin/outbox/{row.id}").text
    assert token not in page and f"reply+hidden@{REPLY_DOMAIN}" in page
