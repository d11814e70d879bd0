"""Approval (multiple-choice) counting.

A ballot is a collection of the option ids the member approves of; an empty one is a blank ballot.  Each
approval counts one for its option; the option with the most approvals wins, a tie being decided by lot
(see ``ties``).  An option's share is its approvals over the non-blank ballots, i.e. the share of the
members who expressed a view that approved of it.  A ballot naming an unknown option, naming one twice or
naming more than ``max_picks`` is refused with InvalidBallot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from app.voting.tally.base import (
    InvalidBallot,
    Tally,
    check_header,
    check_options,
    check_positive,
    fraction_to_json,
    header,
    leaders_of,
    optional_str,
    plural,
    tally_from_json,
    tally_of,
)
from app.voting.tally.ties import TieBreak

# Decimal places of the float share written for display next to the exact fraction.
DISPLAY_PLACES = 4


@dataclass(frozen=True)
class ApprovalResult:
    """Approvals per option (in the given option order) and the winner.

    ``tied`` lists the options that tied for the most approvals (empty without a tie) and ``winners[0]``
    is the one the lot drew.
    """

    method: ClassVar[str] = "approval"

    ballots_cast: int
    valid: int
    blank: int
    max_picks: int | None
    counts: Tally
    winners: tuple[str, ...]
    tied: tuple[str, ...]
    tie_break_note: str | None

    def __post_init__(self) -> None:
        if self.valid + self.blank != self.ballots_cast:
            raise ValueError("valid plus blank must equal ballots_cast")

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.counts)

    def count(self, option: str) -> int:
        """Approvals for one option."""
        return tally_of(self.counts, option)

    def share(self, option: str) -> Fraction:
        """Approvals for ``option`` over the non-blank ballots; 0 when every ballot was blank."""
        return Fraction(self.count(option), self.valid) if self.valid else Fraction(0)

    def to_dict(self) -> dict[str, Any]:
        return {
            **header(self.method),
            "ballots_cast": self.ballots_cast,
            "valid": self.valid,
            "blank": self.blank,
            "max_picks": self.max_picks,
            # The share is derived from the counts; it is written for display and ignored on reading.
            "counts": [
                {
                    "option": name,
                    "approvals": count,
                    "share": round(float(self.share(name)), DISPLAY_PLACES),
                    "share_exact": fraction_to_json(self.share(name)),
                }
                for name, count in self.counts
            ],
            "winners": list(self.winners),
            "tied": list(self.tied),
            "tie_break_note": self.tie_break_note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalResult:
        check_header(data, cls.method)
        max_picks = data["max_picks"]
        return cls(
            ballots_cast=int(data["ballots_cast"]),
            valid=int(data["valid"]),
            blank=int(data["blank"]),
            max_picks=None if max_picks is None else int(max_picks),
            counts=tally_from_json(data["counts"], "approvals"),
            winners=tuple(str(name) for name in data["winners"]),
            tied=tuple(str(name) for name in data["tied"]),
            tie_break_note=optional_str(data["tie_break_note"]),
        )


def count_approval(
    ballots: Iterable[Collection[str]],
    options: Sequence[str],
    *,
    max_picks: int | None,
    tie_seed: str,
) -> ApprovalResult:
    """Count approval ballots; ``max_picks`` None means a member may approve of every option."""
    choices = check_options(options)
    tie_break = TieBreak(tie_seed)
    if max_picks is not None:
        check_positive(max_picks, "max_picks")
    known = frozenset(choices)
    approvals: Counter[str] = Counter()
    cast = blank = 0
    for ballot in ballots:
        picks = _checked_picks(ballot, known, max_picks)
        cast += 1
        if picks:
            approvals.update(picks)
        else:
            blank += 1
    counts = tuple((option, approvals[option]) for option in choices)
    top, leaders = leaders_of(counts)
    winners, tied, note = tie_break.first_place(leaders, plural(top, "approval"))
    return ApprovalResult(
        ballots_cast=cast,
        valid=cast - blank,
        blank=blank,
        max_picks=max_picks,
        counts=counts,
        winners=winners,
        tied=tied,
        tie_break_note=note,
    )


def _checked_picks(ballot: Collection[str], known: frozenset[str], max_picks: int | None) -> tuple[str, ...]:
    """The ballot's picks, after refusing anything the count must not accept."""
    # A string is a collection of characters; taking "AB" as approving "A" and "B" would be a silent error.
    if isinstance(ballot, str) or not isinstance(ballot, Collection):
        raise InvalidBallot(f"an approval ballot must be a collection of option ids, got {ballot!r}")
    picks = tuple(ballot)
    unknown = [pick for pick in picks if not isinstance(pick, str) or pick not in known]
    if unknown:
        raise InvalidBallot(f"approval ballot names options not in this vote: {unknown!r}")
    if len(set(picks)) != len(picks):
        raise InvalidBallot(f"approval ballot names an option more than once: {sorted(picks)!r}")
    if max_picks is not None and len(picks) > max_picks:
        raise InvalidBallot(f"approval ballot picks {len(picks)} options, more than the {max_picks} allowed")
    return picks
