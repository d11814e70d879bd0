"""Instant-runoff voting (IRV): single winner from ranked ballots.

The rules, as counted here:

* A ballot ranks options best first.  Partial rankings are allowed; an empty ranking is a blank ballot,
  counted in ``ballots_cast`` but not in ``valid``.  A ranking naming an unknown option, or one option
  twice, is refused with InvalidBallot.
* Each round, every ballot counts for its highest-ranked option still in the count.  A ballot whose ranked
  options have all been eliminated is exhausted and takes no further part.
* An option is elected when it has more than half of the ballots that are not exhausted in that round,
  or when it is the only option left.
* Otherwise exactly one option, the one with the fewest votes, is eliminated and its ballots move on to
  their next continuing preference.  No batch elimination, ever, so every round is easy to follow.
* A tie for fewest votes is broken backwards (fewest votes in the most recent earlier round where the
  tied options differed) and, failing that, by the seeded lot (see ``ties``).
* With no valid ballot at all there are no rounds and no winner.

Speed: identical rankings are grouped first (a Counter from ranking to weight), and each round only the
groups of the eliminated option are looked at, each keeping a pointer to its current preference.
Measured on a 2-core machine with Python 3.11: 100,000 random full rankings of 8 options (about 37,000
distinct rankings, the worst case for grouping) count in about 0.09 s, grouping and validation included;
100,000 skewed partial rankings (about 2,000 distinct) in about 0.02 s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from app.voting.tally.base import (
    InvalidBallot,
    Tally,
    check_header,
    check_options,
    header,
    optional_str,
    tally_from_json,
    tally_of,
    tally_to_json,
)
from app.voting.tally.ties import TieBreak

Ranking = tuple[str, ...]


@dataclass(frozen=True)
class IrvRound:
    """One round of the count.

    ``tallies`` are the votes of every continuing option at the start of the round (in option order) and
    ``exhausted`` the ballots already exhausted then, so together they add up to the valid ballots.  The
    round ends either with ``elected`` set, or with ``eliminated`` set and its ballots moved:
    ``transfers`` says how many went to each continuing option, ``transferred_exhausted`` how many had no
    further preference.  ``tie_break_note`` explains a tie for last place, if there was one.
    """

    number: int
    tallies: Tally
    exhausted: int
    elected: str | None = None
    eliminated: str | None = None
    transfers: Tally = ()
    transferred_exhausted: int = 0
    tie_break_note: str | None = None

    def votes(self, option: str) -> int:
        """Votes for a continuing option in this round."""
        return tally_of(self.tallies, option)

    @property
    def continuing(self) -> int:
        """Ballots not yet exhausted in this round."""
        return sum(count for _, count in self.tallies)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "tallies": tally_to_json(self.tallies, "votes"),
            "exhausted": self.exhausted,
            "elected": self.elected,
            "eliminated": self.eliminated,
            "transfers": tally_to_json(self.transfers, "votes"),
            "transferred_exhausted": self.transferred_exhausted,
            "tie_break_note": self.tie_break_note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IrvRound:
        return cls(
            number=int(data["number"]),
            tallies=tally_from_json(data["tallies"], "votes"),
            exhausted=int(data["exhausted"]),
            elected=optional_str(data["elected"]),
            eliminated=optional_str(data["eliminated"]),
            transfers=tally_from_json(data["transfers"], "votes"),
            transferred_exhausted=int(data["transferred_exhausted"]),
            tie_break_note=optional_str(data["tie_break_note"]),
        )


@dataclass(frozen=True)
class IrvResult:
    """The rounds of an instant-runoff count and its winner.

    ``tie_break_note`` joins the notes of every round that needed a tie broken (None if none did).
    """

    method: ClassVar[str] = "irv"

    ballots_cast: int
    valid: int
    blank: int
    options: tuple[str, ...]
    rounds: tuple[IrvRound, ...]
    winners: tuple[str, ...]
    tie_break_note: str | None

    def __post_init__(self) -> None:
        if self.valid + self.blank != self.ballots_cast:
            raise ValueError("valid plus blank must equal ballots_cast")

    @property
    def eliminated(self) -> tuple[str, ...]:
        """Options in the order they were eliminated."""
        return tuple(round_.eliminated for round_ in self.rounds if round_.eliminated is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            **header(self.method),
            "ballots_cast": self.ballots_cast,
            "valid": self.valid,
            "blank": self.blank,
            "options": list(self.options),
            "rounds": [round_.to_dict() for round_ in self.rounds],
            "winners": list(self.winners),
            "tie_break_note": self.tie_break_note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IrvResult:
        check_header(data, cls.method)
        return cls(
            ballots_cast=int(data["ballots_cast"]),
            valid=int(data["valid"]),
            blank=int(data["blank"]),
            options=tuple(str(name) for name in data["options"]),
            rounds=tuple(IrvRound.from_dict(round_) for round_ in data["rounds"]),
            winners=tuple(str(name) for name in data["winners"]),
            tie_break_note=optional_str(data["tie_break_note"]),
        )


def count_irv(ballots: Iterable[Sequence[str]], options: Sequence[str], *, tie_seed: str) -> IrvResult:
    """Count ranked ballots by instant runoff; see the module docstring for the rules."""
    choices = check_options(options)
    tie_break = TieBreak(tie_seed)
    groups = _group(ballots)
    blank = groups.pop((), 0)
    known = frozenset(choices)
    for ranking in groups:
        _check_ranking(ranking, known)
    valid = sum(groups.values())
    rounds = _Count(choices, groups, tie_break).run() if valid else ()
    notes = [round_.tie_break_note for round_ in rounds if round_.tie_break_note]
    return IrvResult(
        ballots_cast=valid + blank,
        valid=valid,
        blank=blank,
        options=choices,
        rounds=rounds,
        winners=tuple(round_.elected for round_ in rounds if round_.elected is not None),
        tie_break_note=" ".join(notes) if notes else None,
    )


def _as_ranking(ballot: Sequence[str]) -> Ranking:
    # A string is a sequence too; reading "AB" as the ranking A, B would be a silent error.
    if isinstance(ballot, str):
        raise InvalidBallot(f"a ranked ballot must be a sequence of option ids, got {ballot!r}")
    return ballot if type(ballot) is tuple else tuple(ballot)


def _group(ballots: Iterable[Sequence[str]]) -> Counter[Ranking]:
    """Identical rankings become one entry with a weight; this is what makes large counts fast."""
    source = iter(ballots)
    try:
        return Counter(map(_as_ranking, source))
    except TypeError as error:  # not iterable, or holding something unhashable: not a ranking of ids
        raise InvalidBallot("a ranked ballot must be a sequence of option ids") from error


def _check_ranking(ranking: Ranking, known: frozenset[str]) -> None:
    unknown = [choice for choice in ranking if not isinstance(choice, str) or choice not in known]
    if unknown:
        raise InvalidBallot(f"ranked ballot names options not in this vote: {unknown!r}")
    if len(set(ranking)) != len(ranking):
        raise InvalidBallot(f"ranked ballot ranks an option more than once: {list(ranking)!r}")


class _Count:
    """The mutable state of one count: a pointer per distinct ranking and a pile of rankings per option."""

    def __init__(self, choices: tuple[str, ...], groups: Counter[Ranking], tie_break: TieBreak) -> None:
        self.choices = choices
        self.tie_break = tie_break
        self.rankings = list(groups)
        self.weights = [groups[ranking] for ranking in self.rankings]
        self.position = [0] * len(self.rankings)
        self.piles: dict[str, list[int]] = {choice: [] for choice in choices}
        self.votes = dict.fromkeys(choices, 0)
        for index, ranking in enumerate(self.rankings):
            self.piles[ranking[0]].append(index)
            self.votes[ranking[0]] += self.weights[index]
        self.continuing = set(choices)
        self.valid = sum(self.weights)
        self.exhausted = 0

    def run(self) -> tuple[IrvRound, ...]:
        rounds: list[IrvRound] = []
        history: list[dict[str, int]] = []
        while True:
            number = len(rounds) + 1
            tallies = {choice: self.votes[choice] for choice in self.choices if choice in self.continuing}
            leader = max(tallies, key=tallies.__getitem__)
            # More than half of the ballots still in the count, compared in integers.
            if tallies[leader] * 2 > self.valid - self.exhausted or len(tallies) == 1:
                rounds.append(IrvRound(number, tuple(tallies.items()), self.exhausted, elected=leader))
                return tuple(rounds)
            loser, note = self._choose_loser(tallies, number, history)
            exhausted_before = self.exhausted
            transfers, to_exhausted = self._eliminate(loser)
            rounds.append(
                IrvRound(
                    number,
                    tuple(tallies.items()),
                    exhausted_before,
                    eliminated=loser,
                    transfers=transfers,
                    transferred_exhausted=to_exhausted,
                    tie_break_note=note,
                )
            )
            history.append(tallies)

    def _choose_loser(
        self, tallies: dict[str, int], number: int, history: list[dict[str, int]]
    ) -> tuple[str, str | None]:
        fewest = min(tallies.values())
        tied = [choice for choice, votes in tallies.items() if votes == fewest]
        if len(tied) == 1:
            return tied[0], None
        return self.tie_break.decide_elimination(
            tied, round_number=number, votes=fewest, earlier_rounds=history
        )

    def _eliminate(self, loser: str) -> tuple[Tally, int]:
        """Move the loser's ballots to their next continuing preference; returns transfers and exhausted."""
        self.continuing.discard(loser)
        moved: dict[str, int] = {}
        to_exhausted = 0
        rankings, position, weights, continuing = self.rankings, self.position, self.weights, self.continuing
        for index in self.piles.pop(loser):
            ranking = rankings[index]
            place = position[index] + 1
            while place < len(ranking) and ranking[place] not in continuing:
                place += 1
            weight = weights[index]
            if place == len(ranking):
                to_exhausted += weight
                continue
            position[index] = place
            target = ranking[place]
            self.piles[target].append(index)
            self.votes[target] += weight
            moved[target] = moved.get(target, 0) + weight
        self.exhausted += to_exhausted
        transfers = tuple((choice, moved[choice]) for choice in self.choices if choice in moved)
        return transfers, to_exhausted
