"""Who may vote, who voted, and what was chosen, kept apart (docs/SECRET_BALLOTS.md explains why).

- `eligible_members`: the audience, frozen when voting opens.
- `participations`: *that* a member voted (and on which day): turnout, reminders, one vote per member.
- `ballot_keys`: the proposal's ballot key while voting is open, in a table of its own so that erasing it at
  close deletes one small row (the scrub after close then rewrites this table; see `app/voting/scrub.py`).
- `ballots`: *what* was chosen while voting is open. No member id for secret ballots, no time, no group;
  `voter_ref` is an HMAC of the member id under the proposal's ballot key, so a member can change their vote
  until the key is erased at close. Random 16-byte primary keys and WITHOUT ROWID on SQLite: no insertion order.
- `counted_ballots`: at close the ballots are copied here in random order with their choice and receipt only
  (no voter reference, no group, no other attribute of the voter) and the originals deleted, so no column,
  hidden ones included (PostgreSQL's xmin/ctid, SQLite's rowid), links them to participations or members.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class Eligibility(Base):
    __tablename__ = "eligible_members"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True,
                                           index=True)


class Participation(Base):
    __tablename__ = "participations"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True,
                                           index=True)
    voted_on: Mapped[dt.date] = mapped_column(Date)  # a day, never a time: finer times help linking
    via: Mapped[str] = mapped_column(String(16), default="web")


class BallotKey(Base):
    """The HMAC key of a proposal's voter references: made when voting opens, deleted when it closes."""

    __tablename__ = "ballot_keys"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary(32))


class Ballot(Base):
    __tablename__ = "ballots"
    __table_args__ = (
        UniqueConstraint("proposal_id", "voter_ref", name="uq_ballots_proposal_voter_ref"),
        # The live tally, read from the index alone (see services._LIVE_COUNTS). SQLite only: PostgreSQL's json
        # has no b-tree ordering, and it counts the few thousand rows of a proposal quickly without one.
        Index("ix_ballots_proposal_id_choice", "proposal_id", "choice").ddl_if(dialect="sqlite"),
        {"sqlite_with_rowid": False},
    )

    id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    voter_ref: Mapped[bytes] = mapped_column(LargeBinary(32))
    choice: Mapped[object] = mapped_column(JSON)
    receipt_hash: Mapped[str] = mapped_column(String(64))
    voter_id: Mapped[int | None] = mapped_column(Integer)  # open ballots only; always NULL for secret ones


class CountedBallot(Base):
    __tablename__ = "counted_ballots"
    __table_args__ = (
        # A proposal's receipts in fingerprint order, a page at a time, without sorting them all (and the
        # receipt check's lookup). An order by hash is a random order: it links nothing to anyone.
        Index("ix_counted_ballots_proposal_id_receipt_hash", "proposal_id", "receipt_hash"),
        {"sqlite_with_rowid": False},
    )

    id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    choice: Mapped[object] = mapped_column(JSON)
    receipt_hash: Mapped[str] = mapped_column(String(64))
    voter_id: Mapped[int | None] = mapped_column(Integer)
