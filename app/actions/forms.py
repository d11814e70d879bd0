"""The admins' forms for action steps and campaigns: parse what was sent, say what is wrong per field, and keep
what was typed so a refused form comes back filled in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from app import web
from app.actions.campaigns import CampaignData
from app.actions.models import ActionStep, Campaign, Kind
from app.actions.services import StepData

STEP_FIELDS = ("kind", "title", "description", "date", "start", "end", "place", "link", "capacity", "goal", "unit")
LIMITS = {"title": 200, "description": 5_000, "place": 300, "link": 500, "unit": 40}
MAX_CAPACITY = 100_000
MAX_GOAL = 1_000_000
LATEST = dt.timedelta(days=3 * 366)  # a shift further ahead than this is a typing mistake
KIND_LABELS = {Kind.SHIFT: "Shift", Kind.PLEDGE: "Pledge", Kind.TASK: "Task", Kind.EXTERNAL: "External action"}


@dataclass
class StepForm:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    data: StepData | None = None


def blank_step_values() -> dict[str, str]:
    return {k: "" for k in STEP_FIELDS} | {"kind": Kind.SHIFT.value}


def step_values(step: ActionStep, tz: str) -> dict[str, str]:
    """The edit form, filled in from the step (times in the organization's time zone)."""
    zone = ZoneInfo(tz)
    start = step.starts_at.astimezone(zone) if step.starts_at else None
    end = step.ends_at.astimezone(zone) if step.ends_at else None
    return {"kind": step.kind, "title": step.title, "description": step.description,
            "date": start.date().isoformat() if start else "", "start": f"{start:%H:%M}" if start else "",
            "end": f"{end:%H:%M}" if end else "", "place": step.place, "link": step.link,
            "capacity": str(step.capacity or ""), "goal": str(step.goal or ""), "unit": step.unit}


def _number(raw: str, top: int) -> int | None | str:
    """None for empty, the number, or an error message."""
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= top:
        return f"A whole number from 1 to {top:,}, or empty."
    return int(raw)


def _link_error(link: str) -> str | None:
    parts = urlsplit(link)
    if parts.scheme not in ("https", "http") or not parts.hostname or any(c.isspace() for c in link):
        return "A web address starting with https://, e.g. https://example.org/petition."
    return None


def parse_step(data: Any, *, tz: str, now: dt.datetime, step: ActionStep | None = None) -> StepForm:
    """The step form; `step` is the step being changed (its kind cannot change). Fields that do not apply to the
    kind are ignored."""
    values = {k: web.text(data, k, 20_000).strip() for k in STEP_FIELDS}
    values["description"] = web.text(data, "description", 20_000).strip()
    if step is not None:
        values["kind"] = step.kind
    form = StepForm(values=values)
    err = form.errors
    kind = values["kind"]
    if kind not in KIND_LABELS:
        err["kind"] = "Choose what kind of step this is."
    if not values["title"]:
        err["title"] = "Give the step a title."
    for name, limit in LIMITS.items():
        if len(values[name]) > limit:
            err[name] = f"Keep it under {limit:,} characters."
    if values["link"] and "link" not in err and (problem := _link_error(values["link"])):
        err["link"] = problem
    d = StepData(kind=kind, title=values["title"], description=values["description"])
    if kind in (Kind.SHIFT, Kind.TASK):
        capacity = _number(values["capacity"], MAX_CAPACITY)
        if isinstance(capacity, str):
            err["capacity"] = capacity
        else:
            d.capacity = capacity
    if kind == Kind.PLEDGE:
        goal = _number(values["goal"], MAX_GOAL)
        if isinstance(goal, str):
            err["goal"] = goal
        else:
            d.goal = goal
        d.unit = values["unit"]
    if kind in (Kind.SHIFT, Kind.EXTERNAL):
        d.link = values["link"]
    if kind == Kind.EXTERNAL and not values["link"] and "link" not in err:
        err["link"] = "An external action needs the link where members act."
    if kind == Kind.SHIFT:
        d.place = values["place"]
        if not values["place"] and not values["link"] and "link" not in err:
            err["place"] = "Say where: a place, or a link for an online shift."
        _shift_times(values, d, err, tz=tz, now=now, step=step)
    if kind in (Kind.TASK, Kind.PLEDGE):
        d.place = values["place"]
    if not err:
        form.data = d
    return form


def _shift_times(values: dict[str, str], d: StepData, err: dict[str, str], *, tz: str, now: dt.datetime,
                 step: ActionStep | None) -> None:
    try:
        day = dt.date.fromisoformat(values["date"])
        start = dt.time.fromisoformat(values["start"])
        end = dt.time.fromisoformat(values["end"])
    except ValueError:
        err["date"] = "A shift needs a date, a start time and an end time."
        return
    zone = ZoneInfo(tz)
    d.starts_at = dt.datetime.combine(day, start, zone).astimezone(dt.UTC)
    d.ends_at = dt.datetime.combine(day, end, zone).astimezone(dt.UTC)
    if d.ends_at <= d.starts_at:
        err["end"] = "The shift must end after it starts (on the same day)."
    changed = step is None or (d.starts_at, d.ends_at) != (step.starts_at, step.ends_at)
    if changed and d.starts_at <= now:
        err["date"] = "That time has passed: a shift is for the future."
    elif d.starts_at > now + LATEST:
        err["date"] = "That is more than three years ahead: check the year."


# --- campaigns -------------------------------------------------------------------------------------------------

@dataclass
class CampaignForm:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    data: CampaignData | None = None


def blank_campaign_values() -> dict[str, str]:
    return {"title": "", "body": "", "audience": "all", "publish": ""}


def campaign_values(c: Campaign) -> dict[str, str]:
    return {"title": c.title, "body": c.body_md, "audience": "all" if c.group_id is None else str(c.group_id),
            "publish": ""}


def parse_campaign(data: Any) -> CampaignForm:
    values = {"title": web.text(data, "title", 1_000).strip(), "body": web.text(data, "body", 40_000),
              "audience": web.text(data, "audience", 20).strip() or "all",
              "publish": "1" if web.text(data, "publish", 5) == "1" else ""}
    form = CampaignForm(values=values)
    group_id: int | None = None
    if values["audience"] != "all":
        if values["audience"].isascii() and values["audience"].isdigit() and len(values["audience"]) < 10:
            group_id = int(values["audience"])
        else:
            form.errors["audience"] = "Choose every member or one of the groups."
    if not values["title"]:
        form.errors["title"] = "Give the campaign a title."
    if not form.errors:
        form.data = CampaignData(title=values["title"], body_md=values["body"], group_id=group_id,
                                 publish=values["publish"] == "1")
    return form
