"""The outbox (every message Plenary sends is first a row here, written in the transaction that caused it), and
what members want to receive: preferences per kind, digests, the admins' defaults and weekly budget."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"  # by an admin, or because the address is bouncing: never sent


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')", name="status"),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # (kind, subject, recipient) made unique: a second enqueue of the same message is a no-op, never a resend.
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    to_addr: Mapped[str] = mapped_column(String(254))
    to_name: Mapped[str] = mapped_column(String(100), default="")
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Small text files sent with the message: [{"filename", "mime_type", "content"}] (a calendar invitation).
    attachments: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    message_id: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    # When an admin put a failed message back in the queue: its 48 hours of retries count from then.
    requeued_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]


# --- what members want to receive -----------------------------------------------------------------------------

class Mode(enum.StrEnum):
    """How a member wants one kind of mail: as it happens, gathered in a digest, or not at all."""

    IMMEDIATELY = "immediately"
    DIGEST = "digest"
    NEVER = "never"


class DigestEvery(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


class MailPreference(Base):
    """A member's own choice for one kind of mail; without a row the organization's default applies."""

    __tablename__ = "mail_preferences"
    __table_args__ = (CheckConstraint("mode IN ('immediately', 'digest', 'never')", name="mode"),)

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MemberMailSettings(Base):
    """A member's choices that are not per kind: how often a digest comes, and "no email at all"."""

    __tablename__ = "member_mail_settings"
    __table_args__ = (CheckConstraint("digest_every IN ('daily', 'weekly')", name="digest_every"),)

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    digest_every: Mapped[str | None] = mapped_column(String(8))  # None: the organization's default
    # Everything but sign-in links, invitations, resets and email-change messages stops.
    unsubscribed_all: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OrgMailSettings(Base):
    """The admins' defaults (a single row, id 1; absent means the built-in defaults)."""

    __tablename__ = "org_mail_settings"
    __table_args__ = (
        CheckConstraint("digest_every IN ('daily', 'weekly')", name="digest_every"),
        CheckConstraint("weekly_budget >= 0", name="weekly_budget"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    weekly_budget: Mapped[int] = mapped_column(Integer, default=5)  # 0: no limit
    digest_every: Mapped[str] = mapped_column(String(8), default=DigestEvery.WEEKLY)
    defaults: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # kind -> mode
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DigestItem(Base):
    """Something a member will read in their next digest instead of in a message of its own."""

    __tablename__ = "mail_digest_items"
    __table_args__ = (
        UniqueConstraint("member_id", "key", name="uq_mail_digest_items_member_key"),
        Index("ix_mail_digest_items_pending", "digested_at", "member_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))  # what it is about, e.g. "announcement:p12": folded once
    # A reply, mention or official response: the comment it is about (gone with the comment).
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    digested_at: Mapped[dt.datetime | None]


class ProposalReminder(Base):
    """A proposal's reminder mailing has run (or was skipped: the proposal opened inside the reminder window).

    The primary key is what makes the reminder once-only when several workers race for it."""

    __tablename__ = "proposal_reminders"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    recipients: Mapped[int] = mapped_column(Integer, default=0)


class InboundMessage(Base):
    """An email reply that became a comment. The unique (member, Message-ID) makes a second delivery of the same
    message (a retrying mail server, a webhook called twice) post nothing: it is answered as delivered."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("member_id", "message_id", name="uq_inbound_messages_member_message"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    # The Message-ID header as sent (or "sha256:" and the digest of a longer one, or of a message without one).
    message_id: Mapped[str] = mapped_column(String(300))
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="SET NULL"), index=True)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
