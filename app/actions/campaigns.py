"""Campaigns: pages of action steps with no vote first ("clean the river on Saturday"), for every member or for
one group. An admin writes one as a draft (adding its steps), and publishes it then or later; publishing tells
its audience by email, like a proposal's announcement.

The announcement is a bulk mailing through `app.mail.bulk.mail_audience`: per member, the mail policy decides
with the member's mode for announcements ("New proposals" on the preferences page), their unsubscribe-all and
the weekly budget whether it goes now, waits for their digest or is not sent. Its outbox rows (kind
`campaign_announcement`) and digest items (key `announcement:c<id>`) are unique per campaign and member, so a
second publish, or widening the audience later, mails nobody twice; they are what the funnel's "sent" counts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actions.models import ActionStep, Campaign
from app.actions.services import (
    ActionError,
    NotFound,
    campaign_audience,
    can_see_campaign,
    org_and_tz,
    when_text,
)
from app.db import utcnow
from app.mail.bulk import Outcome, Recipient, Slots, mail_audience, personal_links
from app.mail.models import Mode
from app.mail.policy import plan
from app.members.guard import audit
from app.members.models import Group, Member
from app.middleware import CurrentMember
from app.settings import Settings

MAIL_KIND = "campaign_announcement"  # the outbox kind and the email's templates
PREFERENCE_KIND = "announcement"  # the member's choice that applies, and what its unsubscribe link stops
TITLE_LIMIT = 200
BODY_LIMIT = 20_000


def digest_key(campaign_id: int) -> str:
    return f"announcement:c{campaign_id}"


@dataclass
class CampaignData:
    title: str
    body_md: str = ""
    group_id: int | None = None  # None: every member
    publish: bool = False
    errors: dict[str, str] = field(default_factory=dict)


def _check(session: Session, data: CampaignData) -> None:
    data.title = data.title.strip()
    if not data.title:
        raise ActionError("Give the campaign a title.", field="title")
    if len(data.title) > TITLE_LIMIT:
        raise ActionError(f"Keep the title under {TITLE_LIMIT} characters.", field="title")
    if len(data.body_md) > BODY_LIMIT:
        raise ActionError(f"Keep the text under {BODY_LIMIT:,} characters.", field="body")
    if data.group_id is not None and session.get(Group, data.group_id) is None:
        raise ActionError("That group no longer exists: choose every member or one of the groups.",
                          field="audience")


def create_campaign(session: Session, settings: Settings, data: CampaignData, *, actor_id: int, ip: str = "",
                    now: dt.datetime | None = None) -> Campaign:
    """A new campaign; published (and announced) at once when `data.publish` says so, else a draft."""
    now = now or utcnow()
    _check(session, data)
    c = Campaign(title=data.title, body_md=data.body_md, group_id=data.group_id, published=False,
                 created_by=actor_id, created_at=now, updated_at=now)
    session.add(c)
    session.flush()
    audit(session, "campaign.create", actor_id=actor_id, ip=ip, object_type="campaign", object_id=c.id,
          summary=f"Campaign written: {c.title}", group_id=c.group_id)
    if data.publish:
        publish(session, settings, c.id, actor_id=actor_id, ip=ip, now=now)
    return c


def update_campaign(session: Session, settings: Settings, campaign_id: int, data: CampaignData, *, actor_id: int,
                    ip: str = "", now: dt.datetime | None = None) -> Campaign:
    """Change a campaign's text or audience (and publish a draft when `data.publish` says so). A published
    campaign whose audience changes is announced to the members who are new to it."""
    now = now or utcnow()
    c = session.get(Campaign, campaign_id)
    if c is None:
        raise NotFound()
    _check(session, data)
    audience_changed = c.group_id != data.group_id
    c.title, c.body_md, c.group_id, c.updated_at = data.title, data.body_md, data.group_id, now
    audit(session, "campaign.update", actor_id=actor_id, ip=ip, object_type="campaign", object_id=c.id,
          summary=f"Campaign changed: {c.title}", group_id=c.group_id)
    if not c.published and data.publish:
        publish(session, settings, c.id, actor_id=actor_id, ip=ip, now=now)
    elif c.published and audience_changed:
        session.flush()
        announce(session, settings, c, now=now)
    return c


def publish(session: Session, settings: Settings, campaign_id: int, *, actor_id: int, ip: str = "",
            now: dt.datetime | None = None) -> Outcome:
    """Make a draft visible to its audience and announce it to them by email."""
    now = now or utcnow()
    c = session.get(Campaign, campaign_id)
    if c is None:
        raise NotFound()
    if c.published:
        raise ActionError("This campaign is already published.", 409)
    c.published, c.published_at, c.updated_at = True, now, now
    session.flush()
    outcome = announce(session, settings, c, now=now)
    audit(session, "campaign.publish", actor_id=actor_id, ip=ip, object_type="campaign", object_id=c.id,
          summary=f"Campaign published: {c.title}", sent=outcome.sent, folded=outcome.folded,
          dropped=outcome.dropped)
    return outcome


def _summary(body_md: str, limit: int = 400) -> str:
    """The text's first paragraph, for the email (the whole text is on the page)."""
    first = next((p.strip() for p in body_md.replace("\r\n", "\n").split("\n\n") if p.strip()), "")
    first = " ".join(first.split())
    return first if len(first) <= limit else first[:limit - 1].rstrip() + "…"


