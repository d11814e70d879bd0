"""The admin's proposal form: read the posted fields, check them, and hand back typed data or errors by field.

Nothing here touches the database (group ids are checked to exist by the service). The parsed result is an
explicit dataclass; the model is never filled from the form's keys, so an extra posted field changes nothing.
Times are entered in the organization's time zone and returned as aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from app.proposals.describe import percent_input
from app.proposals.models import Kind, Method, Proposal, Visibility

TITLE_MAX = 200
SUMMARY_MAX = 500
BODY_MAX = 20_000
POLICY_TEXT_MAX = 50_000
OPTION_MAX = 200
OPTIONS_MIN, OPTIONS_MAX = 2, 20
SCORE_MAX_LIMIT = 10
RESERVED_OPTIONS = {"__none__"}  # the counting code's "none of these"
RULES = {"majority": ("1/2", True), "two_thirds": ("2/3", False)}
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends


class FormLike(Protocol):
    def get(self, key: str, /) -> Any: ...
    def getlist(self, key: str) -> list[Any]: ...


@dataclass(frozen=True)
class ProposalInput:
    """A checked proposal form, ready for services.create_proposal / update_proposal."""

    kind: str
    title: str
    summary: str
    body_md: str
    current_text: str
    proposed_text: str
    method: str
    threshold: str
    threshold_strict: bool
    quorum: str | None
    allow_none: bool
    max_picks: int | None
    max_score: int
    options: list[str]
    secret: bool
    visibility: str
    publish_choices: bool
    audience_all: bool
    group_ids: list[int]
    opens_at: dt.datetime | None
    closes_at: dt.datetime


@dataclass
class ParsedForm:
    values: dict[str, Any]  # what the admin typed, to show again
    errors: dict[str, str] = field(default_factory=dict)
    data: ProposalInput | None = None


def blank_values() -> dict[str, Any]:
    return {
        "kind": Kind.QUESTION, "title": "", "summary": "", "body": "",
        "current_text": "", "proposed_text": "",
        "method": Method.YES_NO, "options": "", "rule": "majority", "custom_percent": "", "quorum": "",
        "allow_none": False, "max_picks": "", "max_score": "5", "ballot": "secret",
        "visibility": Visibility.AFTER_CLOSE, "publish_choices": False, "audience": "all", "groups": [],
        "opens": "now", "opens_at": "", "closes_at": "",
    }


def values_from_proposal(p: Proposal, tz: str) -> dict[str, Any]:
    """The edit form's starting values. `p.options` and `p.groups` must be loaded."""
    stored = (p.threshold, p.threshold_strict)
    rule = next((name for name, pair in RULES.items() if pair == stored), "custom")
    return {
        "kind": p.kind, "title": p.title, "summary": p.summary, "body": p.body_md,
        "current_text": p.current_text, "proposed_text": p.proposed_text, "method": p.method,
        "options": "\n".join(o.label for o in p.options), "rule": rule,
        "custom_percent": percent_input(Fraction(p.threshold)) if rule == "custom" else "",
        "quorum": percent_input(Fraction(p.quorum)) if p.quorum else "",
        "allow_none": p.allow_none, "max_picks": str(p.max_picks or ""), "max_score": str(p.max_score),
        "ballot": "secret" if p.secret else "open", "visibility": p.visibility,
        "publish_choices": p.publish_choices, "audience": "all" if p.audience_all else "groups",
        "groups": [g.group_id for g in p.groups], "opens": "later" if p.opens_at else "now",
        "opens_at": _local_text(p.opens_at, tz), "closes_at": _local_text(p.closes_at, tz),
    }


def _local_text(value: dt.datetime | None, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).strftime(LOCAL_FORMAT) if value else ""


def _text(data: FormLike, name: str, limit: int) -> str:
    value = data.get(name)
    # One character over the limit is kept, so "too long" is reported instead of silently cut. NUL is dropped:
    # it means nothing in text and PostgreSQL refuses it.
    return value[: limit + 1].replace("\x00", "") if isinstance(value, str) else ""


def _line(text: str) -> str:
    """A one-line field: runs of whitespace (newlines included) become one space."""
    return " ".join(text.split())


def _has_controls(text: str) -> bool:
    return any(ord(c) < 32 or c in "\u2028\u2029" for c in text)


