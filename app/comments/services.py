"""Comments' rules: who may post, reply, edit, delete, endorse and flag, and the admins' moderation.

Plain functions over a Session: they never commit and never see a Request, and refuse with `CommentError`
(a message for the person asking and the HTTP status a view answers with). Reading pages of comments lives
in `queries.py`.

The rules, in one place:
- Reading and posting follow the proposal: only members who can see it (`can_see`), once voting has opened.
  Members comment, reply, endorse and edit while voting is open, unless an admin closed comments or blocked
  the member; they read (and delete their own) for ever after.
- Admins' official responses can be posted while voting is open or after it closed, even with comments
  closed: answering members is what they are for.
- Bodies are Markdown, 10,000 characters at most (counted after line endings are made "\\n", so the
  browser's `maxlength` and this check agree), rendered by the same sanitizer as proposals.
- Ten comments a minute per member (`check_rate`); a member can edit a comment for 30 minutes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app import live
from app.comments import mentions
from app.comments.models import (
    Comment,
    CommentBlock,
    CommentClosure,
    CommentCount,
    CommentKind,
    CommentRevision,
    Endorsement,
    Flag,
    Notification,
    NotificationKind,
    ResponseStatus,
    Stance,
)
from app.db import utcnow
from app.markdown import render_markdown
from app.members.guard import RateLimited, audit, check_rate
from app.members.models import GroupMembership, Member, Role, Status
from app.middleware import CurrentMember
from app.proposals.models import Kind, Proposal, ProposalGroup, State
from app.proposals.services import can_see
from app.settings import Settings
from app.voting.models import Eligibility

MAX_LENGTH = 10_000
EDIT_WINDOW = dt.timedelta(minutes=30)
RATE_LIMIT, RATE_WINDOW_S = 10, 60
FLAG_LIMIT, FLAG_WINDOW_S = 10, 600
REASON_MAX = 500
BLOCK_DAYS_MAX = 365

STANCES = {Stance.FOR: "For the proposal", Stance.AGAINST: "Against the proposal", Stance.NEUTRAL: "Neutral"}
STATUSES = {
    ResponseStatus.REVIEW: "Under review",
    ResponseStatus.ACCEPTED: "Accepted",
    ResponseStatus.CHANGED: "Changed the proposal",
    ResponseStatus.DECLINED: "Declined",
}
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


class CommentError(ValueError):
    """An action the rules refuse. `status` is the HTTP status a view should answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def paragraphs(text: str) -> list[str]:
    """A policy text's paragraphs (separated by blank lines), numbered from 1 by their position here.
    The text is frozen once voting opens, so the numbers comments refer to never shift."""
    text = text.replace("\r\n", "\n").strip()
    return [part.strip() for part in _PARAGRAPH_BREAK.split(text) if part.strip()] if text else []