def _steps(session: Session, campaign_id: int, tz: str) -> list[dict[str, str]]:
    steps = session.scalars(select(ActionStep).where(ActionStep.campaign_id == campaign_id)
                            .order_by(ActionStep.starts_at, ActionStep.id))
    return [{"title": s.title, "when": when_text(s, tz), "place": s.place} for s in steps]


def announce(session: Session, settings: Settings, c: Campaign, *, now: dt.datetime) -> Outcome:
    """Tell the campaign's audience: send, fold into the digest or drop per member, as the mail policy says.
    Members who already have it (or have it waiting in their digest) get nothing more."""
    org_name, tz = org_and_tz(session)
    audience = campaign_audience(c)
    recipients = [Recipient(*r) for r in session.execute(
        select(Member.id, Member.email, Member.name).where(Member.id.in_(audience)).order_by(Member.id))]
    slots = Slots()
    context = {"org_name": org_name, "title": c.title, "summary": _summary(c.body_md),
               "steps": _steps(session, c.id, tz), "link": settings.url(f"/campaigns/{c.id}"),
               "name": slots["name"], "unsubscribe_link": slots["unsubscribe"],
               "preferences_link": settings.url("/profile#mail")}

    rule = plan(session, PREFERENCE_KIND, audience, now=now)
    return mail_audience(session, settings, kind=MAIL_KIND, context=context, slots=slots,
                         dedupe=f"campaign:{c.id}", recipients=recipients, plan=rule,
                         personal=personal_links(settings, kind=PREFERENCE_KIND, org_name=org_name),
                         digest_key=digest_key(c.id))


def list_campaigns(session: Session, member: CurrentMember) -> list[Campaign]:
    """Newest first: for a member the published campaigns of their audience, for admins drafts too."""
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())))
    return [c for c in campaigns if can_see_campaign(session, member, c)]


# --- the digest ------------------------------------------------------------------------------------------------

def digest_entries(session: Session, settings: Settings, member_id: int, items: list[Any],
                   modes: dict[str, str]) -> list[dict[str, str]]:
    """For `app.mail.digest`: the campaign announcements among a member's waiting digest items, as entries of
    the digest's "Campaigns" list. A campaign that is gone, unpublished, no longer for this member, or whose
    kind of mail the member turned off since, is left out."""
    ids = [int(i.key.rsplit(":c", 1)[1]) for i in items
           if i.kind == MAIL_KIND and i.key.startswith("announcement:c") and i.key.rsplit(":c", 1)[1].isdigit()]
    if not ids or modes.get(PREFERENCE_KIND, Mode.IMMEDIATELY) == Mode.NEVER:
        return []
    out = []
    for c in session.scalars(select(Campaign).where(Campaign.id.in_(ids)).order_by(Campaign.id)):
        if not c.published or session.scalar(campaign_audience(c).where(Member.id == member_id)) is None:
            continue
        out.append({"title": c.title, "summary": _summary(c.body_md), "link": settings.url(f"/campaigns/{c.id}")})
    return out
