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
        (lambda s: services.commit(s, settings, me(member), pledge.id, quantity="1000001"), "whole number"),
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
    """11 eligible (e1-e6 in group A) and one member outside the audience who has rows of every kind anyway.

    sent: e0-e7 by email, e10 folded into the digest (e8, e9 had announcements off) = 9
    opened: views by e0-e5, e6 from a vote link in an email; e8 commented and e9 signed up without a recorded view
            (they saw it) = 9, of whom 7 were sent the announcement
    engaged: e0-e3 and e6 voted, e3 and e8 commented = 6
    committed: e1-e3 and e9 (e4 only waits for a place on a full shift: not committed) = 4, 3 of them engaged
    done: e1 = 1
    """
    from app.mail.models import DigestItem

    with db.begin() as s:
        group_a = make_group(s, name="A")
        people = [make_member(s, groups=(group_a,) if i < 6 else ()) for i in range(10)]
        p = make_proposal(s, state="open", created_by=admin.id)
        e = [admin, *people]
        outsider = make_member(s, groups=(group_a,))  # joined after voting opened: not eligible
        s.execute(delete(OutboxMessage).where(OutboxMessage.member_id.in_([m.id for m in e[8:]])))
        for m in (e[10], outsider):
            s.add(DigestItem(member_id=m.id, kind="announcement", proposal_id=p.id, key=f"announcement:p{p.id}"))
        for m in e[:6]:
            services.record_view(s.connection(), m.id, proposal_id=p.id)
        # A second view counts once, as the first.
        services.record_view(s.connection(), e[0].id, proposal_id=p.id, via="email")
        services.record_view(s.connection(), e[6].id, proposal_id=p.id, via="email")
        for m in (*e[:4], e[6]):
            s.add(Participation(proposal_id=p.id, member_id=m.id, voted_on=dt.date.today(),
                                via="email" if m is e[6] else "web"))
        make_comment(s, p, e[3])  # voted and commented: counted once
        make_comment(s, p, e[8])
        task = services.create_step(s, StepData(kind="task", title="Help"), proposal_id=p.id)
        full = services.create_step(s, StepData(kind="shift", title="Shift", capacity=1,
                                                starts_at=utcnow() + dt.timedelta(days=2),
                                                ends_at=utcnow() + dt.timedelta(days=2, hours=1)), proposal_id=p.id)
        for m in (e[1], e[3], e[9]):
            s.add(Commitment(step_id=task.id, member_id=m.id, status="done" if m is e[1] else "committed"))
        s.add(Commitment(step_id=full.id, member_id=e[2].id, status="committed"))
        s.add(Commitment(step_id=full.id, member_id=e[4].id, status="waitlisted", position=1))
        s.add(Commitment(step_id=task.id, member_id=e[5].id, status="withdrawn"))
        # The outsider somehow has a view, a participation, a comment, a commitment and an announcement.
        services.record_view(s.connection(), outsider.id, proposal_id=p.id)
        s.add(Participation(proposal_id=p.id, member_id=outsider.id, voted_on=dt.date.today()))
        make_comment(s, p, outsider)
        s.add(Commitment(step_id=task.id, member_id=outsider.id, status="done"))
    with db.read() as s:
        f = funnel.for_proposal(s, p.id)
        assert s.scalar(select(PageView.via).where(PageView.member_id == e[0].id)) == "web"
    overall = f.overall.stages
    assert [st.count for st in overall] == [11, 9, 9, 6, 4, 1]
    assert [st.carried for st in overall] == [11, 9, 7, 6, 3, 1]
    assert [st.outside for st in overall] == [0, 0, 2, 0, 1, 0]
    assert [round(st.rate, 4) if st.rate is not None else None for st in overall] == [
        None, round(9 / 11, 4), round(7 / 9, 4), round(6 / 9, 4), 0.5, 0.25]
    [row_a] = f.groups  # e1-e6; the outsider is in A too, and not counted
    assert row_a.name == "A"
    assert [st.count for st in row_a.stages] == [6, 6, 6, 4, 3, 1]
    assert [round(st.rate, 4) if st.rate is not None else None for st in row_a.stages] == [
        None, 1.0, 1.0, round(4 / 6, 4), 0.75, round(1 / 3, 4)]
    for row in (f.overall, *f.groups):
        assert all(st.rate is None or 0 <= st.rate <= 1 for st in row.stages)
    assert any("1 of those who opened the page first opened it from a vote link" in n for n in f.notes)
    assert any(n.startswith("1 on a waiting list only") for n in f.notes)


