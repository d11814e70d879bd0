"""What proposal templates expect to find besides their data: the zone, relative times, wordings, Markdown."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.db import utcnow
from app.markdown import render_markdown
from app.proposals import describe


def display_context(tz: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """`tz` is the organization's time zone; `rel(when)` says "in 2 days" / "3 hours ago" from one `now`."""
    at = now or utcnow()
    return {"tz": tz, "now": at, "rel": lambda when: describe.relative(when, at), "describe": describe,
            "md": render_markdown}
