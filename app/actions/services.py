"""The rules of action steps: who may commit, capacity and the waiting list, withdrawing, reporting done,
the admins' steps (add, change, delete), rosters and messages to everyone committed. Campaigns: campaigns.py.

Capacity under concurrency: committing locks the step's row first (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite
the write transaction is already the only writer, see app/db.py), then counts. So two members racing for the
last place are served one after the other: one gets it, the other is waitlisted.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.actions import ics
from app.actions.models import ActionStep, Campaign, Commitment, CommitmentStatus, Kind, PageView
from app.db import per_dialect, utcnow
from app.mail.headers import mail_domain
from app.mail.outbox import enqueue
from app.members.guard import RateLimited, audit, check_rate
from app.members.models import GroupMembership, Member, Status
from app.middleware import CurrentMember
from app.proposals.models import Proposal, State
from app.settings import Settings

MAX_QUANTITY = 1_000_000  # a pledge above this is a typing mistake
NOTE_LIMIT = 500
ACTIVE = (CommitmentStatus.COMMITTED, CommitmentStatus.DONE)  # what takes a place
PREFERENCE_KIND = "outcome_update"  # the mail preference that admins' messages to volunteers follow
# Each sign-up and withdrawal mails the member: at most this many per member and hour.
CHANGES_PER_HOUR = 30
MESSAGES_PER_HOUR = 20  # an admin's messages to volunteers


class ActionError(Exception):
    """A refusal with a message for the member; nothing was changed."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class NotFound(ActionError):
    def __init__(self) -> None:
        super().__init__("There is no such action step, or it is not open to you.", 404)


# --- who may see what -----------------------------------------------------------------------------------------

def can_see_campaign(session: Session, member: CurrentMember, campaign: Campaign) -> bool:
    if member.is_admin:
        return True
    if not campaign.published:
        return False
    if campaign.group_id is None:
        return True
    return session.scalar(select(GroupMembership.member_id).where(
        GroupMembership.group_id == campaign.group_id, GroupMembership.member_id == member.id)) is not None


def campaign_audience(campaign: Campaign) -> Select[tuple[int]]:
    """The ids of the members a campaign is for: every active member, or the active members of its group."""
    audience = select(Member.id).where(Member.status != Status.DEACTIVATED)
    if campaign.group_id is not None:
        audience = audience.where(Member.id.in_(select(GroupMembership.member_id).where(
            GroupMembership.group_id == campaign.group_id)))
    return audience


def get_campaign(session: Session, member: CurrentMember, campaign_id: int) -> Campaign:
    c = session.get(Campaign, campaign_id)
    if c is None or not can_see_campaign(session, member, c):
        raise NotFound()
    return c


def can_see_step(session: Session, member: CurrentMember, step: ActionStep) -> bool:
    from app.proposals.queries import can_see

    if step.proposal_id is not None:
        p = session.get(Proposal, step.proposal_id)
        return p is not None and can_see(session, member, p)
    c = session.get(Campaign, step.campaign_id)
    return c is not None and can_see_campaign(session, member, c)


