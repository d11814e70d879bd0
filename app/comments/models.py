"""Comments and what hangs off them: earlier versions, endorsements, flags, blocks, closures, notifications.

A comment is a top-level comment (`parent_id` NULL) or a reply to one (threads are one level deep). A comment
on one paragraph of a policy change carries that paragraph's number (0: the proposal as a whole); its replies
inherit it. An admin's official response is a comment with a `response_status`; `kind` says where a comment
is listed (with the comments, pinned as an official response, or in a thread). `endorsement_count` is kept
beside the endorsements (changed with each one added or removed) so "most endorsed first" can page through an
index.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class Stance(enum.StrEnum):
    FOR = "for"
    AGAINST = "against"
    NEUTRAL = "neutral"


class CommentKind(enum.StrEnum):
    """Where a comment is listed: with the comments, pinned as an official response, or in its thread."""

    COMMENT = "comment"
    RESPONSE = "response"  # an official response to the proposal (or one paragraph), pinned
    REPLY = "reply"  # in a thread, official or not


class ResponseStatus(enum.StrEnum):
    """Where an admin says the feedback stands."""

    REVIEW = "review"
    ACCEPTED = "accepted"
    CHANGED = "changed"
    DECLINED = "declined"


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (
        CheckConstraint("stance IN ('for', 'against', 'neutral')", name="stance"),
        CheckConstraint("response_status IN ('review', 'accepted', 'changed', 'declined')",
                        name="response_status"),
        CheckConstraint("kind IN ('comment', 'response', 'reply')", name="kind"),
        CheckConstraint("(kind = 'reply') = (parent_id IS NOT NULL)", name="kind_reply"),
        CheckConstraint("kind != 'response' OR response_status IS NOT NULL", name="kind_response"),
        CheckConstraint("paragraph >= 0", name="paragraph_number"),
        # One page of a proposal's (or a paragraph's) comments, newest or oldest first, or its official responses;
        # or most endorsed first. Every column before the sort key is compared with "=" (none is NULL), so both
        # databases read the page straight off the index in order: page 100 costs what page 1 does.
        # (PostgreSQL cannot keep an index's order after an IS NULL condition, hence `kind` and paragraph 0.)
        Index("ix_comments_list", "proposal_id", "kind", "paragraph", "id"),
        Index("ix_comments_endorsed", "proposal_id", "kind", "paragraph", "endorsement_count", "id"),
        Index("ix_comments_parent", "parent_id", "id"),  # a thread's replies
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8), default=CommentKind.COMMENT)
    # 0: on the proposal as a whole; n: on paragraph n (from 1) of a policy change's proposed text
    paragraph: Mapped[int] = mapped_column(Integer, default=0)
    stance: Mapped[str | None] = mapped_column(String(8))
    response_status: Mapped[str | None] = mapped_column(String(16))  # set: an admin's official response
    body_md: Mapped[str] = mapped_column(Text, default="")
    endorsement_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[dt.datetime | None]
    # Deleted by its author while it had replies: the text is gone, the place in the thread stays.
    deleted_at: Mapped[dt.datetime | None]
    hidden_at: Mapped[dt.datetime | None] = mapped_column(index=True)  # the moderation page lists the latest
    hidden_reason: Mapped[str] = mapped_column(String(500), default="")
    hidden_by: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))

    @property
    def is_official(self) -> bool:
        return self.response_status is not None


class CommentCount(Base):
    """How many comments with visible text a proposal has, per paragraph (0: the proposal as a whole) and stance
    ('' for none). Changed in the same transaction as the comments it counts, so reading the counts of a
    proposal with 5,000 comments reads a handful of rows; `services.recount` rebuilds them from the comments."""

    __tablename__ = "comment_counts"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True)
    paragraph: Mapped[int] = mapped_column(Integer, primary_key=True)
    stance: Mapped[str] = mapped_column(String(8), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class CommentRevision(Base):
    """A comment's text as it was before an edit (admins can read every version)."""

    __tablename__ = "comment_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), index=True)
    body_md: Mapped[str] = mapped_column(Text)
    stance: Mapped[str | None] = mapped_column(String(8))
    written_at: Mapped[dt.datetime]  # when this version was written
    replaced_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Endorsement(Base):
    """A member's "+1" on a comment: at most one each, which the primary key enforces."""

    __tablename__ = "comment_endorsements"

    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True,
                                           index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Flag(Base):
    """A member asks the admins to look at a comment, and says why. One flag per member and comment."""

    __tablename__ = "comment_flags"
    __table_args__ = (
        UniqueConstraint("comment_id", "member_id", name="uq_comment_flags_comment_member"),
        CheckConstraint("resolution IN ('hidden', 'kept')", name="resolution"),
        Index("ix_comment_flags_open", "resolved_at", "comment_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    resolution: Mapped[str | None] = mapped_column(String(8))


class CommentBlock(Base):
    """An admin stopped a member from commenting until `until` (or until the block is lifted)."""

    __tablename__ = "comment_blocks"
    __table_args__ = (Index("ix_comment_blocks_member_until", "member_id", "until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    until: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    lifted_at: Mapped[dt.datetime | None]
    lifted_by: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))


class CommentClosure(Base):
    """An admin closed comments on a proposal: no new comments, replies or endorsements; all stay readable."""

    __tablename__ = "comment_closures"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True)
    closed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))


class NotificationKind(enum.StrEnum):
    MENTION = "mention"
    RESPONSE = "response"  # an admin answered the member's comment officially


class Notification(Base):
    """Something a member should hear about. Recorded now; mailing them is the mail domain's job."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("member_id", "kind", "comment_id", name="uq_notifications_member_kind_comment"),
        CheckConstraint("kind IN ('mention', 'response')", name="kind"),
        Index("ix_notifications_unsent", "sent_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    read_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
