"""Voting's domain rules: open a proposal, cast and change ballots, close and count, read results.

The secret-ballot mechanics (see docs/SECRET_BALLOTS.md): a participation row says who voted; the ballot row
holds the choice under `voter_ref = HMAC(ballot_key, member_id)`; at close the ballots are counted, the breakdown
by group is worked out (the key still links each ballot to its voter's groups, once, in memory), the ballots are
copied in random order to `counted_ballots` with their choice and receipt only, the originals and the key are
deleted. After the closing transaction commits, `app.voting.scrub.erase_residue` clears what the deleted rows
left in the database files.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Text, bindparam, cast, delete, func, insert, literal, select, type_coerce
from sqlalchemy.orm import Session

from app import live
from app.db import per_dialect, utcnow
from app.members.guard import audit
from app.members.models import GroupMembership, Member, Status
from app.proposals.models import Method, Option, Proposal, ProposalGroup, State, Visibility
from app.proposals.queries import options_of
from app.settings import Settings
from app.voting import ballots as ballot_rules
from app.voting.ballots import BallotError
from app.voting.breakdown import breakdown
from app.voting.models import Ballot, BallotKey, CountedBallot, Eligibility, Participation
from app.voting.results import build_result

log = logging.getLogger("plenary.voting")


class VotingError(ValueError):
    """A voting action the rules refuse. `status` is the HTTP status a view should answer with."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


# --- keys, references, receipts -------------------------------------------------------------------------------

def voter_ref(key: bytes, member_id: int) -> bytes:
    return hmac.new(key, f"member:{member_id}".encode(), hashlib.sha256).digest()


def new_receipt() -> str:
    """80 random bits as 16 base32 characters in four groups, e.g. K7F2-9QXM-3TZA-P4LW."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode()
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def receipt_hash(code: str) -> str:
    normal = "".join(c for c in code.upper() if c.isalnum())
    return hashlib.sha256(f"receipt:{normal}".encode()).hexdigest()


def fingerprint(receipt_hash_hex: str) -> str:
    return receipt_hash_hex[:12]


_KEY = select(BallotKey.key).where(BallotKey.proposal_id == bindparam("pid"))


def ballot_key(session: Session, proposal_id: int) -> bytes | None:
    """The proposal's ballot key while voting is open; None before it opens and after it closes."""
    return session.connection().execute(_KEY, {"pid": proposal_id}).scalar()


# --- opening ---------------------------------------------------------------------------------------------------

def audience_query(p: Proposal) -> Any:
    """Active members in the proposal's audience (the eligible members, before voting opens)."""
    q = select(Member.id).where(Member.status != Status.DEACTIVATED)
    if not p.audience_all:
        q = q.where(Member.id.in_(select(GroupMembership.member_id).join(
            ProposalGroup, ProposalGroup.group_id == GroupMembership.group_id).where(
            ProposalGroup.proposal_id == p.id)))
    return q


def audience_size(session: Session, p: Proposal) -> int:
    if p.state in (State.OPEN, State.CLOSED):
        return p.eligible_count
    return session.scalar(select(func.count()).select_from(audience_query(p).subquery())) or 0


def _locked(session: Session, proposal_id: int) -> Proposal:
    p = session.scalar(select(Proposal).where(Proposal.id == proposal_id).with_for_update())
    if p is None:
        raise VotingError("No such proposal.", 404)
    return p