def _locked_step(session: Session, step_id: int) -> ActionStep | None:
    query = select(ActionStep).where(ActionStep.id == step_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalar(query)


def get_step(session: Session, member: CurrentMember, step_id: int, *, lock: bool = False) -> ActionStep:
    step = _locked_step(session, step_id) if lock else session.get(ActionStep, step_id)
    if step is None or not can_see_step(session, member, step):
        raise NotFound()
    return step


# --- progress ---------------------------------------------------------------------------------------------------

@dataclass
class Progress:
    committed: int = 0  # committed or done: the places taken
    waitlisted: int = 0
    done: int = 0
    pledged: int = 0  # pledges: the sum of the quantities given (a pledge without one adds nothing), done or not


def progress(session: Session, step_ids: list[int]) -> dict[int, Progress]:
    out = {sid: Progress() for sid in step_ids}
    if not step_ids:
        return out
    rows = session.execute(select(Commitment.step_id, Commitment.status, func.count(),
                                  func.coalesce(func.sum(Commitment.quantity), 0))
                           .where(Commitment.step_id.in_(step_ids)).group_by(Commitment.step_id, Commitment.status))
    for step_id, status, n, qty in rows:
        p = out[step_id]
        if status in ACTIVE:
            p.committed += n
            p.pledged += int(qty)
        if status == CommitmentStatus.DONE:
            p.done += n
        if status == CommitmentStatus.WAITLISTED:
            p.waitlisted += n
    return out


@dataclass
class StepView:
    step: ActionStep
    progress: Progress
    mine: Commitment | None = None

    @property
    def full(self) -> bool:
        return self.step.capacity is not None and self.progress.committed >= self.step.capacity


# Read on every proposal page: prebuilt (built per page, the statement cost more than the query).
_STEPS_OF = {
    parent: select(ActionStep).where(column == bindparam("parent")).order_by(ActionStep.starts_at, ActionStep.id)
    for parent, column in (("proposal", ActionStep.proposal_id), ("campaign", ActionStep.campaign_id))}


def steps_for(session: Session, member: CurrentMember, *, proposal_id: int | None = None,
              campaign_id: int | None = None) -> list[StepView]:
    stmt, parent = (_STEPS_OF["proposal"], proposal_id) if proposal_id is not None else \
        (_STEPS_OF["campaign"], campaign_id)
    steps = list(session.scalars(stmt, {"parent": parent}))
    return _views(session, member.id, steps) if steps else []


def step_view(session: Session, member: CurrentMember, step_id: int) -> StepView:
    return _views(session, member.id, [get_step(session, member, step_id)])[0]


def _views(session: Session, member_id: int, steps: list[ActionStep]) -> list[StepView]:
    ids = [s.id for s in steps]
    prog = progress(session, ids)
    mine = {c.step_id: c for c in session.scalars(select(Commitment).where(
        Commitment.member_id == member_id, Commitment.step_id.in_(ids)))} if ids else {}
    return [StepView(step=s, progress=prog[s.id], mine=mine.get(s.id)) for s in steps]


@dataclass
class MyCommitment:
    commitment: Commitment
    step: ActionStep
    parent_title: str
    parent_url: tuple[str, dict[str, int]]  # route name and params


def my_commitments(session: Session, member_id: int) -> list[MyCommitment]:
    """The home page's list: what this member is in (or waiting for), soonest shift first, then the rest."""
    rows = session.execute(
        select(Commitment, ActionStep, Proposal.title, Campaign.title)
        .join(ActionStep, ActionStep.id == Commitment.step_id)
        .outerjoin(Proposal, Proposal.id == ActionStep.proposal_id)
        .outerjoin(Campaign, Campaign.id == ActionStep.campaign_id)
        .where(Commitment.member_id == member_id,
               Commitment.status.in_((CommitmentStatus.COMMITTED, CommitmentStatus.WAITLISTED)))
        .order_by(ActionStep.starts_at.is_(None), ActionStep.starts_at, Commitment.id)).all()
    out = []
    for c, step, p_title, c_title in rows:
        if step.proposal_id is not None:
            url = ("proposals:detail", {"proposal_id": step.proposal_id})
        else:
            url = ("actions:campaign", {"campaign_id": step.campaign_id})
        out.append(MyCommitment(commitment=c, step=step, parent_title=p_title or c_title or "", parent_url=url))
    return out


# --- members: commit, withdraw, report done ---------------------------------------------------------------------

_WHOLE = re.compile(r"[0-9]{1,12}")


def parse_quantity(step: ActionStep, raw: str | None) -> int | None:
    """A pledge's quantity: optional (empty is a promise without a number), else a whole number from 1 to
    MAX_QUANTITY."""
    if step.kind != Kind.PLEDGE:
        return None
    raw = (raw or "").strip()
    if not raw:
        return None
    what = f"how many {step.unit}" if step.unit else "how many"
    if not _WHOLE.fullmatch(raw):
        raise ActionError(f"Say {what} as a whole number from 1 to {MAX_QUANTITY:,} (digits only), or leave it "
                          "empty to pledge without a number.", field="quantity")
    n = int(raw)
    if n == 0:
        raise ActionError(f"A pledge of 0 is no pledge: give a whole number from 1 to {MAX_QUANTITY:,}, or leave "
                          "it empty to pledge without a number.", field="quantity")
    if n > MAX_QUANTITY:
        raise ActionError(f"{n:,} is more than we can count for one pledge: give a whole number from 1 to "
                          f"{MAX_QUANTITY:,}.", field="quantity")
    return n


def _rate(session: Session, member_id: int) -> None:
    try:
        check_rate(session, [f"commitment:member:{member_id}"], limit=CHANGES_PER_HOUR, window_s=3600)
    except RateLimited:
        raise ActionError("You have signed up and withdrawn many times in the last hour, and each time we email "
                          "you. Please wait a while and try again.", 429) from None


def _started(step: ActionStep, now: dt.datetime) -> bool:
    return step.kind == Kind.SHIFT and step.starts_at is not None and step.starts_at <= now


def commit(session: Session, settings: Settings, member: CurrentMember, step_id: int, *,
           quantity: str | None = None, now: dt.datetime | None = None) -> Commitment:
    """Sign the member up ("I'm in"); on a full shift, put them on its waiting list."""
    now = now or utcnow()
    step = get_step(session, member, step_id, lock=True)
    if _started(step, now):
        raise ActionError("This shift has already started, so signing up is closed.", 409)
    qty = parse_quantity(step, quantity)
    _rate(session, member.id)
    existing = session.scalar(select(Commitment).where(Commitment.step_id == step.id,
                                                       Commitment.member_id == member.id))
    if existing is not None and existing.status != CommitmentStatus.WITHDRAWN:
        raise ActionError("You have already signed up for this.", 409)
    taken = session.scalar(select(func.count()).select_from(Commitment).where(
        Commitment.step_id == step.id, Commitment.status.in_(ACTIVE))) or 0
    full = step.capacity is not None and taken >= step.capacity
    if full and step.kind != Kind.SHIFT:
        raise ActionError(f"This is full: all {step.capacity} places are taken.", 409)
    position = 0
    if full:
        position = (session.scalar(select(func.max(Commitment.position)).where(
            Commitment.step_id == step.id, Commitment.status == CommitmentStatus.WAITLISTED)) or 0) + 1
    status = CommitmentStatus.WAITLISTED if full else CommitmentStatus.COMMITTED
    c = existing or Commitment(step_id=step.id, member_id=member.id)
    c.status, c.quantity, c.position, c.note, c.done_at, c.updated_at = status, qty, position, "", None, now
    session.add(c)
    session.flush()  # the id names the calendar event and the message
    _mail(session, settings, step, c, event=status, now=now)
    return c


def _own(session: Session, member: CurrentMember, commitment_id: int) -> tuple[Commitment, ActionStep]:
    c = session.get(Commitment, commitment_id)
    if c is None or c.member_id != member.id:
        raise ActionError("That is not one of your commitments.", 404)
    step = _locked_step(session, c.step_id)
    assert step is not None
    session.refresh(c)  # read again under the step's lock
    return c, step


def withdraw(session: Session, settings: Settings, member: CurrentMember, commitment_id: int, *,
             now: dt.datetime | None = None) -> Commitment | None:
    """Withdraw; a place that frees up goes to the first on the waiting list. Returns who was moved in."""
    now = now or utcnow()
    c, step = _own(session, member, commitment_id)
    if c.status == CommitmentStatus.WITHDRAWN:
        raise ActionError("You have already withdrawn from this.", 409)
    if c.status == CommitmentStatus.DONE:
        raise ActionError("You have reported this done, so there is nothing to withdraw from.", 409)
    if _started(step, now):
        raise ActionError("This shift has already started, so you can no longer withdraw here. "
                          "Please tell the organizers directly.", 409)
    _rate(session, member.id)
    had_place = c.status == CommitmentStatus.COMMITTED
    c.status, c.position, c.updated_at = CommitmentStatus.WITHDRAWN, 0, now
    if step.kind == Kind.SHIFT and had_place:
        _mail(session, settings, step, c, event="withdrawn", now=now)
    return promote(session, settings, step, now=now) if had_place else None


def promote(session: Session, settings: Settings, step: ActionStep, *, now: dt.datetime) -> Commitment | None:
    """Move the first waiting member in, if there is a free place; they are told by email."""
    session.flush()
    taken = session.scalar(select(func.count()).select_from(Commitment).where(
        Commitment.step_id == step.id, Commitment.status.in_(ACTIVE))) or 0
    if step.capacity is not None and taken >= step.capacity:
        return None
    first = session.scalar(select(Commitment).where(
        Commitment.step_id == step.id, Commitment.status == CommitmentStatus.WAITLISTED)
        .order_by(Commitment.position, Commitment.id).limit(1))
    if first is None:
        return None
    first.status, first.position, first.updated_at = CommitmentStatus.COMMITTED, 0, now
    session.flush()
    _mail(session, settings, step, first, event="promoted", now=now)
    return first


def mark_done(session: Session, member: CurrentMember, commitment_id: int, *, note: str = "",
              now: dt.datetime | None = None) -> Commitment:
    now = now or utcnow()
    c, _step = _own(session, member, commitment_id)
    if c.status == CommitmentStatus.DONE:
        raise ActionError("You have already reported this done.", 409)
    if c.status == CommitmentStatus.WAITLISTED:
        raise ActionError("You are on the waiting list for this, so there is nothing to report yet.", 409)
    if c.status == CommitmentStatus.WITHDRAWN:
        raise ActionError("You withdrew from this. Sign up again first.", 409)
    note = note.strip()
    if len(note) > NOTE_LIMIT:
        raise ActionError(f"Keep the note under {NOTE_LIMIT} characters.", field="note")
    c.status, c.note, c.done_at, c.updated_at = CommitmentStatus.DONE, note, now, now
    return c


# --- mail ------------------------------------------------------------------------------------------------------

def org_and_tz(session: Session) -> tuple[str, str]:
    from app.members.services import get_org

    org = get_org(session)
    return (org.name, org.time_zone or "UTC") if org else ("Plenary", "UTC")


def step_url(settings: Settings, step: ActionStep) -> str:
    if step.proposal_id is not None:
        return settings.url(f"/proposals/{step.proposal_id}#step-{step.id}")
    return settings.url(f"/campaigns/{step.campaign_id}#step-{step.id}")


def when_text(step: ActionStep, tz: str) -> str:
    from zoneinfo import ZoneInfo

    if step.starts_at is None:
        return ""
    start = step.starts_at.astimezone(ZoneInfo(tz))
    text = f"{start:%A} {start.day} {start:%B %Y}, {start:%H:%M}"
    if step.ends_at is not None:
        text += f"–{step.ends_at.astimezone(ZoneInfo(tz)):%H:%M}"
    return f"{text} ({tz})"


def calendar_attachment(session: Session, settings: Settings, step: ActionStep, c: Commitment, member: Member,
                        *, now: dt.datetime, sequence: int, cancelled: bool = False) -> dict[str, str]:
    from email.utils import parseaddr

    org_name, tz = org_and_tz(session)
    text = ics.shift_calendar(step, c, sequence=sequence, domain=mail_domain(settings), tz=tz, org_name=org_name,
                              organizer=parseaddr(settings.mail_from)[1], attendee=member.email,
                              attendee_name=member.name, url=step_url(settings, step), now=now,
                              cancelled=cancelled)
    return {"filename": f"shift-{step.id}.ics", "mime_type": "text/calendar",
            "method": "CANCEL" if cancelled else "REQUEST", "content": text}


CANCELLING = ("withdrawn", "cancelled")  # events whose calendar file removes the event


def _calendar_sequence(c: Commitment, event: str) -> int:
    """The SEQUENCE for this commitment's next calendar file: a reminder repeats the current version; any other
    file is new and goes one above the last (0 for the first)."""
    if event == "reminder":
        return c.calendar_sequence or 0
    c.calendar_sequence = 0 if c.calendar_sequence is None else c.calendar_sequence + 1
    return c.calendar_sequence


def _mail(session: Session, settings: Settings, step: ActionStep, c: Commitment, *, event: str,
          now: dt.datetime, calendar: bool = True) -> bool:
    """The member's own message (committed, waitlisted, moved in, withdrawn, shift changed, reminder, step
    cancelled), with the calendar file for a shift unless `calendar` is False (a member who is only waiting has no
    event in their calendar). Returns whether a message was queued (not for a deactivated member, nor a reminder
    already sent)."""
    member = session.get(Member, c.member_id)
    if member is None or member.status == Status.DEACTIVATED:
        return False
    org_name, tz = org_and_tz(session)
    attachments = None
    if calendar and step.kind == Kind.SHIFT and step.starts_at is not None and event != CommitmentStatus.WAITLISTED:
        attachments = [calendar_attachment(session, settings, step, c, member, now=now,
                                           sequence=_calendar_sequence(c, event), cancelled=event in CANCELLING)]
    kind = "shift_reminder" if event == "reminder" else "commitment"
    # A reminder goes once per shift version; the other messages once per event.
    dedupe = f"c{c.id}:s{step.sequence}" if event == "reminder" else f"c{c.id}:{event}:{secrets.token_hex(6)}"
    return enqueue(session, settings, kind=kind, to_addr=member.email, to_name=member.name, member_id=member.id,
                   context={"org_name": org_name, "name": member.name, "event": event, "title": step.title,
                            "kind": step.kind, "when": when_text(step, tz), "place": step.place,
                            "link": step.link, "description": step.description, "quantity": c.quantity,
                            "unit": step.unit, "url": step_url(settings, step), "position": c.position,
                            "waiting": c.status == CommitmentStatus.WAITLISTED},
                   dedupe=dedupe, attachments=attachments)


def send_reminders(session: Session, settings: Settings, *, now: dt.datetime | None = None,
                   ahead: dt.timedelta = dt.timedelta(hours=24)) -> int:
    """A reminder to everyone committed to a shift starting within `ahead`, each once per shift version (a
    moved shift reminds again). Returns how many were queued now: 0 when all of them had been already."""
    now = now or utcnow()
    rows = session.execute(select(Commitment, ActionStep).join(ActionStep, ActionStep.id == Commitment.step_id)
                           .where(ActionStep.kind == Kind.SHIFT, ActionStep.starts_at > now,
                                  ActionStep.starts_at <= now + ahead,
                                  Commitment.status == CommitmentStatus.COMMITTED)).all()
    return sum(_mail(session, settings, step, c, event="reminder", now=now) for c, step in rows)


def run_due_shift_reminders(db: Any, settings: Settings, *, now: dt.datetime | None = None) -> int:
    """The worker calls this every tick; the outbox's dedupe key makes a second run (or worker) send nothing."""
    with db.begin() as s:
        return send_reminders(s, settings, now=now)


# --- admins: steps -----------------------------------------------------------------------------------------------

@dataclass
class StepData:
    kind: str
    title: str
    description: str = ""
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    place: str = ""
    link: str = ""
    capacity: int | None = None
    goal: int | None = None
    unit: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def create_step(session: Session, data: StepData, *, proposal_id: int | None = None,
                campaign_id: int | None = None, actor_id: int | None = None, ip: str = "") -> ActionStep:
    if (proposal_id is None) == (campaign_id is None):
        raise ActionError("A step belongs to one proposal or one campaign.")
    if proposal_id is not None and session.get(Proposal, proposal_id) is None:
        raise NotFound()
    if campaign_id is not None and session.get(Campaign, campaign_id) is None:
        raise NotFound()
    step = ActionStep(proposal_id=proposal_id, campaign_id=campaign_id, **_fields(data))
    session.add(step)
    session.flush()
    if actor_id is not None:
        audit(session, "step.create", actor_id=actor_id, ip=ip, object_type="action_step", object_id=step.id,
              summary=f"Action step added: {step.title}", kind=step.kind, proposal_id=proposal_id,
              campaign_id=campaign_id)
    return step


def _fields(data: StepData) -> dict[str, Any]:
    return {k: getattr(data, k) for k in ("kind", "title", "description", "starts_at", "ends_at", "place", "link",
                                          "capacity", "goal", "unit")}


def taken_places(session: Session, step_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Commitment).where(
        Commitment.step_id == step_id, Commitment.status.in_(ACTIVE))) or 0


