"""Mail about comments: a reply to yours, a mention of you, an official response where you took part.

Called by the comment services in the transaction that posts (or edits) the comment, so a comment that is rolled
back mails nobody. Each kind is a mailing like the voting mails (app/mail/bulk.py): per member, `app/mail/policy.py`
decides send, fold into the digest or drop; the message carries the bulk-mail headers, the proposal's threading
headers and a Reply-To naming the member, the proposal and this comment, so answering the email answers in the
thread (app/mail/reply_address.py; none once the proposal has closed). The outbox key is (kind, comment,
recipient), so nobody gets the same message about the same comment twice.

Who gets what, each member at most one of these per comment (the first that applies):
1. `official_response`: every member who voted on the proposal (a participation row, which says nothing about
   the choice) or commented on it;
2. `comment_reply`: the author of the thread's comment, and of the reply that was answered (an email reply names
   it);
3. `mention`: each member named with @ (app/comments/mentions.py).
Never the author of the comment, never a deactivated member, never one who cannot see the proposal.

A comment hidden by a moderator or deleted by its author takes its waiting messages and digest items with it
(`withdraw`); the digest also checks again when it is built.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, delete, select, union
from sqlalchemy.orm import Session

from app.comments.models import Comment, Notification
from app.mail.bulk import Recipient, Slots, mail_audience, personal_links
from app.mail.models import DigestItem, OutboxMessage, OutboxStatus
from app.mail.policy import COMMENT_KINDS, plan
from app.mail.reply_address import reply_headers
from app.markdown import render_markdown
from app.members.models import Member, Status
from app.middleware import CurrentMember
from app.proposals.models import Proposal, State
from app.settings import Settings
from app.text import markdown_excerpt
from app.voting.models import Participation


def thread_path(c: Comment) -> str:
    """Where a comment can be read (as `comments.views.anchor` links it)."""
    if c.parent_id is not None:
        return f"/comments/{c.parent_id}/replies?after={c.id - 1}#comment-{c.id}"
    return f"/comments/{c.id}#comment-{c.id}"


def _can_see(p: Proposal) -> Any:
    from app.comments.services import can_see_clause

    return can_see_clause(p)


def _audience(p: Proposal, ids: Any, actor_id: int | None) -> Select[Any]:
    """Of `ids` (a list or a SELECT of member ids), those who may get mail about this proposal's comments."""
    query = select(Member.id).where(Member.id.in_(ids), Member.status != Status.DEACTIVATED, _can_see(p))
    return query.where(Member.id != actor_id) if actor_id is not None else query


def participants(p: Proposal) -> Any:
    """Members who took part in a proposal: voted (that they voted, not how) or commented."""
    return union(select(Participation.member_id).where(Participation.proposal_id == p.id),
                 select(Comment.author_id).where(Comment.proposal_id == p.id, Comment.author_id.is_not(None),
                                                 Comment.deleted_at.is_(None)))


def on_posted(session: Session, settings: Settings, p: Proposal, c: Comment, *, answered: Comment | None,
              mentioned: Iterable[int], now: dt.datetime) -> None:
    """Mail everyone a new comment concerns (see the module's docstring)."""
    done: set[int] = set()
    if c.response_status is not None:
        done |= _mail(session, settings, p, c, "official_response", participants(p), answered=answered, now=now)
    if c.parent_id is not None:
        top = session.get(Comment, c.parent_id)
        targets = {x.author_id for x in (top, answered) if x is not None and x.author_id is not None}
        done |= _mail(session, settings, p, c, "comment_reply", sorted(targets - done), answered=answered, now=now)
    _mail(session, settings, p, c, "mention", sorted(set(mentioned) - done), answered=answered, now=now)


def on_edited(session: Session, settings: Settings, p: Proposal, c: Comment, *, mentioned: Iterable[int],
              now: dt.datetime) -> None:
    """An edit that names new members mails them (those named before were mailed when they were named)."""
    _mail(session, settings, p, c, "mention", sorted(set(mentioned)), answered=None, now=now)