def parse_proposal_form(data: FormLike, *, tz: str, now: dt.datetime) -> ParsedForm:
    """Check every field; on any error `data` is None and `errors` maps field names to messages."""
    v: dict[str, Any] = {
        "kind": _text(data, "kind", 20), "title": _text(data, "title", TITLE_MAX * 4),
        "summary": _text(data, "summary", SUMMARY_MAX * 4), "body": _text(data, "body", BODY_MAX),
        "current_text": _text(data, "current_text", POLICY_TEXT_MAX),
        "proposed_text": _text(data, "proposed_text", POLICY_TEXT_MAX),
        "method": _text(data, "method", 20), "options": _text(data, "options", 20_000),
        "rule": _text(data, "rule", 20), "custom_percent": _text(data, "custom_percent", 20),
        "quorum": _text(data, "quorum", 20), "allow_none": data.get("allow_none") == "1",
        "max_picks": _text(data, "max_picks", 10), "max_score": _text(data, "max_score", 10),
        "ballot": _text(data, "ballot", 10), "visibility": _text(data, "visibility", 20),
        "publish_choices": data.get("publish_choices") == "1", "audience": _text(data, "audience", 10),
        "groups": [g for g in data.getlist("groups") if isinstance(g, str)][:500],
        "opens": _text(data, "opens", 10), "opens_at": _text(data, "opens_at", 40),
        "closes_at": _text(data, "closes_at", 40),
    }
    form = ParsedForm(values=v)
    err = form.errors

    kind = v["kind"] if v["kind"] in set(Kind) else None
    if kind is None:
        err["kind"] = "Choose a question or a policy change."
    title = _line(v["title"])
    if not title:
        err["title"] = "Give the proposal a title."
    elif len(title) > TITLE_MAX:
        err["title"] = f"The title can be at most {TITLE_MAX} characters (it has {len(title)})."
    elif _has_controls(title):
        err["title"] = "The title contains characters that are not allowed."
    summary = _line(v["summary"])
    if len(summary) > SUMMARY_MAX:
        err["summary"] = f"The summary can be at most {SUMMARY_MAX} characters (it has {len(summary)})."
    elif _has_controls(summary):
        err["summary"] = "The summary contains characters that are not allowed."
    body = v["body"].strip()
    if len(v["body"]) > BODY_MAX:
        err["body"] = f"The text can be at most {BODY_MAX:,} characters."
    current, proposed = v["current_text"].strip(), v["proposed_text"].strip()
    if kind == Kind.POLICY:
        for name, text in (("current_text", v["current_text"]), ("proposed_text", v["proposed_text"])):
            if len(text) > POLICY_TEXT_MAX:
                err[name] = f"The text can be at most {POLICY_TEXT_MAX:,} characters."
        if not proposed:
            err.setdefault("proposed_text", "Write the proposed text: members vote on adopting it.")
        elif proposed == current:
            err.setdefault("proposed_text", "The proposed text is the same as the current text.")
    else:
        current = proposed = ""

    # A policy change is always a yes/no vote on adopting the proposed text.
    method = Method.YES_NO if kind == Kind.POLICY else (v["method"] if v["method"] in set(Method) else None)
    if method is None:
        err["method"] = "Choose how members vote."
    options = _options(v["options"], err) if method not in (None, Method.YES_NO) else []

    threshold, strict, quorum = "1/2", True, None
    if method == Method.YES_NO:
        threshold, strict = _rule(v["rule"], v["custom_percent"], err)
        q = _percent(v["quorum"], "quorum", err, allow_blank=True)
        quorum = f"{q.numerator}/{q.denominator}" if q is not None else None
    allow_none = bool(v["allow_none"]) and method == Method.SINGLE
    max_picks = _max_picks(v["max_picks"], len(options), err) if method == Method.MULTIPLE else None
    max_score = _max_score(v["max_score"], err) if method == Method.SCORE else 5

    secret = v["ballot"] != "open"
    visibility = v["visibility"] if v["visibility"] in set(Visibility) else None
    if secret:
        # A running tally of a secret ballot lets anyone watching it change learn how the next voter chose.
        visibility = Visibility.AFTER_CLOSE
    elif visibility is None:
        err["visibility"] = "Choose when members see the results."

    audience_all = v["audience"] != "groups"
    group_ids: list[int] = []
    if not audience_all:
        if not all(g.isdigit() and len(g) < 10 for g in v["groups"]):
            err["groups"] = "One of the chosen groups does not exist."
        group_ids = sorted({int(g) for g in v["groups"] if g.isdigit() and len(g) < 10})
        if not group_ids:
            err.setdefault("groups", "Choose at least one group, or put the proposal to all members.")

    opens_at, closes_at = _schedule(v, tz, now, err)
    if err:
        return form
    assert kind is not None and method is not None and visibility is not None and closes_at is not None
    form.data = ProposalInput(
        kind=kind, title=title, summary=summary, body_md=body, current_text=current, proposed_text=proposed,
        method=method, threshold=threshold, threshold_strict=strict, quorum=quorum, allow_none=allow_none,
        max_picks=max_picks, max_score=max_score, options=options, secret=secret, visibility=visibility,
        publish_choices=bool(v["publish_choices"]), audience_all=audience_all, group_ids=group_ids,
        opens_at=opens_at, closes_at=closes_at,
    )
    return form