def update_step(session: Session, settings: Settings, step_id: int, data: StepData, *,
                now: dt.datetime | None = None, actor_id: int | None = None, ip: str = "") -> ActionStep:
    """Change a step. When a shift's title, time or place changes, everyone on it gets the updated calendar event
    (a higher SEQUENCE) and those waiting are told; more places move waiting members in. Fewer places than are
    taken is refused: the members who have them were promised them."""
    now = now or utcnow()
    step = _locked_step(session, step_id)
    if step is None:
        raise NotFound()
    if data.kind != step.kind:
        raise ActionError("A step's kind cannot change; add a new step instead.", field="kind")
    taken = taken_places(session, step.id)
    if data.capacity is not None and data.capacity < taken:
        raise ActionError(f"{taken} members already have a place, so there cannot be fewer than {taken} places. "
                          "Leave it at that or more (or empty for no limit); to make room, ask members to withdraw "
                          "first.", field="capacity")
    moved = (data.title, data.starts_at, data.ends_at, data.place, data.link) != (
        step.title, step.starts_at, step.ends_at, step.place, step.link)
    for k, v in _fields(data).items():
        setattr(step, k, v)
    step.updated_at = now
    told = 0
    if step.kind == Kind.SHIFT and moved:
        step.sequence += 1
        told = _tell_everyone(session, settings, step, event="updated", now=now)
    promoted = promote_all(session, settings, step, now=now)  # a larger capacity lets waiting members in
    if actor_id is not None:
        audit(session, "step.update", actor_id=actor_id, ip=ip, object_type="action_step", object_id=step.id,
              summary=f"Action step changed: {step.title}", told=told, promoted=promoted)
    return step


