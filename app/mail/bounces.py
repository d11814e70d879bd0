"""Hard bounces: what the sender records when a server refuses an address for good, and the flag it leads to.

A hard bounce is a 5xx answer to RCPT or DATA, seen by the sender during the SMTP conversation. Each one adds
to the member's `bounce_count` (hard bounces in a row for their current address) and keeps the answer in
`last_bounce`; a message the server accepts for that address sets the count back to 0. At `BOUNCE_LIMIT` in a
row the address is flagged (`bouncing_since`):

- mail other than account mail (sign-in links, invitations, resets, email-change messages) is not sent to it:
  the sender marks such messages `cancelled` when it claims them, with the reason;
- account mail is still tried (the member may need it to fix their address), and if the server accepts one
  the flag clears by itself;
- admins see "bouncing" in the member directory and on the member's page, with the last answer, and can clear
  the flag (audit-logged); the member sees a notice on their profile;
- confirming a new email address clears the count, the flag and the last answer.

Only refusals during the SMTP conversation are seen. A server that accepts a message and bounces it later
(a delivery status notification to the envelope sender) is not read by Plenary.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.mail.policy import TRANSACTIONAL
from app.members.guard import audit
from app.members.models import Member

log = logging.getLogger("plenary.mail")

BOUNCE_LIMIT = 3
SKIPPED_PREFIX = "not sent: the address is bouncing"

_m = Member.__table__.c
_DT = _m.bouncing_since.type

# Only when the refused address is still the member's own: a bounce from the new address of an email change
# not yet confirmed says nothing about the current one. Column references on the right are the old values.
_RECORD_BOUNCE = (
    update(Member.__table__)
    .where(_m.id == bindparam("b_member"), _m.email == bindparam("b_addr"))
    .values(bounce_count=_m.bounce_count + 1, last_bounce=bindparam("b_error"),
            last_bounce_at=bindparam("b_at", type_=_DT),
            bouncing_since=case((_m.bouncing_since.is_(None) & (_m.bounce_count + 1 >= BOUNCE_LIMIT),
                                 bindparam("b_at", type_=_DT)), else_=_m.bouncing_since))
    .returning(_m.id, _m.bouncing_since)
)
_RECORD_DELIVERY = (
    update(Member.__table__)
    .where(_m.id == bindparam("b_member"), _m.email == bindparam("b_addr"),
           (_m.bounce_count > 0) | _m.bouncing_since.is_not(None))
    .values(bounce_count=0, bouncing_since=None)
)


def is_account_mail(kind: str) -> bool:
    """Mail a member may need to get into their account or fix their address: still tried when bouncing."""
    return kind in TRANSACTIONAL


def record_bounces(conn: Connection, bounces: list[dict[str, Any]]) -> None:
    """Count hard bounces: each {"b_member", "b_addr" (lower-cased), "b_error", "b_at"}. In the caller's
    transaction (the sender's record of the same outcomes)."""
    for params in bounces:
        row = conn.execute(_RECORD_BOUNCE, params).first()
        if row is not None and row.bouncing_since == params["b_at"]:
            log.warning("member %d's address is now flagged as bouncing after %d hard bounces in a row: %s",
                        row.id, BOUNCE_LIMIT, params["b_error"])


def record_deliveries(conn: Connection, deliveries: list[dict[str, Any]]) -> None:
    """A message accepted for a member's current address: bounces in a row start again from 0 and the flag
    clears. Each {"b_member", "b_addr"}; matches no row (and costs an index lookup) for most members."""
    if deliveries:
        conn.execute(_RECORD_DELIVERY, deliveries)


def bouncing(session: Session | Connection, rows: Iterable[Any]) -> dict[int, str]:
    """Of claimed outbox rows (with id, kind, member_id, to_addr), those not to be sent because their address
    is flagged: row id -> why."""
    candidates = {r.id: r for r in rows if r.member_id is not None and not is_account_mail(r.kind)}
    if not candidates:
        return {}
    flagged = {mid: (email, answer) for mid, email, answer in session.execute(
        select(Member.id, Member.email, Member.last_bounce).where(
            Member.id.in_({r.member_id for r in candidates.values()}), Member.bouncing_since.is_not(None)))}
    skipped: dict[int, str] = {}
    for row_id, r in candidates.items():
        hit = flagged.get(r.member_id)
        if hit is not None and hit[0] == r.to_addr.lower():
            skipped[row_id] = f"{SKIPPED_PREFIX} ({hit[1]})"[:1000] if hit[1] else SKIPPED_PREFIX
    return skipped


class BounceError(ValueError):
    """A refused change to the flag; the message is for the admin who asked."""


def clear_flag(session: Session, *, actor_id: int, member_id: int, ip: str) -> Member:
    """An admin says the address works again: the flag and the count go, the last answer stays for reference."""
    member = session.get(Member, member_id)
    if member is None:
        raise LookupError(member_id)
    if member.bouncing_since is None:
        raise BounceError(f"{member.name}'s address is not flagged as bouncing: nothing was changed.")
    was = member.bounce_count
    member.bounce_count, member.bouncing_since = 0, None
    audit(session, "member.bounce_clear", actor_id=actor_id, ip=ip, object_type="member", object_id=member.id,
          summary=f"Cleared the bouncing flag of {member.name} <{member.email}>", bounces=was,
          last_answer=member.last_bounce[:300])
    return member


def forget(member: Member) -> None:
    """A new address starts clean (called when a member confirms an email change)."""
    member.bounce_count, member.bouncing_since = 0, None
    member.last_bounce, member.last_bounce_at = "", None
