"""Vote links in announcement emails: one signed link per member and option, for yes/no and single-choice.

A link names a member, a proposal and an option, expires at the proposal's deadline, and is signed with the
app's secret (HMAC-SHA256, 128 bits kept). It is not a sign-in: it authorizes exactly one thing, looking at
that proposal and voting on it as that member, through a confirmation page. Opening it (GET) never votes,
because mail scanners open links; the page's form (with the CSRF token) casts with `via="email"`. While voting
is open a member may use it again to change their vote, as on the site; after close it is refused.

Whoever holds the link can vote as the member on that proposal until the deadline, like a forwarded ballot
paper; the page therefore never shows how the member voted, and never for a secret ballot.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app import security
from app.db import utcnow
from app.members.models import Member, Status
from app.proposals.models import Method, Proposal, State
from app.proposals.queries import options_of
from app.settings import Settings
from app.voting import services
from app.voting.services import CastResult, VotingError

_PURPOSE = "vote-link"
_TOKEN = re.compile(r"^([1-9][0-9]{0,11})-([1-9][0-9]{0,11})-(yes|no|abstain|none|[1-9][0-9]{0,11})-"
                    r"([0-9]{1,12})-([0-9a-f]{32})$")
LINK_METHODS = (Method.YES_NO, Method.SINGLE)
NOT_VALID = "This voting link is not valid. Open the proposal on the site to vote."


@dataclass(frozen=True)
class VoteLink:
    member_id: int
    proposal_id: int
    choice: str
    expires: int  # unix seconds: the proposal's deadline


def vote_token(settings: Settings, *, member_id: int, proposal_id: int, choice: str, expires_at: dt.datetime) -> str:
    payload = f"{member_id}-{proposal_id}-{choice}-{int(expires_at.timestamp())}"
    return f"{payload}-{security.sign(settings.secret_key, _PURPOSE, payload)}"


def read_vote_token(settings: Settings, token: str, *, now: dt.datetime | None = None) -> VoteLink:
    """The link's contents, or VotingError (400) when it is not ours, was altered, or has expired."""
    match = _TOKEN.match(token or "")
    if match is None:
        raise VotingError(NOT_VALID, 400)
    payload = token.rsplit("-", 1)[0]
    if not security.constant_equals(match.group(5), security.sign(settings.secret_key, _PURPOSE, payload)):
        raise VotingError(NOT_VALID, 400)
    link = VoteLink(int(match.group(1)), int(match.group(2)), match.group(3), int(match.group(4)))
    if (now or utcnow()).timestamp() >= link.expires:
        raise VotingError("This voting link has expired: voting on this proposal has closed.", 400)
    return link


def link_choices(p: Proposal, options: list[Any]) -> list[tuple[str, str]]:
    """(value, label) for each button an email may carry; empty for methods voted on the site only."""
    if p.method == Method.YES_NO:
        return [("yes", "Yes"), ("no", "No"), ("abstain", "Abstain")]
    if p.method == Method.SINGLE:
        return [(str(o.id), o.label) for o in options] + ([("none", "None of these")] if p.allow_none else [])
    return []


# --- the confirmation page -----------------------------------------------------------------------------------

@dataclass
class LinkPage:
    proposal: Proposal
    member_name: str
    choices: list[tuple[str, str]]
    chosen: str
    voted: bool


def link_page(session: Session, settings: Settings, token: str, *, now: dt.datetime | None = None) -> LinkPage:
    """What the link may show. Raises VotingError: 400 for a bad, altered or expired link, or one naming an
    option of another proposal; 409 once voting has closed."""
    now = now or utcnow()
    link = read_vote_token(settings, token, now=now)
    member = session.get(Member, link.member_id)
    p = session.get(Proposal, link.proposal_id)
    if member is None or member.status == Status.DEACTIVATED or p is None or p.state == State.DRAFT:
        raise VotingError(NOT_VALID, 400)
    if p.state != State.OPEN or (p.closes_at is not None and p.closes_at <= now):
        raise VotingError("Voting on this proposal has closed.", 409)
    options = options_of(session, p)
    choices = link_choices(p, options)
    if link.choice not in dict(choices):
        raise VotingError(NOT_VALID, 400)
    voted = p.id in services.voted_proposal_ids(session, member.id, [p.id])
    return LinkPage(proposal=p, member_name=member.name, choices=choices, chosen=link.choice, voted=voted)


def vote_by_link(session: Session, settings: Settings, token: str, choice: str, *,
                 now: dt.datetime | None = None) -> tuple[LinkPage, CastResult]:
    """Cast (or change) the member's vote from the confirmation page, recorded as coming from email, and queue
    the vote confirmation in the same transaction."""
    from app.voting.notify import confirm_vote

    page = link_page(session, settings, token, now=now)
    if choice not in dict(page.choices):
        raise VotingError("Choose one of the options.", 400)
    member_id = read_vote_token(settings, token, now=now).member_id
    result = services.cast_ballot(session, settings, proposal_id=page.proposal.id, member_id=member_id,
                                  raw_choice=choice, via="email", now=now)
    confirm_vote(session, settings, page.proposal, member_id=member_id, choice=choice, now=now)
    page.voted, page.chosen = True, choice
    return page, result
