"""Mail that voting causes: the results summary to the whole audience at close.

The message is composed once and written to the outbox for every eligible member in one bulk insert (a
unique key per proposal and recipient makes a second close, or a retried job, send nothing twice).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.mail.outbox import enqueue_many
from app.members.models import Member, Status
from app.proposals.models import Proposal
from app.settings import Settings
from app.voting.models import Eligibility


def enqueue_results(session: Session, settings: Settings, p: Proposal, *, org_name: str) -> int:
    recipients = session.execute(
        select(Member.id, Member.email, Member.name).join(Eligibility, Eligibility.member_id == Member.id)
        .where(Eligibility.proposal_id == p.id, Member.status != Status.DEACTIVATED).order_by(Member.id)
    ).all()
    result = p.result or {}
    context = {
        "org_name": org_name,
        "title": p.title,
        "verdict": result.get("verdict", ""),
        "rows": result.get("rows", []),
        "ballots": result.get("ballots", 0),
        "eligible": result.get("eligible", 0),
        "turnout_percent": result.get("turnout_percent", 0),
        "link": settings.url(f"/proposals/{p.id}/results"),
    }
    return enqueue_many(session, settings, kind="results", context=context, dedupe=f"proposal:{p.id}",
                        recipients=[(r.id, r.email, r.name) for r in recipients])
