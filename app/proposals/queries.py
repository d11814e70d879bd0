"""Reading proposals: who may see which (`can_see`, one rule for every page), list, home, detail, history.

Members see a proposal once it is published and only when its audience includes them (all members, one of its
groups, or the frozen list of eligible members). Anything else answers "not found", so a draft's or another
group's proposal does not reveal that it exists. Admins see everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, func, or_, select, true
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from app.members.models import Group, GroupMembership, Member, Status
from app.middleware import CurrentMember
from app.proposals import revisions
from app.proposals.models import Clarification, Option, Proposal, ProposalGroup, Revision, State
from app.voting.models import Eligibility

PAGE_SIZE = 20
LIST_STATES = (State.OPEN, State.SCHEDULED, State.CLOSED)


class NotFound(LookupError):
    """No such proposal, or not one this member may see (the two are deliberately indistinguishable)."""


def _visible_to_member(member_id: Any) -> ColumnElement[bool]:
    in_group = select(ProposalGroup.proposal_id).join(
        GroupMembership, GroupMembership.group_id == ProposalGroup.group_id).where(
        ProposalGroup.proposal_id == Proposal.id, GroupMembership.member_id == member_id).exists()
    eligible = select(Eligibility.proposal_id).where(
        Eligibility.proposal_id == Proposal.id, Eligibility.member_id == member_id).exists()
    return and_(Proposal.state != State.DRAFT, or_(Proposal.audience_all.is_(True), in_group, eligible))


def visible_clause(member: CurrentMember) -> ColumnElement[bool]:
    """The visibility rule as SQL, for lists. `can_see` is the same rule for one proposal."""
    return true() if member.is_admin else _visible_to_member(member.id)


def can_see(session: Session, member: CurrentMember, proposal: Proposal) -> bool:
    if member.is_admin:
        return True
    if proposal.state == State.DRAFT:
        return False
    found = session.scalar(select(Proposal.id).where(Proposal.id == proposal.id,
                                                     _visible_to_member(member.id)))
    return found is not None


def _get_visible_query(admin: bool) -> Any:
    # The visibility rule in the same query (what `can_see` checks separately): one statement fewer a page.
    # Prebuilt, with the member as a parameter: building this statement cost more than running it.
    query = select(Proposal).where(Proposal.id == bindparam("pid"))
    return query if admin else query.where(_visible_to_member(bindparam("mid")))


_GET_VISIBLE = {admin: _get_visible_query(admin) for admin in (False, True)}
_OPTIONS = select(Option).where(Option.proposal_id == bindparam("pid")).order_by(Option.position)
_GROUPS = select(ProposalGroup).where(ProposalGroup.proposal_id == bindparam("pid"))


def options_of(session: Session, p: Proposal) -> list[Option]:
    """The proposal's options in order: those loaded with it (by `get_visible`), else one prebuilt query."""
    loaded = p.__dict__.get("options")
    return list(loaded) if loaded is not None else list(session.scalars(_OPTIONS, {"pid": p.id}))


def get_visible(session: Session, member: CurrentMember, proposal_id: int, *, groups: bool = True) -> Proposal:
    """The proposal with its options and (unless `groups` is false) audience groups loaded, or NotFound.

    The collections are loaded by two prebuilt queries and set as loaded, not by `selectinload`: its machinery
    cost about 0.3 ms a collection, several times the queries themselves (docs/BENCHMARKS.md). What this
    session already holds (a proposal it has loaded or changed) is left as it is, as `selectinload` would."""
    p = session.scalar(_GET_VISIBLE[member.is_admin], {"pid": proposal_id, "mid": member.id})
    if p is None:
        raise NotFound(proposal_id)
    loaded = p.__dict__
    if "options" not in loaded:
        set_committed_value(p, "options", list(session.scalars(_OPTIONS, {"pid": p.id})))
    if groups and "groups" not in loaded:
        set_committed_value(p, "groups", list(session.scalars(_GROUPS, {"pid": p.id})))
    return p


_GROUP_NAMES = select(Group.id, Group.name).where(Group.id.in_(bindparam("ids", expanding=True)))


def group_names(session: Session, proposals: list[Proposal]) -> dict[int, str]:
    ids = {g.group_id for p in proposals for g in p.groups}
    if not ids:
        return {}
    return dict(session.connection().execute(_GROUP_NAMES, {"ids": sorted(ids)}).all())


def audience_choices(session: Session) -> tuple[int, list[tuple[Group, int]]]:
    """For the form: how many members an "all members" audience has, and each group with its member count.
    Counted like the voting service's audience: every member who is not deactivated."""
    active = Member.status != Status.DEACTIVATED
    everyone = session.scalar(select(func.count()).select_from(Member).where(active)) or 0
    counts = dict(session.execute(
        select(GroupMembership.group_id, func.count()).join(Member, Member.id == GroupMembership.member_id)
        .where(active).group_by(GroupMembership.group_id)).all())
    groups = list(session.scalars(select(Group).order_by(Group.name)))
    return everyone, [(g, counts.get(g.id, 0)) for g in groups]


def eligible_ids(session: Session, member_id: int, proposal_ids: list[int]) -> set[int]:
    if not proposal_ids:
        return set()
    return set(session.scalars(select(Eligibility.proposal_id).where(
        Eligibility.member_id == member_id, Eligibility.proposal_id.in_(proposal_ids))))


# --- the list and the home page -----------------------------------------------------------------------------

