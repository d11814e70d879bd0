"""Single-choice (plurality) counting, with an optional "none of these" choice.

A ballot is an option id, ``NONE_OF_THESE`` (only when the vote offers it) or None for a blank ballot.
The winner is the real option with the most votes; "none of these" is counted and reported but never
wins.  Whether "none of these" leading should block the result is the caller's policy; the result says
whether it led (``none_of_these_leads``).  No winner when no real option got a vote.  A tie for the most
votes is decided by lot (see ``ties``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from app.voting.tally.base import (
    NONE_OF_THESE,
    InvalidBallot,
    Tally,
    check_header,
    check_options,
    header,
    leaders_of,
    optional_str,
    plural,
    tally_from_json,
    tally_of,
    tally_to_json,
)
from app.voting.tally.ties import TieBreak


@dataclass(frozen=True)
class PluralityResult:
    """Votes per option (in the given option order), "none of these" and blank ballots, and the winner.

    ``valid`` counts ballots with a choice, "none of these" included; ``tied`` lists the options that tied
    for the most votes (empty without a tie) and ``winners[0]`` is the one the lot drew.
    """

    method: ClassVar[str] = "plurality"

    ballots_cast: int
    valid: int
    blank: int
    counts: Tally
    none_of_these: int
    allow_none_of_these: bool
    winners: tuple[str, ...]
    tied: tuple[str, ...]
    tie_break_note: str | None

    def __post_init__(self) -> None:
        if sum(count for _, count in self.counts) + self.none_of_these != self.valid:
            raise ValueError("option votes plus 'none of these' must equal valid")
        if self.valid + self.blank != self.ballots_cast:
            raise ValueError("valid plus blank must equal ballots_cast")

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.counts)

    def count(self, option: str) -> int:
        """Votes for one option."""
        return tally_of(self.counts, option)

    @property
    def none_of_these_leads(self) -> bool:
        """True when "none of these" got more votes than every real option."""
        return self.none_of_these > max(count for _, count in self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            **header(self.method),
            "ballots_cast": self.ballots_cast,
            "valid": self.valid,
            "blank": self.blank,
            "counts": tally_to_json(self.counts, "votes"),
            "none_of_these": self.none_of_these,
            "allow_none_of_these": self.allow_none_of_these,
            "none_of_these_leads": self.none_of_these_leads,
            "winners": list(self.winners),
            "tied": list(self.tied),
            "tie_break_note": self.tie_break_note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PluralityResult:
        check_header(data, cls.method)
        return cls(
            ballots_cast=int(data["ballots_cast"]),
            valid=int(data["valid"]),
            blank=int(data["blank"]),
            counts=tally_from_json(data["counts"], "votes"),
            none_of_these=int(data["none_of_these"]),
            allow_none_of_these=bool(data["allow_none_of_these"]),
            winners=tuple(str(name) for name in data["winners"]),
            tied=tuple(str(name) for name in data["tied"]),
            tie_break_note=optional_str(data["tie_break_note"]),
        )


def count_plurality(
    ballots: Iterable[str | None],
    options: Sequence[str],
    *,
    allow_none_of_these: bool,
    tie_seed: str,
) -> PluralityResult:
    """Count single-choice ballots; raises InvalidBallot for a choice the vote did not offer."""
    choices = check_options(options)
    tie_break = TieBreak(tie_seed)
    try:
        seen = Counter(ballots)
    except TypeError as error:  # an unhashable ballot cannot be an option id
        raise InvalidBallot("a single-choice ballot must be an option id or None") from error
    allowed: set[str | None] = {None, *choices}
    if allow_none_of_these:
        allowed.add(NONE_OF_THESE)
    unknown = [ballot for ballot in seen if ballot not in allowed]
    if unknown:
        raise InvalidBallot(f"ballot choices not offered in this vote: {sorted(map(repr, unknown))}")

    counts = tuple((option, seen[option]) for option in choices)
    blank = seen[None]
    none_of_these = seen[NONE_OF_THESE]
    top, leaders = leaders_of(counts)
    winners, tied, note = tie_break.first_place(leaders, plural(top, "vote"))
    return PluralityResult(
        ballots_cast=sum(seen.values()),
        valid=sum(seen.values()) - blank,
        blank=blank,
        counts=counts,
        none_of_these=none_of_these,
        allow_none_of_these=allow_none_of_these,
        winners=winners,
        tied=tied,
        tie_break_note=note,
    )
