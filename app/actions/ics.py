"""The calendar file sent with a shift's confirmation (RFC 5545, written with the `icalendar` package).

One event per commitment: its UID is stable (`commitment-<id>@<domain>`), so a calendar that imported the first
invitation replaces the event when an update arrives. SEQUENCE is the commitment's own `calendar_sequence`, raised
for every new file (the shift moved, the member withdrew, signed up again, or the shift was cancelled), so each
file supersedes the one before (RFC 5546: a calendar ignores a message whose SEQUENCE is not higher). Times are
given in the organization's time zone, with its VTIMEZONE.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

from app.actions.models import ActionStep, Commitment


def commitment_uid(commitment: Commitment, domain: str) -> str:
    return f"commitment-{commitment.id}@{domain}"


def shift_calendar(step: ActionStep, commitment: Commitment, *, sequence: int, domain: str, tz: str,
                   org_name: str, organizer: str, attendee: str, attendee_name: str, url: str, now: dt.datetime,
                   cancelled: bool = False) -> str:
    """The .ics text for one member's place on one shift (METHOD:CANCEL when they are no longer on it)."""
    assert step.starts_at is not None
    zone = ZoneInfo(tz)
    start = step.starts_at.astimezone(zone)
    end = (step.ends_at or step.starts_at + dt.timedelta(hours=1)).astimezone(zone)
    cal = Calendar()
    cal.add("prodid", "-//Plenary//Action steps//EN")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancelled else "REQUEST")
    event = Event()
    event.add("uid", commitment_uid(commitment, domain))
    event.add("dtstamp", now.astimezone(dt.UTC))
    event.add("sequence", sequence)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", step.title)
    where = step.place or step.link
    if where:
        event.add("location", where)
    description = step.description.strip()
    event.add("description", f"{description}\n\n{url}" if description else url)
    event.add("url", url)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    org = vCalAddress(f"mailto:{organizer}")
    org.params["cn"] = vText(org_name)
    event.add("organizer", org)
    who = vCalAddress(f"mailto:{attendee}")
    who.params["cn"] = vText(attendee_name)
    who.params["partstat"] = vText("DECLINED" if cancelled else "ACCEPTED")
    who.params["rsvp"] = vText("FALSE")
    event.add("attendee", who)
    cal.add_component(event)
    cal.add_missing_timezones(first_date=start.date() - dt.timedelta(days=366),
                              last_date=end.date() + dt.timedelta(days=366))
    return cal.to_ical().decode("utf-8")
