"""Job kinds for the tests across processes (tests/cluster.py loads this module into `plenary worker`).

Each job's run leaves an audit row naming the job, written in the job's own transaction (which also marks it
done), so a test counts how often a job's work was committed: exactly once, whatever the workers do.
`test.slow` first sleeps for PLENARY_TEST_JOB_SLEEP seconds when the worker's environment sets it (a worker
to be killed in the middle of a job).
"""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy.orm import Session

from app.jobs.services import handler
from app.members.guard import audit

ACTION = "test.job_ran"


@handler("test.count")
def count(session: Session, payload: dict[str, Any]) -> None:
    audit(session, ACTION, actor_id=None, object_type="job", object_id=int(payload["n"]),
          summary=f"worker pid {os.getpid()}")


@handler("test.slow")
def slow(session: Session, payload: dict[str, Any]) -> None:
    audit(session, ACTION, actor_id=None, object_type="job", object_id=int(payload["n"]),
          summary=f"worker pid {os.getpid()}")
    session.flush()  # written, not committed: a worker killed now must leave nothing behind
    time.sleep(float(os.environ.get("PLENARY_TEST_JOB_SLEEP", "0")))