def _tell_everyone(session: Session, settings: Settings, step: ActionStep, *, event: str, now: dt.datetime) -> int:
    """Mail every member still in or waiting about a change to the step (with a calendar file for those in).
    Returns how many were told."""
    told = 0
    for c in session.scalars(select(Commitment).where(
            Commitment.step_id == step.id,
            Commitment.status.in_((CommitmentStatus.COMMITTED, CommitmentStatus.WAITLISTED)))
            .order_by(Commitment.id)):
        told += _mail(session, settings, step, c, event=event, now=now,
                      calendar=c.status == CommitmentStatus.COMMITTED)
    return told


def delete_step(session: Session, settings: Settings, step_id: int, *, now: dt.datetime | None = None,
                actor_id: int | None = None, ip: str = "") -> int:
    """Delete a step with its commitments. Everyone still in or waiting is told by email first (for a shift, with
    a calendar file that cancels the event). Returns how many were told."""
    now = now or utcnow()
    step = _locked_step(session, step_id)
    if step is None:
        raise NotFound()
    told = _tell_everyone(session, settings, step, event="cancelled", now=now)
    if actor_id is not None:
        audit(session, "step.delete", actor_id=actor_id, ip=ip, object_type="action_step", object_id=step.id,
              summary=f"Action step deleted: {step.title}", told=told, proposal_id=step.proposal_id,
              campaign_id=step.campaign_id)
    session.flush()  # the calendar sequences just raised are written before the rows go
    session.execute(delete(ActionStep).where(ActionStep.id == step.id))  # its commitments go with it (cascade)
    session.expunge(step)
    return told


