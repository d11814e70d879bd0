"""Retries against a real SMTP server, with the clock driven forward instead of waited for (freezegun).

- A server that answers "try later" forever: the sender backs off exponentially (30 s, 1 min, 2 min, ... up to
  an hour between tries, each jittered down to half) and gives up 48 hours after the message was queued.
- The server goes away for ten minutes in the middle of a 2,000-member results mailing: when it comes back,
  every member gets exactly one message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections import Counter

import pytest
from freezegun import freeze_time
from sqlalchemy import func, insert, select, update

from app.db import Database, run_db, utcnow
from app.mail.models import OutboxMessage
from app.mail.outbox import enqueue
from app.mail.sender import OutboxSender, SmtpConfig, drain_once, retry_delay
from app.mail.sink import SmtpSink
from app.members.models import Member
from app.settings import Settings
from app.voting import services as voting
from tests.factories import make_proposal
from tests.functional.test_mail_sender import run

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def mail_settings(settings: Settings, smtp_sink: SmtpSink) -> Settings:
    return dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}?timeout=5",
                               mail_from="Riverside Tenants <votes@example.org>")


def one(db: Database) -> OutboxMessage:
    with db.read() as s:
        return s.scalars(select(OutboxMessage)).one()


def test_retry_delay_doubles_up_to_the_cap_with_equal_jitter() -> None:
    for attempts in range(1, 15):
        ceiling = min(3600.0, 30.0 * 2 ** (attempts - 1))
        delays = [retry_delay(attempts, 30.0, 3600.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert retry_delay(1, 0.0, 10.0) == 0.0


def test_a_server_that_says_try_later_is_retried_with_backoff_for_48_hours(
        mail_settings: Settings, db: Database, smtp_sink: SmtpSink) -> None:
    smtp_sink.reject_rcpt["zoe@example.org"] = 451
    tries: list[dt.datetime] = []
    with freeze_time(START, real_asyncio=True) as clock:
        with db.begin() as s:
            enqueue(s, mail_settings, kind="signin_link", to_addr="zoe@example.org", dedupe="t:1",
                    context={"name": "Zoe", "minutes": 15, "link": "http://testserver/signin/link/abc"})
        row = one(db)
        while row.status == "pending":
            assert len(tries) < 200, "still retrying after 200 attempts"
            if row.attempts:  # nothing happens before the next try is due...
                clock.move_to(row.next_attempt_at - dt.timedelta(seconds=1))
                assert run(drain_once(mail_settings, db)) == 0
                clock.move_to(row.next_attempt_at)  # ...and then it is tried
            tries.append(utcnow())
            assert run(drain_once(mail_settings, db)) == 1  # production backoff: 30 s base, 1 h cap
            row = one(db)
            assert row.attempts == len(tries)

    assert row.status == "failed"
    assert row.last_error.startswith("gave up after 48 hours of retries; last answer: 451 4.3.0"), row.last_error
    assert row.sent_at is None and smtp_sink.messages == []
    # Each wait is within [c/2, c] for c = 30 s doubled per attempt and capped at an hour.
    gaps = [(b - a).total_seconds() for a, b in zip(tries, tries[1:], strict=False)]
    for attempt, gap in enumerate(gaps, start=1):
        ceiling = min(3600.0, 30.0 * 2 ** (attempt - 1))
        assert ceiling / 2 <= gap <= ceiling + 1, (attempt, gap)
    assert gaps[:4] == sorted(gaps[:4])  # the first waits grow: 15-30 s, 30-60 s, 1-2 min, 2-4 min
    # Tried until the next try would fall after 48 hours, then given up; never tried after that.
    assert START + dt.timedelta(hours=46) < tries[-1] < START + dt.timedelta(hours=48)
    assert 50 < len(tries) < 105, len(tries)  # the bounds the backoff allows, whatever the jitter


def test_a_message_put_back_after_48_hours_is_not_expired_at_once(
        mail_settings: Settings, db: Database, smtp_sink: SmtpSink) -> None:
    with freeze_time(START, real_asyncio=True) as clock:
        with db.begin() as s:
            enqueue(s, mail_settings, kind="signin_link", to_addr="zoe@example.org", dedupe="t:1",
                    context={"name": "Zoe", "minutes": 15, "link": "http://testserver/signin/link/abc"})
        clock.move_to(START + dt.timedelta(days=3))
        assert run(drain_once(mail_settings, db)) == 1
        assert (one(db).status, one(db).last_error) == ("failed", "expired before it could be sent")
        with db.begin() as s:  # what the admin's Retry does (tested through HTTP in test_outbox_views.py)
            s.execute(update(OutboxMessage).values(status="pending", attempts=0, next_attempt_at=utcnow(),
                                                   requeued_at=utcnow(), last_error=""))
        assert run(drain_once(mail_settings, db)) == 1
    assert one(db).status == "sent"
    assert len(smtp_sink.wait_for(1)) == 1


# --- the server goes away for ten minutes during a 2,000-member results mailing -------------------------------

MEMBERS = 2000


def results_mailing(db: Database, settings: Settings) -> None:
    """2,000 eligible members and a proposal closed: its results go to each of them (the announcements from
    its opening are marked sent, as they would have been days before)."""
    with db.begin() as s:
        s.execute(insert(Member), [{"email": f"m{i}@example.org", "name": f"Member {i}", "role": "member",
                                    "status": "active", "created_at": utcnow()} for i in range(MEMBERS)])
        pid = make_proposal(s, title="Repaint the stairwell?").id
    with db.begin() as s:
        voting.open_proposal(s, settings, pid)
    with db.begin() as s:
        s.execute(update(OutboxMessage).values(status="sent", sent_at=utcnow()))
    with db.begin() as s:
        voting.close_proposal(s, settings, pid, actor_id=None)
    with db.read() as s:
        queued = s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "results", OutboxMessage.status == "pending"))
    assert queued == MEMBERS


def statuses(db: Database) -> Counter[str]:
    with db.read() as s:
        return Counter(dict(s.execute(select(OutboxMessage.status, func.count())
                                      .where(OutboxMessage.kind == "results").group_by(OutboxMessage.status)).all()))


@pytest.mark.slow
def test_server_down_for_ten_minutes_during_a_2000_member_results_mailing(
        mail_settings: Settings, db: Database, org: None, smtp_sink: SmtpSink) -> None:
    port = smtp_sink.port
    down_at = 700  # the server goes away while receiving this message (1-based), before keeping it

    async def drain_all(sender: OutboxSender) -> None:
        while await sender.drain_once():
            pass

    async def scenario(clock: object) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        sender = OutboxSender(mail_settings, db)  # the worker's sender: production backoff and batch size
        seen: dict[str, object] = {}
        try:
            smtp_sink.hold(down_at, stored=False)
            sending = asyncio.create_task(drain_all(sender))
            await loop.run_in_executor(None, smtp_sink.wait_held, 120.0)
            await loop.run_in_executor(None, smtp_sink.stop)  # mid-message, mid-batch
            await sending  # the rest of the claimed batch, and of the queue, goes back to wait
            seen["at_stop"] = await run_db(statuses, db)
            went_down = utcnow()
            # Ten minutes without a server, driven in 20-second steps: every due message is tried and fails.
            while utcnow() < went_down + dt.timedelta(minutes=10):
                clock.tick(dt.timedelta(seconds=20))  # type: ignore[attr-defined]
                await drain_all(sender)
            seen["during"] = await run_db(statuses, db)
            smtp_sink.start("127.0.0.1", port)
            back = utcnow()
            while (await run_db(statuses, db)).get("sent", 0) < MEMBERS:
                assert utcnow() < back + dt.timedelta(hours=2), await run_db(statuses, db)
                clock.tick(dt.timedelta(seconds=20))  # type: ignore[attr-defined]
                await drain_all(sender)
            seen["back_after"] = utcnow() - back
        finally:
            await sender.aclose()
        return seen

    results_mailing(db, mail_settings)
    with freeze_time(utcnow(), real_asyncio=True) as clock:
        seen = run(scenario(clock))

    # The held message was never kept; the sender's other connections may have finished theirs meanwhile.
    connections = SmtpConfig.from_url(mail_settings.smtp_url).connections
    sent_at_stop = seen["at_stop"]["sent"]  # type: ignore[index]
    assert down_at - 1 <= sent_at_stop <= down_at - 2 + connections
    during = seen["during"]
    assert during["sent"] == sent_at_stop and during["pending"] == MEMBERS - sent_at_stop  # type: ignore[index]
    got = smtp_sink.messages
    ids = Counter(m.message_id for m in got)
    with db.read() as s:
        rows = s.execute(select(OutboxMessage.message_id, OutboxMessage.to_addr, OutboxMessage.attempts)
                         .where(OutboxMessage.kind == "results")).all()
    assert statuses(db) == {"sent": MEMBERS}
    assert len(got) == MEMBERS and set(ids.values()) == {1}  # exactly one each...
    assert set(ids) == {r.message_id for r in rows}  # ...and none lost
    assert Counter(r for m in got for r in m.rcpt_tos) == Counter(f"m{i}@example.org" for i in range(MEMBERS))
    assert all(m.message["Subject"].startswith("Result: Repaint the stairwell?") for m in got[:3])
    # The ones that waited were tried several times while the server was away, backing off.
    assert max(r.attempts for r in rows) >= 4
    assert seen["back_after"] < dt.timedelta(minutes=20)  # type: ignore[operator]
