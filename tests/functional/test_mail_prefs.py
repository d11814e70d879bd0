"""Members' email preferences, the admins' defaults and weekly budget, the digest, one-click unsubscribe, and
which messages carry the bulk-mail headers."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select

from app.db import utcnow
from app.mail.digest import run_due_digests
from app.mail.headers import unsubscribe_token
from app.mail.models import DigestItem, MailPreference, MemberMailSettings, OrgMailSettings, OutboxMessage
from app.mail.policy import PREF_KINDS
from app.main import create_app
from app.proposals.models import Proposal
from app.voting import services
from tests.conftest import Client
from tests.factories import make_member, make_proposal
from tests.functional.test_mail_announce import publish, text_of
from tests.functional.test_mail_links import deliver

ALL_IMMEDIATE = {f"mode-{k}": "immediately" for k in PREF_KINDS}


@pytest.fixture
def mail(settings, smtp_sink):  # type: ignore[no-untyped-def]
    return dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}")


@pytest.fixture
def mail_app(mail, db):  # type: ignore[no-untyped-def]
    return create_app(mail, db=db)


def outbox(db, kind: str, to: str | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        q = select(OutboxMessage.to_addr).where(OutboxMessage.kind == kind)
        return sorted(s.scalars(q.where(OutboxMessage.to_addr == to) if to else q))


def items(db, member_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return list(s.scalars(select(DigestItem.key).where(DigestItem.member_id == member_id,
                                                           DigestItem.digested_at.is_(None))))


def save_prefs(app, who, **modes: str) -> None:  # type: ignore[no-untyped-def]
    with Client(app, base_url="http://testserver") as c:
        c.sign_in(who.email)
        data = {**ALL_IMMEDIATE, "digest_every": "daily", **{f"mode-{k}": v for k, v in modes.items()}}
        r = c.form("/profile/mail", data)
        assert r.status_code == 303 and r.headers["location"] == "/profile#mail"


def test_profile_shows_and_saves_preferences_without_javascript(member_client, db, member):
    page = BeautifulSoup(member_client.get("/profile").text, "html.parser")
    form = page.find(id="mail-preferences")
    assert form["method"] == "post" and form.find("input", {"name": "csrf_token"})
    assert form.select_one("input[name=mode-announcement][value=immediately]").has_attr("checked")
    assert form.select_one("input[name=digest_every][value=weekly]").has_attr("checked")
    r = member_client.form("/profile/mail", {**ALL_IMMEDIATE, "mode-reminder": "never", "mode-results": "digest",
                                             "digest_every": "daily", "unsubscribed_all": "1"})
    assert r.status_code == 303
    with db.read() as s:
        assert dict(s.execute(select(MailPreference.kind, MailPreference.mode)).all()) == {
            **dict.fromkeys(PREF_KINDS, "immediately"), "reminder": "never", "results": "digest"}
        settings_row = s.get(MemberMailSettings, member.id)
        assert settings_row.digest_every == "daily" and settings_row.unsubscribed_all
    page = BeautifulSoup(member_client.get("/profile").text, "html.parser")
    assert page.select_one("input[name=mode-reminder][value=never]").has_attr("checked")
    assert page.select_one("input[name=unsubscribed_all]").has_attr("checked")
    assert member_client.form("/profile/mail", {**ALL_IMMEDIATE, "mode-reminder": "loud",
                                                "digest_every": "daily"}).status_code == 400
    assert member_client.post("/profile/mail", data=ALL_IMMEDIATE).status_code == 403  # CSRF


def test_never_means_nothing_and_digest_means_folded_then_one_digest(mail_app, mail, db, admin, member, smtp_sink):
    with db.begin() as s:
        quiet = make_member(s, email="quiet@example.org", name="Quiet", password="correct horse battery staple")
    save_prefs(mail_app, quiet, announcement="never")
    save_prefs(mail_app, member, announcement="digest", results="digest")
    with db.begin() as s:
        first = make_proposal(s, title="First question").id
        second = make_proposal(s, title="Second question", method="single", options=("A", "B")).id
    publish(mail_app, admin, first)
    publish(mail_app, admin, second)
    assert outbox(db, "announcement") == [admin.email, admin.email]
    assert sorted(items(db, member.id)) == [f"announcement:p{first}", f"announcement:p{second}"]
    assert items(db, quiet.id) == []

    assert run_due_digests(db, mail) == 0  # a daily digest waits a day after its first item
    with db.begin() as s:
        services.close_proposal(s, mail, second, actor_id=admin.id, reason="Done")
    assert f"results:p{second}" in items(db, member.id)
    later = utcnow() + dt.timedelta(days=1, minutes=1)
    assert run_due_digests(db, mail, now=later) == 1
    assert run_due_digests(db, mail, now=later) == 0  # items are marked: no second digest
    assert items(db, member.id) == [] and outbox(db, "digest") == [member.email]
    smtp_sink.clear()
    deliver(mail, db)
    [digest] = [m.message for m in smtp_sink.to(member.email) if "digest" in m.message["Subject"]]
    body = text_of(digest)
    assert digest["Subject"] == "Your daily digest from Riverside Tenants"
    assert "OPEN FOR YOUR VOTE" in body and "First question" in body and "Yes:\n  http://testserver/vote/" in body
    assert "RESULTS" in body and "Second question" in body
    assert body.count("Second question") == 1  # closed: only among the results, not open for a vote
    assert digest["List-Unsubscribe"] and digest["List-Id"] and "In-Reply-To" not in digest
    assert not [m for m in smtp_sink.to(quiet.email) if m.message["Subject"].startswith("Vote:")]


def test_results_of_a_vote_cannot_be_turned_off_unless_everything_is(mail_app, mail, db, admin, member):
    with db.begin() as s:
        everything = make_member(s, email="none@example.org", name="No Mail", password="correct horse battery staple")
        pid = make_proposal(s, state="open").id
    for who in (member, everything):
        save_prefs(mail_app, who, results="never")
        with Client(mail_app, base_url="http://testserver") as c:
            c.sign_in(who.email)
            c.form(f"/proposals/{pid}/vote", {"choice": "yes"})
    with Client(mail_app, base_url="http://testserver") as c:
        c.sign_in(everything.email)
        c.form("/profile/mail", {**ALL_IMMEDIATE, "digest_every": "weekly", "unsubscribed_all": "1"})
    with db.begin() as s:
        services.close_proposal(s, mail, pid, actor_id=None)
    assert outbox(db, "results") == sorted([admin.email, member.email])
    assert outbox(db, "vote_confirmation") == [member.email, everything.email]  # before it unsubscribed


def test_past_the_weekly_budget_mail_folds_into_the_digest(mail_app, mail, db, admin, member):
    with Client(mail_app, base_url="http://testserver") as boss:
        boss.sign_in(admin.email)
        page = BeautifulSoup(boss.get("/admin/mail").text, "html.parser")
        assert page.select_one("input[name=weekly_budget]")["value"] == "5"
        bad = boss.form("/admin/mail", {**ALL_IMMEDIATE, "digest_every": "weekly", "weekly_budget": "-3"})
        assert bad.status_code == 400
        r = boss.form("/admin/mail", {**ALL_IMMEDIATE, "mode-outcome_update": "digest", "digest_every": "weekly",
                                      "weekly_budget": "2"})
        assert r.status_code == 303
    with db.read() as s:
        row = s.get(OrgMailSettings, 1)
        assert (row.weekly_budget, row.defaults["outcome_update"]) == (2, "digest")
    with db.begin() as s:
        pids = [make_proposal(s, title=f"Question {i}").id for i in range(3)]
    for pid in pids:
        publish(mail_app, admin, pid)
    assert outbox(db, "announcement", member.email) == [member.email] * 2
    assert items(db, member.id) == [f"announcement:p{pids[2]}"]
    with Client(mail_app, base_url="http://testserver") as c:  # vote confirmations are outside the budget
        c.sign_in(member.email)
        assert c.form(f"/proposals/{pids[0]}/vote", {"choice": "yes"}).status_code == 303
    assert outbox(db, "vote_confirmation") == [member.email]
    with Client(mail_app, base_url="http://testserver") as c:  # neither are sign-in links
        c.form("/signin/link", {"email": member.email})
    assert outbox(db, "signin_link") == [member.email]


def test_one_click_unsubscribe(mail_app, mail, db, admin, member, smtp_sink):
    with db.begin() as s:
        pid = make_proposal(s, title="Bike racks?").id
    publish(mail_app, admin, pid)
    deliver(mail, db)
    [msg] = [m.message for m in smtp_sink.to(member.email)]
    https, mailto = [part.strip(" <>") for part in msg["List-Unsubscribe"].split(",")]
    assert https.startswith("http://testserver/unsubscribe/")
    token = https.rsplit("/", 1)[1]
    assert mailto == f"mailto:unsubscribe+{token}@testserver"
    assert f'href="{https}"' in msg.get_body(preferencelist=("html",)).get_content()
    path = https.removeprefix("http://testserver")

    def prefs() -> dict[str, str]:
        with db.read() as s:
            return dict(s.execute(select(MailPreference.kind, MailPreference.mode)
                                  .where(MailPreference.member_id == member.id)).all())

    with Client(mail_app, base_url="http://testserver") as scanner:
        for _ in range(3):
            page = scanner.get(path)
            assert page.status_code == 200 and "Unsubscribe" in page.text
        assert prefs() == {}
        # The token is no session: it opens no profile and votes on nothing.
        scanner.cookies.set("plenary_session", token)
        profile = scanner.get("/profile", follow_redirects=False)
        assert profile.status_code == 303 and profile.headers["location"].startswith("/signin")
        assert scanner.get(f"/vote/{token}").status_code == 400
        assert scanner.get(f"/profile?token={token}", follow_redirects=False).status_code == 303

    # RFC 8058: a POST with this body and no cookies at all, as a mail provider sends it.
    with Client(mail_app, base_url="http://testserver", cookies=None) as provider:
        r = provider.post(path, content=b"List-Unsubscribe=One-Click",
                          headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200 and "unsubscribed" in r.text
    assert prefs() == {"announcement": "never"}
    with db.read() as s:
        assert s.get(MemberMailSettings, member.id) is None  # only that kind

    with Client(mail_app, base_url="http://testserver") as c:  # "stop all email", from the page's other button
        assert c.post(path, data={"everything": "1"}).status_code == 200
    with db.read() as s:
        assert s.get(MemberMailSettings, member.id).unsubscribed_all


def test_tampered_unsubscribe_tokens_are_refused_alike(client, mail, db, member):
    real = unsubscribe_token(mail, member.id, "announcement")
    ghost = unsubscribe_token(mail, 999_999, "announcement")
    answers = []
    for token in (real[:-1] + ("0" if real[-1] != "0" else "1"), ghost[:-1] + ("0" if ghost[-1] != "0" else "1"),
                  real.replace("announcement", "results"), f"{member.id}-digest-zz", "x" * 43):
        for method in ("GET", "POST"):
            r = client.request(method, f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click",
                               headers={"content-type": "application/x-www-form-urlencoded"})
            assert r.status_code == 400, (token, method)
            answers.append(r.text.replace(token, "TOKEN"))
    assert len(set(answers)) == 1  # nothing tells a member who exists from one who does not
    # A valid token for a member who no longer exists is answered like any other.
    r = client.post(f"/unsubscribe/{ghost}", content=b"List-Unsubscribe=One-Click",
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(MailPreference)) == 0


def test_bulk_headers_on_mailings_none_on_account_mail(mail_app, mail, db, admin, member, smtp_sink):
    with db.begin() as s:
        pid = make_proposal(s, secret=False).id
    publish(mail_app, admin, pid)
    with Client(mail_app, base_url="http://testserver") as c:
        c.form("/signin/link", {"email": member.email})
    with Client(mail_app, base_url="http://testserver") as boss:
        boss.sign_in(admin.email)
        boss.form("/admin/members/invite", {"name": "Noor", "email": "noor@example.org"})
        boss.form(f"/proposals/{pid}/vote", {"choice": "yes"})
    deliver(mail, db)
    by_subject = {m.message["Subject"]: m.message for m in smtp_sink.messages}
    with db.read() as s:
        public_id = s.get(Proposal, pid).public_id
    bulk = [m for subject, m in by_subject.items() if subject.startswith("Vote:")]
    assert len({m.message["Message-ID"] for m in smtp_sink.messages}) == len(smtp_sink.messages)
    for m in bulk:
        assert m["List-Unsubscribe"].startswith("<http://testserver/unsubscribe/")
        assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert m["List-Id"] == "<riverside-tenants.plenary.testserver>"
        assert m["Auto-Submitted"] == "auto-generated"
        assert m["In-Reply-To"] == m["References"] == f"<proposal-{public_id}@testserver>"
        assert m["Message-ID"].endswith("@testserver>")
    account = [m for subject, m in by_subject.items()
               if subject.startswith(("Sign in", "You are invited", "Your vote on"))]
    assert len(account) == 3
    for m in account:
        assert m["List-Unsubscribe"] is None and m["List-Unsubscribe-Post"] is None and m["List-Id"] is None
    assert by_subject[next(s for s in by_subject if s.startswith("Your vote on"))]["References"] == \
        f"<proposal-{public_id}@testserver>"



def test_only_admins_set_the_defaults(member_client, client, db):
    assert member_client.get("/admin/mail").status_code == 403
    assert member_client.form("/admin/mail", {**ALL_IMMEDIATE, "digest_every": "daily",
                                              "weekly_budget": "0"}).status_code == 403
    assert client.get("/admin/mail", follow_redirects=False).status_code == 303  # signed out: to sign-in
    with db.read() as s:
        assert s.get(OrgMailSettings, 1) is None
