"""A proposal's settings and times in plain words, for the pages, the form's hints and the history.

Pure functions: no database, no request.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

from app.proposals.models import Kind, Method, State, Visibility

METHODS = {
    Method.YES_NO: "Yes / no",
    Method.SINGLE: "Single choice",
    Method.MULTIPLE: "Multiple choice",
    Method.RANKED: "Ranked choice (instant runoff)",
    Method.SCORE: "Score each option",
}
METHOD_HINTS = {
    Method.YES_NO: "Members vote yes, no or abstain; the decision rule decides.",
    Method.SINGLE: "Members pick one option; the most votes wins.",
    Method.MULTIPLE: "Members pick every option they approve of; the most approvals wins.",
    Method.RANKED: "Members rank options; the last-placed option is dropped round by round until one has a "
                   "majority.",
    Method.SCORE: "Members give each option a score; the highest average wins.",
}
KINDS = {Kind.QUESTION: "Question", Kind.POLICY: "Policy change"}
STATES = {State.DRAFT: "Draft", State.SCHEDULED: "Scheduled", State.OPEN: "Open for voting",
          State.CLOSED: "Closed"}
VISIBILITY = {
    Visibility.LIVE: "Members can see the running tally while voting is open.",
    Visibility.AFTER_VOTE: "Members can see the running tally once they have voted.",
    Visibility.AFTER_CLOSE: "Results are shown when voting closes.",
}


def percent_input(value: Fraction) -> str:
    """A fraction as the percentage an admin would type: 3/5 -> "60", 2/3 -> "66.67"."""
    return f"{Decimal(value.numerator * 100) / Decimal(value.denominator):.2f}".rstrip("0").rstrip(".")


def percent_text(value: Fraction) -> str:
    if (value * 10000).denominator == 1:  # exact to two decimals, as the form accepts them
        return f"{percent_input(value)}%"
    return f"{value.numerator}/{value.denominator} (about {percent_input(value)}%)"


def rule_text(threshold: str, strict: bool) -> str:
    share = Fraction(threshold)
    if strict and share == Fraction(1, 2):
        return "Simple majority: more than half of the yes and no votes"
    if not strict and share == Fraction(2, 3):
        return "Two-thirds majority: at least two thirds of the yes and no votes"
    return f"{'More than' if strict else 'At least'} {percent_text(share)} of the yes and no votes"


def quorum_text(quorum: str | None) -> str:
    if not quorum:
        return "No quorum"
    share = percent_text(Fraction(quorum))
    return f"Quorum: at least {share} of eligible members must vote (abstaining counts)"


def ballot_text(secret: bool) -> str:
    return ("Secret ballot: nobody can see how a member voted" if secret
            else "Open ballot: members' names are listed with their choices after voting closes")


def relative(when: dt.datetime | None, now: dt.datetime) -> str:
    """ "in 2 days", "3 hours ago": the distance to `when`, in the largest whole unit."""
    if when is None:
        return ""
    seconds = (when - now).total_seconds()
    future = seconds >= 0
    seconds = abs(seconds)
    if seconds < 60:
        return "in less than a minute" if future else "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            amount = f"{n} {unit}{'' if n == 1 else 's'}"
            return f"in {amount}" if future else f"{amount} ago"
    return ""  # pragma: no cover - the loop always returns

