"""Past one machine: two `plenary serve` and two `plenary worker` processes on one PostgreSQL database.

500 signed-in members vote and comment at once through both web processes; an admin closes the proposal
while three others close on their deadline, raced by both workers; both workers drain the jobs and the outbox
into a real SMTP server. Then: no ballot lost or doubled, every comment stored once, every job and every close
done once, every email received once. And a worker killed (SIGKILL) in the middle of a job leaves it to
another worker once its lease has run out.

Real subprocesses on free ports, stopped by PID; skipped without PLENARY_TEST_DATABASE_URL (failed in CI).
"""

from __future__ import annotations

import collections
import datetime as dt
import signal
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.comments.models import Comment
from app.db import Database
from app.jobs.models import Job
from app.jobs.services import schedule
from app.mail.models import DigestItem, OrgMailSettings, OutboxMessage
from app.mail.sink import SmtpSink
from app.members.auth import start_session
from app.members.models import AuditEvent, Member, Organization
from app.proposals.models import Proposal
from app.settings import Settings
from app.voting.models import CountedBallot, Participation
from tests.cluster import cluster, fresh_postgresql
from tests.cluster_jobs import ACTION
from tests.factories import make_group, make_member, make_proposal
from tests.live import send

pytestmark = pytest.mark.slow

MEMBERS = 500
CLIENTS = 32  # concurrent HTTP clients
JOBS = 200
DEADLINE_PROPOSALS = 3  # closed by the workers when their deadline passes
DEADLINE_AUDIENCE = 20
LOAD_BOUND_S = 300.0
DRAIN_BOUND_S = 300.0
TITLE = "Adopt the new rota?"
SESSION_SETTINGS = Settings(base_url="http://127.0.0.1", secret_key="s" * 40, env="test")
CLOSES = ("proposal.close", "proposal.close_early")


@dataclass
class Seeded:
    pid: int
    deadline_pids: list[int]
    admin: str
    members: list[tuple[int, str, str]]  # id, email, session token


def seed(url: str) -> Seeded:
    db = Database(url)
    try:
        with db.begin() as s:
            s.add(Organization(id=1, name="Northside Tenants", time_zone="UTC"))
            # No weekly mail budget, so every voter's results come as a message of their own (past a budget
            # they would wait for the digest, and which ones do depends on the order things happen in).
            s.add(OrgMailSettings(id=1, weekly_budget=0))
            admin = make_member(s, email="admin@example.org", role="admin")
            group = make_group(s, name="Stairwell C")
            members = []
            for i in range(MEMBERS):
                m = make_member(s, email=f"m{i:03d}@example.org", name=f"Member {i:03d}",
                                groups=(group,) if i < DEADLINE_AUDIENCE else ())
                members.append((m.id, m.email, start_session(s, SESSION_SETTINGS, m, ip="127.0.0.1",
                                                             user_agent="load")))
            admin_token = start_session(s, SESSION_SETTINGS, admin, ip="127.0.0.1", user_agent="load")
            pid = make_proposal(s, title=TITLE, state="open", secret=True).id
            # Due while the load runs: both workers find them on their ticks and race to close them.
            deadline_pids = [make_proposal(s, title=f"Stairwell question {n}", state="open", groups=(group,),
                                           closes_in=dt.timedelta(seconds=20)).id
                             for n in range(DEADLINE_PROPOSALS)]
            for n in range(JOBS):
                schedule(s, "test.count", {"n": n})
        return Seeded(pid, deadline_pids, admin_token, members)
    finally:
        db.dispose()


