"""Background jobs and the worker loop: scheduling, running once, retries, leases, tidying up, stopping."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, update

from app import security
from app.db import Database, utcnow
from app.jobs import services as jobs
from app.jobs.models import Job
from app.jobs.worker import Worker, maintenance, run_forever
from app.mail.models import OutboxMessage
from app.mail.outbox import enqueue
from app.mail.sink import SmtpSink
from app.members.models import AuthToken, RateEvent, UserSession
from app.settings import Settings
from tests.factories import make_member

CALLS: list[dict[str, Any]] = []
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a thread of its own, so it works whatever loop the calling thread may be running."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


@jobs.handler("test.record")
def _record(session: Any, payload: dict[str, Any]) -> None:
    CALLS.append(payload)


@jobs.handler("test.fail")
def _fail(session: Any, payload: dict[str, Any]) -> None:
    # A write the failure must roll back: the handler's effects commit with the job or not at all.
    jobs.schedule(session, "test.record", {"from": "failed handler"}, unique_key=f"side:{payload['n']}")
    raise RuntimeError("boom")


@pytest.fixture(autouse=True)
def _calls() -> None:
    CALLS.clear()


def all_jobs(db: Database) -> list[Job]:
    with db.read() as s:
        return list(s.scalars(select(Job).order_by(Job.id)))


def test_unique_key_makes_a_second_schedule_a_no_op(db: Database) -> None:
    with db.begin() as s:
        first = jobs.schedule(s, "test.record", {"n": 1}, unique_key="close-proposal:42")
        again = jobs.schedule(s, "test.record", {"n": 2}, unique_key="close-proposal:42")
        other = jobs.schedule(s, "test.record", {"n": 3})
        another = jobs.schedule(s, "test.record", {"n": 4})
    with db.begin() as s:
        later = jobs.schedule(s, "test.record", {"n": 5}, unique_key="close-proposal:42")
    assert isinstance(first, int) and isinstance(other, int) and isinstance(another, int)
    assert again is None and later is None
    assert [j.payload for j in all_jobs(db)] == [{"n": 1}, {"n": 3}, {"n": 4}]


def test_a_rolled_back_schedule_leaves_no_job(db: Database) -> None:
    with pytest.raises(RuntimeError), db.begin() as s:
        jobs.schedule(s, "test.record", {"n": 1})
        raise RuntimeError("the action failed")
    assert all_jobs(db) == []


def test_due_job_runs_once(db: Database) -> None:
    with db.begin() as s:
        jobs.schedule(s, "test.record", {"n": 1})
        jobs.schedule(s, "test.record", {"n": 2}, run_at=utcnow() + dt.timedelta(hours=1))
    assert jobs.run_due(db, "w1") == 1
    assert jobs.run_due(db, "w1") == 0
    assert CALLS == [{"n": 1}]
    done, later = all_jobs(db)
    assert (done.status, done.attempts, done.locked_by) == ("done", 1, "w1")
    assert done.finished_at is not None and done.locked_until is None
    assert (later.status, later.attempts) == ("pending", 0)


def test_failing_handler_is_retried_then_fails(db: Database) -> None:
    with db.begin() as s:
        jobs.schedule(s, "test.fail", {"n": 7})
    for attempt in (1, 2):
        assert jobs.run_due(db, "w1", backoff_base_s=0.0, max_attempts=3) == 1
        [job] = all_jobs(db)
        assert (job.status, job.attempts, job.last_error) == ("pending", attempt, "RuntimeError: boom")
    assert jobs.run_due(db, "w1", backoff_base_s=0.0, max_attempts=3) == 1
    [job] = all_jobs(db)  # the failed handler's own schedule() was rolled back each time
    assert (job.status, job.attempts, job.last_error) == ("failed", 3, "RuntimeError: boom")
    assert job.finished_at is not None
    assert jobs.run_due(db, "w1", backoff_base_s=0.0, max_attempts=3) == 0


def test_retry_waits_for_its_backoff(db: Database) -> None:
    with db.begin() as s:
        jobs.schedule(s, "test.fail", {"n": 1})
    before = utcnow()
    assert jobs.run_due(db, "w1", backoff_base_s=60.0, backoff_cap_s=120.0) == 1
    [job] = all_jobs(db)
    assert before <= job.run_at <= utcnow() + dt.timedelta(seconds=60)
    if job.run_at > utcnow():
        assert jobs.run_due(db, "w1") == 0


def test_unknown_kind_fails_after_its_attempts(db: Database) -> None:
    with db.begin() as s:
        jobs.schedule(s, "test.nobody-handles-this")
    for _ in range(2):
        jobs.run_due(db, "w1", backoff_base_s=0.0, max_attempts=2)
    [job] = all_jobs(db)
    assert job.status == "failed"
    assert "no handler is registered" in job.last_error


def test_job_with_an_expired_lease_is_taken_over(db: Database) -> None:
    with db.begin() as s:
        stale = jobs.schedule(s, "test.record", {"n": "stale"})
        busy = jobs.schedule(s, "test.record", {"n": "busy"})
        now = utcnow()
        s.execute(update(Job).where(Job.id == stale).values(status="running", attempts=1, locked_by="dead-worker",
                                                            locked_until=now - dt.timedelta(seconds=1)))
        s.execute(update(Job).where(Job.id == busy).values(status="running", attempts=1, locked_by="live-worker",
                                                           locked_until=now + dt.timedelta(minutes=5)))
    assert jobs.run_due(db, "w2") == 1
    assert CALLS == [{"n": "stale"}]
    by_id = {j.id: j for j in all_jobs(db)}
    assert (by_id[stale].status, by_id[stale].attempts, by_id[stale].locked_by) == ("done", 2, "w2")
    assert (by_id[busy].status, by_id[busy].locked_by) == ("running", "live-worker")


def test_concurrent_workers_run_each_job_once(db: Database) -> None:
    with db.begin() as s:
        for n in range(40):
            jobs.schedule(s, "test.record", {"n": n})

    async def workers() -> list[int]:
        from app.db import run_db

        return list(await asyncio.gather(*(run_db(jobs.run_due, db, f"w{i}", 5) for i in range(4))))

    deadline = time.monotonic() + 15
    while any(j.status != "done" for j in all_jobs(db)):
        assert time.monotonic() < deadline
        run(workers())
    assert sorted(c["n"] for c in CALLS) == list(range(40))


def test_maintenance_deletes_what_has_expired(db: Database) -> None:
    now = utcnow()
    with db.begin() as s:
        m = make_member(s)
        s.add_all([
            RateEvent(key="signin:ip:1", at=now - dt.timedelta(days=2)),
            RateEvent(key="signin:ip:1", at=now),
            AuthToken(token_hash=security.token_hash("old-expired"), purpose="signin", member_id=m.id,
                      expires_at=now - dt.timedelta(days=2)),
            AuthToken(token_hash=security.token_hash("old-used"), purpose="signin", member_id=m.id,
                      expires_at=now + dt.timedelta(days=5), used_at=now - dt.timedelta(days=2)),
            AuthToken(token_hash=security.token_hash("recently-used"), purpose="signin", member_id=m.id,
                      expires_at=now + dt.timedelta(days=5), used_at=now - dt.timedelta(hours=1)),
            AuthToken(token_hash=security.token_hash("live"), purpose="signin", member_id=m.id,
                      expires_at=now + dt.timedelta(minutes=10)),
            UserSession(token_hash=security.token_hash("s-expired"), member_id=m.id,
                        expires_at=now - dt.timedelta(minutes=1)),
            UserSession(token_hash=security.token_hash("s-idle"), member_id=m.id,
                        last_seen_at=now - dt.timedelta(days=8), expires_at=now + dt.timedelta(days=20)),
            UserSession(token_hash=security.token_hash("s-live"), member_id=m.id,
                        expires_at=now + dt.timedelta(days=20)),
        ])
    assert maintenance(db) == {"rate_events": 1, "auth_tokens": 2, "sessions": 2}
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(RateEvent)) == 1
        kept = set(s.scalars(select(AuthToken.token_hash)))
        assert kept == {security.token_hash("recently-used"), security.token_hash("live")}
        assert list(s.scalars(select(UserSession.token_hash))) == [security.token_hash("s-live")]


def test_worker_tick_sends_mail_and_runs_jobs(settings: Settings, db: Database, smtp_sink: SmtpSink) -> None:
    mail_settings = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}")
    with db.begin() as s:
        enqueue(s, mail_settings, kind="signin_link", to_addr="mia@example.org", dedupe="t:1",
                context={"name": "Mia", "minutes": 15, "link": "http://testserver/signin/link/abc"})
        jobs.schedule(s, "test.record", {"n": 1})

    async def tick() -> int:
        worker = Worker(mail_settings, db, name="test")
        try:
            return await worker.tick()
        finally:
            await worker.close()

    assert run(tick()) == 2
    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [["mia@example.org"]]
    assert CALLS == [{"n": 1}]


def test_without_smtp_mail_stays_pending(settings: Settings, db: Database) -> None:
    with db.begin() as s:
        enqueue(s, settings, kind="signin_link", to_addr="mia@example.org", dedupe="t:1",
                context={"name": "Mia", "minutes": 15, "link": "http://testserver/signin/link/abc"})

    async def tick() -> int:
        worker = Worker(settings, db, name="test")
        assert worker.sender is None
        return await worker.tick()

    assert run(tick()) == 0
    with db.read() as s:
        assert s.scalars(select(OutboxMessage.status)).all() == ["pending"]


def test_run_forever_works_until_cancelled(settings: Settings, db: Database) -> None:
    with db.begin() as s:
        jobs.schedule(s, "test.fail", {"n": 1})  # a failing job must not stop the loop
        jobs.schedule(s, "test.record", {"n": 2})

    async def scenario() -> None:
        task = asyncio.create_task(run_forever(settings, db, name="test", poll_s=0.05))
        deadline = time.monotonic() + 10
        while not CALLS:
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.02)
        with db.begin() as s:  # scheduled while the loop runs: picked up on a later tick
            jobs.schedule(s, "test.record", {"n": 3})
        while len(CALLS) < 2:
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)

    run(scenario())
    assert sorted(c["n"] for c in CALLS) == [2, 3]
