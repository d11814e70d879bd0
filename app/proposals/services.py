"""Proposals' rules for admins' changes: create, edit, publish or schedule, close early, clarify, outcome.

Plain functions over a Session: they never commit and never see a Request, and refuse with `ProposalError`
(a message for the admin, the form field it concerns, and an HTTP status for the view). Reading and the
visibility rule live in `queries.py`; `can_see` is re-exported here for other domains.

The text, options, audience and rules can change only while a proposal is a draft or scheduled; once voting
opens they are frozen and only dated clarifications can be added. Every version is kept as a Revision.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.db import utcnow
from app.markdown import render_markdown
from app.members.guard import audit
from app.members.models import Group
from app.proposals import revisions
from app.proposals.forms import ProposalInput
from app.proposals.models import Clarification, Option, Proposal, ProposalGroup, State
from app.proposals.queries import can_see as can_see  # the visibility rule, re-exported for other domains
from app.settings import Settings

CLARIFICATION_MAX = 5_000
OUTCOME_MAX = 20_000
REASON_MAX = 500
EDITABLE = (State.DRAFT, State.SCHEDULED)


class ProposalError(ValueError):
    """A change the rules refuse. `field` names the form field it concerns; `status` is the HTTP answer."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


def _locked(session: Session, proposal_id: int) -> Proposal:
    # FOR UPDATE (PostgreSQL) so an edit and a concurrent open cannot interleave between the state check and
    # the write; on SQLite the write transaction's BEGIN IMMEDIATE already serializes them.
    p = session.scalar(select(Proposal).where(Proposal.id == proposal_id).with_for_update()
                       .options(selectinload(Proposal.options), selectinload(Proposal.groups)))
    if p is None:
        raise ProposalError("No such proposal.", status=404)
    return p


def _group_names(session: Session, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Group.id, Group.name).where(Group.id.in_(ids))).all())


def _apply(p: Proposal, data: ProposalInput) -> None:
    p.kind, p.title, p.summary, p.body_md = data.kind, data.title, data.summary, data.body_md
    p.current_text, p.proposed_text = data.current_text, data.proposed_text
    p.method, p.threshold, p.threshold_strict = data.method, data.threshold, data.threshold_strict
    p.quorum = data.quorum
    p.allow_none, p.max_picks, p.max_score = data.allow_none, data.max_picks, data.max_score
    p.secret, p.visibility, p.publish_choices = data.secret, data.visibility, data.publish_choices
    p.audience_all, p.opens_at, p.closes_at = data.audience_all, data.opens_at, data.closes_at
    # Options are updated in place by position (not replaced), so the unique (proposal, position) key is never
    # hit by an insert that the unit of work would order before the matching delete.
    for i, label in enumerate(data.options):
        if i < len(p.options):
            p.options[i].label = label
        else:
            p.options.append(Option(position=i, label=label))
    del p.options[len(data.options):]
    wanted = set() if data.audience_all else set(data.group_ids)
    p.groups[:] = [g for g in p.groups if g.group_id in wanted]
    have = {g.group_id for g in p.groups}
    p.groups.extend(ProposalGroup(group_id=gid) for gid in sorted(wanted - have))


def _check_groups(session: Session, data: ProposalInput) -> dict[int, str]:
    names = _group_names(session, data.group_ids)
    if set(data.group_ids) - set(names):
        raise ProposalError("One of the chosen groups does not exist.", field="groups")
    return names


def create_proposal(session: Session, data: ProposalInput, *, actor_id: int, ip: str = "") -> Proposal:
    names = _check_groups(session, data)
    p = Proposal(public_id=secrets.token_urlsafe(12), created_by=actor_id, state=State.DRAFT, options=[],
                 groups=[])
    _apply(p, data)
    session.add(p)
    session.flush()  # the revision and audit rows need the id
    revisions.record(session, p, revisions.snapshot(p, names), author_id=actor_id, note="Created")
    audit(session, "proposal.create", actor_id=actor_id, ip=ip, object_type="proposal", object_id=p.id,
          summary=p.title)
    return p


def update_proposal(session: Session, proposal_id: int, data: ProposalInput, *, actor_id: int,
                    ip: str = "") -> list[str]:
    """Save an edit; returns the labels of what changed (empty: nothing did, and nothing is written)."""
    p = _locked(session, proposal_id)
    if p.state not in EDITABLE:
        raise ProposalError("Voting has opened, so this proposal can no longer be edited. "
                            "Add a clarification instead.", status=409)
    if p.state == State.SCHEDULED and data.opens_at is None:
        raise ProposalError("This proposal is scheduled, so it needs an opening time.", field="opens_at")
    names = _check_groups(session, data)
    before = revisions.snapshot(p, _group_names(session, [g.group_id for g in p.groups]))
    _apply(p, data)
    after = revisions.snapshot(p, names)
    changed = revisions.changed_labels(before, after)
    if not changed:
        return []
    p.updated_at = utcnow()
    note = "Changed: " + ", ".join(changed)
    revisions.record(session, p, after, author_id=actor_id, note=note)
    audit(session, "proposal.edit", actor_id=actor_id, ip=ip, object_type="proposal", object_id=p.id,
          summary=f"{p.title}: {note}"[:1000], changed=changed)
    return changed