def load(ports: list[int], seeded: Seeded) -> dict[int, tuple[int, int]]:
    """Every member votes through one web process and comments through the other, CLIENTS at a time."""

    def one(i: int) -> tuple[int, int]:
        _id, _email, token = seeded.members[i]
        voted = send(ports[i % 2], "POST", f"/proposals/{seeded.pid}/vote", token,
                     {"choice": ("yes", "no", "abstain")[i % 3]}, timeout_s=60)[0]
        commented = send(ports[(i + 1) % 2], "POST", f"/proposals/{seeded.pid}/comments", token,
                         {"body": f"Load comment {i:03d}."}, timeout_s=60)[0]
        return voted, commented

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = {i: pool.submit(one, i) for i in range(MEMBERS)}
        _done, pending = wait(futures.values(), timeout=LOAD_BOUND_S)
        for f in pending:
            f.cancel()
        assert not pending, f"{len(pending)} members still waiting after {LOAD_BOUND_S} s"
        return {i: f.result() for i, f in futures.items()}


def wait_for_quiet(db: Database, sink: SmtpSink, pids: list[int]) -> None:
    """Until every proposal is closed, every job done and every message sent and received (bounded)."""
    deadline = time.monotonic() + DRAIN_BOUND_S
    while True:
        with db.read() as s:
            open_left = s.scalar(select(func.count()).select_from(Proposal)
                                 .where(Proposal.id.in_(pids), Proposal.state != "closed"))
            jobs_left = s.scalar(select(func.count()).select_from(Job).where(Job.status != "done"))
            mail_left = s.scalar(select(func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.status != "sent"))
            sent = s.scalar(select(func.count()).select_from(OutboxMessage))
        if not open_left and not jobs_left and not mail_left and len(sink.messages) >= (sent or 0):
            return
        assert time.monotonic() < deadline, (
            f"after {DRAIN_BOUND_S} s: {open_left} proposals open, {jobs_left} jobs and {mail_left} messages "
            f"left, {len(sink.messages)} of {sent} messages received")
        time.sleep(0.5)


def test_two_web_processes_and_two_workers_share_one_postgresql(tmp_path: Path) -> None:
    with fresh_postgresql() as url, SmtpSink() as sink, cluster(tmp_path, url, sink.port) as c:
        seeded = seed(url)
        webs = [c.serve("web-1"), c.serve("web-2")]
        workers = [c.worker("worker-1"), c.worker("worker-2")]

        started = time.monotonic()
        answers = load([w.port for w in webs], seeded)
        load_s = time.monotonic() - started
        status, _ = send(webs[0].port, "POST", f"/admin/proposals/{seeded.pid}/close", seeded.admin,
                         {"reason": "Everyone had their say."})
        assert status == 303

        db = Database(url)
        try:
            wait_for_quiet(db, sink, [seeded.pid, *seeded.deadline_pids])
            for p in [*webs, *workers]:
                assert p.stop() in (0, -signal.SIGTERM), p.log()
                assert "Traceback" not in p.log(), p.log()
            check(db, sink, seeded, answers)
        finally:
            db.dispose()
        print(f"\n{MEMBERS} members voted and commented through 2 web processes in {load_s:.1f} s "
              f"({2 * MEMBERS / load_s:.0f} requests/s with {CLIENTS} clients); {len(sink.messages)} emails")


