"""Action steps: committing, capacity and the waiting list, withdrawing, reporting done, the calendar file,
admins' messages, and the participation funnel against a seeded scenario with known numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from icalendar import Calendar
from sqlalchemy import delete, select

from app.actions import funnel, services
from app.actions.models import ActionStep, Campaign, Commitment, PageView
from app.actions.services import ActionError, StepData
from app.db import utcnow
from app.mail.models import OutboxMessage
from app.middleware import CurrentMember
from app.voting.models import Participation
from tests.factories import make_comment, make_group, make_member, make_proposal


def me(m) -> CurrentMember:  # type: ignore[no-untyped-def]
    return CurrentMember(id=m.id, name=m.name, email=m.email, role=m.role, session_id=0)


def shift(s, proposal_id: int, *, capacity: int | None = 2, starts_in: dt.timedelta = dt.timedelta(days=3)):
    start = utcnow().replace(microsecond=0) + starts_in
    return services.create_step(s, StepData(kind="shift", title="River clean-up", place="Old bridge",
                                            starts_at=start, ends_at=start + dt.timedelta(hours=3),
                                            capacity=capacity, description="Bring gloves"),
                                proposal_id=proposal_id)


@pytest.fixture
def proposal(db, admin, member):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        return make_proposal(s, state="open", created_by=admin.id)


def outbox(db, kind: str) -> list[OutboxMessage]:
    with db.read() as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)))


def test_commit_sends_a_calendar_invitation_that_parses(db, settings, proposal, member):
    with db.begin() as s:
        step = shift(s, proposal.id)
        c = services.commit(s, settings, me(member), step.id)
    assert c.status == "committed"
    [msg] = outbox(db, "commitment")
    assert msg.to_addr == member.email and msg.subject.startswith("You're in")
    [att] = msg.attachments
    assert att["mime_type"] == "text/calendar" and att["method"] == "REQUEST"
    cal = Calendar.from_ical(att["content"])
    assert str(cal["METHOD"]) == "REQUEST"
    [event] = cal.walk("VEVENT")
    assert str(event["UID"]) == f"commitment-{c.id}@testserver"
    assert event["SEQUENCE"] == 0 and str(event["SUMMARY"]) == "River clean-up"
    assert event.decoded("DTSTART") == step.starts_at
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert cal.walk("VTIMEZONE")
    # The shift moves: the same event (UID) comes again with a higher SEQUENCE.
    with db.begin() as s:
        data = StepData(kind="shift", title="River clean-up", place="New bridge", starts_at=step.starts_at,
                        ends_at=step.ends_at, capacity=2)
        services.update_step(s, settings, step.id, data)
    update = outbox(db, "commitment")[-1]
    event2 = Calendar.from_ical(update.attachments[0]["content"]).walk("VEVENT")[0]
    assert str(event2["UID"]) == str(event["UID"]) and event2["SEQUENCE"] == 1
    assert str(event2["LOCATION"]) == "New bridge"


def test_full_shift_waitlists_and_withdrawal_promotes_the_first(db, settings, proposal, member):
    with db.begin() as s:
        step = shift(s, proposal.id, capacity=1)
        others = [make_member(s) for _ in range(2)]
    with db.begin() as s:
        first = services.commit(s, settings, me(member), step.id)
        w1 = services.commit(s, settings, me(others[0]), step.id)
        w2 = services.commit(s, settings, me(others[1]), step.id)
    assert (first.status, w1.status, w2.status) == ("committed", "waitlisted", "waitlisted")
    assert w1.position < w2.position
    with db.begin() as s:
        promoted = services.withdraw(s, settings, me(member), first.id)
    assert promoted is not None and promoted.member_id == others[0].id
    with db.read() as s:
        assert s.get(Commitment, w1.id).status == "committed"
        assert s.get(Commitment, w2.id).status == "waitlisted"
        assert services.progress(s, [step.id])[step.id].committed == 1
    promoted_mail = [m for m in outbox(db, "commitment") if m.to_addr == others[0].email][-1]
    assert "A place opened up" in promoted_mail.subject and promoted_mail.attachments


def test_refusals_change_nothing(db, settings, proposal, member, admin):
    with db.begin() as s:
        step = shift(s, proposal.id)
        pledge = services.create_step(s, StepData(kind="pledge", title="Bags", goal=50, unit="bags"),
                                      proposal_id=proposal.id)
        task = services.create_step(s, StepData(kind="task", title="Print flyers", capacity=1),
                                    proposal_id=proposal.id)
        other = make_member(s)
    with db.begin() as s:
        c = services.commit(s, settings, me(member), step.id)
        services.commit(s, settings, me(other), task.id)
    cases = [
        (lambda s: services.commit(s, settings, me(member), step.id), "already signed up"),
        (lambda s: services.commit(s, settings, me(member), task.id), "full"),
        (lambda s: services.commit(s, settings, me(member), pledge.id, quantity="-3"), "whole number"),
        (lambda s: services.commit(s, settings, me(member), pledge.id, quantity="999999"), "whole number"),
        (lambda s: services.commit(s, settings, me(member), pledge.id, quantity="1e9"), "whole number"),
        (lambda s: services.mark_done(s, me(other), c.id), "not one of your"),
        (lambda s: services.withdraw(s, settings, me(other), c.id), "not one of your"),
    ]
    for action, words in cases:
        with pytest.raises(ActionError, match=words), db.begin() as s:
            action(s)
    with db.read() as s:
        assert s.get(Commitment, c.id).status == "committed"
        assert services.progress(s, [pledge.id])[pledge.id].pledged == 0


def test_withdrawing_after_the_shift_started_is_refused(db, settings, proposal, member):
    with db.begin() as s:
        step = shift(s, proposal.id)
        c = services.commit(s, settings, me(member), step.id)
        s.get(ActionStep, step.id).starts_at = utcnow() - dt.timedelta(minutes=5)
    with pytest.raises(ActionError, match="already started"), db.begin() as s:
        services.withdraw(s, settings, me(member), c.id)
    with db.read() as s:
        assert s.get(Commitment, c.id).status == "committed"


def test_pledge_done_and_totals(db, settings, proposal, member):
    with db.begin() as s:
        pledge = services.create_step(s, StepData(kind="pledge", title="Bags", goal=50, unit="bags"),
                                      proposal_id=proposal.id)
        c = services.commit(s, settings, me(member), pledge.id, quantity="2")
        services.mark_done(s, me(member), c.id, note="Brought them")
    with db.read() as s:
        p = services.progress(s, [pledge.id])[pledge.id]
        assert (p.pledged, p.done, p.committed) == (2, 1, 1)
        assert s.get(Commitment, c.id).note == "Brought them"
    with pytest.raises(ActionError, match="already reported"), db.begin() as s:
        services.mark_done(s, me(member), c.id)


def test_only_members_who_can_see_may_commit(db, settings, admin, member):
    with db.begin() as s:
        g = make_group(s)
        outsider_only = make_proposal(s, state="open", groups=(g,), created_by=admin.id)
        step = services.create_step(s, StepData(kind="task", title="Help"), proposal_id=outsider_only.id)
        hidden = Campaign(title="Secret plan", group_id=g.id, published=True)
        s.add(hidden)
        s.flush()
        step2 = services.create_step(s, StepData(kind="task", title="Help"), campaign_id=hidden.id)
    for sid in (step.id, step2.id):
        with pytest.raises(services.NotFound), db.begin() as s:
            services.commit(s, settings, me(member), sid)


def test_admin_message_reaches_the_committed_with_unsubscribe_headers(db, settings, proposal, member):
    with db.begin() as s:
        step = shift(s, proposal.id, capacity=1)
        waiting = make_member(s)
        services.commit(s, settings, me(member), step.id)
        services.commit(s, settings, me(waiting), step.id)
        n = services.message_committed(s, settings, step, subject="Meet at the other bridge", body="See you!")
    assert n == 1
    [msg] = outbox(db, "action_message")
    assert msg.to_addr == member.email and "List-Unsubscribe" in msg.headers


def test_reminder_once_a_day_before(db, settings, proposal, member):
    with db.begin() as s:
        step = shift(s, proposal.id, starts_in=dt.timedelta(hours=20))
        services.commit(s, settings, me(member), step.id)
    for _ in range(2):
        with db.begin() as s:
            services.send_reminders(s, settings)
    assert len(outbox(db, "shift_reminder")) == 1


def test_funnel_counts_a_seeded_scenario(db, settings, admin):
    """10 eligible (6 in group A); 8 sent; 7 opened; 5 voted or commented; 3 committed; 1 done."""
    with db.begin() as s:
        group_a = make_group(s, name="A")
        people = [make_member(s, groups=(group_a,) if i < 6 else ()) for i in range(9)]  # + the admin = 10
        p = make_proposal(s, state="open", created_by=admin.id)
        everyone = [admin, *people]
        # Opening announced it to everyone; two of them had turned announcements off.
        s.execute(delete(OutboxMessage).where(OutboxMessage.member_id.in_([m.id for m in everyone[8:]])))
        for m in everyone[:7]:
            services.record_view(s, m.id, proposal_id=p.id)
        services.record_view(s, everyone[0].id, proposal_id=p.id)  # a second view counts once
        for m in everyone[:4]:
            s.add(Participation(proposal_id=p.id, member_id=m.id, voted_on=dt.date.today()))
        make_comment(s, p, everyone[3])  # voted and commented: counted once
        make_comment(s, p, everyone[4])
        step = services.create_step(s, StepData(kind="task", title="Help"), proposal_id=p.id)
        for m in everyone[1:4]:
            s.add(Commitment(step_id=step.id, member_id=m.id, status="committed"))
        s.flush()
        s.scalar(select(Commitment).where(Commitment.member_id == everyone[1].id)).status = "done"
    with db.read() as s:
        f = funnel.for_proposal(s, p.id)
        assert s.scalar(select(PageView.id).where(PageView.member_id == everyone[0].id)) is not None
    assert [st.count for st in f.overall.stages] == [10, 8, 7, 5, 3, 1]
    assert [round(st.rate, 3) if st.rate else None for st in f.overall.stages] == [
        None, 0.8, 0.875, round(5 / 7, 3), 0.6, round(1 / 3, 3)]
    [row_a] = f.groups
    # Group A: people[0..5] = everyone[1..6]
    assert row_a.name == "A" and [st.count for st in row_a.stages] == [6, 6, 6, 4, 3, 1]


def test_dashboard_months(db, settings, proposal, member):
    with db.begin() as s:
        step = shift(s, proposal.id)
        services.commit(s, settings, me(member), step.id)
    with db.read() as s:
        months = funnel.dashboard(s, now=utcnow())
    assert len(months) == 12 and months[-1].commitments == 1


def test_the_worker_queues_shift_reminders_once(db, settings, proposal, member):
    import asyncio
    import dataclasses

    from app.jobs.worker import Worker

    with db.begin() as s:
        soon = shift(s, proposal.id, starts_in=dt.timedelta(hours=20))
        later = shift(s, proposal.id, starts_in=dt.timedelta(days=3))
        services.commit(s, settings, me(member), soon.id)
        services.commit(s, settings, me(member), later.id)
    worker = Worker(dataclasses.replace(settings, smtp_url=""), db, name="test")
    first = asyncio.run(worker.tick())
    [reminder] = outbox(db, "shift_reminder")
    assert reminder.to_addr == member.email and reminder.attachments
    assert str(Calendar.from_ical(reminder.attachments[0]["content"]).walk("VEVENT")[0]["UID"]).startswith(
        "commitment-")
    second = asyncio.run(worker.tick())
    assert len(outbox(db, "shift_reminder")) == 1  # idempotent: the next tick (or worker) queues nothing
    assert first >= 1 and second == 0  # an idle worker is not kept busy by reminders already sent
    with db.begin() as s:
        assert services.send_reminders(s, settings) == 0