def clean_body(body: str) -> str:
    text = (body or "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()
    if not text:
        raise CommentError("Write your comment first.")
    if len(text) > MAX_LENGTH:
        raise CommentError(f"Your comment is {len(text):,} characters long; the limit is {MAX_LENGTH:,}. "
                           "Shorten it and send it again.")
    if not render_markdown(text).strip():
        raise CommentError("Your comment has no readable text.")
    return text


def clean_reason(reason: str, what: str) -> str:
    text = " ".join((reason or "").replace("\x00", "").split())
    if not text:
        raise CommentError(f"Give a reason: {what}.")
    if len(text) > REASON_MAX:
        raise CommentError(f"The reason can be at most {REASON_MAX} characters.")
    return text


def _stance(value: str | None) -> str | None:
    if not value:
        return None
    if value not in STANCES:
        raise CommentError("Choose for, against, neutral, or no position.")
    return value


# --- who may do what ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Access:
    """What the asking member may do with one proposal's comments, now."""

    member_id: int
    is_admin: bool
    now: dt.datetime
    voting_open: bool
    closed_by_admin: bool
    blocked_until: dt.datetime | None = None
    block_reason: str = ""

    @property
    def accepting(self) -> bool:
        """Members may add comments and endorsements (before the member's own block is considered)."""
        return self.voting_open and not self.closed_by_admin

    @property
    def can_post(self) -> bool:
        return self.accepting and self.blocked_until is None

    def refusal(self) -> CommentError | None:
        if not self.voting_open:
            return CommentError("Voting on this proposal has closed, and so have its comments. "
                                "You can still read them.", 409)
        if self.closed_by_admin:
            return CommentError("An admin has closed comments on this proposal. You can still read them.", 409)
        if self.blocked_until is not None:
            return CommentError(f"An admin has paused your commenting until "
                                f"{self.blocked_until:%-d %b %Y, %H:%M} UTC. Reason: {self.block_reason}", 403)
        return None


# Read on every proposal page: prebuilt, run on the session's connection (no ORM layer).
_ACTIVE_BLOCK = (select(CommentBlock.until, CommentBlock.reason)
                 .where(CommentBlock.member_id == bindparam("mid"), CommentBlock.lifted_at.is_(None),
                        CommentBlock.until > bindparam("now", type_=CommentBlock.until.type))
                 .order_by(CommentBlock.until.desc()).limit(1))
_CLOSED = select(CommentClosure.proposal_id).where(CommentClosure.proposal_id == bindparam("pid"))


def active_block(session: Session, member_id: int, now: dt.datetime) -> Any:
    """The member's current block (its `until` and `reason`), or None."""
    return session.connection().execute(_ACTIVE_BLOCK, {"mid": member_id, "now": now}).first()


def access(session: Session, me: CurrentMember, p: Proposal, now: dt.datetime | None = None) -> Access:
    now = now or utcnow()
    closed = session.connection().execute(_CLOSED, {"pid": p.id}).scalar()
    block = active_block(session, me.id, now)
    return Access(member_id=me.id, is_admin=me.is_admin, now=now,
                  voting_open=p.state == State.OPEN and (p.closes_at is None or p.closes_at > now),
                  closed_by_admin=closed is not None,
                  blocked_until=block.until if block else None, block_reason=block.reason if block else "")


def proposal_for(session: Session, me: CurrentMember, proposal_id: int) -> Proposal:
    """The proposal if this member may read its comments. Not visible answers 404, like not existing."""
    p = session.get(Proposal, proposal_id)
    if p is None or not can_see(session, me, p):
        raise CommentError("There is no such proposal, or it was not put to you.", 404)
    if p.state not in (State.OPEN, State.CLOSED):
        raise CommentError("Comments open when voting opens.", 409)
    return p


def comment_for(session: Session, me: CurrentMember, comment_id: int) -> tuple[Comment, Proposal]:
    c = session.get(Comment, comment_id)
    if c is None:
        raise CommentError("There is no such comment.", 404)
    try:
        p = proposal_for(session, me, c.proposal_id)
    except CommentError as exc:
        raise CommentError("There is no such comment.", 404) from exc
    return c, p


def require_live(c: Comment, action: str) -> None:
    if c.deleted_at is not None:
        raise CommentError(f"This comment was deleted, so it can't {action}.", 409)
    if c.hidden_at is not None:
        raise CommentError(f"A moderator hid this comment, so it can't {action}.", 409)


def _own(session: Session, me: CurrentMember, comment_id: int, verb: str) -> tuple[Comment, Proposal]:
    c, p = comment_for(session, me, comment_id)
    if c.author_id != me.id:
        raise CommentError(f"You can only {verb} your own comments.", 403)
    require_live(c, f"be {'edited' if verb == 'edit' else 'deleted'}")
    return c, p


def can_edit(c: Any, acc: Access) -> bool:
    """`c`: the comment, or its row as a page reads it (the same names)."""
    if c.author_id != acc.member_id or c.deleted_at or c.hidden_at or acc.now - c.created_at > EDIT_WINDOW:
        return False
    return True if c.response_status is not None else acc.can_post  # an official response: always


# --- members' actions ---------------------------------------------------------------------------------------

def post_comment(session: Session, me: CurrentMember, proposal_id: int, *, body: str, settings: Settings,
                 stance: str = "", parent_id: int | None = None, paragraph: int | None = None,
                 response_status: str = "", now: dt.datetime | None = None) -> Comment:
    """A comment, a reply (to a top-level comment; a reply to a reply joins its thread), a comment on one
    paragraph of a policy change, or (admins) an official response to any of these or to the proposal.
    Mail to whoever it concerns is queued in the same transaction (`comments.notify`)."""
    from app.comments import notify

    now = now or utcnow()
    p = proposal_for(session, me, proposal_id)
    official = bool(response_status)
    if official:
        if not me.is_admin:
            raise CommentError("Only admins can post an official response.", 403)
        if response_status not in STATUSES:
            raise CommentError("Choose the status of the feedback from the list.")
    else:
        refusal = access(session, me, p, now).refusal()
        if refusal is not None:
            raise refusal
    parent = answered = None
    if parent_id is not None:
        parent = answered = session.get(Comment, parent_id)
        if parent is not None and parent.parent_id is not None:
            parent = session.get(Comment, parent.parent_id)  # threads are one level deep
        if parent is None or parent.proposal_id != p.id:
            raise CommentError("There is no such comment to reply to.", 404)
        require_live(parent, "get new replies")
        paragraph, stance = parent.paragraph, ""
    elif paragraph and (p.kind != Kind.POLICY or not 1 <= paragraph <= len(paragraphs(p.proposed_text))):
        raise CommentError("The proposed text has no such paragraph.", 404)
    text = clean_body(body)
    stance_value = None if official else _stance(stance)
    try:
        check_rate(session, [f"comment:member:{me.id}"], limit=RATE_LIMIT, window_s=RATE_WINDOW_S)
    except RateLimited:
        raise CommentError(f"You have posted {RATE_LIMIT} comments in the last minute, the most Plenary takes. "
                           "Wait a minute, then send it again: your text is still in the form.", 429) from None
    kind = CommentKind.REPLY if parent else CommentKind.RESPONSE if official else CommentKind.COMMENT
    c = Comment(proposal_id=p.id, author_id=me.id, parent_id=parent.id if parent else None, kind=kind,
                paragraph=paragraph or 0, stance=stance_value, response_status=response_status or None,
                body_md=text, created_at=now)
    session.add(c)
    session.flush()  # the id, for notifications and the redirect to the comment's anchor
    count_change(session, c, +1)
    mentioned = _notify_mentions(session, p, c, me.id, now)
    if official and parent is not None and parent.author_id not in (None, me.id):
        session.add(Notification(member_id=parent.author_id, kind=NotificationKind.RESPONSE, proposal_id=p.id,
                                 comment_id=c.id, actor_id=me.id, created_at=now))
    if official:
        audit(session, "comment.respond", actor_id=me.id, object_type="comment", object_id=c.id,
              summary=f"Official response ({STATUSES[ResponseStatus(response_status)]}) on {p.title}")
    notify.on_posted(session, settings, p, c, answered=answered, mentioned=mentioned, now=now)
    live.announce(session, live.COMMENT, p.id)  # open pages fetch it once this commits
    return c


def edit_comment(session: Session, me: CurrentMember, comment_id: int, *, body: str, settings: Settings,
                 stance: str = "", now: dt.datetime | None = None) -> Comment:
    """Change one's own comment within 30 minutes; the earlier version is kept for admins. Members it names for
    the first time are mailed."""
    from app.comments import notify

    now = now or utcnow()
    c, p = _own(session, me, comment_id, "edit")
    acc = access(session, me, p, now)
    if now - c.created_at > EDIT_WINDOW:
        raise CommentError("A comment can be edited for 30 minutes after it is posted, and this one is older. "
                           "You can still delete it or add a reply.", 409)
    if not c.is_official:
        refusal = acc.refusal()
        if refusal is not None:
            raise refusal
    text = clean_body(body)
    new_stance = None if (c.parent_id is not None or c.is_official) else _stance(stance)
    if text == c.body_md and new_stance == c.stance:
        return c
    session.add(CommentRevision(comment_id=c.id, body_md=c.body_md, stance=c.stance,
                                written_at=c.edited_at or c.created_at, replaced_at=now))
    stance_changed = new_stance != c.stance
    if stance_changed:
        count_change(session, c, -1)
    c.body_md, c.stance, c.edited_at = text, new_stance, now
    if stance_changed:
        count_change(session, c, +1)
    mentioned = _notify_mentions(session, p, c, me.id, now)
    notify.on_edited(session, settings, p, c, mentioned=mentioned, now=now)
    return c


def delete_comment(session: Session, me: CurrentMember, comment_id: int,
                   now: dt.datetime | None = None) -> Comment | None:
    """Delete one's own comment. With replies, its place stays as "comment deleted" (text, earlier versions,
    endorsements and notifications go); without, it goes entirely. Returns what is left, if anything."""
    from app.comments import notify

    now = now or utcnow()
    c, _p = _own(session, me, comment_id, "delete")
    count_change(session, c, -1)
    notify.withdraw(session, c.id)
    if _reply_count(session, c.id):
        c.body_md, c.stance, c.deleted_at, c.endorsement_count = "", None, now, 0
        for model in (CommentRevision, Endorsement, Notification):
            session.execute(delete(model).where(model.comment_id == c.id))
        return c
    parent_id = c.parent_id
    session.delete(c)
    session.flush()
    if parent_id is not None:
        parent = session.get(Comment, parent_id)
        if parent is not None and parent.deleted_at is not None and not _reply_count(session, parent.id):
            session.delete(parent)  # a "comment deleted" kept only for its replies goes with the last one
    return None


def _reply_count(session: Session, comment_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Comment).where(Comment.parent_id == comment_id)) or 0


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert


