"""Mail that voting causes: the announcement at open, one reminder before the deadline, the vote confirmation,
the results at close and, when the admin asks for it, an update when the outcome is written or changed.

Each mailing is written in the transaction of the event that causes it. Announcements, reminders, results
and outcome updates are bulk mail: per member, `app.mail.policy` decides send / fold into the digest / drop,
and `app.mail.bulk` composes once and fills in each member's own links (vote buttons, unsubscribe). Unique
keys per proposal and recipient make a second open, close or reminder run queue nothing twice.

Vote confirmations: the first vote on a proposal is confirmed at once; changes are confirmed at most once an
hour per proposal and member, so changing one's mind five times in a minute sends one message, not five. For
secret ballots the message says neither the choice nor the receipt code (a mailbox is not a secret place).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.db import like_escape, utcnow
from app.mail.bulk import Outcome, Recipient, Slots, mail_audience, personal_links
from app.mail.headers import thread_headers
from app.mail.models import MemberMailSettings, OutboxMessage, ProposalReminder
from app.mail.outbox import enqueue
from app.mail.policy import plan
from app.mail.reply_address import reply_headers
from app.markdown import render_markdown
from app.members.models import Member, Organization, Status
from app.proposals.models import Option, Proposal, State
from app.proposals.queries import options_of
from app.settings import Settings
from app.voting import ballots as ballot_rules
from app.voting import summary
from app.voting.links import link_choices, vote_token
from app.voting.models import Eligibility, Participation

log = logging.getLogger("plenary.voting")

CONFIRM_EVERY = dt.timedelta(hours=1)


# --- shared pieces ---------------------------------------------------------------------------------------------

def org_name_and_tz(session: Session) -> tuple[str, str]:
    from app.members.services import get_org

    org = get_org(session)
    return _org_defaults(org.name, org.time_zone) if org else _org_defaults(None, None)


def _org_defaults(name: str | None, tz: str | None) -> tuple[str, str]:
    """The organization's name and time zone (None: no organization yet), as mail shows them."""
    return ("Plenary" if name is None else name), tz or "UTC"


def deadline_text(when: dt.datetime | None, tz: str) -> str:
    """"Tuesday 1 December 2026 at 18:00 (Europe/Berlin)"."""
    if when is None:
        return ""
    local = when.astimezone(ZoneInfo(tz))
    return f"{local:%A} {local.day} {local:%B %Y} at {local:%H:%M} ({tz})"


def _recipients(session: Session, p: Proposal, *, only_non_voters: bool = False) -> tuple[Any, list[Recipient]]:
    """The proposal's eligible, active members (optionally only those who have not voted), as a SELECT of ids
    for the policy and as a list."""
    audience = select(Eligibility.member_id).join(Member, Member.id == Eligibility.member_id).where(
        Eligibility.proposal_id == p.id, Member.status != Status.DEACTIVATED)
    if only_non_voters:
        audience = audience.where(~exists().where(Participation.proposal_id == p.id,
                                                  Participation.member_id == Eligibility.member_id))
    rows = session.execute(select(Member.id, Member.email, Member.name).where(Member.id.in_(audience))
                           .order_by(Member.id)).all()
    return audience, [Recipient(*r) for r in rows]


def _base_context(settings: Settings, p: Proposal, org_name: str, tz: str, slots: Slots) -> dict[str, Any]:
    return {
        "org_name": org_name,
        "title": p.title,
        "summary": p.summary,
        "deadline": deadline_text(p.closes_at, tz),
        "link": settings.url(f"/proposals/{p.id}"),
        "name": slots["name"],
        "unsubscribe_link": slots["unsubscribe"],
        "preferences_link": settings.url("/profile#mail"),
    }


def _personal(settings: Settings, p: Proposal, org_name: str, kind: str, extra: Any = None, *,
              reply_to: bool = False) -> Any:
    """Each member's slot values and headers; `reply_to`: a Reply-To with the member's own reply address, so
    answering the email posts a comment on the proposal (app/mail/inbound.py)."""
    base = personal_links(settings, kind=kind, org_name=org_name, public_id=p.public_id)

    def personal(r: Recipient) -> tuple[dict[str, str], dict[str, str]]:
        values, headers = base(r)
        if extra is not None:
            values |= extra(r)
        if reply_to:
            headers |= reply_headers(settings, member_id=r.member_id, proposal_id=p.id)
        return values, headers

    return personal


# --- opening: the announcement, and the reminder's time --------------------------------------------------------