def open_proposal(session: Session, settings: Settings, proposal_id: int, *, now: dt.datetime | None = None,
                  actor_id: int | None = None) -> None:
    now = now or utcnow()
    p = _locked(session, proposal_id)
    if p.state not in (State.DRAFT, State.SCHEDULED):
        raise VotingError("Only a draft or scheduled proposal can open.")
    if p.closes_at is None or p.closes_at <= now:
        raise VotingError("The deadline must be in the future for voting to open.", 400)
    n_options = session.scalar(select(func.count()).select_from(Option).where(Option.proposal_id == p.id)) or 0
    if p.method != Method.YES_NO and n_options < 2:
        raise VotingError("A question needs at least two options.", 400)
    labels = [lbl.strip().lower() for lbl in session.scalars(select(Option.label).where(Option.proposal_id == p.id))]
    if len(set(labels)) != len(labels):
        raise VotingError("Two options have the same label; give each option its own.", 400)
    # Eligibility is frozen now: who joins a group later can read but not vote.
    audience = audience_query(p).subquery()
    session.execute(insert(Eligibility).from_select(["proposal_id", "member_id"],
                                                    select(literal(p.id), audience.c.id)))
    p.eligible_count = session.scalar(
        select(func.count()).select_from(Eligibility).where(Eligibility.proposal_id == p.id)) or 0
    session.add(BallotKey(proposal_id=p.id, key=secrets.token_bytes(32)))
    p.state, p.opened_at = State.OPEN, now
    if p.opens_at is None or p.opens_at > now:
        p.opens_at = now
    audit(session, "proposal.open", actor_id=actor_id, object_type="proposal", object_id=p.id,
          summary=f"Voting opened on {p.title} for {p.eligible_count} members")
    from app.voting.notify import on_open

    on_open(session, settings, p, now=now)  # the announcement, in this transaction


# --- casting ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CastResult:
    receipt: str
    changed: bool
    choice: object = None  # the canonical choice stored


_ELIGIBLE = select(Eligibility.member_id).where(Eligibility.proposal_id == bindparam("pid"),
                                                Eligibility.member_id == bindparam("mid"))
_OPTION_IDS = select(Option.id).where(Option.proposal_id == bindparam("pid")).order_by(Option.position)
# What a cast needs to know besides the proposal, in one statement: the open ballot's key and whether the member
# is eligible.
_CAST_FACTS = select(_KEY.scalar_subquery(), _ELIGIBLE.exists())


def _upserts(ins: Any) -> tuple[Any, Any]:
    """The two writes of a cast, built with a dialect's `insert`: the participation row (kept if it exists, and
    saying whether it was new) and the ballot (one per voter reference; a second cast replaces its choice and
    receipt)."""
    participation = (ins(Participation).values(
        proposal_id=bindparam("pid"), member_id=bindparam("mid"), voted_on=bindparam("day"), via=bindparam("via"))
        .on_conflict_do_nothing(index_elements=["proposal_id", "member_id"]).returning(Participation.member_id))
    ballot = ins(Ballot).values(
        id=bindparam("bid"), proposal_id=bindparam("pid"), voter_ref=bindparam("ref"),
        choice=bindparam("choice", type_=Ballot.__table__.c.choice.type), receipt_hash=bindparam("rh"),
        voter_id=bindparam("voter"))
    ballot = ballot.on_conflict_do_update(
        index_elements=["proposal_id", "voter_ref"],
        set_={"choice": ballot.excluded.choice, "receipt_hash": ballot.excluded.receipt_hash})
    return participation, ballot


_UPSERTS = per_dialect(_upserts)


def cast_ballot(session: Session, settings: Settings, *, proposal_id: int, member_id: int, raw_choice: object,
                via: str = "web", now: dt.datetime | None = None,
                option_ids: list[int] | None = None) -> CastResult:
    """Record or replace a member's ballot. One ballot per member is the unique (proposal, voter_ref) key;
    two racing submissions both upsert the same row, so exactly one ballot remains.

    Three statements when the proposal is already loaded in the session and the caller passes its `option_ids`:
    the key and eligibility in one, the participation and the ballot (a fourth reads the option ids when not
    given)."""
    now = now or utcnow()
    p = session.get(Proposal, proposal_id)
    if p is None:
        raise VotingError("No such proposal.", 404)
    conn = session.connection()
    key, eligible = conn.execute(_CAST_FACTS, {"pid": p.id, "mid": member_id}).one()
    if p.state != State.OPEN or key is None:
        raise VotingError("Voting has not opened yet." if p.state in (State.DRAFT, State.SCHEDULED)
                          else "Voting on this proposal has closed.")
    if p.closes_at is not None and p.closes_at <= now:
        raise VotingError("Voting on this proposal has closed.")
    if not eligible:
        raise VotingError("You are not eligible to vote on this proposal: it was put to other members.", 403)
    if option_ids is None:
        option_ids = list(conn.execute(_OPTION_IDS, {"pid": p.id}).scalars())
    try:
        choice = ballot_rules.check_choice(p, option_ids, raw_choice)
    except BallotError as exc:
        raise VotingError(str(exc), 400) from exc
    receipt = new_receipt()
    participation, ballot = _UPSERTS[conn.dialect.name]
    new = conn.execute(participation, {"pid": p.id, "mid": member_id, "day": now.date(), "via": via}).first()
    conn.execute(ballot, {"bid": secrets.token_bytes(16), "pid": p.id, "ref": voter_ref(key, member_id),
                          "choice": choice, "rh": receipt_hash(receipt),
                          "voter": None if p.secret else member_id})
    live.announce(session, live.TALLY, p.id)  # open pages refresh their tally once this commits
    return CastResult(receipt=receipt, changed=new is None, choice=choice)


