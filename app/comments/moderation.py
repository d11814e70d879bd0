"""Admins' moderation: the queue of flagged comments, hiding and restoring, blocks, closing comments.

Every change here is audit-logged. Hiding keeps the comment (admins can still read it and restore it);
members see only the reason in its place.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from markupsafe import Markup
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from app.comments import notify
from app.comments.models import Comment, CommentBlock, CommentClosure, Flag
from app.comments.services import BLOCK_DAYS_MAX, CommentError, clean_reason, count_change
from app.db import utcnow
from app.markdown import render_markdown
from app.members.guard import audit
from app.members.models import Member, Role
from app.middleware import CurrentMember
from app.proposals.models import Proposal

QUEUE_SIZE = 50
RECENTLY_HIDDEN = 20


def _admin(me: CurrentMember) -> None:
    if not me.is_admin:
        raise CommentError("This is for admins of the organization.", 403)


def _any_comment(session: Session, comment_id: int) -> Comment:
    c = session.get(Comment, comment_id)
    if c is None:
        raise CommentError("There is no such comment.", 404)
    return c


def _resolve_flags(session: Session, comment_id: int, me: CurrentMember, resolution: str,
                   now: dt.datetime) -> int:
    result = session.execute(update(Flag).where(Flag.comment_id == comment_id, Flag.resolved_at.is_(None))
                             .values(resolved_at=now, resolved_by=me.id, resolution=resolution))
    return result.rowcount or 0  # type: ignore[attr-defined]


def hide(session: Session, me: CurrentMember, comment_id: int, *, reason: str, ip: str = "",
         now: dt.datetime | None = None) -> Comment:
    """Hide a comment from members: they see the reason in its place, never its text. Resolves its flags."""
    _admin(me)
    now = now or utcnow()
    c = _any_comment(session, comment_id)
    if c.deleted_at is not None:
        raise CommentError("Its author deleted this comment; there is nothing left to hide.", 409)
    if c.hidden_at is not None:
        raise CommentError("This comment is already hidden.", 409)
    text = clean_reason(reason, "members see it in place of the comment")
    count_change(session, c, -1)
    c.hidden_at, c.hidden_reason, c.hidden_by = now, text, me.id
    notify.withdraw(session, c.id)  # its mail not yet sent must not carry it out
    flags = _resolve_flags(session, c.id, me, "hidden", now)
    audit(session, "comment.hide", actor_id=me.id, ip=ip, object_type="comment", object_id=c.id,
          summary=f"Hid comment {c.id}: {text}", proposal_id=c.proposal_id, author_id=c.author_id,
          flags_resolved=flags)
    return c


def restore(session: Session, me: CurrentMember, comment_id: int, *, ip: str = "") -> Comment:
    _admin(me)
    c = _any_comment(session, comment_id)
    if c.hidden_at is None:
        raise CommentError("This comment is not hidden.", 409)
    reason = c.hidden_reason
    c.hidden_at, c.hidden_reason, c.hidden_by = None, "", None
    count_change(session, c, +1)
    audit(session, "comment.restore", actor_id=me.id, ip=ip, object_type="comment", object_id=c.id,
          summary=f"Restored comment {c.id} (it was hidden: {reason})", proposal_id=c.proposal_id)
    return c


def keep(session: Session, me: CurrentMember, comment_id: int, *, ip: str = "",
         now: dt.datetime | None = None) -> int:
    """Keep a flagged comment as it is: its open flags are resolved and it leaves the queue."""
    _admin(me)
    c = _any_comment(session, comment_id)
    n = _resolve_flags(session, c.id, me, "kept", now or utcnow())
    if not n:
        raise CommentError("This comment has no open flags.", 409)
    audit(session, "comment.keep", actor_id=me.id, ip=ip, object_type="comment", object_id=c.id,
          summary=f"Kept comment {c.id} after {n} flag(s)", proposal_id=c.proposal_id)
    return n


def block_member(session: Session, me: CurrentMember, member_id: int, *, days: int, reason: str, ip: str = "",
                 now: dt.datetime | None = None) -> CommentBlock:
    """Stop a member from commenting, replying and editing for `days` days. Reading stays open."""
    _admin(me)
    now = now or utcnow()
    member = session.get(Member, member_id)
    if member is None:
        raise CommentError("There is no such member.", 404)
    if member.role == Role.ADMIN:
        raise CommentError("Admins can't be blocked from commenting. Change their role first.", 409)
    if not 1 <= days <= BLOCK_DAYS_MAX:
        raise CommentError(f"Block for 1 to {BLOCK_DAYS_MAX} days.")
    text = clean_reason(reason, "the member sees it when they try to comment")
    block = CommentBlock(member_id=member.id, until=now + dt.timedelta(days=days), reason=text, created_at=now,
                         created_by=me.id)
    session.add(block)
    session.flush()
    audit(session, "comment.block", actor_id=me.id, ip=ip, object_type="member", object_id=member.id,
          summary=f"Blocked {member.name} from commenting for {days} day(s): {text}", block_id=block.id)
    return block


def member_id_by_email(session: Session, email: str) -> int:
    member_id = session.scalar(select(Member.id).where(Member.email == email.strip().lower()))
    if member_id is None:
        raise CommentError("No member has that email address.", 404)
    return member_id


def lift_block(session: Session, me: CurrentMember, block_id: int, *, ip: str = "",
               now: dt.datetime | None = None) -> CommentBlock:
    _admin(me)
    now = now or utcnow()
    block = session.get(CommentBlock, block_id)
    if block is None:
        raise CommentError("There is no such block.", 404)
    if block.lifted_at is not None or block.until <= now:
        raise CommentError("This block has already ended.", 409)
    block.lifted_at, block.lifted_by = now, me.id
    audit(session, "comment.unblock", actor_id=me.id, ip=ip, object_type="member", object_id=block.member_id,
          summary=f"Lifted comment block {block.id}")
    return block


def set_closed(session: Session, me: CurrentMember, proposal_id: int, *, closed: bool, ip: str = "",
               now: dt.datetime | None = None) -> None:
    """Close (or reopen) comments on a proposal. Closed comments stay readable; admins can still respond."""
    _admin(me)
    p = session.get(Proposal, proposal_id)
    if p is None:
        raise CommentError("There is no such proposal.", 404)
    current = session.get(CommentClosure, p.id)
    if closed == (current is not None):
        raise CommentError("Comments are already closed." if closed else "Comments are already open.", 409)
    if closed:
        session.add(CommentClosure(proposal_id=p.id, closed_at=now or utcnow(), closed_by=me.id))
    else:
        session.delete(current)
    audit(session, "comments.close" if closed else "comments.reopen", actor_id=me.id, ip=ip,
          object_type="proposal", object_id=p.id,
          summary=f"{'Closed' if closed else 'Reopened'} comments on {p.title}")


# --- the queue ------------------------------------------------------------------------------------------------

@dataclass
class FlagView:
    by: str
    reason: str
    at: dt.datetime


@dataclass
class QueueItem:
    comment: Comment
    author: str
    proposal_title: str
    body_html: Markup
    flags: list[FlagView]


@dataclass
class BlockView:
    block: CommentBlock
    member: str


@dataclass
class Queue:
    flagged: list[QueueItem]
    open_flags: int
    hidden: list[QueueItem]
    blocks: list[BlockView]


def queue(session: Session, now: dt.datetime | None = None) -> Queue:
    """Flagged comments (most recently flagged first) with every open flag's reason, recently hidden
    comments, and the blocks in force."""
    now = now or utcnow()
    open_flags = (select(Flag.comment_id, func.max(Flag.created_at).label("last"))
                  .where(Flag.resolved_at.is_(None)).group_by(Flag.comment_id).subquery())
    author = aliased(Member)
    base = (select(Comment, author.name, Proposal.title).join(Proposal, Proposal.id == Comment.proposal_id)
            .outerjoin(author, author.id == Comment.author_id))
    flagged_rows = session.execute(base.join(open_flags, open_flags.c.comment_id == Comment.id)
                                   .order_by(open_flags.c.last.desc()).limit(QUEUE_SIZE)).all()
    ids = [c.id for c, _, _ in flagged_rows]
    flags: dict[int, list[FlagView]] = {}
    if ids:
        for f, name in session.execute(select(Flag, Member.name).outerjoin(Member, Member.id == Flag.member_id)
                                       .where(Flag.comment_id.in_(ids), Flag.resolved_at.is_(None))
                                       .order_by(Flag.created_at, Flag.id)):
            flags.setdefault(f.comment_id, []).append(FlagView(by=name or "A former member", reason=f.reason,
                                                               at=f.created_at))
    hidden_rows = session.execute(base.where(Comment.hidden_at.is_not(None))
                                  .order_by(Comment.hidden_at.desc()).limit(RECENTLY_HIDDEN)).all()

    def item(c: Comment, name: str | None, title: str) -> QueueItem:
        return QueueItem(comment=c, author=name or "A former member", proposal_title=title,
                         body_html=render_markdown(c.body_md), flags=flags.get(c.id, []))

    blocks = [BlockView(block=b, member=name) for b, name in session.execute(
        select(CommentBlock, Member.name).join(Member, Member.id == CommentBlock.member_id)
        .where(CommentBlock.lifted_at.is_(None), CommentBlock.until > now)
        .order_by(CommentBlock.until))]
    return Queue(flagged=[item(*r) for r in flagged_rows],
                 open_flags=session.scalar(select(func.count()).select_from(Flag)
                                           .where(Flag.resolved_at.is_(None))) or 0,
                 hidden=[item(*r) for r in hidden_rows], blocks=blocks)
