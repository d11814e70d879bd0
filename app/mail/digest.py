"""The digest: one message gathering what a member chose to read later, or what came past their weekly budget.

Items wait in `mail_digest_items`. A member's digest is due one period (a day or a week, their choice, else
the admins' default) after the oldest waiting item, so a member gets at most one digest a period and no item
waits longer than one. The worker calls `run_due_digests` every tick; each digest is built in a transaction
of its own that marks its items done, and its outbox key names the newest item, so a second worker or a
second run adds nothing.

The digest is built from the proposals and comments as they are now: a proposal that closed or that the member
voted on meanwhile leaves the "open for your vote" list; a result shows the outcome if one has been written
since; a comment hidden or deleted meanwhile (or on a proposal the member can no longer see) is left out.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.mail.headers import bulk_headers, unsubscribe_token, unsubscribe_url
from app.mail.models import DigestEvery, DigestItem, MemberMailSettings, Mode
from app.mail.outbox import enqueue
from app.mail.policy import COMMENT_KINDS, org_defaults
from app.mail.services import preferences
from app.markdown import render_markdown
from app.members.models import Member, Status
from app.proposals.models import Option, Proposal, State
from app.settings import Settings

log = logging.getLogger("plenary.mail")

PERIODS: dict[str, dt.timedelta] = {DigestEvery.DAILY: dt.timedelta(days=1), DigestEvery.WEEKLY: dt.timedelta(days=7)}
MEMBERS_PER_RUN = 500  # the rest wait for the next tick, so one tick stays short


def due_members(session: Session, *, now: dt.datetime, limit: int = MEMBERS_PER_RUN) -> list[int]:
    default_every = org_defaults(session).digest_every
    rows = session.execute(
        select(DigestItem.member_id, func.min(DigestItem.created_at), MemberMailSettings.digest_every)
        .outerjoin(MemberMailSettings, MemberMailSettings.member_id == DigestItem.member_id)
        .where(DigestItem.digested_at.is_(None))
        .group_by(DigestItem.member_id, MemberMailSettings.digest_every)
        .order_by(func.min(DigestItem.created_at))).all()
    return [mid for mid, first, every in rows if first + PERIODS[every or default_every] <= now][:limit]


def run_due_digests(db: Any, settings: Settings, *, now: dt.datetime | None = None) -> int:
    """Build and queue every due digest (up to MEMBERS_PER_RUN). Returns how many digests were queued."""
    now = now or utcnow()
    with db.read() as s:
        due = due_members(s, now=now)
    queued = 0
    for member_id in due:
        with db.begin() as s:
            queued += build_digest(s, settings, member_id, now=now)
    return queued


def build_digest(session: Session, settings: Settings, member_id: int, *, now: dt.datetime) -> bool:
    """Gather the member's waiting items into one message (or none, if nothing is still worth reading) and mark
    them done. Returns whether a message was queued."""
    from app.comments.notify import digest_entry
    from app.voting.links import link_choices, vote_token
    from app.voting.notify import deadline_text, org_name_and_tz
    from app.voting.services import voted_proposal_ids

    items = list(session.scalars(select(DigestItem).where(
        DigestItem.member_id == member_id, DigestItem.digested_at.is_(None)).order_by(DigestItem.id)))
    if not items:
        return False
    # Marked first, and only if still waiting: a worker racing for the same digest finds nothing to do.
    marked = session.connection().execute(update(DigestItem).where(DigestItem.id.in_([i.id for i in items]),
                                                      DigestItem.digested_at.is_(None))
                             .values(digested_at=now)).rowcount
    member = session.get(Member, member_id)
    prefs = preferences(session, member_id)
    if marked != len(items) or member is None or member.status == Status.DEACTIVATED or prefs.unsubscribed_all:
        return False
    org_name, tz = org_name_and_tz(session)
    pids = sorted({i.proposal_id for i in items if i.proposal_id is not None})
    proposals = {p.id: p for p in session.scalars(select(Proposal).where(Proposal.id.in_(pids)))}
    voted = voted_proposal_ids(session, member_id, pids)
    to_vote: dict[int, dict[str, Any]] = {}
    results: dict[int, dict[str, Any]] = {}
    comments: list[dict[str, str]] = []
    for item in items:
        p = proposals.get(item.proposal_id or 0)
        wanted = prefs.modes.get(item.kind, Mode.IMMEDIATELY) != Mode.NEVER or \
            (item.kind == "results" and p is not None and p.id in voted)
        if p is None or not wanted:
            continue
        if item.kind in COMMENT_KINDS:
            entry = digest_entry(session, settings, member, item.kind, item.comment_id)
            if entry is not None:
                comments.append(entry)
            continue
        if item.kind in ("announcement", "reminder"):
            if p.state != State.OPEN or p.closes_at is None or p.closes_at <= now or p.id in voted:
                continue
            options = list(session.scalars(select(Option).where(Option.proposal_id == p.id)
                                           .order_by(Option.position)))
            entry = to_vote.setdefault(p.id, {
                "title": p.title, "summary": p.summary, "deadline": deadline_text(p.closes_at, tz),
                "link": settings.url(f"/proposals/{p.id}"), "closing_soon": False,
                "buttons": [(label, settings.url("/vote/" + vote_token(
                    settings, member_id=member_id, proposal_id=p.id, choice=value, expires_at=p.closes_at)))
                    for value, label in link_choices(p, options)]})
            entry["closing_soon"] |= item.kind == "reminder"
        elif item.kind in ("results", "outcome_update") and p.state == State.CLOSED:
            result = p.result or {}
            results[p.id] = {
                "title": p.title, "verdict": result.get("verdict", ""), "ballots": result.get("ballots", 0),
                "eligible": result.get("eligible", 0), "turnout_percent": result.get("turnout_percent", 0),
                "outcome_text": p.outcome_md or "", "outcome_html": render_markdown(p.outcome_md or ""),
                "link": settings.url(f"/proposals/{p.id}/results")}
    from app.actions.campaigns import digest_entries

    campaigns = digest_entries(session, settings, member_id, items, prefs.modes)
    if not to_vote and not results and not comments and not campaigns:
        return False
    token = unsubscribe_token(settings, member_id, "digest")
    context = {"org_name": org_name, "name": member.name, "every": prefs.digest_every,
               "to_vote": list(to_vote.values()), "results": list(results.values()), "comments": comments,
               "campaigns": campaigns,
               "unsubscribe_link": unsubscribe_url(settings, token), "preferences_link": settings.url("/profile#mail")}
    return enqueue(session, settings, kind="digest", to_addr=member.email, to_name=member.name, member_id=member.id,
                   context=context, dedupe=f"member:{member_id}:i{items[-1].id}",
                   headers=bulk_headers(settings, org_name=org_name, token=token))