def current_choice(session: Session, p: Proposal, member_id: int) -> object | None:
    """The member's ballot while voting is open (the key still exists), else None."""
    return _choice(session.connection(), p, member_id, ballot_key(session, p.id) if p.state == State.OPEN else None)


def _choice(conn: Connection, p: Proposal, member_id: int, key: bytes | None) -> object | None:
    """`current_choice` for a caller that has read the ballot key (None: voting is not open)."""
    if key is None or p.state != State.OPEN:
        return None
    return conn.execute(_CHOICE, {"pid": p.id, "ref": voter_ref(key, member_id)}).scalar()


# The proposal page's per-member look-ups: prebuilt, and run on the session's connection (no ORM layer).
_CHOICE = select(Ballot.choice).where(Ballot.proposal_id == bindparam("pid"), Ballot.voter_ref == bindparam("ref"))
_VOTED = select(Participation.proposal_id).where(
    Participation.member_id == bindparam("mid"), Participation.proposal_id.in_(bindparam("pids", expanding=True)))
_TURNOUT = select(func.count()).select_from(Participation).where(Participation.proposal_id == bindparam("pid"))


def voted_proposal_ids(session: Session, member_id: int, proposal_ids: list[int]) -> set[int]:
    if not proposal_ids:
        return set()
    return set(session.connection().execute(_VOTED, {"mid": member_id, "pids": list(proposal_ids)}).scalars())


# --- the panel on the proposal page ----------------------------------------------------------------------------

@dataclass
class VotePanel:
    proposal: Proposal
    options: list[Option]
    eligible: bool
    voted: bool
    choice: object | None
    choice_text: str
    can_vote: bool
    reason: str
    show_tally: bool
    tally: dict[str, Any] | None
    turnout: int
    receipt: str | None = None
    error: str | None = None
    form: dict[str, str] = field(default_factory=dict)


def tally_visible(p: Proposal, voted: bool, is_admin: bool = False) -> bool:
    """Whether a live tally may be shown now. Never for secret ballots before close."""
    if p.state == State.CLOSED:
        return True
    if p.state != State.OPEN or p.secret:
        return False
    return p.visibility == Visibility.LIVE or (p.visibility == Visibility.AFTER_VOTE and voted)


def tally_viewers(session: Session, proposal_id: int, member_ids: set[int]) -> set[int]:
    """Which of these members may see the proposal's tally now: `tally_visible` for each, asking the database
    who voted only when the answer depends on it (results shown "after you vote")."""
    p = session.get(Proposal, proposal_id)
    if p is None or not member_ids:
        return set()
    if tally_visible(p, voted=False):
        return set(member_ids)
    if not tally_visible(p, voted=True):
        return set()
    voted = set(session.scalars(select(Participation.member_id).where(
        Participation.proposal_id == p.id, Participation.member_id.in_(sorted(member_ids)))))
    return {m for m in member_ids if tally_visible(p, m in voted)}


@dataclass
class TallyView:
    """The turnout and, where the member may see it, the tally: the part of the vote panel that updates live."""

    proposal: Proposal
    show_tally: bool
    tally: dict[str, Any] | None
    turnout: int