def check(db: Database, sink: SmtpSink, seeded: Seeded, answers: dict[int, tuple[int, int]]) -> None:
    voted_ok = [i for i, (v, _c) in answers.items() if 200 <= v < 300]
    commented_ok = [i for i, (_v, c) in answers.items() if 200 <= c < 300]
    assert len(voted_ok) == MEMBERS and len(commented_ok) == MEMBERS, collections.Counter(answers.values())
    with db.read() as s:
        p = s.get(Proposal, seeded.pid)
        counted = s.scalar(select(func.count()).select_from(CountedBallot)
                           .where(CountedBallot.proposal_id == p.id))
        participations = s.scalar(select(func.count()).select_from(Participation)
                                  .where(Participation.proposal_id == p.id))
        # No ballot lost or doubled: ballots == participations == members the server said yes to.
        assert counted == participations == p.ballots_counted == len(voted_ok)
        assert p.result["integrity"]["ok"] and p.result["ballots"] == len(voted_ok)
        yes_no_abstain = {row["label"]: row["count"] for row in p.result["rows"]}
        assert yes_no_abstain == {"Yes": 167, "No": 167, "Abstain": 166}

        bodies = collections.Counter(s.scalars(select(Comment.body_md).where(Comment.proposal_id == p.id)))
        assert bodies == {f"Load comment {i:03d}.": 1 for i in commented_ok}

        assert set(s.scalars(select(Job.status))) == {"done"}
        runs = collections.Counter(s.scalars(select(AuditEvent.object_id).where(AuditEvent.action == ACTION)))
        assert runs == {n: 1 for n in range(JOBS)}
        closes = collections.Counter(s.scalars(select(AuditEvent.object_id)
                                               .where(AuditEvent.action.in_(CLOSES))))
        assert closes == {pid: 1 for pid in [seeded.pid, *seeded.deadline_pids]}

        outbox = s.execute(select(OutboxMessage.kind, OutboxMessage.to_addr, OutboxMessage.message_id,
                                  OutboxMessage.subject)).all()
        # The proposals closed on their deadline: each member of their audience hears of the result once, in a
        # message or (past the weekly mail budget, or by preference) in the digest.
        for pid in seeded.deadline_pids:
            title = s.get(Proposal, pid).title
            mailed = [row.to_addr for row in outbox if row.kind == "results" and row.subject == f"Result: {title}"]
            folded = list(s.scalars(select(Member.email).join(DigestItem, DigestItem.member_id == Member.id)
                                    .where(DigestItem.proposal_id == pid, DigestItem.kind == "results")))
            assert sorted(mailed + folded) == [f"m{i:03d}@example.org" for i in range(DEADLINE_AUDIENCE)], pid
    # Every message in the outbox was received once, and nothing else was.
    received = collections.Counter(m.message_id.strip() for m in sink.messages)  # a long one comes folded
    assert received == {row.message_id: 1 for row in outbox}
    # The results: one message to each member (each voted), from whichever worker sent it.
    results_to = collections.Counter(
        rcpt for m in sink.messages if str(m.message["Subject"]) == f"Result: {TITLE}" for rcpt in m.rcpt_tos)
    members = {email for _id, email, _token in seeded.members}
    assert members <= set(results_to) and set(results_to.values()) == {1}
    kinds = collections.Counter(row.kind for row in outbox)
    assert kinds["vote_confirmation"] == MEMBERS, kinds


def test_a_worker_killed_mid_job_leaves_it_to_another_after_its_lease(tmp_path: Path) -> None:
    with fresh_postgresql() as url, cluster(tmp_path, url) as c:
        db = Database(url)
        try:
            with db.begin() as s:
                job_id = schedule(s, "test.slow", {"n": 7})

            doomed = c.worker("doomed", job_lease_s=5, PLENARY_TEST_JOB_SLEEP="600")
            job = _wait_for_job(db, job_id, lambda j: j.status == "running" and j.locked_by.startswith("doomed@"))
            assert job.attempts == 1
            doomed.kill()  # SIGKILL in the middle of the job: its transaction never commits
            assert doomed.proc.returncode == -signal.SIGKILL
            with db.read() as s:
                assert s.get(Job, job_id).status == "running"  # still leased to the dead worker
                assert not s.scalar(select(func.count()).select_from(AuditEvent)
                                    .where(AuditEvent.action == ACTION))

            heir = c.worker("heir")
            job = _wait_for_job(db, job_id, lambda j: j.status == "done")
            assert job.locked_by.startswith("heir@") and job.attempts == 2
            assert job.finished_at is not None and job.finished_at >= job.run_at
            with db.read() as s:
                ran = list(s.scalars(select(AuditEvent.summary).where(AuditEvent.action == ACTION)))
            assert ran == [f"worker pid {heir.proc.pid}"]  # once, by the heir
        finally:
            db.dispose()


def _wait_for_job(db: Database, job_id: int, ready, bound_s: float = 60.0) -> Job:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + bound_s
    while True:
        with db.read() as s:
            job = s.get(Job, job_id)
            s.expunge(job)
        if ready(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id} after {bound_s} s: {job.status}, {job.locked_by}"
        time.sleep(0.1)

