"""What an admin can do to one outbox message: put a failed one back in the queue, or cancel a queued one.

Each change is one conditional UPDATE (`WHERE status = ...`), so it cannot cross a sender claiming the same
row: whichever commits first wins, and the other sees the row in its new state (the admin is told, nothing
changes). Both are audit-logged.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.mail.bounces import is_account_mail
from app.mail.models import OutboxMessage, OutboxStatus
from app.members.guard import audit
from app.members.models import Member

CANCELLED_BY_ADMIN = "cancelled by an admin"
_LABELS = {"pending": "queued", "sending": "being sent right now", "sent": "already sent",
           "failed": "failed", "cancelled": "cancelled"}


class OutboxRefused(ValueError):
    """The change does not apply to the message as it is now; the message says why, for the admin."""


class OutboxNotFound(LookupError):
    pass


def _load(session: Session, message_id: int) -> OutboxMessage:
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise OutboxNotFound(message_id)
    return message


def _changed(session: Session, message_id: int, status: str, values: dict[str, object]) -> bool:
    stmt = update(OutboxMessage).where(OutboxMessage.id == message_id, OutboxMessage.status == status)
    return (session.execute(stmt.values(**values)).rowcount or 0) == 1


def retry(session: Session, *, actor_id: int, message_id: int, ip: str) -> OutboxMessage:
    """A failed message goes back in the queue: due now, attempts from 0, 48 hours of retries from now."""
    message = _load(session, message_id)
    if message.status != OutboxStatus.FAILED:
        raise OutboxRefused(f"Only a failed message can be retried; this one is {_LABELS[message.status]}. "
                            "Nothing was changed.")
    if message.member_id is not None and not is_account_mail(message.kind):
        flagged = session.scalar(select(Member.id).where(
            Member.id == message.member_id, Member.email == message.to_addr.lower(),
            Member.bouncing_since.is_not(None)))
        if flagged:
            raise OutboxRefused(f"{message.to_addr} is flagged as bouncing, so this message would not be sent. "
                                "Clear the flag on the member's page first. Nothing was changed.")
    previous = message.last_error
    now = utcnow()
    if not _changed(session, message_id, OutboxStatus.FAILED, {
        "status": OutboxStatus.PENDING, "attempts": 0, "next_attempt_at": now, "requeued_at": now,
        "locked_until": None, "last_error": "",
    }):
        raise OutboxRefused("This message changed while you were looking at it. Nothing was changed.")
    audit(session, "outbox.retry", actor_id=actor_id, ip=ip, object_type="outbox", object_id=message_id,
          summary=f"Put back in the queue: {message.kind} to {message.to_addr}", previous_error=previous[:300])
    session.refresh(message)
    return message


def cancel(session: Session, *, actor_id: int, message_id: int, ip: str) -> OutboxMessage:
    """A queued message is never sent."""
    message = _load(session, message_id)
    if message.status != OutboxStatus.PENDING:
        raise OutboxRefused(f"Only a queued message can be cancelled; this one is {_LABELS[message.status]}. "
                            "Nothing was changed.")
    if not _changed(session, message_id, OutboxStatus.PENDING, {
        "status": OutboxStatus.CANCELLED, "locked_until": None, "last_error": CANCELLED_BY_ADMIN,
    }):
        raise OutboxRefused("This message is being sent right now, so it can no longer be cancelled. "
                            "Nothing was changed.")
    audit(session, "outbox.cancel", actor_id=actor_id, ip=ip, object_type="outbox", object_id=message_id,
          summary=f"Cancelled: {message.kind} to {message.to_addr}")
    session.refresh(message)
    return message