def count_change(session: Session, c: Comment, delta: int) -> None:
    """Add `delta` to the count `c` is in (`comment_counts` counts comments with visible text). One upsert, so
    concurrent changes add up instead of overwriting each other."""
    ins = _insert(session)(CommentCount).values(proposal_id=c.proposal_id, paragraph=c.paragraph or 0,
                                                 stance=c.stance or "", n=delta)
    session.execute(ins.on_conflict_do_update(index_elements=["proposal_id", "paragraph", "stance"],
                                              set_={"n": CommentCount.n + ins.excluded.n}))


def recount(session: Session, proposal_id: int) -> None:
    """Rebuild a proposal's counts from its comments (for repairs; the services keep them right)."""
    session.execute(delete(CommentCount).where(CommentCount.proposal_id == proposal_id))
    rows = session.execute(
        select(Comment.paragraph, Comment.stance, func.count())
        .where(Comment.proposal_id == proposal_id, Comment.deleted_at.is_(None), Comment.hidden_at.is_(None))
        .group_by(Comment.paragraph, Comment.stance)).all()
    for paragraph, stance, n in rows:
        session.add(CommentCount(proposal_id=proposal_id, paragraph=paragraph or 0, stance=stance or "", n=n))


def endorse(session: Session, me: CurrentMember, comment_id: int, *, on: bool,
            now: dt.datetime | None = None) -> Comment:
    """Add or withdraw this member's "+1". The primary key allows one per member; two racing requests both
    try the same row, and only the one that inserted it changes the count."""
    now = now or utcnow()
    c, p = comment_for(session, me, comment_id)
    require_live(c, "be endorsed")
    if not access(session, me, p, now).accepting:
        raise CommentError("Comments on this proposal are closed, so endorsements can no longer change.", 409)
    if c.author_id == me.id:
        raise CommentError("You can't endorse your own comment.", 409)
    if on:
        changed = session.execute(
            _insert(session)(Endorsement).values(comment_id=c.id, member_id=me.id, created_at=now)
            .on_conflict_do_nothing(index_elements=["comment_id", "member_id"]).returning(Endorsement.member_id)
        ).first()
        if changed is None:
            raise CommentError("You already endorse this comment.", 409)
    else:
        changed = session.execute(delete(Endorsement).where(
            Endorsement.comment_id == c.id, Endorsement.member_id == me.id).returning(Endorsement.member_id)).first()
        if changed is None:
            raise CommentError("You have not endorsed this comment.", 409)
    session.execute(update(Comment).where(Comment.id == c.id)
                    .values(endorsement_count=Comment.endorsement_count + (1 if on else -1)))
    session.refresh(c)
    return c