def test_campaign_funnel_counts_its_audience_only(db, settings, admin):
    from app.actions import campaigns

    with db.begin() as s:
        g = make_group(s, name="Gardeners")
        inside = [make_member(s, groups=(g,)) for _ in range(4)]
        outside = make_member(s)
        data = campaigns.CampaignData(title="Plant trees", group_id=g.id, publish=True)
        c = campaigns.create_campaign(s, settings, data, actor_id=admin.id)
        step = services.create_step(s, StepData(kind="task", title="Dig", capacity=1), campaign_id=c.id)
        services.record_view(s.connection(), inside[0].id, campaign_id=c.id)
        services.record_view(s.connection(), outside.id, campaign_id=c.id)
        s.add(Commitment(step_id=step.id, member_id=inside[1].id, status="done"))
        s.add(Commitment(step_id=step.id, member_id=inside[2].id, status="waitlisted", position=1))
        s.add(Commitment(step_id=step.id, member_id=outside.id, status="committed"))
    with db.read() as s:
        f = funnel.for_campaign(s, c.id)
    assert [st.key for st in f.overall.stages] == ["eligible", "sent", "opened", "committed", "done"]
    assert [st.count for st in f.overall.stages] == [4, 4, 2, 1, 1]
    assert any("no “Voted or commented” stage" in n for n in f.notes)


def test_dashboard_months(db, settings, proposal, member):
    with db.begin() as s:
        step = shift(s, proposal.id, capacity=1)
        services.commit(s, settings, me(member), step.id)
        services.commit(s, settings, me(make_member(s)), step.id)  # waitlisted: not a commitment made
    with db.read() as s:
        months = funnel.dashboard(s, now=utcnow())
    assert len(months) == 12 and months[-1].commitments == 1


def _statements(db):  # type: ignore[no-untyped-def]
    import contextlib

    from sqlalchemy import event

    @contextlib.contextmanager
    def counting():  # type: ignore[no-untyped-def]
        seen: list[str] = []

        def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
            if statement.lstrip().upper().startswith("SELECT"):
                seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            yield seen
        finally:
            event.remove(db.engine, "before_cursor_execute", count)

    return counting()


def _closed(s, admin_id: int, voters: int, closed_at: dt.datetime):  # type: ignore[no-untyped-def]
    p = make_proposal(s, state="open", created_by=admin_id)
    for m in [make_member(s) for _ in range(voters)]:
        s.add(Participation(proposal_id=p.id, member_id=m.id, voted_on=closed_at.date()))
    p.state, p.closed_at, p.eligible_count = "closed", closed_at, 10
    return p


def test_dashboard_is_a_fixed_number_of_queries(db, settings, admin):
    now = utcnow()
    with db.begin() as s:
        _closed(s, admin.id, 3, now)
    with db.read() as s, _statements(db) as one:
        months = funnel.dashboard(s, now=now)
    assert (months[-1].eligible, months[-1].voted) == (10, 3)
    last_month = (now.replace(day=1) - dt.timedelta(days=1)).replace(hour=12)
    with db.begin() as s:
        for voters in (1, 2, 4):
            _closed(s, admin.id, voters, now)
        _closed(s, admin.id, 5, last_month)
        _closed(s, admin.id, 9, now - dt.timedelta(days=400))  # older than twelve months: not shown
    with db.read() as s, _statements(db) as many:
        months = funnel.dashboard(s, now=now)
    assert len(many) == len(one) <= 4
    assert (months[-1].eligible, months[-1].voted) == (40, 10)
    assert (months[-2].eligible, months[-2].voted) == (10, 5)
    assert sum(m.eligible for m in months) == 50