def tally_view(session: Session, p: Proposal, member_id: int, *, voted: bool | None = None,
               options: list[Option] | None = None) -> TallyView:
    if voted is None:
        voted = p.id in voted_proposal_ids(session, member_id, [p.id])
    show = tally_visible(p, voted)
    tally_data = _tally(session, p, options if options is not None else options_of(session, p)) if show else None
    turnout = session.connection().execute(_TURNOUT, {"pid": p.id}).scalar() or 0
    return TallyView(proposal=p, show_tally=show, tally=tally_data, turnout=turnout)


def _tally(session: Session | Connection, p: Proposal, options: list[Option]) -> dict[str, Any] | None:
    """The tally a member who may see it sees: the stored result once closed, else the live count."""
    return p.result if p.state == State.CLOSED else live_result(session, p, options)


# Identical choices are grouped by the database, so a live tally reads one row per distinct choice, not one per
# ballot. The JSON is grouped as text: PostgreSQL's json type has no equality, and equal choices are stored as
# equal text (a score ballot's keys in another order only makes a second group, counted the same).
_CHOICE_TEXT = cast(Ballot.choice, Text)
# SQLite stores JSON as text already: grouping by the bare column lets it read the tally from the
# (proposal_id, choice) index alone (migration 0013), in order, with no sort and no visit to the table's rows;
# grouping by the CAST above cost it seven times as long on every proposal page and every cast.
_LIVE_COUNTS = {
    "sqlite": (select(type_coerce(Ballot.choice, Text), func.count())
               .where(Ballot.proposal_id == bindparam("pid")).group_by(Ballot.choice)),
    "postgresql": (select(_CHOICE_TEXT, func.count()).where(Ballot.proposal_id == bindparam("pid"))
                   .group_by(_CHOICE_TEXT)),
}


def live_result(session: Session | Connection, p: Proposal, options: list[Option]) -> dict[str, Any]:
    conn = session.connection() if isinstance(session, Session) else session
    groups = [(json.loads(text), n) for text, n in conn.execute(_LIVE_COUNTS[conn.dialect.name], {"pid": p.id})]
    ballots = sum(n for _, n in groups)
    return build_result(p, ballot_rules.count_groups(p, [(o.id, o.label) for o in options], groups,
                                                     eligible=max(p.eligible_count, ballots)))


def panel_after_cast(conn: Connection, p: Proposal, options: list[Option], choice: object) -> VotePanel:
    """The vote panel of a member whose ballot (`choice`, canonical) has just committed: eligible, voted, and
    the turnout and tally as they are now, read on a bare connection (two prebuilt statements)."""
    labels = {str(o.id): o.label for o in options}
    show = tally_visible(p, voted=True)
    return VotePanel(proposal=p, options=options, eligible=True, voted=True, choice=choice,
                     choice_text=ballot_rules.describe(choice, labels, p.method), can_vote=True, reason="",
                     show_tally=show, tally=live_result(conn, p, options) if show else None,
                     turnout=conn.execute(_TURNOUT, {"pid": p.id}).scalar() or 0)


# What the panel needs to know about the member, in one statement: eligible, voted, the open ballot's key (to
# find the member's ballot) and the turnout. One statement each cost a round trip and 20-40 us of the
# driver's and SQLAlchemy's work apiece, on every proposal page.
_PANEL_FACTS = select(_ELIGIBLE.exists(),
                      select(Participation.proposal_id).where(Participation.proposal_id == bindparam("pid"),
                                                             Participation.member_id == bindparam("mid")).exists(),
                      _KEY.scalar_subquery(), _TURNOUT.scalar_subquery())


