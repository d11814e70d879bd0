"""The participation funnel: from eligible to done, per proposal or campaign, overall and by group; and the
organization's last twelve months of turnout and commitments.

Each stage is the set of eligible members who reached it (so a stage never counts someone outside the audience),
loaded in one query per stage; the breakdown by group intersects those sets with each group's members. For a
secret ballot this uses *that* a member voted (participations), never what they chose.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.actions.models import ActionStep, Campaign, Commitment, CommitmentStatus, PageView
from app.comments.models import Comment
from app.mail.models import OutboxMessage
from app.members.models import Group, GroupMembership, Member, Status
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
    rate: float | None  # conversion from the stage before (None for the first, or when that one is 0)


@dataclass
class Row:
    name: str
    stages: list[Stage]


@dataclass
class Funnel:
    title: str
    overall: Row
    groups: list[Row] = field(default_factory=list)


def _rows(counts: dict[str, int], keys: list[str]) -> list[Stage]:
    labels = dict(STAGES)
    out: list[Stage] = []
    for i, key in enumerate(keys):
        before = counts[keys[i - 1]] if i else 0
        out.append(Stage(key, labels[key], counts[key], counts[key] / before if i and before else None))
    return out


def _ids(session: Session, query: Select[tuple[int]]) -> set[int]:
    return set(session.scalars(query))


def _commit_sets(session: Session, where: object) -> tuple[set[int], set[int]]:
    steps = select(ActionStep.id).where(where)  # type: ignore[arg-type]
    committed = _ids(session, select(Commitment.member_id).where(
        Commitment.step_id.in_(steps), Commitment.status.in_(
            (CommitmentStatus.COMMITTED, CommitmentStatus.WAITLISTED, CommitmentStatus.DONE))))
    done = _ids(session, select(Commitment.member_id).where(
        Commitment.step_id.in_(steps), Commitment.status == CommitmentStatus.DONE))
    return committed, done


def proposal_sets(session: Session, p: Proposal) -> dict[str, set[int]]:
    eligible = _ids(session, select(Eligibility.member_id).where(Eligibility.proposal_id == p.id))
    prefix = f"announcement:proposal:{p.id}:"
    sent = _ids(session, select(OutboxMessage.member_id).where(
        OutboxMessage.kind == "announcement", OutboxMessage.dedupe_key.startswith(prefix, autoescape=True),
        OutboxMessage.member_id.is_not(None)))
    opened = _ids(session, select(PageView.member_id).where(PageView.proposal_id == p.id))
    engaged = _ids(session, select(Participation.member_id).where(Participation.proposal_id == p.id)) | _ids(
        session, select(Comment.author_id).where(Comment.proposal_id == p.id, Comment.author_id.is_not(None)))
    committed, done = _commit_sets(session, ActionStep.proposal_id == p.id)
    sets = {"eligible": eligible, "sent": sent, "opened": opened, "engaged": engaged, "committed": committed,
            "done": done}
    return {k: v & eligible for k, v in sets.items()}


def campaign_sets(session: Session, c: Campaign) -> dict[str, set[int]]:
    audience = select(Member.id).where(Member.status != Status.DEACTIVATED)
    if c.group_id is not None:
        audience = audience.where(Member.id.in_(select(GroupMembership.member_id).where(
            GroupMembership.group_id == c.group_id)))
    eligible = _ids(session, audience)
    opened = _ids(session, select(PageView.member_id).where(PageView.campaign_id == c.id))
    committed, done = _commit_sets(session, ActionStep.campaign_id == c.id)
    sets = {"eligible": eligible, "opened": opened, "committed": committed, "done": done}
    return {k: v & eligible for k, v in sets.items()}


def build(session: Session, title: str, sets: dict[str, set[int]]) -> Funnel:
    keys = [k for k, _ in STAGES if k in sets]
    overall = Row("All eligible members", _rows({k: len(sets[k]) for k in keys}, keys))
    members_of: dict[int, set[int]] = {}
    for group_id, member_id in session.execute(select(GroupMembership.group_id, GroupMembership.member_id)):
        members_of.setdefault(group_id, set()).add(member_id)
    groups = []
    for g in session.scalars(select(Group).order_by(Group.name)):
        inside = members_of.get(g.id, set()) & sets["eligible"]
        if inside:
            groups.append(Row(g.name, _rows({k: len(sets[k] & inside) for k in keys}, keys)))
    return Funnel(title=title, overall=overall, groups=groups)


def for_proposal(session: Session, proposal_id: int) -> Funnel | None:
    p = session.get(Proposal, proposal_id)
    return None if p is None else build(session, p.title, proposal_sets(session, p))


def for_campaign(session: Session, campaign_id: int) -> Funnel | None:
    c = session.get(Campaign, campaign_id)
    return None if c is None else build(session, c.title, campaign_sets(session, c))


# --- the organization over twelve months ------------------------------------------------------------------------

@dataclass
class Month:
    label: str  # "2026-11"
    eligible: int = 0  # summed over the proposals that closed that month
    voted: int = 0
    commitments: int = 0  # made that month
    done: int = 0  # reported done that month

    @property
    def turnout(self) -> float | None:
        return self.voted / self.eligible if self.eligible else None


def _month(d: dt.date | dt.datetime) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def last_months(today: dt.date, n: int = 12) -> list[str]:
    y, m = today.year, today.month
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def dashboard(session: Session, *, now: dt.datetime) -> list[Month]:
    months = {label: Month(label) for label in last_months(now.date())}
    first = dt.datetime.strptime(next(iter(months)) + "-01", "%Y-%m-%d").replace(tzinfo=dt.UTC)
    closed = session.execute(select(Proposal.id, Proposal.closed_at, Proposal.eligible_count).where(
        Proposal.closed_at.is_not(None), Proposal.closed_at >= first)).all()
    for pid, closed_at, eligible in closed:
        month = months.get(_month(closed_at))
        if month is not None:
            month.eligible += eligible or 0
            month.voted += len(_ids(session, select(Participation.member_id).where(Participation.proposal_id == pid)))
    for created_at, done_at in session.execute(select(Commitment.created_at, Commitment.done_at).where(
            Commitment.created_at >= first)):
        if (month := months.get(_month(created_at))) is not None:
            month.commitments += 1
        if done_at is not None and (month := months.get(_month(done_at))) is not None:
            month.done += 1
    return list(months.values())
