"""What the results email says beyond the count: the strongest arguments for and against, and the action steps.

Arguments are the most endorsed top-level comments with a stance "for" or "against" (two a side at most), which
members can see: not hidden by a moderator, not deleted. Each is a sentence or two of plain text (the email
templates escape it), with its author, endorsements and a link to its thread.

Action steps are the proposal's steps, each with a line saying when, where or how much, and a link to where
members sign up: its place on the results page (`#step-ID`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actions.models import ActionStep, Kind
from app.actions.services import when_text
from app.comments.models import Comment, CommentKind, Stance
from app.members.models import Member
from app.proposals.models import Proposal
from app.settings import Settings
from app.text import markdown_excerpt

PER_SIDE = 2
SIDES = {Stance.FOR: "For", Stance.AGAINST: "Against"}


def strongest_arguments(session: Session, settings: Settings, p: Proposal,
                        per_side: int = PER_SIDE) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for stance, side in SIDES.items():
        rows = session.execute(
            select(Comment.id, Comment.body_md, Comment.endorsement_count, Member.name)
            .outerjoin(Member, Member.id == Comment.author_id)
            .where(Comment.proposal_id == p.id, Comment.kind == CommentKind.COMMENT, Comment.stance == stance,
                   Comment.hidden_at.is_(None), Comment.deleted_at.is_(None))
            .order_by(Comment.endorsement_count.desc(), Comment.id).limit(per_side)).all()
        out.extend({"side": side, "text": markdown_excerpt(body, 280), "author": name or "A former member",
                    "endorsements": count, "link": settings.url(f"/comments/{cid}#comment-{cid}")}
                   for cid, body, count, name in rows)
    return out


def _detail(step: ActionStep, tz: str) -> str:
    parts: list[str] = []
    if step.kind == Kind.SHIFT:
        parts += [when_text(step, tz), step.place]
        if step.capacity:
            parts.append(f"{step.capacity} places")
    elif step.kind == Kind.PLEDGE and step.goal:
        parts.append(f"goal: {step.goal:,} {step.unit}".rstrip())
    elif step.kind == Kind.TASK and step.capacity:
        parts.append(f"{step.capacity} places")
    return ", ".join(p for p in parts if p)


def action_steps(session: Session, settings: Settings, p: Proposal, tz: str,
                 now: dt.datetime | None = None) -> list[dict[str, str]]:
    """The proposal's steps (shifts that have started are left out: signing up has closed)."""
    steps = session.scalars(select(ActionStep).where(ActionStep.proposal_id == p.id)  # dated ones first, soonest
                            .order_by(ActionStep.starts_at.is_(None), ActionStep.starts_at, ActionStep.id))
    results = settings.url(f"/proposals/{p.id}/results")
    return [{"title": s.title, "detail": _detail(s, tz), "link": f"{results}#step-{s.id}"}
            for s in steps
            if not (now is not None and s.kind == Kind.SHIFT and s.starts_at is not None and s.starts_at <= now)]
