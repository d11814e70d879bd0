"""The worker loop: sends queued mail, runs due jobs, and tidies up now and then.

The web process runs one as a task (settings.run_worker); `plenary worker` runs it as a process of its own.
Any number can run at once: the outbox and the jobs are claimed under leases. Each tick:

- if PLENARY_SMTP_URL is set, drain the outbox (otherwise messages stay pending and admins read them at
  /admin/outbox);
- run the jobs that are due, and open or close proposals whose time has come;
- queue the reminders (proposals' deadlines, shifts starting within a day) and digests that are due;
- about every ten minutes: delete rate-limit events and used or expired sign-in links older than a day, and
  sessions that have expired.

An error in a tick is logged and the loop goes on; cancelling the task stops it at the next await.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import os
import socket
import time

from sqlalchemy import delete, or_

from app.actions.services import run_due_shift_reminders
from app.db import Database, run_db, utcnow
from app.jobs import services as jobs
from app.mail.digest import run_due_digests
from app.mail.sender import OutboxSender
from app.settings import Settings
from app.voting.notify import run_due_reminders
from app.voting.services import run_due_transitions

log = logging.getLogger("plenary.worker")

# Modules that register job handlers (`@jobs.handler(...)`): a worker imports them before its first tick, so
# a job never meets a worker that does not know its kind. Add a domain's module here when it registers one.
HANDLER_MODULES: tuple[str, ...] = ()

MAINTENANCE_EVERY_S = 600.0
JOB_LEASE_S = 300.0  # how long a claimed job is this worker's; after that another worker may run it
MAX_MAIL_BATCHES_PER_TICK = 20
TOKEN_KEEP = dt.timedelta(days=1)


def worker_id(name: str) -> str:
    """Unique across processes and hosts: what `jobs.locked_by` records."""
    return f"{name}@{socket.gethostname()}:{os.getpid()}"[:100]


def load_handlers() -> None:
    for module in HANDLER_MODULES:
        importlib.import_module(module)


def maintenance(db: Database) -> dict[str, int]:
    """Delete what has outlived its use. Blocking: run it in a thread."""
    from app.members.guard import purge_rate_events
    from app.members.models import AuthToken, UserSession
    from app.middleware import IDLE_LIMIT

    now = utcnow()
    with db.begin() as s:
        rate_events = purge_rate_events(s)
        tokens = s.execute(delete(AuthToken).where(or_(
            AuthToken.expires_at < now - TOKEN_KEEP, AuthToken.used_at < now - TOKEN_KEEP,
        ))).rowcount or 0
        sessions = s.execute(delete(UserSession).where(or_(
            UserSession.expires_at < now, UserSession.last_seen_at < now - IDLE_LIMIT,
        ))).rowcount or 0
    return {"rate_events": rate_events, "auth_tokens": tokens, "sessions": sessions}


class Worker:
    """A worker's state between ticks: its name, its mail sender (reusing connections), the last tidy-up."""

    def __init__(self, settings: Settings, db: Database, *, name: str, sender: OutboxSender | None = None,
                 maintenance_every_s: float = MAINTENANCE_EVERY_S, job_lease_s: float = JOB_LEASE_S) -> None:
        load_handlers()
        self.settings = settings
        self.db = db
        self.name = worker_id(name)
        self.maintenance_every_s = maintenance_every_s
        self.job_lease_s = job_lease_s
        self.sender = sender
        if self.sender is None and settings.smtp_url:
            try:
                self.sender = OutboxSender(settings, db)
            except ValueError as exc:  # a bad PLENARY_SMTP_URL or PLENARY_MAIL_FROM must not stop the jobs
                log.error("mail will not be sent: %s", exc)
        self._last_maintenance: float | None = None

    async def tick(self) -> int:
        """One round of work; returns how much was done (0 = idle, so the loop may sleep)."""
        done = 0
        if self.sender is not None:
            for _ in range(MAX_MAIL_BATCHES_PER_TICK):
                n = await self.sender.drain_once()
                done += n
                if n < self.sender.batch:
                    break
        done += await run_db(jobs.run_due, self.db, self.name, lease_s=self.job_lease_s)
        done += await run_db(run_due_transitions, self.db, self.settings)
        done += await run_db(run_due_shift_reminders, self.db, self.settings)
        done += await run_db(run_due_reminders, self.db, self.settings)
        done += await run_db(run_due_digests, self.db, self.settings)
        now = time.monotonic()
        if self._last_maintenance is None or now - self._last_maintenance >= self.maintenance_every_s:
            self._last_maintenance = now
            purged = await run_db(maintenance, self.db)
            if any(purged.values()):
                log.info("maintenance: deleted %s", ", ".join(f"{v} {k}" for k, v in purged.items()))
        return done

    async def close(self) -> None:
        if self.sender is not None:
            await self.sender.aclose()


async def run_forever(settings: Settings, db: Database, *, name: str, poll_s: float = 1.0,
                      job_lease_s: float = JOB_LEASE_S) -> None:
    """Tick until cancelled: at once again after a busy tick, after `poll_s` seconds after an idle one."""
    worker = Worker(settings, db, name=name, job_lease_s=job_lease_s)
    log.info("worker %s started (%s)", worker.name,
             "sending mail" if worker.sender else "no SMTP server configured: mail stays in the outbox")
    try:
        while True:
            try:
                busy = await worker.tick()
            except Exception:
                log.exception("worker tick failed; trying again in %.1f s", poll_s)
                busy = 0
            await asyncio.sleep(0 if busy else poll_s)
    finally:
        if worker.sender is not None:
            worker.sender.close()  # no QUIT: stopping must not wait on a slow server