def publish(session: Session, settings: Settings, proposal_id: int, *, when: str, actor_id: int, ip: str = "",
            now: dt.datetime | None = None) -> Proposal:
    """Open voting now, or schedule it for the stored opening time (the worker opens it then)."""
    from app.voting.services import VotingError, open_proposal

    now = now or utcnow()
    if when not in ("now", "later"):
        raise ProposalError("Choose to open voting now or at the set time.")
    p = _locked(session, proposal_id)
    if when == "now":
        try:
            # open_proposal audits the opening with the actor, so no second audit row here.
            open_proposal(session, settings, p.id, now=now, actor_id=actor_id)
        except VotingError as exc:
            raise ProposalError(str(exc), status=exc.status) from exc
        return p
    if p.state != State.DRAFT:
        raise ProposalError("Only a draft can be scheduled." if p.state != State.SCHEDULED
                            else "This proposal is already scheduled.", status=409)
    if p.opens_at is None:
        raise ProposalError("Set an opening time first (edit the proposal), or open voting now.")
    if p.opens_at <= now:
        raise ProposalError("The opening time has passed. Edit it, or open voting now.")
    if p.closes_at is None or p.closes_at <= p.opens_at:
        raise ProposalError("The deadline must be after the opening time. Edit the proposal first.")
    p.state, p.updated_at = State.SCHEDULED, now
    audit(session, "proposal.schedule", actor_id=actor_id, ip=ip, object_type="proposal", object_id=p.id,
          summary=f"{p.title}: opens {p.opens_at.isoformat()}")
    return p


def close_early(session: Session, settings: Settings, proposal_id: int, *, reason: str, actor_id: int,
                org_name: str = "Plenary") -> None:
    """Close voting before the deadline. The voting service counts, stores the result and audits the close."""
    from app.voting.services import VotingError, close_proposal

    reason = " ".join(reason.replace("\x00", "").split())
    if not reason:
        raise ProposalError("Say why voting is closing early: members will read it.", field="reason")
    if len(reason) > REASON_MAX:
        raise ProposalError(f"The reason can be at most {REASON_MAX} characters.", field="reason")
    try:
        close_proposal(session, settings, proposal_id, actor_id=actor_id, reason=reason, org_name=org_name)
    except VotingError as exc:
        raise ProposalError(str(exc), status=exc.status) from exc


def add_clarification(session: Session, proposal_id: int, body: str, *, actor_id: int,
                      ip: str = "") -> Clarification:
    p = _locked(session, proposal_id)
    if p.state != State.OPEN:
        raise ProposalError("Clarifications are added while voting is open. "
                            + ("Edit the proposal instead." if p.state in EDITABLE else "Voting has closed."),
                            status=409)
    body = _markdown_text(body, CLARIFICATION_MAX, "clarification")
    c = Clarification(proposal_id=p.id, author_id=actor_id, body_md=body)
    session.add(c)
    session.flush()
    audit(session, "proposal.clarify", actor_id=actor_id, ip=ip, object_type="proposal", object_id=p.id,
          summary=p.title, clarification_id=c.id)
    return c


def set_outcome(session: Session, proposal_id: int, text: str, *, actor_id: int, ip: str = "",
                now: dt.datetime | None = None, settings: Settings | None = None, send_update: bool = False) -> int:
    """Write or change the outcome. With `send_update` (and `settings`), the audience is emailed the outcome
    (kind `outcome_update`, once per revision, as each member's preferences allow). Returns how many members
    will get it now or in their digest."""
    p = _locked(session, proposal_id)
    if p.state != State.CLOSED:
        raise ProposalError("The outcome is written after voting closes.", status=409)
    text = _markdown_text(text, OUTCOME_MAX, "outcome")
    first = not p.outcome_md
    p.outcome_md, p.outcome_at = text, now or utcnow()
    audit(session, "proposal.outcome", actor_id=actor_id, ip=ip, object_type="proposal", object_id=p.id,
          summary=f"{p.title}: outcome {'written' if first else 'changed'}"
          + (" and emailed to members" if send_update else ""))
    if not send_update or settings is None:
        return 0
    from app.voting.notify import enqueue_outcome_update

    sent = enqueue_outcome_update(session, settings, p, now=p.outcome_at)
    return sent.sent + sent.folded


def _markdown_text(text: str, limit: int, field: str) -> str:
    text = (text or "").replace("\x00", "").strip()  # PostgreSQL refuses NUL in text
    if not text:
        raise ProposalError(f"Write the {field} first.", field=field)
    if len(text) > limit:
        raise ProposalError(f"The {field} can be at most {limit:,} characters.", field=field)
    if not render_markdown(text).strip():
        raise ProposalError(f"The {field} has no readable text.", field=field)
    return text