def vote_panel(session: Session, p: Proposal, member_id: int, *, now: dt.datetime | None = None) -> VotePanel:
    now = now or utcnow()
    options = options_of(session, p)
    conn = session.connection()
    eligible, voted, key, turnout = conn.execute(_PANEL_FACTS, {"pid": p.id, "mid": member_id}).one()
    eligible = bool(eligible) and p.state in (State.OPEN, State.CLOSED)
    voted = bool(voted)
    choice = _choice(conn, p, member_id, key) if voted else None
    labels = {str(o.id): o.label for o in options}
    reason = ""
    if p.state != State.OPEN or (p.closes_at and p.closes_at <= now):
        reason = "Voting has closed." if p.state in (State.OPEN, State.CLOSED) else "Voting has not opened yet."
    elif not eligible:
        reason = "This proposal was put to other members, so you cannot vote on it."
    show = tally_visible(p, voted)
    tally = _tally(conn, p, options) if show else None
    return VotePanel(proposal=p, options=options, eligible=eligible, voted=voted, choice=choice,
                     choice_text=ballot_rules.describe(choice, labels, p.method) if choice is not None else "",
                     can_vote=not reason, reason=reason, show_tally=show, tally=tally, turnout=turnout or 0)


# --- closing ---------------------------------------------------------------------------------------------------

COUNTED_PER_STATEMENT = 5000  # 5 parameters a row: under SQLite's 32,766 and PostgreSQL's 65,535 per statement

def close_proposal(session: Session, settings: Settings, proposal_id: int, *, actor_id: int | None,
                   reason: str = "", now: dt.datetime | None = None, org_name: str = "Plenary") -> None:
    """Count once, work out the breakdown by group, store the result, move the ballots out of reach of any
    voter link, delete the key, and queue the results email to every eligible member. All in the caller's
    transaction: it happens whole or not. Once it has committed, the caller runs
    `app.voting.scrub.erase_residue` so that the deleted key and ballots leave the database files too."""
    from app.voting.notify import enqueue_results

    now = now or utcnow()
    p = _locked(session, proposal_id)
    if p.state != State.OPEN:
        raise VotingError("Only an open proposal can be closed.")
    options = options_of(session, p)
    rows = session.execute(select(Ballot.voter_ref, Ballot.choice, Ballot.receipt_hash, Ballot.voter_id)
                           .where(Ballot.proposal_id == p.id)).all()
    participants = session.scalar(select(func.count()).select_from(Participation).where(
        Participation.proposal_id == p.id)) or 0
    counted = ballot_rules.count(p, [(o.id, o.label) for o in options], [r.choice for r in rows],
                                 eligible=max(p.eligible_count, len(rows)))
    result = build_result(p, counted)
    result["integrity"] = {"ballots": len(rows), "participants": participants, "ok": len(rows) == participants}
    groups = _voters_groups(session, p.id, ballot_key(session, p.id))
    result["breakdown"] = breakdown(p, options, [(r.choice, groups.get(r.voter_ref, ())) for r in rows])
    del groups
    shuffled = list(rows)
    secrets.SystemRandom().shuffle(shuffled)
    # Whole statements of many rows, not one statement per row: PostgreSQL numbers the commands of a
    # transaction (the hidden `cmin`), and rows written by one statement share it.
    for start in range(0, len(shuffled), COUNTED_PER_STATEMENT):
        session.execute(insert(CountedBallot).values([
            {"id": secrets.token_bytes(16), "proposal_id": p.id, "choice": r.choice,
             "receipt_hash": r.receipt_hash, "voter_id": None if p.secret else r.voter_id}
            for r in shuffled[start:start + COUNTED_PER_STATEMENT]]))
    session.execute(delete(Ballot).where(Ballot.proposal_id == p.id))
    session.execute(delete(BallotKey).where(BallotKey.proposal_id == p.id))
    p.state, p.closed_at, p.close_reason = State.CLOSED, now, reason[:500]
    p.result, p.ballots_counted = result, len(rows)
    early = p.closes_at is not None and now < p.closes_at
    audit(session, "proposal.close_early" if early else "proposal.close", actor_id=actor_id,
          object_type="proposal", object_id=p.id, summary=f"{p.title}: {result['verdict']}",
          reason=reason[:500])
    enqueue_results(session, settings, p, org_name=org_name)
    live.announce(session, live.CLOSED, p.id)