@dataclass
class Listing:
    """A page of proposals with what the list shows beside each."""

    proposals: list[Proposal]
    total: int = 0
    page: int = 1
    pages: int = 1
    state: str = ""
    group_id: int | None = None
    drafts: list[Proposal] = field(default_factory=list)
    voted: set[int] = field(default_factory=set)
    eligible: set[int] = field(default_factory=set)
    group_names: dict[int, str] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)  # for the filter


_ORDER = (
    case((Proposal.state == State.OPEN, 0), (Proposal.state == State.SCHEDULED, 1), else_=2),
    case((Proposal.state == State.OPEN, Proposal.closes_at),
         (Proposal.state == State.SCHEDULED, Proposal.opens_at)),
    Proposal.closed_at.desc(),
    Proposal.id.desc(),
)


def _annotate(session: Session, member: CurrentMember, listing: Listing) -> Listing:
    from app.voting.services import voted_proposal_ids

    everything = listing.proposals + listing.drafts
    open_ids = [p.id for p in everything if p.state == State.OPEN]
    listing.voted = voted_proposal_ids(session, member.id, open_ids)
    listing.eligible = eligible_ids(session, member.id, open_ids)
    listing.group_names = group_names(session, everything)
    return listing


def list_proposals(session: Session, member: CurrentMember, *, state: str = "", group_id: int | None = None,
                   page: int = 1) -> Listing:
    """Open first (nearest deadline first), then scheduled, then closed (latest first); 20 a page.
    Admins also get the drafts, apart, on the first unfiltered page."""
    one_state = state in LIST_STATES or (state == State.DRAFT and member.is_admin)
    states = [state] if one_state else list(LIST_STATES)
    where = [visible_clause(member), Proposal.state.in_(states)]
    if group_id is not None:
        for_group = select(ProposalGroup.proposal_id).where(ProposalGroup.group_id == group_id)
        where.append(Proposal.id.in_(for_group))
    total = session.scalar(select(func.count()).select_from(Proposal).where(*where)) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    proposals = list(session.scalars(select(Proposal).where(*where).order_by(*_ORDER)
                                     .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
                                     .options(selectinload(Proposal.groups))))
    drafts: list[Proposal] = []
    if member.is_admin and not state and page == 1:
        draft_where = [Proposal.state == State.DRAFT] + where[2:]
        drafts = list(session.scalars(select(Proposal).where(*draft_where)
                                      .order_by(Proposal.updated_at.desc(), Proposal.id.desc())
                                      .options(selectinload(Proposal.groups))))
    if member.is_admin:
        groups = list(session.scalars(select(Group).order_by(Group.name)))
    else:
        groups = list(session.scalars(
            select(Group).join(GroupMembership, GroupMembership.group_id == Group.id)
            .where(GroupMembership.member_id == member.id).order_by(Group.name)))
    listing = Listing(proposals=proposals, total=total, page=page, pages=pages,
                      state=state if state in states and len(states) == 1 else "", group_id=group_id,
                      drafts=drafts, groups=groups)
    return _annotate(session, member, listing)


def home(session: Session, member: CurrentMember, *, recent: int = 5) -> Listing:
    """The home page: open proposals put to this member, then the latest results. Admins get the member's view
    here too (the whole picture is on the list page)."""
    where = _visible_to_member(member.id)
    open_now = list(session.scalars(select(Proposal).where(where, Proposal.state == State.OPEN)
                                    .order_by(Proposal.closes_at, Proposal.id).limit(50)
                                    .options(selectinload(Proposal.groups))))
    closed = list(session.scalars(select(Proposal).where(where, Proposal.state == State.CLOSED)
                                  .order_by(Proposal.closed_at.desc(), Proposal.id.desc()).limit(recent)
                                  .options(selectinload(Proposal.groups))))
    return _annotate(session, member, Listing(proposals=open_now + closed, total=len(open_now) + len(closed)))


# --- one proposal -------------------------------------------------------------------------------------------

@dataclass
class Detail:
    proposal: Proposal
    group_names: dict[int, str]
    eligible_count: int
    clarifications: list[Clarification]
    panel: Any = None  # the voting panel, when voting has opened


_CLARIFICATIONS = (select(Clarification).where(Clarification.proposal_id == bindparam("pid"))
                   .order_by(Clarification.created_at, Clarification.id))


def detail(session: Session, member: CurrentMember, proposal_id: int) -> Detail:
    from app.voting.services import audience_size, vote_panel

    p = get_visible(session, member, proposal_id)
    clarifications = list(session.scalars(_CLARIFICATIONS, {"pid": p.id}))
    panel = vote_panel(session, p, member.id) if p.state in (State.OPEN, State.CLOSED) else None
    return Detail(proposal=p, group_names=group_names(session, [p]), eligible_count=audience_size(session, p),
                  clarifications=clarifications, panel=panel)


@dataclass
class Version:
    revision: Revision
    author: str
    changes: list[revisions.Change]


def history(session: Session, member: CurrentMember, proposal_id: int,
            tz: str) -> tuple[Proposal, list[Version]]:
    """Every revision, newest first, each with what it changed from the one before."""
    p = get_visible(session, member, proposal_id)
    rows = session.execute(
        select(Revision, Member.name).outerjoin(Member, Member.id == Revision.author_id)
        .where(Revision.proposal_id == p.id).order_by(Revision.created_at, Revision.id)).all()
    versions: list[Version] = []
    previous: dict[str, Any] | None = None
    for rev, author in rows:
        changed = revisions.changes(previous, rev.snapshot, tz) if previous is not None else []
        versions.append(Version(revision=rev, author=author or "A former member", changes=changed))
        previous = rev.snapshot
    versions.reverse()
    return p, versions
