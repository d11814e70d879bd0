"""Score (range) voting: each option scored 0..max_score, highest average wins.

A ballot maps option ids to integer scores.  An option a ballot leaves out is *not scored* by it, which is
not the same as a 0: it is left out of that option's average and reported as ``unscored``, so a reader can
see when an average rests on few ballots.  An empty ballot is blank.  The option with the highest average
wins; an option nobody scored has no average and cannot win.  A tie for the highest average is decided by
lot (see ``ties``).  Averages are exact fractions; the stored form adds a rounded float for display.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from app.voting.tally.base import (
    InvalidBallot,
    check_header,
    check_options,
    check_positive,
    fraction_to_json,
    header,
    optional_str,
)
from app.voting.tally.ties import TieBreak

# Decimal places of the float average written for display next to the exact fraction.
DISPLAY_PLACES = 4


@dataclass(frozen=True)
class ScoreLine:
    """One option's scores: ``distribution[s]`` ballots gave it score ``s``; ``unscored`` left it out."""

    option: str
    distribution: tuple[int, ...]
    unscored: int

    @property
    def scored(self) -> int:
        return sum(self.distribution)

    @property
    def total(self) -> int:
        return sum(score * count for score, count in enumerate(self.distribution))

    @property
    def average(self) -> Fraction | None:
        """The exact mean over the ballots that scored this option; None if none did."""
        return Fraction(self.total, self.scored) if self.scored else None

    def to_dict(self) -> dict[str, Any]:
        average = self.average
        return {
            "option": self.option,
            "distribution": list(self.distribution),
            "unscored": self.unscored,
            # Derived from the distribution; written for display and ignored on reading.
            "scored": self.scored,
            "average": None if average is None else round(float(average), DISPLAY_PLACES),
            "average_exact": None if average is None else fraction_to_json(average),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreLine:
        return cls(
            option=str(data["option"]),
            distribution=tuple(int(count) for count in data["distribution"]),
            unscored=int(data["unscored"]),
        )


@dataclass(frozen=True)
class ScoreResult:
    """Per-option score distributions (in the given option order) and the winner.

    ``tied`` lists the options that tied for the highest average (empty without a tie) and ``winners[0]``
    is the one the lot drew.
    """

    method: ClassVar[str] = "score"

    ballots_cast: int
    valid: int
    blank: int
    max_score: int
    lines: tuple[ScoreLine, ...]
    winners: tuple[str, ...]
    tied: tuple[str, ...]
    tie_break_note: str | None

    def __post_init__(self) -> None:
        if self.valid + self.blank != self.ballots_cast:
            raise ValueError("valid plus blank must equal ballots_cast")
        for line in self.lines:
            if line.scored + line.unscored != self.valid or len(line.distribution) != self.max_score + 1:
                raise ValueError(f"score line for {line.option!r} does not match the ballots")

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(line.option for line in self.lines)

    def line(self, option: str) -> ScoreLine:
        for line in self.lines:
            if line.option == option:
                return line
        raise KeyError(option)

    def average(self, option: str) -> Fraction | None:
        return self.line(option).average

    def to_dict(self) -> dict[str, Any]:
        return {
            **header(self.method),
            "ballots_cast": self.ballots_cast,
            "valid": self.valid,
            "blank": self.blank,
            "max_score": self.max_score,
            "lines": [line.to_dict() for line in self.lines],
            "winners": list(self.winners),
            "tied": list(self.tied),
            "tie_break_note": self.tie_break_note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreResult:
        check_header(data, cls.method)
        return cls(
            ballots_cast=int(data["ballots_cast"]),
            valid=int(data["valid"]),
            blank=int(data["blank"]),
            max_score=int(data["max_score"]),
            lines=tuple(ScoreLine.from_dict(line) for line in data["lines"]),
            winners=tuple(str(name) for name in data["winners"]),
            tied=tuple(str(name) for name in data["tied"]),
            tie_break_note=optional_str(data["tie_break_note"]),
        )


def count_score(
    ballots: Iterable[Mapping[str, int]],
    options: Sequence[str],
    *,
    max_score: int = 5,
    tie_seed: str,
) -> ScoreResult:
    """Count score ballots; raises InvalidBallot for an unknown option or a score outside 0..max_score."""
    choices = check_options(options)
    tie_break = TieBreak(tie_seed)
    check_positive(max_score, "max_score")
    distributions = {choice: [0] * (max_score + 1) for choice in choices}
    cast = blank = 0
    for ballot in ballots:
        _check_ballot(ballot, distributions, max_score)
        cast += 1
        if not ballot:
            blank += 1
        for option, score in ballot.items():
            distributions[option][score] += 1
    valid = cast - blank
    lines = tuple(
        ScoreLine(choice, tuple(counts), valid - sum(counts)) for choice, counts in distributions.items()
    )
    winners, tied, note = _decide(lines, tie_break)
    return ScoreResult(
        ballots_cast=cast,
        valid=valid,
        blank=blank,
        max_score=max_score,
        lines=lines,
        winners=winners,
        tied=tied,
        tie_break_note=note,
    )


def _check_ballot(ballot: Mapping[str, int], known: Mapping[str, Any], max_score: int) -> None:
    if not isinstance(ballot, Mapping):
        raise InvalidBallot(f"a score ballot must map option ids to scores, got {ballot!r}")
    for option, score in ballot.items():
        if not isinstance(option, str) or option not in known:
            raise InvalidBallot(f"score ballot names an option not in this vote: {option!r}")
        # bool is an int subclass; True as a score of 1 would be a silent misreading.
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= max_score:
            raise InvalidBallot(f"score for {option!r} must be a whole number 0..{max_score}, got {score!r}")


def _decide(
    lines: tuple[ScoreLine, ...], tie_break: TieBreak
) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    averages = {line.option: line.average for line in lines if line.average is not None}
    if not averages:
        return (), (), None
    best = max(averages.values())
    leaders = [option for option, average in averages.items() if average == best]
    shown = str(best) if best.denominator == 1 else f"{best} ({float(best):.2f})"
    return tie_break.first_place(leaders, f"an average score of {shown}")
