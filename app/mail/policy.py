"""Whether a message goes out now, waits for the member's digest, or is not sent: decided here, at enqueue time.

`decide` is the rule, pure and unit-tested. `plan` loads what the rule needs for a whole audience in four
queries (the admins' defaults, the members' own choices, who unsubscribed from everything, and how many
budgeted messages each got in the last seven days) so a mailing to 10,000 members decides in milliseconds.

The rule, in order:
1. Sign-in links, invitations, resets and email-change messages always go (they are not mailings).
2. A member who unsubscribed from everything gets nothing else.
3. Vote confirmations and digests go (neither counts against the budget of rule 6 nor can be folded).
4. The member's mode for the kind (their own, else the admins' default): `never` drops it, except that the
   results of a proposal the member voted on cannot be turned off this way.
5. `digest` folds it into the member's next digest.
6. Past the weekly budget (the most budgeted messages a member gets in seven days; 0 = no limit), it folds
   into the digest instead of being sent.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.mail.models import DigestEvery, MailPreference, MemberMailSettings, Mode, OrgMailSettings, OutboxMessage

TRANSACTIONAL = frozenset({"signin_link", "password_reset", "invitation", "email_change_confirm",
                           "email_change_notice"})
# Mail about comments (app/comments/notify.py): a reply to the member's comment, a mention, an official response
# on a proposal the member took part in.
COMMENT_KINDS = ("comment_reply", "mention", "official_response")
# The kinds members choose a mode for, in the order the forms show them.
PREF_KINDS = ("announcement", "reminder", "results", "outcome_update", *COMMENT_KINDS)
# What counts against the weekly budget: every mailing, the digest included (a campaign's announcement follows
# the member's mode for announcements, see app/actions/campaigns.py).
BUDGETED = (*PREF_KINDS, "digest", "campaign_announcement")
DEFAULT_BUDGET = 5
BUDGET_WINDOW = dt.timedelta(days=7)
MODES = tuple(m.value for m in Mode)


class Decision(enum.StrEnum):
    SEND = "send"
    DIGEST = "digest"
    DROP = "drop"


def decide(kind: str, *, mode: str, unsubscribed_all: bool = False, voted: bool = False,
           sent_this_week: int = 0, budget: int = DEFAULT_BUDGET) -> Decision:
    if kind in TRANSACTIONAL:
        return Decision.SEND
    if unsubscribed_all:
        return Decision.DROP
    if kind in ("vote_confirmation", "digest"):
        return Decision.SEND
    if mode == Mode.NEVER:
        if not (kind == "results" and voted):
            return Decision.DROP
        mode = Mode.IMMEDIATELY
    if mode == Mode.DIGEST:
        return Decision.DIGEST
    if budget and sent_this_week >= budget:
        return Decision.DIGEST
    return Decision.SEND


# --- the admins' defaults ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrgDefaults:
    weekly_budget: int = DEFAULT_BUDGET
    digest_every: str = DigestEvery.WEEKLY
    modes: dict[str, str] = field(default_factory=dict)

    def mode(self, kind: str) -> str:
        return self.modes.get(kind, Mode.IMMEDIATELY)


def org_defaults(session: Session) -> OrgDefaults:
    row = session.get(OrgMailSettings, 1)
    if row is None:
        return OrgDefaults()
    modes = {k: v for k, v in (row.defaults or {}).items() if k in PREF_KINDS and v in MODES}
    return OrgDefaults(weekly_budget=row.weekly_budget, digest_every=row.digest_every, modes=modes)


# --- a whole audience at once --------------------------------------------------------------------------------

@dataclass
class Plan:
    """What `decide` needs for every member of one mailing; `decision(member_id)` applies the rule."""

    kind: str
    defaults: OrgDefaults
    modes: dict[int, str]
    unsubscribed: set[int]
    sent: dict[int, int]
    voted: set[int]

    def decision(self, member_id: int) -> Decision:
        return decide(self.kind, mode=self.modes.get(member_id) or self.defaults.mode(self.kind),
                      unsubscribed_all=member_id in self.unsubscribed, voted=member_id in self.voted,
                      sent_this_week=self.sent.get(member_id, 0), budget=self.defaults.weekly_budget)


def plan(session: Session, kind: str, audience: Any, *, voted: Iterable[int] = (),
         now: dt.datetime) -> Plan:
    """Load the rule's inputs for `audience`, a SELECT of member ids (e.g. a proposal's eligible members)."""
    ids = audience.scalar_subquery() if hasattr(audience, "scalar_subquery") else audience
    modes = dict(session.execute(select(MailPreference.member_id, MailPreference.mode).where(
        MailPreference.kind == kind, MailPreference.member_id.in_(ids))).all())
    unsubscribed = set(session.scalars(select(MemberMailSettings.member_id).where(
        MemberMailSettings.unsubscribed_all.is_(True), MemberMailSettings.member_id.in_(ids))))
    sent = {mid: n for mid, n in session.execute(
        select(OutboxMessage.member_id, func.count()).where(
            OutboxMessage.kind.in_(BUDGETED), OutboxMessage.created_at >= now - BUDGET_WINDOW,
            OutboxMessage.member_id.in_(ids)).group_by(OutboxMessage.member_id)) if mid is not None}
    return Plan(kind=kind, defaults=org_defaults(session), modes=modes, unsubscribed=unsubscribed, sent=sent,
                voted=set(voted))


def unsubscribed_from_all(session: Session, member_id: int) -> bool:
    return bool(session.scalar(select(MemberMailSettings.unsubscribed_all).where(
        MemberMailSettings.member_id == member_id)))
