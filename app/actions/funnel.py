"""The participation funnel: from eligible to done, per proposal or campaign, overall and by group; and the
organization's last twelve months of turnout and commitments.

Each stage is the set of eligible members who reached it (so a stage never counts someone outside the audience),
loaded in one query per stage; the breakdown by group intersects those sets with each group's members. For a
secret ballot this uses *that* a member voted (participations), never what they chose.

Where the product makes a stage part of the one before, the sets say so: whoever voted, commented or signed up
has seen the proposal, so "opened" includes them (a vote from an email link opens a page that records the view
too), and "done" is part of "committed". Two steps are not nested: a member who turned announcements off can still
open the page, and a member can sign up without voting. The conversion from one stage to the next is therefore the
share of the members *in* the stage before who reached it, never above 100%; those who got there another way are
shown apart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, literal_column, select
from sqlalchemy.orm import Session

from app.actions.models import ActionStep, Campaign, Commitment, CommitmentStatus, PageView
from app.actions.services import campaign_audience
from app.comments.models import Comment
from app.mail.models import DigestItem, OutboxMessage
from app.members.models import Group, GroupMembership
from app.proposals.models import Proposal
from app.voting.models import Eligibility, Participation

STAGES = (
    ("eligible", "Eligible"),
    ("sent", "Sent the announcement"),
    ("opened", "Opened the page"),
    ("engaged", "Voted or commented"),
    ("committed", "Committed to an action step"),
    ("done", "Reported done"),
)


@dataclass
class Stage:
    key: str
    label: str
    count: int
    carried: int = 0  # of them, how many were in the stage before
    rate: float | None = None  # carried / the stage before (None for the first, or when that one is empty)

    @property
    def outside(self) -> int:
        """Members who reached this stage without the one before (e.g. opened without an announcement)."""
        return self.count - self.carried


@dataclass
class Row:
    name: str
    stages: list[Stage]


@dataclass
class Funnel:
    title: str
    overall: Row
    groups: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _rows(sets: dict[str, set[int]], keys: list[str], inside: set[int] | None = None) -> list[Stage]:
    labels = dict(STAGES)
    out: list[Stage] = []
    for i, key in enumerate(keys):
        here = sets[key] if inside is None else sets[key] & inside
        stage = Stage(key, labels[key], len(here))
        if i:
            before = sets[keys[i - 1]] if inside is None else sets[keys[i - 1]] & inside
            stage.carried = len(here & before)
            stage.rate = stage.carried / len(before) if before else None
        else:
            stage.carried = stage.count
        out.append(stage)
    return out


def _ids(session: Session, query: Select[tuple[int]]) -> set[int]:
    return set(session.scalars(query))


def _commit_sets(session: Session, where: object) -> tuple[set[int], set[int], set[int]]:
    """Who has a place or reported done (committed), who reported done, and who is only waiting."""
    steps = select(ActionStep.id).where(where)  # type: ignore[arg-type]
    rows = session.execute(select(Commitment.member_id, Commitment.status).where(
        Commitment.step_id.in_(steps), Commitment.status != CommitmentStatus.WITHDRAWN)).all()
    committed = {m for m, st in rows if st in (CommitmentStatus.COMMITTED, CommitmentStatus.DONE)}
    done = {m for m, st in rows if st == CommitmentStatus.DONE}
    waiting = {m for m, st in rows if st == CommitmentStatus.WAITLISTED} - committed
    return committed, done, waiting


def _sent(session: Session, outbox_kind: str, dedupe_prefix: str, digest: Select[tuple[int]]) -> set[int]:
    """Members whose announcement was queued, or folded into their digest."""
    return _ids(session, select(OutboxMessage.member_id).where(
        OutboxMessage.kind == outbox_kind, OutboxMessage.dedupe_key.startswith(dedupe_prefix, autoescape=True),
        OutboxMessage.member_id.is_not(None))) | _ids(session, digest)


def _views(session: Session, where: object) -> tuple[set[int], set[int]]:
    rows = session.execute(select(PageView.member_id, PageView.via).where(where)).all()  # type: ignore[arg-type]
    return {m for m, _ in rows}, {m for m, via in rows if via == "email"}


def _notes(sets: dict[str, set[int]], from_email: set[int], waiting: set[int]) -> list[str]:
    eligible = sets["eligible"]
    notes = ["“Sent the announcement” counts announcements sent and those folded into a member's digest."]
    if n := len(from_email & eligible):
        notes.append(f"{n} of those who opened the page first opened it from a vote link in an email.")
    if n := len(waiting & eligible):
        notes.append(f"{n} on a waiting list only: not counted as committed until a place opens up for them.")
    return notes


def proposal_sets(session: Session, p: Proposal) -> tuple[dict[str, set[int]], list[str]]:
    eligible = _ids(session, select(Eligibility.member_id).where(Eligibility.proposal_id == p.id))
    sent = _sent(session, "announcement", f"announcement:proposal:{p.id}:", select(DigestItem.member_id).where(
        DigestItem.kind == "announcement", DigestItem.proposal_id == p.id))
    viewed, from_email = _views(session, PageView.proposal_id == p.id)
    engaged = _ids(session, select(Participation.member_id).where(Participation.proposal_id == p.id)) | _ids(
        session, select(Comment.author_id).where(Comment.proposal_id == p.id, Comment.author_id.is_not(None)))
    committed, done, waiting = _commit_sets(session, ActionStep.proposal_id == p.id)
    sets = {"eligible": eligible, "sent": sent, "opened": viewed | engaged | committed, "engaged": engaged,
            "committed": committed, "done": done}
    sets = {k: v & eligible for k, v in sets.items()}
    notes = _notes(sets, from_email, waiting)
    notes.append("“Opened the page” counts the proposal's page, its results and the page a vote link opens, and "
                 "everyone who voted, commented or signed up (they saw it).")
    return sets, notes


def campaign_sets(session: Session, c: Campaign) -> tuple[dict[str, set[int]], list[str]]:
    from app.actions.campaigns import MAIL_KIND, digest_key

    eligible = _ids(session, campaign_audience(c))
    sent = _sent(session, MAIL_KIND, f"{MAIL_KIND}:campaign:{c.id}:", select(DigestItem.member_id).where(
        DigestItem.kind == MAIL_KIND, DigestItem.key == digest_key(c.id)))
    viewed, _ = _views(session, PageView.campaign_id == c.id)
    committed, done, waiting = _commit_sets(session, ActionStep.campaign_id == c.id)
    sets = {"eligible": eligible, "sent": sent, "opened": viewed | committed, "committed": committed, "done": done}
    sets = {k: v & eligible for k, v in sets.items()}
    notes = ["A campaign has no vote, so it has no “Voted or commented” stage: “Committed” follows “Opened the "
             "page”.", *_notes(sets, set(), waiting)]
    return sets, notes


def build(session: Session, title: str, sets: dict[str, set[int]], notes: list[str] | None = None) -> Funnel:
    keys = [k for k, _ in STAGES if k in sets]
    overall = Row("All eligible members", _rows(sets, keys))
    members_of: dict[int, set[int]] = {}
    for group_id, member_id in session.execute(select(GroupMembership.group_id, GroupMembership.member_id)):
        members_of.setdefault(group_id, set()).add(member_id)
    groups = []
    for g in session.scalars(select(Group).order_by(Group.name)):
        inside = members_of.get(g.id, set()) & sets["eligible"]
        if inside:
            groups.append(Row(g.name, _rows(sets, keys, inside)))
    return Funnel(title=title, overall=overall, groups=groups, notes=notes or [])


def for_proposal(session: Session, proposal_id: int) -> Funnel | None:
    p = session.get(Proposal, proposal_id)
    return None if p is None else build(session, p.title, *proposal_sets(session, p))


def for_campaign(session: Session, campaign_id: int) -> Funnel | None:
    c = session.get(Campaign, campaign_id)
    return None if c is None else build(session, c.title, *campaign_sets(session, c))


# --- the organization over twelve months ------------------------------------------------------------------------

@dataclass
class Month:
    label: str  # "2026-11"
    eligible: int = 0  # summed over the proposals that closed that month
    voted: int = 0
    commitments: int = 0  # made that month, and not withdrawn nor only on a waiting list
    done: int = 0  # reported done that month

    @property
    def turnout(self) -> float | None:
        return self.voted / self.eligible if self.eligible else None


def last_months(today: dt.date, n: int = 12) -> list[str]:
    y, m = today.year, today.month
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def _month_of(session: Session, column: Any) -> Any:
    """"YYYY-MM" of a UTC timestamp column, in SQL (SQLite stores them as ISO text)."""
    # Literal formats, not bound parameters: PostgreSQL matches the GROUP BY to the select list only when they
    # are the same expression, and two parameters are two expressions.
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(literal_column("'UTC'"), column), literal_column("'YYYY-MM'"))
    return func.strftime(literal_column("'%Y-%m'"), column)


def dashboard(session: Session, *, now: dt.datetime) -> list[Month]:
    """Four queries, each grouped by month, whatever the number of proposals or commitments. Months are UTC."""
    months = {label: Month(label) for label in last_months(now.date())}
    first = dt.datetime.strptime(next(iter(months)) + "-01", "%Y-%m-%d").replace(tzinfo=dt.UTC)
    closed_month = _month_of(session, Proposal.closed_at)
    closed = (Proposal.closed_at.is_not(None), Proposal.closed_at >= first)
    for label, eligible in session.execute(select(closed_month, func.sum(Proposal.eligible_count))
                                           .where(*closed).group_by(closed_month)):
        if (month := months.get(label)) is not None:
            month.eligible = int(eligible or 0)
    for label, voted in session.execute(select(closed_month, func.count(Participation.member_id))
                                        .join(Participation, Participation.proposal_id == Proposal.id)
                                        .where(*closed).group_by(closed_month)):
        if (month := months.get(label)) is not None:
            month.voted = int(voted)
    made = _month_of(session, Commitment.created_at)
    for label, n in session.execute(select(made, func.count()).where(
            Commitment.created_at >= first, Commitment.status.in_(
                (CommitmentStatus.COMMITTED, CommitmentStatus.DONE))).group_by(made)):
        if (month := months.get(label)) is not None:
            month.commitments = int(n)
    done_month = _month_of(session, Commitment.done_at)
    for label, n in session.execute(select(done_month, func.count()).where(
            Commitment.done_at >= first, Commitment.status == CommitmentStatus.DONE).group_by(done_month)):
        if (month := months.get(label)) is not None:
            month.done = int(n)
    return list(months.values())
