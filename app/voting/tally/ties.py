"""The one tie-breaking rule used by every counting method.

The rule, applied identically everywhere:

1. A tie for last place in an instant-runoff round is broken backwards: among the tied options, the one
   with the fewest votes in the most recent earlier round where their votes differed is eliminated.
   When that earlier round still leaves several of them on the fewest votes, the same test is repeated
   further back with just those options.
2. Any tie that remains, and every tie for the winner (plurality, approval, score), is decided by a lot
   that anyone can recompute: the tied options are sorted by ``sha256(seed + ":" + option_id)`` (hex digest,
   ascending).  The first option in that lot order is favoured: it wins a tie for the winner, and in a tie
   for last place the last option in the lot order is the one eliminated.

The seed is supplied by the caller and is the proposal's public id, so the lot is reproducible by any
member.  It is not secret: once the id is known, so is the lot order.  That is the price of being
checkable, and it only ever matters for an exact tie.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.voting.tally.base import join_names, plural

LOT_WORDING = "decided by lot (sha256 of the proposal seed)"


@dataclass(frozen=True)
class TieBreak:
    """Breaks ties by the rule in this module's docstring, for one proposal's seed."""

    seed: str

    def __post_init__(self) -> None:
        # An empty seed would still be deterministic, but it almost always means the caller forgot it.
        if not isinstance(self.seed, str) or not self.seed:
            raise ValueError("tie_seed must be a non-empty string (the proposal's public id)")

    def lot_key(self, option: str) -> str:
        """The hex digest an option is sorted by in the lot."""
        return hashlib.sha256(f"{self.seed}:{option}".encode()).hexdigest()

    def lot_order(self, options: Iterable[str]) -> tuple[str, ...]:
        """Options in lot order, favoured first.  The id only matters if two digests were ever equal."""
        return tuple(sorted(options, key=lambda option: (self.lot_key(option), option)))

    def decide_winner(self, tied: Sequence[str], tied_on: str) -> tuple[str, str]:
        """Draw the winner among options tied for first; returns the winner and the note saying so.

        ``tied_on`` describes what they tied with, e.g. "40 votes".
        """
        drawn = self.lot_order(tied)[0]
        return drawn, f"{join_names(tied)} tied with {tied_on}; {LOT_WORDING}, {drawn} drawn."

    def first_place(
        self, leaders: Sequence[str], tied_on: str
    ) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
        """Settle first place among ``leaders`` (the options with the top score, in option order).

        Returns ``(winners, tied, note)``: without a tie, the sole leader (or nobody) and no note; with a
        tie, the lot's pick as the only winner, all the tied options, and the note.
        """
        if len(leaders) <= 1:
            return tuple(leaders), (), None
        drawn, note = self.decide_winner(leaders, tied_on)
        return (drawn,), tuple(leaders), note

    def decide_elimination(
        self,
        tied: Sequence[str],
        *,
        round_number: int,
        votes: int,
        earlier_rounds: Sequence[Mapping[str, int]],
    ) -> tuple[str, str]:
        """Choose which of the options tied for last place is eliminated; returns it and the note.

        ``earlier_rounds`` holds the tallies of rounds 1 .. round_number - 1; every tied option is still
        continuing, so each of those tallies has a count for it.
        """
        note = f"{join_names(tied)} tied for last place with {plural(votes, 'vote')} in round {round_number}"
        remaining = list(tied)
        steps: list[str] = []
        for index in range(len(earlier_rounds) - 1, -1, -1):
            tallies = earlier_rounds[index]
            fewest = min(tallies[option] for option in remaining)
            if all(tallies[option] == fewest for option in remaining):
                continue
            shown = ", ".join(f"{option} {tallies[option]}" for option in remaining)
            remaining = [option for option in remaining if tallies[option] == fewest]
            steps.append(f"round {index + 1} ({shown}) left {join_names(remaining)}")
            if len(remaining) == 1:
                break
        if steps:
            note += (
                "; backwards tie-break (fewest votes in the most recent earlier round where they differed): "
                + ", then ".join(steps)
            )
        if len(remaining) == 1:
            return remaining[0], f"{note}; {remaining[0]} eliminated."
        eliminated = self.lot_order(remaining)[-1]
        if not earlier_rounds:
            reason = "there was no earlier round to compare"
        elif steps:
            reason = f"no earlier round separated {join_names(remaining)}"
        else:
            reason = "they had equal votes in every earlier round"
        return eliminated, f"{note}; {reason}, so {LOT_WORDING}, {eliminated} eliminated (last in lot order)."