def flag(session: Session, me: CurrentMember, comment_id: int, *, reason: str,
         now: dt.datetime | None = None) -> Flag:
    now = now or utcnow()
    c, _p = comment_for(session, me, comment_id)
    require_live(c, "be flagged")
    if c.author_id == me.id:
        raise CommentError("You can't flag your own comment; you can edit or delete it instead.", 409)
    text = clean_reason(reason, "tell the admins what is wrong with this comment")
    try:
        check_rate(session, [f"flag:member:{me.id}"], limit=FLAG_LIMIT, window_s=FLAG_WINDOW_S)
    except RateLimited:
        raise CommentError("You have flagged many comments in the last few minutes. "
                           "Wait a little, then send it again.", 429) from None
    flag_id = session.execute(
        _insert(session)(Flag).values(comment_id=c.id, member_id=me.id, reason=text, created_at=now)
        .on_conflict_do_nothing(index_elements=["comment_id", "member_id"]).returning(Flag.id)).scalar()
    if flag_id is None:
        raise CommentError("You have already flagged this comment. An admin will look at it.", 409)
    return session.get_one(Flag, flag_id)


# --- mentions -------------------------------------------------------------------------------------------------

def can_see_clause(p: Proposal) -> ColumnElement[bool]:
    """Members who can see proposal `p` (it is not a draft here): admins, then its audience."""
    if p.audience_all:
        return true()
    in_group = Member.id.in_(select(GroupMembership.member_id).join(
        ProposalGroup, ProposalGroup.group_id == GroupMembership.group_id).where(ProposalGroup.proposal_id == p.id))
    eligible = Member.id.in_(select(Eligibility.member_id).where(Eligibility.proposal_id == p.id))
    return or_(Member.role == Role.ADMIN, in_group, eligible)


def _notify_mentions(session: Session, p: Proposal, c: Comment, actor_id: int, now: dt.datetime) -> list[int]:
    """Record a notification for each member the comment names and was not notified of it yet; returns them."""
    wanted = mentions.handles(c.body_md)
    if not wanted:
        return []
    query = select(Member.id, Member.name).where(Member.status == Status.ACTIVE, can_see_clause(p))
    firsts = {k[0] for k in wanted}
    if all(ch.isascii() for ch in firsts):
        # Only names that start with a mentioned letter, so a comment with an @ does not load the whole
        # membership (SQL's lower() folds ASCII only: with another first letter, the match stays in Python).
        query = query.where(func.lower(func.substr(func.trim(Member.name), 1, 1)).in_(firsts))
    candidates = session.execute(query)
    named = set(mentions.resolve(wanted, candidates).values()) - {actor_id}
    already = set(session.scalars(select(Notification.member_id).where(
        Notification.comment_id == c.id, Notification.kind == NotificationKind.MENTION)))
    new = sorted(named - already)
    for member_id in new:
        session.add(Notification(member_id=member_id, kind=NotificationKind.MENTION, proposal_id=p.id,
                                 comment_id=c.id, actor_id=actor_id, created_at=now))
    session.flush()
    return new
