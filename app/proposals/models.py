"""Proposals: a question with options or a policy change, its audience, schedule, rules, history and outcome."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utcnow


class Kind(enum.StrEnum):
    QUESTION = "question"
    POLICY = "policy"


class Method(enum.StrEnum):
    YES_NO = "yes_no"
    SINGLE = "single"
    MULTIPLE = "multiple"
    RANKED = "ranked"
    SCORE = "score"


class State(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    OPEN = "open"
    CLOSED = "closed"


class Visibility(enum.StrEnum):
    """When members may see the tally."""

    LIVE = "live"
    AFTER_VOTE = "after_vote"
    AFTER_CLOSE = "after_close"


class Proposal(Base):
    __tablename__ = "proposals"
    __table_args__ = (
        CheckConstraint("kind IN ('question', 'policy')", name="kind"),
        CheckConstraint("method IN ('yes_no', 'single', 'multiple', 'ranked', 'score')", name="method"),
        CheckConstraint("state IN ('draft', 'scheduled', 'open', 'closed')", name="state"),
        CheckConstraint("visibility IN ('live', 'after_vote', 'after_close')", name="visibility"),
        Index("ix_proposals_state_closes_at", "state", "closes_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Public and random: names the proposal in tie-break lots and exports without revealing creation order.
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default=Kind.QUESTION)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    body_md: Mapped[str] = mapped_column(Text, default="")
    current_text: Mapped[str] = mapped_column(Text, default="")  # policy change: today's text
    proposed_text: Mapped[str] = mapped_column(Text, default="")  # policy change: the text proposed

    method: Mapped[str] = mapped_column(String(16), default=Method.YES_NO)
    threshold: Mapped[str] = mapped_column(String(16), default="1/2")  # an exact fraction, e.g. "2/3"
    threshold_strict: Mapped[bool] = mapped_column(Boolean, default=True)  # ">" (majority) or ">=" (supermajority)
    quorum: Mapped[str | None] = mapped_column(String(16))  # fraction of eligible members, e.g. "1/4"
    allow_none: Mapped[bool] = mapped_column(Boolean, default=False)  # single choice: "none of these"
    max_picks: Mapped[int | None] = mapped_column(Integer)  # multiple choice
    max_score: Mapped[int] = mapped_column(Integer, default=5)  # score voting
    secret: Mapped[bool] = mapped_column(Boolean, default=True)
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.AFTER_CLOSE)
    publish_choices: Mapped[bool] = mapped_column(Boolean, default=False)  # receipts listed with their choices
    audience_all: Mapped[bool] = mapped_column(Boolean, default=True)

    state: Mapped[str] = mapped_column(String(16), default=State.DRAFT)
    opens_at: Mapped[dt.datetime | None]
    closes_at: Mapped[dt.datetime | None]
    opened_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    close_reason: Mapped[str] = mapped_column(String(500), default="")  # an early close's reason
    eligible_count: Mapped[int] = mapped_column(Integer, default=0)  # fixed when voting opens
    # The HMAC key linking a member to their ballot while voting is open lives in `ballot_keys` (app.voting).
    result: Mapped[dict[str, object] | None] = mapped_column(JSON)  # computed once at close, then frozen
    ballots_counted: Mapped[int] = mapped_column(Integer, default=0)

    outcome_md: Mapped[str] = mapped_column(Text, default="")
    outcome_at: Mapped[dt.datetime | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    options: Mapped[list[Option]] = relationship(
        back_populates="proposal", lazy="raise", order_by="Option.position", cascade="all, delete-orphan"
    )
    groups: Mapped[list[ProposalGroup]] = relationship(lazy="raise", cascade="all, delete-orphan")

    @property
    def is_open(self) -> bool:
        return self.state == State.OPEN

    @property
    def is_closed(self) -> bool:
        return self.state == State.CLOSED


class Option(Base):
    __tablename__ = "options"
    __table_args__ = (UniqueConstraint("proposal_id", "position", name="uq_options_proposal_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")

    proposal: Mapped[Proposal] = relationship(back_populates="options", lazy="raise")


class ProposalGroup(Base):
    """The audience, when it is not all members."""

    __tablename__ = "proposal_groups"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)


class Revision(Base):
    """Every version a proposal's text ever had, readable by members (a ballot must mean what it meant)."""

    __tablename__ = "proposal_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(String(300), default="")
    snapshot: Mapped[dict[str, object]] = mapped_column(JSON)


class Clarification(Base):
    """A dated note appended to a proposal after voting opened (the text itself is frozen by then)."""

    __tablename__ = "proposal_clarifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    body_md: Mapped[str] = mapped_column(Text)