def _mail(session: Session, settings: Settings, p: Proposal, c: Comment, kind: str, ids: Any, *,
          answered: Comment | None, now: dt.datetime) -> set[int]:
    """One kind of message about `c` to the members among `ids` who may have it. Returns who was considered
    (sent, folded or not wanted), so a later kind skips them."""
    if isinstance(ids, list) and not ids:
        return set()
    audience = _audience(p, ids, c.author_id)
    recipients = [Recipient(*row) for row in session.execute(
        select(Member.id, Member.email, Member.name).where(Member.id.in_(audience.scalar_subquery()))
        .order_by(Member.id)).all()]
    if not recipients:
        return set()
    from app.voting.notify import org_name_and_tz

    org_name, _tz = org_name_and_tz(session)
    author = session.get(Member, c.author_id) if c.author_id is not None else None
    if answered is None or answered.id == c.id or answered.hidden_at or answered.deleted_at:
        answered = session.get(Comment, c.parent_id) if c.parent_id is not None else None
    answered_by = session.get(Member, answered.author_id) if answered and answered.author_id else None
    slots = Slots()
    open_now = p.state == State.OPEN and (p.closes_at is None or p.closes_at > now)
    context = {
        "org_name": org_name, "name": slots["name"], "unsubscribe_link": slots["unsubscribe"],
        "preferences_link": settings.url("/profile#mail"),
        "title": p.title, "author": author.name if author else "A former member",
        "official": c.response_status is not None, "status": _status_label(c),
        "text": c.body_md, "html": render_markdown(c.body_md),
        "answered_by": answered_by.name if answered_by else ("A former member" if answered else ""),
        "answered_excerpt": markdown_excerpt(answered.body_md, 200) if answered is not None else "",
        "link": settings.url(thread_path(c)), "proposal_link": settings.url(f"/proposals/{p.id}"),
        "can_reply": open_now and settings.reply_to_domain is not None,
    }
    base = personal_links(settings, kind=kind, org_name=org_name, public_id=p.public_id)

    def personal(r: Recipient) -> tuple[dict[str, str], dict[str, str]]:
        values, headers = base(r)
        if open_now:
            headers |= reply_headers(settings, member_id=r.member_id, proposal_id=p.id, comment_id=c.id)
        return values, headers

    mail_audience(session, settings, kind=kind, context=context, slots=slots, dedupe=f"comment:{c.id}",
                  recipients=recipients, plan=plan(session, kind, audience, now=now),
                  personal=personal, proposal_id=p.id, digest_key=f"{kind}:c{c.id}", comment_id=c.id)
    # The notifications recorded for these members and this comment are taken care of by this mail.
    ids_done = {r.member_id for r in recipients}
    for n in session.scalars(select(Notification).where(Notification.comment_id == c.id,
                                                        Notification.member_id.in_(ids_done),
                                                        Notification.sent_at.is_(None))):
        n.sent_at = now
    return ids_done


def _status_label(c: Comment) -> str:
    from app.comments.services import STATUSES

    return STATUSES.get(c.response_status, "") if c.response_status else ""  # type: ignore[call-overload]


def withdraw(session: Session, comment_id: int) -> None:
    """A comment is hidden or deleted: its messages not yet sent, and its items still waiting for a digest, go
    (and those of the replies in its thread, which quote it)."""
    ids = [comment_id, *session.scalars(select(Comment.id).where(Comment.parent_id == comment_id))]
    for cid in ids:
        for kind in COMMENT_KINDS:
            session.execute(delete(OutboxMessage).where(
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.dedupe_key.startswith(f"{kind}:comment:{cid}:", autoescape=True)))
    session.execute(delete(DigestItem).where(DigestItem.comment_id.in_(ids), DigestItem.digested_at.is_(None)))


_DIGEST_LINES = {"comment_reply": "{author} replied to your comment", "mention": "{author} mentioned you",
                 "official_response": "Official response by {author}"}


def digest_entry(session: Session, settings: Settings, member: Member, kind: str,
                 comment_id: int | None) -> dict[str, str] | None:
    """A folded message about a comment, as the digest lists it; None when it is no longer to be read (the
    comment was hidden or deleted, or the member can no longer see the proposal)."""
    from app.proposals.queries import can_see

    c = session.get(Comment, comment_id) if comment_id is not None else None
    if c is None or c.hidden_at is not None or c.deleted_at is not None or kind not in _DIGEST_LINES:
        return None
    p = session.get(Proposal, c.proposal_id)
    me = CurrentMember(id=member.id, name=member.name, email=member.email, role=member.role, session_id=0)
    if p is None or not can_see(session, me, p):
        return None
    author = session.get(Member, c.author_id) if c.author_id is not None else None
    what = _DIGEST_LINES[kind].format(author=author.name if author else "A former member")
    if c.response_status is not None and kind != "official_response":
        what += " (an official response)"
    return {"what": what, "title": p.title, "excerpt": markdown_excerpt(c.body_md, 300),
            "link": settings.url(thread_path(c))}