def enqueue_announcement(session: Session, settings: Settings, p: Proposal, *, now: dt.datetime) -> Outcome:
    """Every eligible member hears that voting opened: with one button per option for yes/no and single choice
    (each a signed link to a confirmation page), otherwise a link to the proposal on the site."""
    org_name, tz = org_name_and_tz(session)
    audience, recipients = _recipients(session, p)
    slots = Slots()
    choices = link_choices(p, options_of(session, p))
    context = _base_context(settings, p, org_name, tz, slots) | {
        "buttons": [(label, slots[f"vote_{i}"]) for i, (_, label) in enumerate(choices)],
        "secret": p.secret,
        "can_reply": settings.reply_to_domain is not None,
    }
    expires = p.closes_at or now

    def votes(r: Recipient) -> dict[str, str]:
        return {f"vote_{i}": settings.url("/vote/" + vote_token(settings, member_id=r.member_id, proposal_id=p.id,
                                                                 choice=value, expires_at=expires))
                for i, (value, _) in enumerate(choices)}

    return mail_audience(session, settings, kind="announcement", context=context, slots=slots,
                         dedupe=f"proposal:{p.id}", recipients=recipients,
                         plan=plan(session, "announcement", audience, now=now),
                         personal=_personal(settings, p, org_name, "announcement", votes, reply_to=True),
                         proposal_id=p.id,
                         digest_key=f"announcement:p{p.id}")


def on_open(session: Session, settings: Settings, p: Proposal, *, now: dt.datetime) -> None:
    """Called by `open_proposal` in its transaction."""
    outcome = enqueue_announcement(session, settings, p, now=now)
    log.info("proposal %s opened: %d announcement(s) queued, %d folded into digests, %d not wanted", p.id,
             outcome.sent, outcome.folded, outcome.dropped)


# --- the reminder ----------------------------------------------------------------------------------------------

def votes_needed(p: Proposal, participants: int) -> int:
    """How many more ballots the quorum needs (0 without a quorum or once it is reached)."""
    if not p.quorum:
        return 0
    return max(0, math.ceil(Fraction(p.quorum) * p.eligible_count) - participants)


def remind(session: Session, settings: Settings, proposal_id: int, *, now: dt.datetime) -> int | None:
    """The one reminder for a proposal, to eligible members who have not voted. Returns how many were queued,
    or None when another worker has done it (the `proposal_reminders` row is the once-only guard)."""
    p = session.scalar(select(Proposal).where(Proposal.id == proposal_id).with_for_update())
    if p is None:
        return None
    ins = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    claimed = session.execute(ins(ProposalReminder).values(proposal_id=p.id, at=now, recipients=0)
                              .on_conflict_do_nothing(index_elements=["proposal_id"])
                              .returning(ProposalReminder.proposal_id)).first()
    if claimed is None:
        return None
    window = dt.timedelta(hours=settings.reminder_hours)
    if p.state != State.OPEN or p.closes_at is None or p.closes_at <= now or \
            (p.opened_at is not None and p.opened_at >= p.closes_at - window):
        return 0  # closed, or opened inside the window: the announcement is the reminder
    org_name, tz = org_name_and_tz(session)
    audience, recipients = _recipients(session, p, only_non_voters=True)
    participants = session.scalar(select(func.count()).select_from(Participation).where(
        Participation.proposal_id == p.id)) or 0
    slots = Slots()
    context = _base_context(settings, p, org_name, tz, slots) | {"votes_needed": votes_needed(p, participants)}
    outcome = mail_audience(session, settings, kind="reminder", context=context, slots=slots,
                            dedupe=f"proposal:{p.id}", recipients=recipients,
                            plan=plan(session, "reminder", audience, now=now),
                            personal=_personal(settings, p, org_name, "reminder"), proposal_id=p.id,
                            digest_key=f"reminder:p{p.id}")
    session.get(ProposalReminder, p.id).recipients = outcome.sent + outcome.folded  # type: ignore[union-attr]
    return outcome.sent + outcome.folded


def run_due_reminders(db: Any, settings: Settings, *, now: dt.datetime | None = None) -> int:
    """The worker calls this every tick: remind for open proposals whose deadline is within the reminder window.
    Each proposal in a transaction of its own; the guard row makes a race between workers harmless."""
    if settings.reminder_hours <= 0:
        return 0
    now = now or utcnow()
    with db.read() as s:
        due = list(s.scalars(select(Proposal.id).where(
            Proposal.state == State.OPEN, Proposal.closes_at > now,
            Proposal.closes_at <= now + dt.timedelta(hours=settings.reminder_hours),
            ~exists().where(ProposalReminder.proposal_id == Proposal.id))))
    done = 0
    for pid in due:
        with db.begin() as s:
            if remind(s, settings, pid, now=now) is not None:
                done += 1
    return done


# --- the vote confirmation -------------------------------------------------------------------------------------

# Whether a confirmation went to this member about this proposal within the hour, whether they take no email at
# all, and the organization's name and time zone: one statement, prebuilt, for every cast.
_CONFIRM_FACTS = select(
    select(OutboxMessage.id).where(
        OutboxMessage.member_id == bindparam("mid"), OutboxMessage.kind == "vote_confirmation",
        OutboxMessage.dedupe_key.like(bindparam("prefix"), escape="\\"),
        OutboxMessage.created_at > bindparam("since")).exists(),
    select(MemberMailSettings.unsubscribed_all).where(MemberMailSettings.member_id == bindparam("mid"))
    .scalar_subquery(),
    select(Organization.name).where(Organization.id == 1).scalar_subquery(),
    select(Organization.time_zone).where(Organization.id == 1).scalar_subquery(),
)
_MEMBER_ADDRESS = select(Member.email, Member.name).where(Member.id == bindparam("mid"))