def promote_all(session: Session, settings: Settings, step: ActionStep, *, now: dt.datetime) -> int:
    n = 0
    while promote(session, settings, step, now=now) is not None:
        n += 1
    return n


# --- the roster and messages to the committed ------------------------------------------------------------------

def roster(session: Session, step_id: int) -> tuple[ActionStep, list[tuple[Commitment, Member]]]:
    step = session.get(ActionStep, step_id)
    if step is None:
        raise NotFound()
    order = (Commitment.status == CommitmentStatus.WAITLISTED, Commitment.status == CommitmentStatus.WITHDRAWN,
             Commitment.position, Commitment.created_at, Commitment.id)
    rows = session.execute(select(Commitment, Member).join(Member, Member.id == Commitment.member_id)
                           .where(Commitment.step_id == step_id).order_by(*order)).all()
    return step, [(c, m) for c, m in rows]


def message_committed(session: Session, settings: Settings, step: ActionStep, *, subject: str, body: str,
                      now: dt.datetime | None = None, actor_id: int | None = None, ip: str = "") -> int:
    """Mail everyone committed to the step (not the waiting list), through the mail policy.

    These messages follow the member's "outcome updates" preference (news about what is being done): a member
    who turned those off, or unsubscribed from everything, gets nothing, and each message carries the
    unsubscribe headers for that kind. They are never held back for a digest or by the weekly budget: "we meet
    at the other bridge" is no use on Sunday.
    """
    import dataclasses

    from app.mail.bulk import Recipient, Slots, mail_audience, personal_links
    from app.mail.models import Mode
    from app.mail.policy import plan

    subject, body = subject.strip(), body.strip()
    if not subject:
        raise ActionError("Write a subject.", field="subject")
    if not body:
        raise ActionError("Write the message.", field="body")
    if len(subject) > 200:
        raise ActionError("Keep the subject under 200 characters.", field="subject")
    if len(body) > 10_000:
        raise ActionError("Keep the message under 10,000 characters.", field="body")
    if actor_id is not None:
        try:
            check_rate(session, [f"step_message:member:{actor_id}"], limit=MESSAGES_PER_HOUR, window_s=3600)
        except RateLimited:
            raise ActionError(f"You have sent {MESSAGES_PER_HOUR} messages to volunteers in the last hour. Please "
                              "wait a while before sending another.", 429) from None
    now = now or utcnow()
    org_name, _tz = org_and_tz(session)
    audience = select(Commitment.member_id).join(Member, Member.id == Commitment.member_id).where(
        Commitment.step_id == step.id, Commitment.status == CommitmentStatus.COMMITTED,
        Member.status != Status.DEACTIVATED)
    recipients = [Recipient(*r) for r in session.execute(
        select(Member.id, Member.email, Member.name).where(Member.id.in_(audience)).order_by(Member.id))]
    slots = Slots()
    context = {"org_name": org_name, "subject": subject[:200], "body": body[:10_000], "title": step.title,
               "url": step_url(settings, step), "name": slots["name"], "unsubscribe_link": slots["unsubscribe"],
               "preferences_link": settings.url("/profile#mail")}

    rule = plan(session, PREFERENCE_KIND, audience, now=now)
    no_digest = dataclasses.replace(
        rule, defaults=dataclasses.replace(rule.defaults, weekly_budget=0,
                                           modes={**rule.defaults.modes, PREFERENCE_KIND: Mode.IMMEDIATELY}
                                           if rule.defaults.mode(PREFERENCE_KIND) == Mode.DIGEST
                                           else rule.defaults.modes),
        modes={k: Mode.IMMEDIATELY if v == Mode.DIGEST else v for k, v in rule.modes.items()})
    outcome = mail_audience(session, settings, kind="action_message", context=context, slots=slots,
                            dedupe=f"step{step.id}:{secrets.token_hex(6)}", recipients=recipients,
                            plan=no_digest,
                            personal=personal_links(settings, kind=PREFERENCE_KIND, org_name=org_name))
    if actor_id is not None:
        audit(session, "step.message", actor_id=actor_id, ip=ip, object_type="action_step", object_id=step.id,
              summary=f"Message to volunteers: {subject[:100]}", recipients=outcome.sent)
    return outcome.sent + outcome.folded


