"""Background jobs: schedule them in the caller's transaction, run them when due, under a lease.

A domain registers what a kind of job does with `@handler("kind")` on a plain `def fn(session, payload)`.
The handler runs inside a write transaction, and the job is marked done in that same transaction, so its
effects and its completion commit together: a job whose handler raised leaves nothing behind and is retried
with backoff, then marked failed after `max_attempts`. Handlers must still be idempotent: a worker that stalls
past its lease can see the job taken over by another worker (its own commit is then refused and rolled back).
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import random
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.db import Database, utcnow
from app.jobs.models import Job

log = logging.getLogger("plenary.jobs")

Handler = Callable[[Session, dict[str, Any]], None]
_HANDLERS: dict[str, Handler] = {}


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobLost(Exception):
    """Another worker took the job over while this one ran it (the lease ran out); this run is rolled back."""


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register `fn(session, payload)` as what a job of this kind does."""

    def register(fn: Handler) -> Handler:
        if _HANDLERS.get(kind, fn) is not fn:
            raise ValueError(f"a handler for job kind {kind!r} is already registered")
        _HANDLERS[kind] = fn
        return fn

    return register


def registered(kind: str) -> Handler | None:
    return _HANDLERS.get(kind)


def schedule(session: Session, kind: str, payload: dict[str, Any] | None = None,
             run_at: dt.datetime | None = None, unique_key: str | None = None) -> int | None:
    """Add a job to run at `run_at` (default: now) in the caller's transaction. Returns its id.

    With a `unique_key` (e.g. "close-proposal:42"), scheduling the same key again is a no-op returning None.
    """
    values = {
        "kind": kind,
        "payload": payload or {},
        "run_at": run_at or utcnow(),
        "status": JobStatus.PENDING,
        "unique_key": unique_key,
    }
    dialect = session.get_bind().dialect.name
    if unique_key is not None and dialect in ("sqlite", "postgresql"):
        insert = sqlite_insert if dialect == "sqlite" else pg_insert
        stmt = insert(Job).values(**values).on_conflict_do_nothing(index_elements=["unique_key"])
        return session.execute(stmt.returning(Job.id)).scalar()
    if unique_key is not None and session.scalar(select(Job.id).where(Job.unique_key == unique_key)):
        return None  # pragma: no cover - only SQLite and PostgreSQL are supported
    job = Job(**values)
    session.add(job)
    session.flush()  # the id, for the caller
    return job.id


def backoff_delay(attempts: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(attempts-1))]."""
    ceiling = min(cap_s, base_s * 2.0 ** min(max(attempts - 1, 0), 60))
    return random.uniform(0.0, ceiling) if ceiling > 0 else 0.0


# --- running ------------------------------------------------------------------------------------------------

_t = Job.__table__
_c = _t.c
_DT = _c.run_at.type


def _due(now: dt.datetime) -> Any:
    return or_(
        and_(_c.status == JobStatus.PENDING, _c.run_at <= now),
        and_(_c.status == JobStatus.RUNNING, _c.locked_until < now),
    )


_MARK_DONE = (
    update(_t)
    .where(_c.id == bindparam("b_id"), _c.attempts == bindparam("b_attempts"),
           _c.locked_by == bindparam("b_by"), _c.status == JobStatus.RUNNING)
    .values(status=JobStatus.DONE, finished_at=bindparam("b_now", type_=_DT), locked_until=None,
            last_error="")
)
_MARK_RETRY = (
    update(_t)
    .where(_c.id == bindparam("b_id"), _c.attempts == bindparam("b_attempts"), _c.status == JobStatus.RUNNING)
    .values(status=JobStatus.PENDING, run_at=bindparam("b_next", type_=_DT), locked_until=None,
            last_error=bindparam("b_error"))
)
_MARK_FAILED = (
    update(_t)
    .where(_c.id == bindparam("b_id"), _c.attempts == bindparam("b_attempts"), _c.status == JobStatus.RUNNING)
    .values(status=JobStatus.FAILED, finished_at=bindparam("b_now", type_=_DT), locked_until=None,
            last_error=bindparam("b_error"))
)


def claim_jobs(db: Database, worker_name: str, *, limit: int, lease_s: float) -> list[Any]:
    now = utcnow()
    with db.begin() as s:
        due = select(_c.id).where(_due(now)).order_by(_c.run_at, _c.id).limit(limit)
        if db.dialect == "postgresql":
            due = due.with_for_update(skip_locked=True)
        stmt = (
            update(_t)
            .where(_c.id.in_(due.scalar_subquery()))
            .values(status=JobStatus.RUNNING, locked_until=now + dt.timedelta(seconds=lease_s),
                    locked_by=worker_name[:100], attempts=_c.attempts + 1)
            .returning(_c.id, _c.kind, _c.payload, _c.attempts, _c.run_at)
        )
        return sorted(s.execute(stmt).all(), key=lambda r: (r.run_at, r.id))


def run_due(db: Database, worker_name: str, limit: int = 20, *, lease_s: float = 300.0,
            backoff_base_s: float = 30.0, backoff_cap_s: float = 3600.0, max_attempts: int = 5) -> int:
    """Claim up to `limit` due jobs and run each in a transaction of its own. Returns how many were run.

    Blocking: call it from a thread (`await run_db(run_due, db, name)`).
    """
    jobs = claim_jobs(db, worker_name, limit=limit, lease_s=lease_s)
    by = worker_name[:100]
    for job in jobs:
        keys = {"b_id": job.id, "b_attempts": job.attempts}
        try:
            fn = _HANDLERS.get(job.kind)
            if fn is None:
                raise LookupError(f"no handler is registered for job kind {job.kind!r}")
            with db.begin() as s:
                fn(s, dict(job.payload or {}))
                done = s.connection().execute(_MARK_DONE, {**keys, "b_by": by, "b_now": utcnow()})
                if done.rowcount != 1:
                    raise JobLost(f"job {job.id} was taken over by another worker")
        except JobLost:
            log.warning("job %d (%s) ran past its lease and was taken over; this run was rolled back",
                        job.id, job.kind)
        except Exception as exc:
            error = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:2000]
            with db.begin() as s:
                if job.attempts >= max_attempts:
                    log.error("job %d (%s) failed after %d attempts: %s", job.id, job.kind, job.attempts,
                              error)
                    s.connection().execute(_MARK_FAILED, {**keys, "b_error": error, "b_now": utcnow()})
                else:
                    log.warning("job %d (%s) failed (attempt %d), will retry: %s", job.id, job.kind,
                                job.attempts, error, exc_info=True)
                    delay = backoff_delay(job.attempts, backoff_base_s, backoff_cap_s)
                    s.connection().execute(_MARK_RETRY, {**keys, "b_error": error,
                                                         "b_next": utcnow() + dt.timedelta(seconds=delay)})
    return len(jobs)
