"""The reminder before the deadline, the results at close and the outcome update, through a real SMTP server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select

from app.db import utcnow
from app.jobs.worker import Worker
from app.mail.models import OutboxMessage, ProposalReminder
from app.main import create_app
from app.proposals.models import Proposal
from app.voting import notify, services
from tests.conftest import Client
from tests.factories import make_member, make_proposal
from tests.functional.test_mail_announce import text_of
from tests.functional.test_mail_links import deliver


@pytest.fixture
def mail(settings, smtp_sink):  # type: ignore[no-untyped-def]
    return dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}")


@pytest.fixture
def five(db, admin, member):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        others = [make_member(s, email=f"m{i}@example.org", name=f"Member {i}", password="correct horse battery staple")
                  for i in range(3)]
    return [admin, member, *others]


def one(sink, address: str, subject: str):  # type: ignore[no-untyped-def]
    [msg] = [m.message for m in sink.to(address) if m.message["Subject"].startswith(subject)]
    return msg


def kinds(db, kind: str) -> list[str]:
    with db.read() as s:
        return sorted(s.scalars(select(OutboxMessage.to_addr).where(OutboxMessage.kind == kind)))


def cast(app, who, pid: int, choice: str = "yes") -> None:  # type: ignore[no-untyped-def]
    with Client(app, base_url="http://testserver") as c:
        c.sign_in(who.email)
        assert c.form(f"/proposals/{pid}/vote", {"choice": choice}).status_code == 303


def test_one_reminder_to_non_voters_only_with_the_votes_still_needed(mail, db, five, smtp_sink):
    app = create_app(mail, db=db)
    with db.begin() as s:
        pid = make_proposal(s, title="New boiler?", quorum="3/4", closes_in=dt.timedelta(days=3)).id
        services.open_proposal(s, mail, pid)
        closes_at = s.get(Proposal, pid).closes_at
    voters, waiting = five[:2], five[2:]
    for who in voters:
        cast(app, who, pid)
    assert notify.run_due_reminders(db, mail, now=closes_at - dt.timedelta(hours=25)) == 0  # not yet
    assert kinds(db, "reminder") == []
    at = closes_at - dt.timedelta(hours=23)
    assert notify.run_due_reminders(db, mail, now=at) == 1
    assert notify.run_due_reminders(db, mail, now=at + dt.timedelta(hours=1)) == 0  # once only
    with db.begin() as s:  # a second worker racing for it finds the guard row
        assert notify.remind(s, mail, pid, now=at) is None
    assert kinds(db, "reminder") == sorted(w.email for w in waiting)
    smtp_sink.clear()
    deliver(mail, db)
    msg = one(smtp_sink, waiting[0].email, "Reminder")
    body = text_of(msg)
    assert msg["Subject"].startswith("Reminder: vote on New boiler? by ")
    # 5 eligible, quorum 3/4 -> 4 ballots; 2 cast.
    assert "2 more votes are needed for this decision to count." in body
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with db.read() as s:
        assert s.get(ProposalReminder, pid).recipients == 3


def test_the_worker_sends_the_reminder_and_skips_proposals_opened_inside_the_window(mail, db, five):
    with db.begin() as s:
        late = make_proposal(s, title="Short notice", closes_in=dt.timedelta(hours=5), state="open").id
        normal = make_proposal(s, title="Normal", closes_in=dt.timedelta(days=3), state="open").id
    worker = Worker(dataclasses.replace(mail, smtp_url=""), db, name="test")
    with freeze_time(utcnow() + dt.timedelta(days=2, hours=2)), concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, worker.tick()).result(timeout=60)
    with db.read() as s:
        reminded = dict(s.execute(select(ProposalReminder.proposal_id, ProposalReminder.recipients)).all())
        late_state = s.get(Proposal, late).state
    assert late_state == "closed"  # its deadline passed during the jump; no reminder was ever due for it
    assert reminded == {normal: 5}
    assert len(kinds(db, "reminder")) == 5


def test_no_reminder_without_quorum_sentence_when_none_is_set(mail, db, five):
    with db.begin() as s:
        pid = make_proposal(s, closes_in=dt.timedelta(days=3), state="open").id
        closes_at = s.get(Proposal, pid).closes_at
    notify.run_due_reminders(db, mail, now=closes_at - dt.timedelta(hours=1))
    with db.read() as s:
        body = s.scalar(select(OutboxMessage.text_body).where(OutboxMessage.kind == "reminder").limit(1))
    assert "needed" not in body
    with db.begin() as s:
        other = make_proposal(s, closes_in=dt.timedelta(days=3), state="open").id
    off = dataclasses.replace(mail, reminder_hours=0)
    assert notify.run_due_reminders(db, off, now=closes_at - dt.timedelta(hours=1)) == 0
    with db.read() as s:
        assert s.get(ProposalReminder, other) is None


def test_results_mail_has_the_table_turnout_and_outcome_and_updates_are_opt_in(mail, db, admin, five, smtp_sink):
    app = create_app(mail, db=db)
    with db.begin() as s:
        pid = make_proposal(s, method="single", options=("Red", "Green"), title="Door colour", state="open").id
    from tests.functional.test_voting import option_ids

    red, green = option_ids(db, pid)
    for who, pick in zip(five[:3], (green, green, red), strict=True):
        cast(app, who, pid, str(pick))
    with db.begin() as s:
        services.close_proposal(s, mail, pid, actor_id=admin.id, reason="Enough", org_name="Riverside Tenants")
    assert len(kinds(db, "results")) == 5
    smtp_sink.clear()
    deliver(mail, db)
    msg = one(smtp_sink, "m0@example.org", "Result")
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert msg["Subject"] == "Result: Door colour"
    assert "Most votes: Green, 2" in html and "<table" in html and "<img" not in html
    assert "Turnout: 3 of 5 eligible members (60.0%)" in text_of(msg)
    with db.read() as s:
        public_id = s.get(Proposal, pid).public_id
    assert msg["References"] == f"<proposal-{public_id}@testserver>" == msg["In-Reply-To"]

    with Client(app, base_url="http://testserver") as boss:
        boss.sign_in(admin.email)
        assert boss.form(f"/admin/proposals/{pid}/outcome", {"outcome": "We paint it **green**."}).status_code == 303
        assert kinds(db, "outcome_update") == []  # the box was not ticked
        r = boss.form(f"/admin/proposals/{pid}/outcome", {"outcome": "We paint it green in May.", "notify": "1"})
        assert r.status_code == 303
    assert len(kinds(db, "outcome_update")) == 5
    with db.begin() as s:  # the same revision again queues nothing
        p = s.get(Proposal, pid)
        assert notify.enqueue_outcome_update(s, mail, p).sent == 0
    smtp_sink.clear()
    deliver(mail, db)
    update = one(smtp_sink, admin.email, "Outcome")
    assert update["Subject"] == "Outcome: Door colour"
    assert "We paint it green in May." in text_of(update)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)
                        .where(OutboxMessage.kind == "outcome_update")) == 5