def confirm_vote(session: Session, settings: Settings, p: Proposal, *, member_id: int, choice: object,
                 now: dt.datetime | None = None, options: list[Option] | None = None,
                 member: tuple[str, str] | None = None) -> bool:
    """Queue "your vote was recorded" (see the module's docstring for how often). Returns whether it was.
    `options` (the proposal's, in order) and `member` (email, name) save their look-ups when the caller has
    them."""
    now = now or utcnow()
    conn = session.connection()
    recent, unsubscribed, org_name, tz = conn.execute(_CONFIRM_FACTS, {
        "mid": member_id, "prefix": like_escape(f"vote_confirmation:proposal:{p.id}:") + "%",
        "since": now - CONFIRM_EVERY}).one()
    if recent or unsubscribed:
        return False
    if member is None:
        member = conn.execute(_MEMBER_ADDRESS, {"mid": member_id}).first()
        if member is None:
            return False
    email, name = member
    org_name, tz = _org_defaults(org_name, tz)
    choice_text = ""
    if not p.secret:
        labels = {str(o.id): o.label for o in (options if options is not None else options_of(session, p))}
        canonical = "__none__" if choice == "none" else choice
        choice_text = ballot_rules.describe(canonical, labels, p.method)
    context = {"org_name": org_name, "name": name, "title": p.title, "secret": p.secret,
               "choice": choice_text, "deadline": deadline_text(p.closes_at, tz),
               "link": settings.url(f"/proposals/{p.id}"), "preferences_link": settings.url("/profile#mail")}
    # One hour per key: the rolling check above spaces confirmations; the key stops two racing casts.
    hour = int(now.timestamp() // 3600)
    return enqueue(session, settings, kind="vote_confirmation", to_addr=email, to_name=name,
                   member_id=member_id, context=context, dedupe=f"proposal:{p.id}:h{hour}",
                   headers={"Auto-Submitted": "auto-generated", **thread_headers(settings, p.public_id)})


# --- closing: the results, and outcome updates -----------------------------------------------------------------

def _result_context(session: Session, settings: Settings, p: Proposal, org_name: str, tz: str, slots: Slots, *,
                    now: dt.datetime) -> dict[str, Any]:
    result: dict[str, Any] = p.result or {}
    rows: list[dict[str, Any]] = result.get("rows", [])
    top = max((r.get("percent", 0) for r in rows), default=0) or 1
    return _base_context(settings, p, org_name, tz, slots) | {
        "verdict": result.get("verdict", ""),
        "rows": [r | {"bar": max(1, round(96 * r.get("percent", 0) / top)) if r.get("count") else 0} for r in rows],
        "score": p.method == "score",
        "ballots": result.get("ballots", 0),
        "eligible": result.get("eligible", 0),
        "turnout_percent": result.get("turnout_percent", 0),
        "closed": deadline_text(p.closed_at, tz),
        "outcome_text": p.outcome_md or "",
        "outcome_html": render_markdown(p.outcome_md) if p.outcome_md else "",
        "results_link": settings.url(f"/proposals/{p.id}/results"),
        "arguments": summary.strongest_arguments(session, settings, p),
        "action_steps": summary.action_steps(session, settings, p, tz, now=now),
    }


def enqueue_results(session: Session, settings: Settings, p: Proposal, *, org_name: str,
                    now: dt.datetime | None = None) -> int:
    """The results summary to the whole audience at close. Members who voted get it whatever their mode for
    results (unless they unsubscribed from everything). Returns how many were queued or folded."""
    now = now or utcnow()
    _, tz = org_name_and_tz(session)
    audience, recipients = _recipients(session, p)
    voted = session.scalars(select(Participation.member_id).where(Participation.proposal_id == p.id))
    slots = Slots()
    context = _result_context(session, settings, p, org_name, tz, slots, now=now)
    outcome = mail_audience(session, settings, kind="results", context=context, slots=slots,
                            dedupe=f"proposal:{p.id}", recipients=recipients,
                            plan=plan(session, "results", audience, voted=voted, now=now),
                            personal=_personal(settings, p, org_name, "results"), proposal_id=p.id,
                            digest_key=f"results:p{p.id}")
    return outcome.sent + outcome.folded


def enqueue_outcome_update(session: Session, settings: Settings, p: Proposal, *,
                           now: dt.datetime | None = None) -> Outcome:
    """The outcome, written or changed after close, to the audience that chose to hear about outcomes; once
    per proposal and outcome revision (its save time)."""
    now = now or utcnow()
    org_name, tz = org_name_and_tz(session)
    audience, recipients = _recipients(session, p)
    revision = int((p.outcome_at or now).timestamp())
    slots = Slots()
    return mail_audience(session, settings, kind="outcome_update",
                         context=_result_context(session, settings, p, org_name, tz, slots, now=now),
                         slots=slots,
                         dedupe=f"proposal:{p.id}:r{revision}", recipients=recipients,
                         plan=plan(session, "outcome_update", audience, now=now),
                         personal=_personal(settings, p, org_name, "outcome_update"), proposal_id=p.id,
                         digest_key=f"outcome_update:p{p.id}:r{revision}")
