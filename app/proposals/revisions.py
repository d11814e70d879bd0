"""Every version of a proposal: the JSON snapshot written on create and on each edit, and what changed.

A ballot must mean what it meant when it was cast, so the history is append-only and readable by members.
`changes()` is pure; `record()` adds a Revision row to the caller's unit of work.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy.orm import Session

from app.proposals import describe
from app.proposals.diff import has_changes, word_diff
from app.proposals.models import Proposal, Revision

TEXT_FIELDS = {"title": "Title", "summary": "Summary", "body_md": "Text",
               "current_text": "Current text", "proposed_text": "Proposed text"}


def snapshot(p: Proposal, group_names: dict[int, str]) -> dict[str, Any]:
    """The proposal as members would read it, with its rules, audience and schedule. Options/groups loaded."""
    return {
        "kind": p.kind,
        "title": p.title, "summary": p.summary, "body_md": p.body_md,
        "current_text": p.current_text, "proposed_text": p.proposed_text,
        "options": [o.label for o in p.options],
        "rules": {
            "method": p.method, "threshold": p.threshold, "threshold_strict": p.threshold_strict,
            "quorum": p.quorum, "allow_none": p.allow_none, "max_picks": p.max_picks,
            "max_score": p.max_score,
            "secret": p.secret, "visibility": p.visibility, "publish_choices": p.publish_choices,
        },
        "audience": {"all": p.audience_all,
                     "groups": [{"id": g.group_id, "name": group_names.get(g.group_id, "?")}
                                for g in p.groups]},
        "schedule": {"opens_at": p.opens_at.isoformat() if p.opens_at else None,
                     "closes_at": p.closes_at.isoformat() if p.closes_at else None},
    }


def record(session: Session, p: Proposal, snap: dict[str, Any], *, author_id: int | None,
           note: str) -> Revision:
    rev = Revision(proposal_id=p.id, author_id=author_id, note=note[:300], snapshot=snap)
    session.add(rev)
    return rev


@dataclass(frozen=True)
class Change:
    """One changed item: text fields carry a word diff, the others a before and after in words."""

    label: str
    diff: Markup | None = None
    before: str = ""
    after: str = ""


def changed_labels(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [c.label for c in changes(old, new, "UTC")]


def changes(old: dict[str, Any], new: dict[str, Any], tz: str) -> list[Change]:
    out: list[Change] = []
    for key, label in TEXT_FIELDS.items():
        a, b = str(old.get(key) or ""), str(new.get(key) or "")
        if a != b:
            out.append(Change(label, diff=word_diff(a, b) if has_changes(a, b) else None,
                              before="" if has_changes(a, b) else "(spacing only)"))
    if old.get("kind") != new.get("kind"):
        out.append(Change("Kind", before=_kind(old), after=_kind(new)))
    if old.get("options") != new.get("options"):
        out.append(Change("Options", before=_options(old), after=_options(new)))
    a_rules, b_rules = _rules(old), _rules(new)
    for label in b_rules:
        if a_rules.get(label) != b_rules[label]:
            out.append(Change(label, before=a_rules.get(label, ""), after=b_rules[label]))
    if _audience(old) != _audience(new):
        out.append(Change("Audience", before=_audience(old), after=_audience(new)))
    for key, label in (("opens_at", "Opens"), ("closes_at", "Deadline")):
        a_t, b_t = _time(old, key, tz), _time(new, key, tz)
        if a_t != b_t:
            out.append(Change(label, before=a_t, after=b_t))
    return out


def _kind(snap: dict[str, Any]) -> str:
    return describe.KINDS.get(snap.get("kind", ""), str(snap.get("kind", "")))


def _options(snap: dict[str, Any]) -> str:
    labels = snap.get("options") or []
    return "; ".join(f"{i}. {label}" for i, label in enumerate(labels, 1)) or "(none)"


def _rules(snap: dict[str, Any]) -> dict[str, str]:
    r = snap.get("rules") or {}
    method = r.get("method", "")
    out = {"Voting method": describe.METHODS.get(method, method)}
    if method == "yes_no":
        out["Decision rule"] = describe.rule_text(r.get("threshold", "1/2"), bool(r.get("threshold_strict")))
        out["Quorum"] = describe.quorum_text(r.get("quorum"))
    if method == "single":
        out["“None of these”"] = "Offered" if r.get("allow_none") else "Not offered"
    if method == "multiple":
        out["Most picks"] = str(r.get("max_picks") or "No limit")
    if method == "score":
        out["Highest score"] = str(r.get("max_score"))
    out["Ballot"] = describe.ballot_text(bool(r.get("secret")))
    out["Results"] = describe.VISIBILITY.get(r.get("visibility", ""), "")
    out["Choices beside receipts"] = "Listed" if r.get("publish_choices") else "Not listed"
    return out


def _audience(snap: dict[str, Any]) -> str:
    a = snap.get("audience") or {}
    if a.get("all", True):
        return "All members"
    return "Members of " + ", ".join(g.get("name", "?") for g in a.get("groups", []))


def _time(snap: dict[str, Any], key: str, tz: str) -> str:
    raw = (snap.get("schedule") or {}).get(key)
    if not raw:
        return "When published" if key == "opens_at" else "(not set)"
    return dt.datetime.fromisoformat(raw).astimezone(ZoneInfo(tz)).strftime("%-d %b %Y, %H:%M")
