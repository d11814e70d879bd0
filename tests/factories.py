"""Plain `make_*` functions: they add and flush, never commit (the caller's unit of work does)."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets

from sqlalchemy.orm import Session

from app import security
from app.members.models import Group, GroupMembership, Member
from app.proposals.models import Proposal

_seq = itertools.count(1)
# Cheap hashing parameters for fixtures; the app's own hashing uses the test settings' parameters.
_ctx = security.password_context(1, 8192)


def make_member(session: Session, *, email: str | None = None, name: str | None = None, role: str = "member",
                status: str = "active", password: str | None = None, groups: tuple[Group, ...] = ()) -> Member:
    n = next(_seq)
    member = Member(
        email=(email or f"member{n}@example.org").lower(),
        name=name or f"Member {n}",
        role=role,
        status=status,
        password_hash=_ctx.hash(password) if password else None,
    )
    session.add(member)
    session.flush()
    for g in groups:
        session.add(GroupMembership(group_id=g.id, member_id=member.id))
    session.flush()
    return member


def make_group(session: Session, *, name: str | None = None, description: str = "") -> Group:
    group = Group(name=name or f"Group {next(_seq)}", description=description)
    session.add(group)
    session.flush()
    return group


def make_proposal(session: Session, *, title: str = "Paint the hall green?", method: str = "yes_no",
                  options: tuple[str, ...] = (), secret: bool = True, visibility: str = "after_close",
                  state: str = "draft", closes_in: dt.timedelta = dt.timedelta(days=3),
                  groups: tuple[Group, ...] = (), created_by: int | None = None, **fields: object) -> Proposal:
    """A proposal (draft unless told otherwise) with its options; `state="open"` opens it through the service."""
    from app.db import utcnow
    from app.proposals.models import Option, ProposalGroup

    p = Proposal(public_id=secrets.token_urlsafe(12), title=title, method=method, secret=secret,
                 visibility=visibility, audience_all=not groups, closes_at=utcnow() + closes_in,
                 created_by=created_by, state="scheduled" if state == "scheduled" else "draft", **fields)
    session.add(p)
    session.flush()
    for i, label in enumerate(options):
        session.add(Option(proposal_id=p.id, position=i, label=label))
    for g in groups:
        session.add(ProposalGroup(proposal_id=p.id, group_id=g.id))
    session.flush()
    if state == "open":
        from app.settings import Settings
        from app.voting.services import open_proposal  # settings are not used when opening

        open_proposal(session, Settings(base_url="http://testserver", secret_key="x" * 40, env="test"), p.id)
        session.flush()
    return p


def make_comment(session: Session, proposal: Proposal, author: Member, *, body: str = "A comment.",
                 parent: object | None = None, paragraph: int = 0, stance: str | None = None,
                 response_status: str | None = None, created_at: dt.datetime | None = None) -> object:
    """A comment as the service would store it (its count included), without the service's checks."""
    from app.comments.models import Comment
    from app.comments.services import count_change
    from app.db import utcnow

    kind = "reply" if parent is not None else "response" if response_status else "comment"
    c = Comment(proposal_id=proposal.id, author_id=author.id, body_md=body, stance=stance, kind=kind,
                parent_id=getattr(parent, "id", None), paragraph=getattr(parent, "paragraph", paragraph),
                response_status=response_status, created_at=created_at or utcnow())
    session.add(c)
    session.flush()
    count_change(session, c, +1)
    return c