def _options(raw: str, err: dict[str, str]) -> list[str]:
    labels = [_line(line) for line in raw.splitlines()]
    labels = [label for label in labels if label]
    seen: set[str] = set()
    for label in labels:
        if _has_controls(label):
            err["options"] = "An option contains characters that are not allowed."
            return labels
        if len(label) > OPTION_MAX:
            err["options"] = f"Each option can be at most {OPTION_MAX} characters: “{label[:40]}…” is longer."
            return labels
        if label in RESERVED_OPTIONS:
            err["options"] = f"“{label}” cannot be used as an option."
            return labels
        if label.casefold() in seen:
            err["options"] = f"“{label}” is listed twice. Each option must be different."
            return labels
        seen.add(label.casefold())
    if not OPTIONS_MIN <= len(labels) <= OPTIONS_MAX:
        err["options"] = (f"Give between {OPTIONS_MIN} and {OPTIONS_MAX} options, one per line "
                          f"(there are {len(labels)}).")
    return labels


def _percent(raw: str, name: str, err: dict[str, str], *, allow_blank: bool = False) -> Fraction | None:
    text = raw.strip().rstrip("%").strip().replace(",", ".")
    if not text:
        if not allow_blank:
            err[name] = "Enter a percentage."
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        err[name] = "Enter a number between 1 and 100, like 60 or 66.67."
        return None
    if not value.is_finite() or value <= 0 or value > 100 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        err[name] = "Enter a percentage more than 0 and at most 100, with at most two decimals."
        return None
    return Fraction(value) / 100


def _rule(rule: str, custom: str, err: dict[str, str]) -> tuple[str, bool]:
    if rule in RULES:
        return RULES[rule]
    if rule != "custom":
        err["rule"] = "Choose a decision rule."
        return RULES["majority"]
    value = _percent(custom, "custom_percent", err)
    if value is None:
        return RULES["majority"]
    # A custom share is "at least" (>=): that is how bylaws usually state a percentage.
    return f"{value.numerator}/{value.denominator}", False


def _max_picks(raw: str, n_options: int, err: dict[str, str]) -> int | None:
    text = raw.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= max(n_options, 1):
        err["max_picks"] = (f"Enter a whole number from 1 to the number of options ({n_options}), "
                            "or leave it empty.")
        return None
    return int(text)


def _max_score(raw: str, err: dict[str, str]) -> int:
    text = raw.strip() or "5"
    if not text.isdigit() or not 1 <= int(text) <= SCORE_MAX_LIMIT:
        err["max_score"] = f"Enter a whole number from 1 to {SCORE_MAX_LIMIT}."
        return 5
    return int(text)


def parse_local(raw: str, tz: str) -> dt.datetime | None:
    """A datetime-local value in the organization's zone, as aware UTC; None if it is no real time there."""
    try:
        naive = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if naive.tzinfo is not None:
        return None
    zone = ZoneInfo(tz)
    local = naive.replace(tzinfo=zone)
    as_utc = local.astimezone(dt.UTC)
    # A wall-clock time skipped by a daylight-saving change does not survive the round trip.
    if as_utc.astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return as_utc


def _schedule(v: Mapping[str, Any], tz: str, now: dt.datetime,
              err: dict[str, str]) -> tuple[dt.datetime | None, dt.datetime | None]:
    bad_time = f"Enter a date and time in {tz} time, like 2030-03-01 18:00."
    opens_at = None
    if v["opens"] == "later":
        if not v["opens_at"].strip():
            err["opens_at"] = "Enter when voting opens, or choose to open it when you publish."
        else:
            opens_at = parse_local(v["opens_at"], tz)
            if opens_at is None:
                err["opens_at"] = bad_time
            elif opens_at <= now:
                err["opens_at"] = "The opening time must be in the future."
    closes_at = None
    if not v["closes_at"].strip():
        err["closes_at"] = "Enter the deadline for voting."
    else:
        closes_at = parse_local(v["closes_at"], tz)
        if closes_at is None:
            err["closes_at"] = bad_time
        elif closes_at <= now:
            err["closes_at"] = "The deadline must be in the future."
        elif opens_at is not None and closes_at <= opens_at:
            err["closes_at"] = "The deadline must be after the opening time."
    return opens_at, closes_at