# --- page views (the funnel's "opened the page") ---------------------------------------------------------------

# Prebuilt and run on the session's connection: on every page view, a statement built per call cost more than the
# query (docs/BENCHMARKS.md).
_SEEN_PROPOSAL = select(PageView.id).where(PageView.member_id == bindparam("mid"),
                                           PageView.proposal_id == bindparam("target")).limit(1)
_SEEN_CAMPAIGN = select(PageView.id).where(PageView.member_id == bindparam("mid"),
                                           PageView.campaign_id == bindparam("target")).limit(1)


def seen(session: Session, member_id: int, *, proposal_id: int | None = None,
         campaign_id: int | None = None) -> bool:
    stmt, target = (_SEEN_PROPOSAL, proposal_id) if proposal_id is not None else (_SEEN_CAMPAIGN, campaign_id)
    return session.connection().execute(stmt, {"mid": member_id, "target": target}).first() is not None


def _record_view_statement(insert: Any) -> Any:
    return insert(PageView).values(member_id=bindparam("mid"), proposal_id=bindparam("pid"),
                                   campaign_id=bindparam("cid"), first_at=bindparam("at"),
                                   via=bindparam("via")).on_conflict_do_nothing()


_RECORD_VIEW = per_dialect(_record_view_statement)


def record_view(conn: Connection, member_id: int, *, proposal_id: int | None = None,
                campaign_id: int | None = None, via: str = "web") -> None:
    """The first view per member; later ones (and two tabs at once) write nothing. On a connection in a write
    transaction (a bare one, or a session's `connection()`)."""
    conn.execute(_RECORD_VIEW[conn.dialect.name],
                 {"mid": member_id, "pid": proposal_id, "cid": campaign_id, "at": utcnow(), "via": via})