def _voters_groups(session: Session, proposal_id: int, key: bytes | None) -> dict[bytes, tuple[int, ...]]:
    """Each voter's groups (as they are at close), by voter reference: the one moment the key is used to link
    ballots to members, in memory, inside the closing transaction. Nothing of it is stored."""
    if key is None:
        return {}
    per_member: dict[int, list[int]] = {m: [] for m in session.scalars(
        select(Participation.member_id).where(Participation.proposal_id == proposal_id))}
    for member_id, group_id in session.execute(
            select(GroupMembership.member_id, GroupMembership.group_id).join(
                Participation, Participation.member_id == GroupMembership.member_id)
            .where(Participation.proposal_id == proposal_id)):
        per_member[member_id].append(group_id)
    return {voter_ref(key, m): tuple(g) for m, g in per_member.items()}


def run_due_transitions(db: Any, settings: Settings, *, now: dt.datetime | None = None) -> int:
    """Open scheduled proposals whose time has come and close open ones past their deadline; the worker calls
    this every tick. Each proposal changes in a transaction of its own, under a row lock, so several workers
    can race for it: the loser finds it already changed and moves on."""
    from app.members.services import get_org

    now = now or utcnow()
    with db.read() as s:
        org = get_org(s)
        to_open = list(s.scalars(select(Proposal.id).where(Proposal.state == State.SCHEDULED,
                                                           Proposal.opens_at <= now)))
        to_close = list(s.scalars(select(Proposal.id).where(Proposal.state == State.OPEN,
                                                            Proposal.closes_at <= now)))
    done = 0
    for pid in to_open:
        try:
            with db.begin() as s:
                open_proposal(s, settings, pid, now=now)
            done += 1
        except VotingError as exc:
            log.warning("proposal %s could not open: %s", pid, exc)
    closed = 0
    for pid in to_close:
        try:
            with db.begin() as s:
                close_proposal(s, settings, pid, actor_id=None, now=now, org_name=org.name if org else "Plenary")
            closed += 1
        except VotingError as exc:
            log.info("proposal %s not closed here: %s", pid, exc)
    if closed:
        from app.voting.scrub import erase_residue

        erase_residue(db)  # after the commits: the deleted keys and ballots leave the files too
    return done + closed


# --- after close -----------------------------------------------------------------------------------------------

INLINE_RECEIPTS = 200  # the results page lists this many fingerprints itself; more get pages of their own
RECEIPTS_PAGE = 1000


def receipts(session: Session, p: Proposal, *, page: int | None = None) -> list[tuple[str, object | None]]:
    """Counted ballots' receipt fingerprints, sorted, with their choice where the proposal publishes them: all of
    them, or one page of RECEIPTS_PAGE (pages count from 1)."""
    mine = CountedBallot.proposal_id == p.id
    choice = CountedBallot.choice if p.publish_choices else literal(None)
    q = select(CountedBallot.receipt_hash, choice).where(mine).order_by(CountedBallot.receipt_hash)
    if page is not None:
        skip = (max(1, page) - 1) * RECEIPTS_PAGE
        if skip:
            # Skipped in the (proposal_id, receipt_hash) index alone, not row by row through the table.
            q = q.where(CountedBallot.receipt_hash >= select(CountedBallot.receipt_hash).where(mine).order_by(
                CountedBallot.receipt_hash).offset(skip).limit(1).scalar_subquery())
        q = q.limit(RECEIPTS_PAGE)
    return [(fingerprint(h), c) for h, c in session.execute(q)]


def check_receipt(session: Session, p: Proposal, code: str) -> tuple[bool, object | None]:
    """Whether a receipt code's ballot is in the count (after close), and its choice if published."""
    h = receipt_hash(code or "")
    model = CountedBallot if p.state == State.CLOSED else Ballot
    row = session.execute(select(model.choice).where(model.proposal_id == p.id,
                                                     model.receipt_hash == h)).first()
    if row is None:
        return False, None
    return True, row.choice if p.publish_choices and p.state == State.CLOSED else None


def open_ballots(session: Session, p: Proposal) -> list[tuple[str, object]]:
    """Who voted what, for open (non-secret) ballots after close only."""
    if p.secret or p.state != State.CLOSED:
        return []
    rows = session.execute(select(Member.name, CountedBallot.choice).join(
        Member, Member.id == CountedBallot.voter_id).where(CountedBallot.proposal_id == p.id)
        .order_by(Member.name)).all()
    return [(name, choice) for name, choice in rows]


def dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True)
