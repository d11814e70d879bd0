"""What members want to receive and what admins set as defaults: read, change, and unsubscribe.

A member's choice per kind (`MailPreference`) wins over the admins' default once made; saving the form records
a choice for every kind, so a later change of the defaults does not override what a member chose. The admins'
defaults apply to everyone who has not chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.mail.models import DigestEvery, MailPreference, MemberMailSettings, Mode, OrgMailSettings
from app.mail.policy import MODES, PREF_KINDS, OrgDefaults, org_defaults
from app.members.guard import audit
from app.members.models import Member

KIND_LABELS = {
    "announcement": ("New proposals", "when voting opens, with the options as buttons where that works"),
    "reminder": ("Reminders", "once, shortly before the deadline, only if you have not voted yet"),
    "results": ("Results", "when voting closes (always sent for proposals you voted on)"),
    "outcome_update": ("Outcome updates", "when an admin writes or changes what will be done"),
    "comment_reply": ("Replies to my comments", "when someone answers a comment of yours"),
    "mention": ("Mentions", "when someone names you in a comment with @"),
    "official_response": ("Official responses", "when an admin responds officially on a proposal you voted or "
                          "commented on"),
    "digest": ("The digest", "everything you chose to read in a digest, gathered in one message"),
}
MODE_LABELS = {Mode.IMMEDIATELY: "As it happens", Mode.DIGEST: "In my digest", Mode.NEVER: "Never"}
DIGEST_LABELS = {DigestEvery.DAILY: "Daily", DigestEvery.WEEKLY: "Weekly"}
BUDGET_MAX = 100


class PreferenceError(ValueError):
    """A form value the rules refuse; the message is for the person who sent it."""


@dataclass(frozen=True)
class Preferences:
    modes: dict[str, str]  # the mode in effect, per kind
    own: set[str]  # the kinds the member chose themselves
    digest_every: str
    unsubscribed_all: bool
    defaults: OrgDefaults


def preferences(session: Session, member_id: int) -> Preferences:
    defaults = org_defaults(session)
    own = dict(session.execute(select(MailPreference.kind, MailPreference.mode).where(
        MailPreference.member_id == member_id)).all())
    settings = session.get(MemberMailSettings, member_id)
    return Preferences(
        modes={k: own.get(k) or defaults.mode(k) for k in PREF_KINDS},
        own=set(own) & set(PREF_KINDS),
        digest_every=(settings.digest_every if settings and settings.digest_every else defaults.digest_every),
        unsubscribed_all=bool(settings and settings.unsubscribed_all),
        defaults=defaults,
    )


def _member_settings(session: Session, member_id: int) -> MemberMailSettings:
    row = session.get(MemberMailSettings, member_id)
    if row is None:
        row = MemberMailSettings(member_id=member_id, unsubscribed_all=False)
        session.add(row)
    row.updated_at = utcnow()
    return row


def _set_mode(session: Session, member_id: int, kind: str, mode: str) -> None:
    session.merge(MailPreference(member_id=member_id, kind=kind, mode=mode, updated_at=utcnow()))


def save_preferences(session: Session, member_id: int, *, modes: dict[str, str], digest_every: str,
                     unsubscribed_all: bool, ip: str = "") -> None:
    if any(modes.get(k) not in MODES for k in PREF_KINDS):
        raise PreferenceError("Choose how you want each kind of email.")
    if digest_every not in (DigestEvery.DAILY, DigestEvery.WEEKLY):
        raise PreferenceError("Choose a daily or a weekly digest.")
    for kind in PREF_KINDS:
        _set_mode(session, member_id, kind, modes[kind])
    row = _member_settings(session, member_id)
    row.digest_every, row.unsubscribed_all = digest_every, unsubscribed_all
    audit(session, "mail.preferences", actor_id=member_id, ip=ip, object_type="member", object_id=member_id,
          summary="Email preferences saved" + (" (no email at all)" if unsubscribed_all else ""))


def unsubscribe(session: Session, member_id: int, kind: str, *, everything: bool = False, ip: str = "") -> str:
    """What an unsubscribe link does, and all it can do. Returns what was stopped, in words. A member who no
    longer exists is answered the same way, so the link does not tell whether they do."""
    if everything:
        label = "all email except sign-in links and account messages"
    else:
        label = "the digest" if kind == "digest" else KIND_LABELS[kind][0].lower()
    if session.get(Member, member_id) is None:
        return label
    if everything:
        _member_settings(session, member_id).unsubscribed_all = True
    elif kind == "digest":
        current = preferences(session, member_id).modes
        for k in PREF_KINDS:
            if current[k] == Mode.DIGEST:
                _set_mode(session, member_id, k, Mode.NEVER)
    else:
        _set_mode(session, member_id, kind, Mode.NEVER)
    audit(session, "mail.unsubscribe", actor_id=member_id, ip=ip, object_type="member", object_id=member_id,
          summary=f"Unsubscribed from {label}")
    return label


def save_org_settings(session: Session, *, actor_id: int, weekly_budget: int, digest_every: str,
                      modes: dict[str, str], ip: str = "") -> None:
    if not 0 <= weekly_budget <= BUDGET_MAX:
        raise PreferenceError(f"The weekly budget is a whole number from 0 (no limit) to {BUDGET_MAX}.")
    if digest_every not in (DigestEvery.DAILY, DigestEvery.WEEKLY):
        raise PreferenceError("Choose a daily or a weekly digest.")
    if any(modes.get(k) not in MODES for k in PREF_KINDS):
        raise PreferenceError("Choose a default for each kind of email.")
    row = session.get(OrgMailSettings, 1) or OrgMailSettings(id=1)
    row.weekly_budget, row.digest_every = weekly_budget, digest_every
    row.defaults, row.updated_at = {k: modes[k] for k in PREF_KINDS}, utcnow()
    session.add(row)
    audit(session, "mail.defaults", actor_id=actor_id, ip=ip, object_type="organization", object_id=1,
          summary=f"Email defaults saved; weekly budget {weekly_budget or 'unlimited'}",
          budget=weekly_budget, digest_every=digest_every, defaults=row.defaults)