def test_signing_up_again_after_withdrawing_supersedes_the_cancellation(db, settings, proposal, member):
    """Every calendar file for one commitment has the same UID and a higher SEQUENCE than the one before."""
    with db.begin() as s:
        step = shift(s, proposal.id, capacity=1)
        c = services.commit(s, settings, me(member), step.id)
    with db.begin() as s:
        services.withdraw(s, settings, me(member), c.id)
    with db.begin() as s:
        services.commit(s, settings, me(member), step.id)
    with db.begin() as s:  # moved: an update
        moved = StepData(kind="shift", title="River clean-up", place="New bridge", capacity=1,
                         starts_at=step.starts_at + dt.timedelta(hours=1), ends_at=step.ends_at)
        services.update_step(s, settings, step.id, moved)
    with db.begin() as s:  # withdraw again, while someone else takes the place; then back on the waiting list
        services.withdraw(s, settings, me(member), c.id)
        services.commit(s, settings, me(make_member(s)), step.id)
        again = services.commit(s, settings, me(member), step.id)
        assert again.status == "waitlisted"
        first = s.scalar(select(Commitment).where(Commitment.step_id == step.id, Commitment.status == "committed"))
    with db.begin() as s:  # the place opens up again: moved in
        services.withdraw(s, settings, me(s.get(type(member), first.member_id)), first.id)
    files = [(m.subject, Calendar.from_ical(m.attachments[0]["content"]))
             for m in outbox(db, "commitment") if m.to_addr == member.email and m.attachments]
    methods = [str(cal["METHOD"]) for _, cal in files]
    assert methods == ["REQUEST", "CANCEL", "REQUEST", "REQUEST", "CANCEL", "REQUEST"], [s for s, _ in files]
    events = [cal.walk("VEVENT")[0] for _, cal in files]
    assert {str(ev["UID"]) for ev in events} == {f"commitment-{c.id}@testserver"}
    assert [int(ev["SEQUENCE"]) for ev in events] == [0, 1, 2, 3, 4, 5]
    assert [str(ev["STATUS"]) for ev in events] == ["CONFIRMED", "CANCELLED", "CONFIRMED", "CONFIRMED",
                                                   "CANCELLED", "CONFIRMED"]
    # The reminder repeats the current version, it does not supersede it.
    with db.begin() as s:
        s.get(ActionStep, step.id).starts_at = utcnow() + dt.timedelta(hours=5)
        services.send_reminders(s, settings)
    [reminder] = [m for m in outbox(db, "shift_reminder") if m.to_addr == member.email]
    assert int(Calendar.from_ical(reminder.attachments[0]["content"]).walk("VEVENT")[0]["SEQUENCE"]) == 5


def test_a_pledge_without_a_quantity_counts_the_member_not_the_total(db, settings, proposal, member):
    with db.begin() as s:
        pledge = services.create_step(s, StepData(kind="pledge", title="Bags", goal=50, unit="bags"),
                                      proposal_id=proposal.id)
        c = services.commit(s, settings, me(member), pledge.id, quantity="  ")
        services.commit(s, settings, me(make_member(s)), pledge.id, quantity="7")
    assert c.quantity is None
    with db.read() as s:
        p = services.progress(s, [pledge.id])[pledge.id]
    assert (p.committed, p.pledged) == (2, 7)


def test_signing_up_and_withdrawing_is_rate_limited(db, settings, proposal, member):
    with db.begin() as s:
        step = services.create_step(s, StepData(kind="task", title="Print flyers"), proposal_id=proposal.id)
    changes = 0
    with pytest.raises(ActionError, match="many times") as refused:
        for _ in range(services.CHANGES_PER_HOUR + 2):
            with db.begin() as s:
                c = services.commit(s, settings, me(member), step.id)
            changes += 1
            with db.begin() as s:
                services.withdraw(s, settings, me(member), c.id)
            changes += 1
    assert refused.value.status == 429 and changes == services.CHANGES_PER_HOUR
    assert len(outbox(db, "commitment")) == services.CHANGES_PER_HOUR // 2  # confirmations (a task has no file)


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
