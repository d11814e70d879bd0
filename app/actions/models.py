"""Action steps and who signed up for them: campaigns, steps (shift, pledge, task, external action),
commitments (with a waiting list for full shifts) and the first page view per member (the funnel's "opened")."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utcnow


class Kind(enum.StrEnum):
    SHIFT = "shift"
    PLEDGE = "pledge"
    TASK = "task"
    EXTERNAL = "external"


class CommitmentStatus(enum.StrEnum):
    COMMITTED = "committed"
    WAITLISTED = "waitlisted"
    WITHDRAWN = "withdrawn"
    DONE = "done"


class Campaign(Base):
    """A page that asks members to act without a vote first ("clean up the river on Saturday")."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body_md: Mapped[str] = mapped_column(Text, default="")
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))  # None: everyone
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[dt.datetime | None]  # when it was published (and its audience was told)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ActionStep(Base):
    __tablename__ = "action_steps"
    __table_args__ = (
        CheckConstraint("kind IN ('shift', 'pledge', 'task', 'external')", name="kind"),
        CheckConstraint("(proposal_id IS NULL) <> (campaign_id IS NULL)", name="one_parent"),
        CheckConstraint("capacity IS NULL OR capacity > 0", name="capacity"),
        CheckConstraint("goal IS NULL OR goal > 0", name="goal"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[dt.datetime | None]  # shifts
    ends_at: Mapped[dt.datetime | None]
    place: Mapped[str] = mapped_column(String(300), default="")
    link: Mapped[str] = mapped_column(String(500), default="")  # online shift or external action
    capacity: Mapped[int | None] = mapped_column(Integer)  # shifts and tasks: at most this many people
    goal: Mapped[int | None] = mapped_column(Integer)  # pledges: the total aimed for
    unit: Mapped[str] = mapped_column(String(40), default="")  # pledges: "bags", "calls"
    # Bumped whenever a shift's time or place changes: one reminder per version of the shift.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Commitment(Base):
    __tablename__ = "commitments"
    __table_args__ = (
        UniqueConstraint("step_id", "member_id", name="uq_commitments_step_member"),
        CheckConstraint("status IN ('committed', 'waitlisted', 'withdrawn', 'done')", name="status"),
        CheckConstraint("quantity IS NULL OR quantity > 0", name="quantity"),
        Index("ix_commitments_step_status", "step_id", "status", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("action_steps.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=CommitmentStatus.COMMITTED)
    quantity: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(500), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)  # order on the waiting list
    # The SEQUENCE of the last calendar file sent for this commitment (None: none sent yet). Every new file
    # (an update, a cancellation, signing up again after withdrawing) carries a higher one, so it supersedes
    # the last in the member's calendar (RFC 5546).
    calendar_sequence: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    done_at: Mapped[dt.datetime | None]

    step: Mapped[ActionStep] = relationship(lazy="raise")


class PageView(Base):
    """The first time a member opened a proposal's or campaign's page (later views write nothing): its page,
    its results page, or the page a vote link in an email opens (`via` = "email")."""

    __tablename__ = "page_views"
    __table_args__ = (
        CheckConstraint("via IN ('web', 'email')", name="via"),
        UniqueConstraint("member_id", "proposal_id", name="uq_page_views_member_proposal"),
        UniqueConstraint("member_id", "campaign_id", name="uq_page_views_member_campaign"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    first_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    via: Mapped[str] = mapped_column(String(8), default="web")
