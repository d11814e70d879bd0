"""Yes/No/Abstain decisions: the decision rule (majority, supermajority, quorum) and the count.

How a motion is decided:

* Quorum first, when the rule has one: turnout = (yes + no + abstain) / eligible must be at least the
  quorum.  Abstentions count toward the quorum; that is what an abstention is for.  Without quorum the
  outcome is NO_QUORUM, whatever the votes.
* Then the majority, over yes + no only (abstentions are left out): with ``strict=True`` yes must be *more
  than* the threshold (a simple majority: more than half), with ``strict=False`` *at least* the threshold
  (a supermajority such as two thirds).  So under a simple majority a tie between yes and no is rejected,
  because a tie is not more than half.  There are no other ties and no lot here.
* No yes or no votes at all means rejected: nothing shows the motion has support.

All comparisons use exact fractions.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, ClassVar

from app.voting.tally.base import (
    InvalidBallot,
    check_count,
    check_header,
    fraction_from_json,
    fraction_to_json,
    header,
    optional_str,
    percent_text,
    plural,
    rule_text,
    share_text,
)

YES = "yes"
NO = "no"
ABSTAIN = "abstain"
CHOICES = (YES, NO, ABSTAIN)

# Percentages may be written as int, exact decimal text ("66.67"), Decimal or Fraction; never float,
# because a float such as 66.67 is not the number it looks like.
PercentLike = int | str | Decimal | Fraction


def percent(value: PercentLike) -> Fraction:
    """Turn a percentage into an exact fraction: percent(75) == Fraction(3, 4)."""
    if isinstance(value, float | bool):
        raise TypeError("give percentages as int, str, Decimal or Fraction, not float or bool")
    return Fraction(value) / 100


def _exact(value: Any, name: str) -> Fraction:
    if isinstance(value, float | bool) or not isinstance(value, int | Fraction | Decimal):
        raise TypeError(f"{name} must be a Fraction (or int/Decimal), got {value!r}")
    return Fraction(value)


class Outcome(enum.StrEnum):
    PASSED = "passed"
    REJECTED = "rejected"
    NO_QUORUM = "no_quorum"


@dataclass(frozen=True)
class DecisionRule:
    """What a motion needs to pass.

    ``threshold`` is the share of yes among yes + no.  ``strict=True`` means yes must be more than it
    (majority, ">"), ``strict=False`` at least it (supermajority, ">=").  ``quorum`` is the share of
    eligible members who must cast any ballot, abstentions included; None means no quorum.
    """

    threshold: Fraction = Fraction(1, 2)
    strict: bool = True
    quorum: Fraction | None = None

    def __post_init__(self) -> None:
        threshold = _exact(self.threshold, "threshold")
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be more than 0 and at most 1")
        if self.strict and threshold == 1:
            raise ValueError("a strict threshold of 100% can never be met; use strict=False for unanimity")
        # Normalise to Fraction so equal rules compare equal and serialise the same way.
        object.__setattr__(self, "threshold", threshold)
        if self.quorum is not None:
            quorum = _exact(self.quorum, "quorum")
            if not 0 < quorum <= 1:
                raise ValueError("quorum must be more than 0 and at most 1")
            object.__setattr__(self, "quorum", quorum)

    @classmethod
    def simple_majority(cls, *, quorum: Fraction | None = None) -> DecisionRule:
        """More than half of the yes/no votes."""
        return cls(Fraction(1, 2), strict=True, quorum=quorum)

    @classmethod
    def supermajority(cls, threshold: Fraction, *, quorum: Fraction | None = None) -> DecisionRule:
        """At least ``threshold`` of the yes/no votes, e.g. supermajority(Fraction(2, 3))."""
        return cls(threshold, strict=False, quorum=quorum)

    @classmethod
    def from_percent(
        cls, threshold: PercentLike, *, strict: bool, quorum: PercentLike | None = None
    ) -> DecisionRule:
        """Build a rule from percentages, e.g. from_percent(75, strict=False, quorum=50).

        ``strict`` has no default on purpose: ">" versus ">=" decides ties and must be chosen.
        """
        return cls(percent(threshold), strict=strict, quorum=None if quorum is None else percent(quorum))

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": fraction_to_json(self.threshold),
            "strict": self.strict,
            "quorum": None if self.quorum is None else fraction_to_json(self.quorum),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionRule:
        quorum = data.get("quorum")
        return cls(
            fraction_from_json(data["threshold"]),
            strict=bool(data["strict"]),
            quorum=None if quorum is None else fraction_from_json(quorum),
        )


@dataclass(frozen=True)
class YesNoResult:
    """The outcome of a yes/no vote.  ``winners`` is ("yes",) when passed, ("no",) when rejected and
    empty without quorum."""

    method: ClassVar[str] = "yes_no"

    ballots_cast: int
    eligible: int
    yes: int
    no: int
    abstain: int
    rule: DecisionRule
    outcome: Outcome
    explanation: str
    winners: tuple[str, ...] = field(default=())
    tie_break_note: str | None = None

    def __post_init__(self) -> None:
        if self.yes + self.no + self.abstain != self.ballots_cast:
            raise ValueError("yes + no + abstain must equal ballots_cast")

    @property
    def decisive(self) -> int:
        """Votes that count toward the majority: yes + no."""
        return self.yes + self.no

    def to_dict(self) -> dict[str, Any]:
        return {
            **header(self.method),
            "ballots_cast": self.ballots_cast,
            "eligible": self.eligible,
            "yes": self.yes,
            "no": self.no,
            "abstain": self.abstain,
            "rule": self.rule.to_dict(),
            "outcome": self.outcome.value,
            "explanation": self.explanation,
            "winners": list(self.winners),
            "tie_break_note": self.tie_break_note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> YesNoResult:
        check_header(data, cls.method)
        return cls(
            ballots_cast=int(data["ballots_cast"]),
            eligible=int(data["eligible"]),
            yes=int(data["yes"]),
            no=int(data["no"]),
            abstain=int(data["abstain"]),
            rule=DecisionRule.from_dict(data["rule"]),
            outcome=Outcome(data["outcome"]),
            explanation=str(data["explanation"]),
            winners=tuple(str(name) for name in data["winners"]),
            tie_break_note=optional_str(data["tie_break_note"]),
        )


def count_yes_no(ballots: Iterable[str], *, eligible: int, rule: DecisionRule) -> YesNoResult:
    """Count "yes"/"no"/"abstain" ballots against ``rule`` for ``eligible`` members."""
    check_count(eligible, "eligible")
    try:
        counts = Counter(ballots)
    except TypeError as error:  # an unhashable ballot cannot be one of the three words
        raise InvalidBallot(f"yes/no ballots must be one of {CHOICES}") from error
    unknown = set(counts) - set(CHOICES)
    if unknown:
        raise InvalidBallot(f"yes/no ballots must be one of {CHOICES}, got {sorted(map(repr, unknown))}")
    yes, no, abstain = counts[YES], counts[NO], counts[ABSTAIN]
    cast = yes + no + abstain
    if cast > eligible:
        raise ValueError(f"{cast} ballots were cast but only {eligible} members are eligible")

    quorum_met, turnout = _turnout(cast, eligible, rule.quorum)
    if not quorum_met:
        outcome = Outcome.NO_QUORUM
        explanation = f"No quorum: {turnout}; no decision was made ({yes} yes, {no} no, {abstain} abstain)."
    else:
        outcome, decision = _majority(yes, no, abstain, rule)
        explanation = f"{decision} {turnout[0].upper()}{turnout[1:]}."
    tie_note = _tie_note(yes, rule) if quorum_met and yes == no and yes > 0 else None
    winners = {Outcome.PASSED: (YES,), Outcome.REJECTED: (NO,), Outcome.NO_QUORUM: ()}[outcome]
    return YesNoResult(
        ballots_cast=cast,
        eligible=eligible,
        yes=yes,
        no=no,
        abstain=abstain,
        rule=rule,
        outcome=outcome,
        explanation=explanation,
        winners=winners,
        tie_break_note=tie_note,
    )


def _turnout(cast: int, eligible: int, quorum: Fraction | None) -> tuple[bool, str]:
    """Whether the quorum is met, and the turnout sentence fragment (lower case, no full stop)."""
    if eligible == 0:
        # Nobody could vote; a quorum of nobody is not a quorum.
        return quorum is None, "turnout 0 of 0 eligible" + ("" if quorum is None else ", so no quorum")
    share = Fraction(cast, eligible)
    text = f"turnout {cast} of {eligible} eligible ({percent_text(share)})"
    if quorum is None:
        return True, f"{text}, no quorum required"
    if share >= quorum:
        return True, f"{text}, quorum {rule_text(quorum)} reached"
    return False, f"{text}, less than the {rule_text(quorum)} quorum"


def _majority(yes: int, no: int, abstain: int, rule: DecisionRule) -> tuple[Outcome, str]:
    """Apply the threshold to yes among yes + no; returns the outcome and its sentence."""
    decisive = yes + no
    left_out = f" {plural(abstain, 'abstention')} not counted toward the majority." if abstain else ""
    if decisive == 0:
        return Outcome.REJECTED, f"Rejected: no yes or no votes were cast.{left_out}"
    share = Fraction(yes, decisive)
    needed = rule_text(rule.threshold)
    shown = share_text(share, rule.threshold)
    counted = f"{yes} of {decisive} yes/no votes were yes ({shown})"
    if rule.strict:
        if share > rule.threshold:
            return Outcome.PASSED, f"Passed: {counted}, more than the {needed} required.{left_out}"
        if yes == no:
            return Outcome.REJECTED, (
                f"Rejected: {counted}; yes and no are tied, and a tie is not more than the {needed} required."
                f"{left_out}"
            )
        relation = "exactly, but not more than," if share == rule.threshold else "less than"
        return Outcome.REJECTED, f"Rejected: {counted}, {relation} the {needed} required.{left_out}"
    if share >= rule.threshold:
        return Outcome.PASSED, f"Passed: {counted}, at least the {needed} required.{left_out}"
    return Outcome.REJECTED, f"Rejected: {counted}, less than the {needed} required.{left_out}"


def _tie_note(tied_at: int, rule: DecisionRule) -> str:
    """Say how an equal number of yes and no votes was treated; no lot is ever drawn for yes/no."""
    passes = rule.threshold < Fraction(1, 2) or (rule.threshold == Fraction(1, 2) and not rule.strict)
    verdict = "meets it, so the motion passes" if passes else "does not meet it, so the motion is rejected"
    needed = f"{'more than' if rule.strict else 'at least'} {rule_text(rule.threshold)}"
    return f"Yes and no tied at {tied_at} each; the rule requires {needed}, and a tie {verdict}."