def note_view(db: Any, member_id: int, *, proposal_id: int | None = None, campaign_id: int | None = None,
              via: str = "web") -> bool:
    """For views (run in the thread pool): one indexed look-up, and a write only on the member's first view.
    Returns whether this was the first."""
    with db.read() as s:
        if seen(s, member_id, proposal_id=proposal_id, campaign_id=campaign_id):
            return False
    record_first_view(db, member_id, proposal_id=proposal_id, campaign_id=campaign_id, via=via)
    return True


def is_first_view(session: Session, member_id: int, p: Proposal) -> bool:
    """`note_view`'s rule, for a caller that reads the proposal in a unit of work of its own (and so saves a
    trip to the thread pool): whether this opening of a published proposal is the member's first. If so, the
    caller runs `record_first_view` once its read has ended."""
    return p.state != State.DRAFT and not seen(session, member_id, proposal_id=p.id)


def record_first_view(db: Any, member_id: int, *, proposal_id: int | None = None, campaign_id: int | None = None,
                      via: str = "web") -> None:
    """The write half of `note_view`, for a caller that found `seen` false in a read of its own."""
    with db.write_connection(durable=False) as conn:  # a first view lost in a power cut is counted at the next one
        record_view(conn, member_id, proposal_id=proposal_id, campaign_id=campaign_id, via=via)


def own_step_id(session: Session, member: CurrentMember, commitment_id: int) -> int:
    c = session.get(Commitment, commitment_id)
    if c is None or c.member_id != member.id:
        raise ActionError("That is not one of your commitments.", 404)
    return c.step_id
