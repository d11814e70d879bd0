"""Rate limits and the audit log: the two checks every sensitive action passes through.

Both live in the database, so they hold across any number of web processes on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.members.models import AuditEvent, RateEvent

log = logging.getLogger("plenary.audit")


class RateLimited(Exception):
    """Too many attempts for this key within the window."""


def check_rate(session: Session, keys: list[str], *, limit: int, window_s: int) -> None:
    """Count one attempt against every key; raise RateLimited if any key is already at its limit.

    The attempt is recorded either way, so hammering a limited key keeps it limited.
    """
    now = utcnow()
    since = now - dt.timedelta(seconds=window_s)
    over = False
    for key in keys:
        count = session.scalar(
            select(func.count()).select_from(RateEvent).where(RateEvent.key == key, RateEvent.at > since)
        )
        if (count or 0) >= limit:
            over = True
    for key in keys:
        session.add(RateEvent(key=key[:300], at=now))
    if over:
        raise RateLimited(keys[0])


def rate_exceeded(session: Session, key: str, *, limit: int, window_s: int) -> bool:
    """Whether `key` is at its limit already, without counting an attempt: for checks that must refuse a client
    over its limit before looking at what it sent (so a right guess after many wrong ones is refused too)."""
    since = utcnow() - dt.timedelta(seconds=window_s)
    count = session.scalar(select(func.count()).select_from(RateEvent).where(RateEvent.key == key,
                                                                              RateEvent.at > since))
    return (count or 0) >= limit


def purge_rate_events(session: Session, older_than_s: int = 86400) -> int:
    cutoff = utcnow() - dt.timedelta(seconds=older_than_s)
    result = session.execute(delete(RateEvent).where(RateEvent.at < cutoff))
    return result.rowcount or 0  # type: ignore[attr-defined]


def audit(
    session: Session,
    action: str,
    *,
    actor_id: int | None,
    ip: str = "",
    object_type: str = "",
    object_id: int | None = None,
    summary: str = "",
    **detail: object,
) -> AuditEvent:
    event = AuditEvent(
        actor_id=actor_id, action=action, object_type=object_type, object_id=object_id,
        ip=ip[:64], summary=summary[:1000], detail=detail,
    )
    session.add(event)
    # One JSON line per event: JSON encoding keeps a CR/LF in a name from forging a second log line.
    log.info(json.dumps({"action": action, "actor": actor_id, "object": f"{object_type}:{object_id}",
                         "ip": ip, "at": utcnow().isoformat()}))
    return event
